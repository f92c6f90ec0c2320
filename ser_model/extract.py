"""One utterance's bytes -> its windows' features and TFRecord examples.

The single place where windows become features: the feature pipeline, the
scorer, the predictor, the benchmarks' plain loop and the tests all call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from ser_model import audio
from ser_model.features import FeatureConfig, compute_features


@dataclass
class WindowFeatures:
    index: int
    start_s: float
    logmel: np.ndarray
    mfcc: np.ndarray
    segment: int | None = None


def featurize_windows(windows: Iterable[audio.Window], cfg: FeatureConfig) -> Iterator[WindowFeatures]:
    """The one windows -> features loop (pipelines, predictor, scorer, app)."""
    for win in windows:
        logmel, mfcc = compute_features(win.samples, cfg)
        yield WindowFeatures(win.index, win.start_s, logmel, mfcc, win.segment)


def featurize_bytes(data: bytes, cfg: FeatureConfig) -> tuple[list[WindowFeatures], float]:
    """Decode and featurise a file: ``(windows, original duration in seconds)``.

    Raises :class:`ser_model.audio.AudioError` for unusable audio.
    """
    wave, duration = audio.load_bytes(data, cfg)
    return list(featurize_windows(audio.windows(wave, cfg), cfg)), duration


def examples_for(utt, label_id: int, label: str, windows: list[WindowFeatures], duration: float) -> list[bytes]:
    """Serialised ``tf.train.Example`` for every window of one utterance."""
    from ser_model.records import encode_example

    meta = {**utt.to_dict(), "emotion": utt.label, "label": label, "label_id": label_id,
            "n_windows": len(windows), "duration_s": duration}
    return [encode_example(w.logmel, w.mfcc, {**meta, "window_index": w.index, "start_s": w.start_s})
            for w in windows]
