"""Predictor: audio in, class probabilities out, with everything read from a bundle.

Used by `ser predict` and the web app. It decodes, windows and featurises
exactly as the model was trained (the bundle's features.json), through the same
functions as the feature pipeline and the bulk scorer (``streaming.open_windows``,
``extract.featurize_windows``, ``aggregate.file_probabilities``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ser_model import audio
from ser_model.aggregate import file_probabilities, segment_probabilities
from ser_model.bundle import Bundle, load_bundle, named_outputs
from ser_model.calibration import apply_temperature
from ser_model.extract import featurize_windows


@dataclass
class Prediction:
    """Per-window and per-file probabilities of one recording."""

    duration_s: float
    starts_s: np.ndarray            # (windows,)
    window_probs: np.ndarray        # (windows, classes), calibrated with the bundle's temperature
    probs: np.ndarray               # (classes,) ser_model.aggregate.file_probabilities
    classes: tuple[str, ...]
    gender_probs: np.ndarray | None = None   # (classes of gender,) mean over windows
    segments: list | None = None    # [(start_s, end_s)] of speech, when voice activity placed the windows
    segment_probs: list | None = None   # per segment: aggregate.segment_probabilities (None: no window)

    @property
    def label(self) -> str:
        return self.classes[int(np.argmax(self.probs))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probs))


class Predictor:
    """Loads a bundle once; predicts from a file object, a path or windows."""

    def __init__(self, bundle: Bundle | str | None = None, batch_size: int = 64, vad: str = "long"):
        """``vad``: "long" scores only the speech of recordings longer than the bundle's
        ``max_seconds`` (the scorer's default too), "off" every window with sound."""
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.cfg = self.bundle.features
        self.batch_size = batch_size
        self.vad = self.bundle.vad if vad == "long" else None

    def features(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(starts_s, logmel (W, mels, frames, 1), mfcc (W, mfcc, frames, 1)) of a prepared waveform."""
        return self.window_features(audio.windows(wave, self.cfg))

    def window_features(self, wins) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        feats = list(featurize_windows(wins, self.cfg))
        if not feats:
            raise audio.AudioError("silent", "no window with sound in it")
        return (np.array([f.start_s for f in feats]),
                np.stack([f.logmel for f in feats])[..., None], np.stack([f.mfcc for f in feats])[..., None])

    def predict_features(self, logmel: np.ndarray, mfcc: np.ndarray) -> dict:
        return named_outputs(self.bundle.model.predict({"logmel": logmel, "mfcc": mfcc},
                                                       batch_size=self.batch_size, verbose=0))

    def predict_windows(self, wins, duration_s: float, chunk: int = 256, segments=None) -> Prediction:
        """Windows (e.g. streamed from a long file) in chunks, so memory stays bounded."""
        starts, probs, genders, window_segments = [], [], [], []
        it = iter(wins)
        while True:
            part = [w for _, w in zip(range(chunk), it)]
            if not part:
                break
            window_segments += [w.segment for w in part]
            s, logmel, mfcc = self.window_features(part)
            out = self.predict_features(logmel, mfcc)
            starts.append(s)
            probs.append(np.asarray(out["emotion"], np.float64))
            if "gender" in out:
                genders.append(np.asarray(out["gender"], np.float64))
        if not probs:
            if segments == []:
                raise audio.AudioError("no-speech", "voice activity detection found no speech")
            raise audio.AudioError("silent", "no window with sound in it")
        raw = np.concatenate(probs)
        t = self.bundle.temperature
        gender = file_probabilities(np.concatenate(genders)) if genders else None
        per_segment = segment_probabilities(window_segments, raw, len(segments), t) if segments else None
        return Prediction(duration_s, np.concatenate(starts), apply_temperature(raw, t),
                          file_probabilities(raw, t), self.bundle.classes, gender, segments, per_segment)

    def predict_fileobj(self, fileobj, max_seconds: float | None = None) -> Prediction:
        """Any length: clips as in training, long recordings streamed (see ser_model.streaming).

        Raises :class:`ser_model.audio.AudioError` for unusable audio.
        """
        from ser_model.streaming import open_windows

        rec = open_windows(fileobj, self.cfg, max_seconds=max_seconds, vad=self.vad)
        return self.predict_windows(rec.windows, rec.duration_s, segments=rec.segments)

    def predict_file(self, path: str, max_seconds: float | None = None) -> Prediction:
        with open(path, "rb") as f:
            return self.predict_fileobj(f, max_seconds=max_seconds)
