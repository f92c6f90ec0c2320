"""Corpus readers: a file path in, an :class:`Utterance` (or a counted skip) out.

Each corpus has one small module with its naming rule and explicit code map (the
map itself lives in ``configs/labels.yaml``); ``labelled`` reads a user's own
data (a manifest or a folder per label). Parsing looks at the path only; it
never opens the file, so it is cheap enough to run over millions of paths.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, replace
from typing import Callable, Mapping

from ser_model.labels import LabelTable

from . import cremad, ravdess, savee, tess
from .labelled import LabelFolders, parse_label_folder

AUDIO_EXTENSIONS = frozenset({"wav", "flac", "ogg", "opus", "mp3", "aiff", "aif", "aifc", "oga"})

# Tried in this order when a root does not name its corpus; the patterns are
# disjoint (RAVDESS dashes, CREMA-D 4-digit actor ids, SAVEE one-letter codes
# plus digits, TESS words), so the order only matters for robustness.
READERS: Mapping[str, Callable] = {
    "ravdess": ravdess.parse,
    "cremad": cremad.parse,
    "savee": savee.parse,
    "tess": tess.parse,
}
CORPORA = tuple(READERS)

# CREMA-D ships actor sex in this file; the pipeline reads it as a side input.
CREMAD_DEMOGRAPHICS = "VideoDemographics.csv"


@dataclass(frozen=True)
class Utterance:
    """One audio file of a known emotion. ``split`` is filled in later."""

    path: str
    corpus: str
    speaker: str
    gender: str          # male | female | unknown
    label: str           # canonical emotion
    raw_label: str       # the corpus's own code
    sentence: str = ""   # sentence id or spoken word, where the corpus names one
    split: str = ""

    def with_(self, **changes) -> "Utterance":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return dict(vars(self))  # flat fields: no need for asdict's deep copy


class Skip(Exception):
    """A path that is not a speech utterance of a known emotion; ``reason`` is counted."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class NotThisCorpus(Exception):
    """Raised by a reader whose naming pattern does not match the path."""


def split_name(path: str) -> tuple[str, str, str]:
    """``(parent folder name, stem, lower-case extension)`` of a path or URI."""
    parent, base = posixpath.split(path.replace("\\", "/"))
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    return posixpath.basename(parent), stem, ext.lower()


def check_audio_name(path: str) -> None:
    """Raise :class:`Skip` for a path that cannot be a recording (by its name)."""
    _, _, ext = split_name(path)
    base = posixpath.basename(path.replace("\\", "/"))
    if base.startswith("._"):
        raise Skip("macos-resource-fork", base)
    if base == CREMAD_DEMOGRAPHICS:
        raise Skip("corpus-metadata", base)
    if ext not in AUDIO_EXTENSIONS:
        raise Skip("not-audio-extension", base)


def parse_path(path: str, table: LabelTable, corpus: "str | LabelFolders | None" = None) -> Utterance:
    """Turn a path into an Utterance, or raise :class:`Skip` with the reason.

    ``corpus`` forces one reader (a named root) or is a user's folder-per-label
    root (:class:`labelled.LabelFolders`); otherwise every reader is tried.
    """
    check_audio_name(path)
    if isinstance(corpus, LabelFolders):
        return parse_label_folder(path, corpus, table)
    folder, stem, _ = split_name(path)
    base = posixpath.basename(path.replace("\\", "/"))
    names = [corpus] if corpus else list(READERS)
    for name in names:
        if name not in READERS:
            raise ValueError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
        try:
            return READERS[name](path, folder, stem, table)
        except NotThisCorpus:
            continue
    where = f"{corpus} naming" if corpus else "any corpus naming"
    raise Skip("unrecognised-name", f"{base} does not follow {where}")


def lookup_label(table: LabelTable, corpus: str, code: str) -> str:
    label = table.canonical(corpus, code)
    if label is None:
        raise Skip("unknown-emotion-code", f"{corpus} code {code!r}")
    return label


def expected_class(path: str, table: LabelTable, label_set) -> str:
    """The training class a file's name implies: "?" if the name says nothing, "-" if the set drops it."""
    try:
        return label_set.class_of(parse_path(path, table).label) or "-"
    except Skip:
        return "?"
