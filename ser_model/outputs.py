"""Refuse an output that cannot be written before any work starts."""

from __future__ import annotations

import os


class OutputError(ValueError):
    """An output location that cannot be written, with the reason."""


def check_writable(output: str, folder: bool = False) -> None:
    """A local output's parent must be (or become) a writable folder; ``folder``: ``output`` must not be a file.

    Creates the missing parent folders. Remote outputs (``gs://``, ``s3://``) are
    checked by the storage service when they are written.
    """
    if "://" in output:
        return
    if folder and os.path.isfile(output):
        raise OutputError(f"cannot write {output}: it is a file, not a folder")
    parent = os.path.dirname(os.path.abspath(output))
    existing = parent
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise OutputError(f"cannot write {output}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {output}: {existing} is not writable")
    os.makedirs(parent, exist_ok=True)
