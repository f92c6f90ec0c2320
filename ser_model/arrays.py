"""The input path without TensorFlow: a feature folder's windows as numpy arrays, and batches of them
for ``keras.Model.fit`` on any Keras backend (JAX, PyTorch).

The shards are read with ``ser_model.records`` (the project's own TFRecord
contract, decoded in Python) and held in memory, as ``tf.data``'s cache holds
them on the TensorFlow path (``ser_model.data``). Batches have the same
structure as that path's: ``({"logmel", "mfcc"}, {"emotion": one-hot,
"gender"}, {"emotion": class weight, "gender": 0 where unknown})``. What this
path does not do: the training-time augmentation (SpecAugment masks, shifts,
gain, noise, band limits), which lives in ``ser_model.data`` as TensorFlow ops.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import keras
import numpy as np

from ser_model import storage
from ser_model.feature_dir import FeatureDir
from ser_model.records import GENDER_CLASSES, decode_example, read_records

META_KEYS = ("label_id", "gender", "corpus", "speaker", "path", "window_index")


def balanced_class_weights(counts: np.ndarray) -> np.ndarray:
    """n / (k * count_c): every class contributes equally to the loss; absent classes get 0."""
    counts = np.asarray(counts, np.float64)
    present = counts > 0
    weights = np.zeros_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.astype(np.float32)


def load_windows(fdir: FeatureDir, splits: Iterable[str] = ("train",), speakers=None) -> dict[str, np.ndarray]:
    """Every window of ``splits`` (in shard and record order): ``logmel`` ``(N, n_mels, frames)``,
    ``mfcc``, and the :data:`META_KEYS` (strings decoded); ``speakers``: only these ``(corpus,
    speaker)`` pairs."""
    keep = None if speakers is None else {(c, s) for c, s in speakers}
    rows: dict[str, list] = {k: [] for k in ("logmel", "mfcc", *META_KEYS)}
    for split in splits:
        for shard in fdir.shards(split):
            with storage.open_read(shard) as f:
                for record in read_records(f):
                    ex = decode_example(record, fdir.features)
                    meta = {k: v.decode("utf-8") if isinstance(v, bytes) else v for k, v in ex.items()}
                    if keep is not None and (meta["corpus"], meta["speaker"]) not in keep:
                        continue
                    for k in rows:
                        rows[k].append(meta[k])
    if not rows["label_id"]:
        raise FileNotFoundError(f"no {'+'.join(splits)} windows in {fdir.path}")
    return {k: np.stack(v) if k in ("logmel", "mfcc") else np.asarray(v) for k, v in rows.items()}


class WindowBatches(keras.utils.PyDataset):
    """Batches of ``(inputs, targets, sample weights)`` from :func:`load_windows` arrays, reshuffled
    every epoch when ``shuffle`` (whole batches only, as the TensorFlow path's training batches)."""

    def __init__(self, windows: dict, batch_size: int, class_weights: np.ndarray, gender_head: bool,
                 seed: int = 0, shuffle: bool = True, speaker_vocab=None, **kwargs):
        super().__init__(**kwargs)
        self.speaker_of = {key: i for i, key in enumerate(speaker_vocab)} if speaker_vocab else None
        self.windows, self.batch_size, self.gender_head, self.shuffle = windows, batch_size, gender_head, shuffle
        self.class_weights = np.asarray(class_weights, np.float32)
        self.rng = np.random.default_rng(seed)
        n = len(windows["label_id"])
        self.order = self.rng.permutation(n) if shuffle else np.arange(n)

    def __len__(self) -> int:
        n = len(self.order)
        return n // self.batch_size if self.shuffle else -(-n // self.batch_size)

    def __getitem__(self, index: int):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        w = self.windows
        inputs = {"logmel": w["logmel"][rows][..., None], "mfcc": w["mfcc"][rows][..., None]}
        label = w["label_id"][rows]
        targets = {"emotion": np.eye(len(self.class_weights), dtype=np.float32)[label]}
        weights = {"emotion": self.class_weights[label]}
        if self.gender_head:
            g = np.array([GENDER_CLASSES.index(x) if x in GENDER_CLASSES else -1 for x in w["gender"][rows]])
            targets["gender"] = np.maximum(g, 0)
            weights["gender"] = (g >= 0).astype(np.float32)
        if self.speaker_of is not None:
            s = np.array([self.speaker_of.get(f"{c}/{p}", -1) for c, p in zip(w["corpus"][rows], w["speaker"][rows])])
            targets["speaker"] = np.maximum(s, 0)
            weights["speaker"] = (s >= 0).astype(np.float32)
        return inputs, targets, weights

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.order = self.rng.permutation(len(self.order))


# --- The trainer's input functions (ser_model.data's, without TensorFlow) -------------------------

def _splits(split) -> tuple[str, ...]:
    return (split,) if isinstance(split, str) else tuple(split)


_LOADED: dict = {}   # the last few (folder, splits, speakers) loaded: counted, then batched, in one run


def _windows(fdir: FeatureDir, split, speakers) -> dict:
    key = (fdir.path, _splits(split), None if speakers is None else tuple(sorted(speakers)))
    if key not in _LOADED:
        if len(_LOADED) >= 4:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = load_windows(fdir, key[1], speakers)
    return _LOADED[key]


def class_counts(fdir: FeatureDir, split="train", speakers=None) -> np.ndarray:
    """Windows per class in a split or several; ``speakers``: only these ``(corpus, speaker)`` pairs."""
    labels = _windows(fdir, split, speakers)["label_id"]
    return np.bincount(labels, minlength=len(fdir.label_set.classes)).astype(np.int64)


def train_dataset(fdir: FeatureDir, train_cfg: Mapping, aug: Mapping, class_weights: np.ndarray,
                  gender_head: bool, seed: int, splits: tuple[str, ...] = ("train",),
                  speakers=None, speaker_vocab=None) -> WindowBatches:
    """Shuffled batches of ``(inputs, targets, sample weights)`` (no augmentation on this path)."""
    return WindowBatches(_windows(fdir, splits, speakers), train_cfg["batch_size"], class_weights, gender_head,
                         seed=seed, speaker_vocab=speaker_vocab)


class EvalBatches(keras.utils.PyDataset):
    """Batches of ``(inputs, metadata)`` in a fixed order, for evaluation and prediction."""

    def __init__(self, windows: dict, batch_size: int, **kwargs):
        super().__init__(**kwargs)
        self.windows, self.batch_size = windows, batch_size

    def __len__(self) -> int:
        return -(-len(self.windows["label_id"]) // self.batch_size)

    def __getitem__(self, index: int):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        w = self.windows
        return ({"logmel": w["logmel"][rows][..., None], "mfcc": w["mfcc"][rows][..., None]},
                {k: w[k][rows] for k in META_KEYS})


def eval_dataset(fdir: FeatureDir, split, batch_size: int, cache: bool = False, speakers=None) -> EvalBatches:
    return EvalBatches(_windows(fdir, split, speakers), batch_size)
