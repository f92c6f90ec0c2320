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

from typing import Iterable

import keras
import numpy as np

from ser_model import storage
from ser_model.feature_dir import FeatureDir
from ser_model.records import GENDER_CLASSES, decode_example, read_records

META_KEYS = ("label_id", "gender", "corpus", "speaker", "path", "window_index")


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
                 seed: int = 0, shuffle: bool = True, **kwargs):
        super().__init__(**kwargs)
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
        return inputs, targets, weights

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.order = self.rng.permutation(len(self.order))
