"""The one per-file result table printed by `ser predict` and `ser score --summary`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

UNKNOWN = ("?", "-")   # expected_class: "?" the name does not say, "-" not in the label set


@dataclass(frozen=True)
class FileResult:
    path: str
    true: str                       # from the file name (ser_model.corpora.expected_class)
    label: str | None = None        # None when the file failed
    confidence: float | None = None
    n_windows: int | None = None
    gender: str | None = None
    error: str | None = None


def format_file_table(results: Iterable[FileResult], name_width: int = 34) -> str:
    """Rows sorted by path, then ``N/M correct`` over the files whose name gives the true label."""
    w = name_width
    lines = [f"{'file':{w}s} {'true':>9s} {'predicted':>10s} {'conf':>5s} {'windows':>7s} {'gender':>7s}"]
    correct = known = 0
    for r in sorted(results, key=lambda r: r.path):
        name = os.path.basename(r.path)[:w]
        if r.error or r.label is None:
            lines.append(f"{name:{w}s} {r.true:>9s}  error: {r.error}")
            continue
        if r.true not in UNKNOWN:
            known += 1
            correct += r.true == r.label
        lines.append(f"{name:{w}s} {r.true:>9s} {r.label:>10s} {r.confidence:5.2f} {r.n_windows or 0:7d} "
                     f"{r.gender or '':>7s}")
    if known:
        lines.append(f"{correct}/{known} correct where the file name gives the true label")
    return "\n".join(lines)
