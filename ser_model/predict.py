"""Predictor: audio in, class probabilities out, with everything read from a bundle.

Used by `ser predict`, the bulk scorer and the web app, so that all three decode,
window and featurise exactly as the model was trained (the bundle's
features.json), through the same functions as the feature pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ser_model import audio
from ser_model.bundle import Bundle, load_bundle, named_outputs
from ser_model.features import compute_features


@dataclass
class Prediction:
    """Per-window and per-file probabilities of one recording."""

    duration_s: float
    starts_s: np.ndarray            # (windows,)
    window_probs: np.ndarray        # (windows, classes)
    probs: np.ndarray               # (classes,) mean over windows
    classes: tuple[str, ...]
    gender_probs: np.ndarray | None = None   # (classes of gender,) mean over windows

    @property
    def label(self) -> str:
        return self.classes[int(np.argmax(self.probs))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probs))


class Predictor:
    """Loads a bundle once; predicts from a file object, a path or windows."""

    def __init__(self, bundle: Bundle | str | None = None, batch_size: int = 64):
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.cfg = self.bundle.features
        self.batch_size = batch_size

    def features(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(starts_s, logmel (W, mels, frames, 1), mfcc (W, mfcc, frames, 1)) of a prepared waveform."""
        return self.window_features(audio.windows(wave, self.cfg))

    def window_features(self, wins) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        wins = list(wins)
        if not wins:
            raise audio.AudioError("silent", "no window with sound in it")
        feats = [compute_features(w.samples, self.cfg) for w in wins]
        return (np.array([w.start_s for w in wins]),
                np.stack([f[0] for f in feats])[..., None], np.stack([f[1] for f in feats])[..., None])

    def predict_features(self, logmel: np.ndarray, mfcc: np.ndarray) -> dict:
        return named_outputs(self.bundle.model.predict({"logmel": logmel, "mfcc": mfcc},
                                                       batch_size=self.batch_size, verbose=0))

    def predict_windows(self, wins, duration_s: float, chunk: int = 256) -> Prediction:
        """Windows (e.g. streamed from a long file) in chunks, so memory stays bounded."""
        starts, probs, genders = [], [], []
        it = iter(wins)
        while True:
            part = [w for _, w in zip(range(chunk), it)]
            if not part:
                break
            s, logmel, mfcc = self.window_features(part)
            out = self.predict_features(logmel, mfcc)
            starts.append(s)
            probs.append(np.asarray(out["emotion"], np.float64))
            if "gender" in out:
                genders.append(np.asarray(out["gender"], np.float64))
        if not probs:
            raise audio.AudioError("silent", "no window with sound in it")
        probs = np.concatenate(probs)
        gender = np.concatenate(genders).mean(axis=0) if genders else None
        return Prediction(duration_s, np.concatenate(starts), probs, probs.mean(axis=0),
                          self.bundle.classes, gender)

    def predict_fileobj(self, fileobj, max_seconds: float | None = None) -> Prediction:
        """Any length: clips as in training, long recordings streamed (see ser_model.streaming).

        Raises :class:`ser_model.audio.AudioError` for unusable audio.
        """
        from ser_model.streaming import open_windows

        rec = open_windows(fileobj, self.cfg, max_seconds=max_seconds)
        return self.predict_windows(rec.windows, rec.duration_s)

    def predict_file(self, path: str, max_seconds: float | None = None) -> Prediction:
        with open(path, "rb") as f:
            return self.predict_fileobj(f, max_seconds=max_seconds)


def run(argv=None) -> int:
    """`ser predict FILE...`: a readable table of the predicted emotion of a few files."""
    import argparse
    import os
    import sys

    from ser_model.audio import AudioError
    from ser_model.corpora import expected_class
    from ser_model.labels import load_label_table

    p = argparse.ArgumentParser(prog="ser predict", description="Predict the emotion of a few audio files "
                                "(for archives, use `ser score`).")
    p.add_argument("files", nargs="+", help="audio files (wav, flac, ogg, opus, mp3, aiff)")
    p.add_argument("--model", default=None, help="bundle folder (default: $SER_MODEL or the bundled model)")
    p.add_argument("--max_seconds", type=float, default=600.0, help="refuse longer files (default 600)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        predictor = Predictor(args.model)
    except FileNotFoundError as err:
        print(f"ser predict: error: {err}", file=sys.stderr)
        return 2
    table = load_label_table()
    classes = predictor.bundle.classes
    print(f"model {predictor.bundle.model_id} ({len(classes)} classes)")
    print(f"{'file':40s} {'true':>9s} {'predicted':>10s} {'conf':>5s} {'windows':>7s}")
    failures = 0
    for path in args.files:
        name = os.path.basename(path)[:40]
        true = expected_class(path, table, predictor.bundle.label_set)
        try:
            pred = predictor.predict_file(path, max_seconds=args.max_seconds)
        except (AudioError, OSError) as err:
            failures += 1
            print(f"{name:40s} {true:>9s}  error: {err}")
            continue
        print(f"{name:40s} {true:>9s} {pred.label:>10s} {pred.confidence:5.2f} {len(pred.starts_s):7d}")
    return 1 if failures else 0
