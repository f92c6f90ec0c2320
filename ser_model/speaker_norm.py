"""Speaker normalisation at scoring time: take each speaker's (or session's) pull off the model's outputs.

A voice the model never heard pulls its predictions towards one or two classes, a different
pull for each voice (on the speaker folds, one unseen SAVEE speaker got "angry" for most of
his files, another "neutral"). No single recording shows that pull, but a group of one
speaker's recordings does: archives often keep one folder per speaker or session, or an id in
the file name. Within each group, a file's log-probabilities lose the group's mean and gain the
mean over every grouped file of the run:

    log q(file) = log p(file) - mean over its group of log p + mean over all grouped files of log p

then renormalised. What is left is how the file differs from its own speaker's other files,
on the scale of the archive as a whole.

The assumption, which the user must judge: every group holds a similar mix of emotions. The
run-wide mean keeps a mix that all groups share (an archive that is mostly neutral stays
mostly neutral), but a speaker who really is angrier than the others is pulled back towards
the rest. A group with fewer than ``min_files`` recordings, or a file outside every group, is
left without a normalised result: a mean over a few files is mostly those files' own emotions.
``benchmarks/speaker_norm.py`` measures what it gains and loses on the speaker folds.
"""

from __future__ import annotations

import os
import re
from typing import Callable, Sequence

import numpy as np

FOLDER = "folder"
MIN_GROUP_FILES = 10
_FLOOR = 1e-12   # a probability of exactly 0 (float32 underflow) would make the log infinite


class GroupRuleError(ValueError):
    """A ``--group_by`` rule that cannot be used, with the reason."""


def group_rule(rule: str) -> Callable[[str], str | None]:
    """``path -> group`` from a rule: ``folder`` (the folder a file is in) or a regular expression
    searched in the path, whose first capture group (or, without one, whole match) names the group;
    a path it does not match has no group (None)."""
    if rule == FOLDER:
        return lambda path: os.path.dirname(path.rstrip("/")) or None
    try:
        pattern = re.compile(rule)
    except re.error as err:
        raise GroupRuleError(f"not 'folder' nor a valid regular expression: {rule!r} ({err})") from None
    if pattern.groups > 1:
        raise GroupRuleError(f"{rule!r} has {pattern.groups} capture groups; use at most one (the group's name)")

    def group_of(path: str) -> str | None:
        match = pattern.search(path)
        return (match.group(1) if pattern.groups else match.group(0)) if match else None

    return group_of


def normalise_by_group(probs, groups: Sequence[str | None], min_files: int = MIN_GROUP_FILES,
                       temperature: float = 1.0) -> np.ndarray:
    """``(files, classes)`` probabilities (calibrated ones: the files table's) -> the same with each
    group's pull taken off (module doc), then rescaled by ``temperature``: normalised outputs are more
    often right than the same confidence was before, so they have a calibration of their own
    (``group_temperature``, fitted by ``ser crossval``; ``ser_model.crossval.cross_fitted_calibration``).

    Rows of files without a group, or in a group of fewer than ``min_files`` files, are NaN. With one
    group only, there is nothing to compare it with: its rows only get the ``temperature``.
    """
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or len(probs) != len(groups):
        raise ValueError(f"need one group per row of a (files, classes) array: {probs.shape} and {len(groups)}")
    if min_files < 1:
        raise ValueError(f"min_files must be at least 1, not {min_files}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, not {temperature}")
    out = np.full_like(probs, np.nan)
    log_p = np.log(np.maximum(probs, _FLOOR))
    members: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        if group is not None:
            members.setdefault(group, []).append(i)
    kept = [np.asarray(rows) for rows in members.values() if len(rows) >= min_files]
    if not kept:
        return out
    overall = log_p[np.concatenate(kept)].mean(axis=0)
    for rows in kept:
        shifted = (log_p[rows] - log_p[rows].mean(axis=0) + overall) / temperature
        shifted -= shifted.max(axis=1, keepdims=True)
        q = np.exp(shifted)
        out[rows] = q / q.sum(axis=1, keepdims=True)
    return out
