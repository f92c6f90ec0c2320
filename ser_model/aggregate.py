"""Window probabilities -> one probability vector per recording: the one rule for every consumer.

The scorer, the predictor (and so the app) and the evaluation all call
:func:`file_probabilities`, so a file gets the same label wherever it is scored.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def file_probabilities(window_probs, temperature: float = 1.0) -> np.ndarray:
    """A recording's probabilities: the mean of its windows' ``(windows, classes)`` -> ``(classes,)``,
    float64, then rescaled by the bundle's calibration ``temperature`` (:mod:`ser_model.calibration`).

    Windows should come in their time order: the float64 sum is then the same
    however the windows were batched or distributed.
    """
    from ser_model.calibration import apply_temperature

    probs = np.asarray(window_probs, np.float64)
    if probs.ndim != 2 or not len(probs):
        raise ValueError(f"need a (windows, classes) array with at least one window, got shape {probs.shape}")
    return apply_temperature(probs.mean(axis=0), temperature)


def group_by_file(paths: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Indices of each file's first row (in order of appearance) and of all its rows."""
    rows: dict[str, list[int]] = {}
    for i, path in enumerate(paths):
        rows.setdefault(path, []).append(i)
    members = [np.asarray(r) for r in rows.values()]
    return np.asarray([r[0] for r in members], int), members


def segment_probabilities(window_segments, window_probs, n_segments: int, temperature: float = 1.0) -> list:
    """Per speech segment ``0 .. n_segments - 1``: :func:`file_probabilities` of its windows (given in
    time order, each with its segment index), or None for a segment without a scored window (every
    window of it was digital silence). The scorer's segments table and the predictor use this rule."""
    segments = np.asarray(window_segments)
    probs = np.asarray(window_probs, np.float64)
    return [file_probabilities(probs[segments == s], temperature) if (segments == s).any() else None
            for s in range(n_segments)]
