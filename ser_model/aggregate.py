"""Window probabilities -> one probability vector per recording: the one rule for every consumer.

The scorer, the predictor (and so the app) and the evaluation all call
:func:`file_probabilities`, so a file gets the same label wherever it is scored.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def file_probabilities(window_probs) -> np.ndarray:
    """The mean of a recording's window probabilities, ``(windows, classes)`` -> ``(classes,)``, float64.

    Windows should come in their time order: the float64 sum is then the same
    however the windows were batched or distributed.
    """
    probs = np.asarray(window_probs, np.float64)
    if probs.ndim != 2 or not len(probs):
        raise ValueError(f"need a (windows, classes) array with at least one window, got shape {probs.shape}")
    return probs.mean(axis=0)


def group_by_file(paths: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Indices of each file's first row (in order of appearance) and of all its rows."""
    rows: dict[str, list[int]] = {}
    for i, path in enumerate(paths):
        rows.setdefault(path, []).append(i)
    members = [np.asarray(r) for r in rows.values()]
    return np.asarray([r[0] for r in members], int), members
