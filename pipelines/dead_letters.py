"""The one dead-letter format of both pipelines.

A dead letter is an input the run could not use, with the reason, written as
one JSON object per line to ``dead_letters.jsonl`` (features) or
``PREFIX.dead_letters.jsonl`` (score)::

    {"path": ..., "kind": "skipped"|"failed", "stage": ..., "error_type": ..., "message": ...}

``skipped``: the input is not something this job uses (not an utterance of the
label set, a RAVDESS song file, a macOS ``._*`` file); ``failed``: it should have
been usable but could not be read, decoded or scored.
"""

from __future__ import annotations

import json
from typing import Iterable

DEAD = "dead_letter"   # the tagged output that carries dead letters in both pipelines


def dead_letter(path: str, stage: str, error_type: str, message: str, kind: str = "failed") -> dict:
    return {"path": path, "kind": kind, "stage": stage, "error_type": error_type, "message": message}


def to_jsonl(rows: Iterable[dict]) -> str:
    """Dead letters sorted by path and stage, one JSON object a line (stable across reruns)."""
    ordered = sorted(rows, key=lambda r: (r["path"], r["stage"]))
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in ordered)
