"""Your own labelled recordings: a manifest (CSV/TSV) or a folder per label.

    ser features --input mydata=/data/mydata/manifest.csv ...   # path,label[,speaker][,gender]
    ser features --input mydata=/data/mydata/ ...               # /data/mydata/<label>/**/*.wav

``mydata`` is any name that is not one of the four corpus readers; it becomes
the corpus name in the shards. A label is mapped to a canonical emotion by the
label table's ``corpora.<name>`` section when it has one (a user label map:
``--labels_config my_labels.yaml``), otherwise by its ``generic`` names
("anger", "Happy", "fear", ...). A label that maps to nothing is an error at
launch, before any work, naming the labels.

Manifest paths are relative to the manifest's folder unless absolute or URIs.
A file with a speaker is split with its speaker (speaker-independent splits);
a file without one is its own split group.
"""

from __future__ import annotations

import csv
import io
import posixpath
from dataclasses import dataclass
from typing import Iterable

from ser_model.config import ConfigError
from ser_model.labels import LabelTable

MANIFEST_SUFFIXES = (".csv", ".tsv")
REQUIRED_COLUMNS = ("path", "label")
GENDER_WORDS = {"": "unknown", "unknown": "unknown", "u": "unknown",
                "f": "female", "female": "female", "w": "female", "woman": "female",
                "m": "male", "male": "male", "man": "male"}


@dataclass(frozen=True)
class LabelFolders:
    """An input root whose first-level folders name the labels (``root/<label>/...``)."""

    corpus: str
    root: str


def is_manifest(source: str) -> bool:
    return source.lower().endswith(MANIFEST_SUFFIXES)


def user_label(table: LabelTable, corpus: str, code: str) -> str | None:
    """The canonical emotion of one of the user's labels, or None."""
    if corpus in table.code_maps:
        return table.canonical(corpus, code)
    return table.generic.get(code.strip().lower())


def check_labels(codes: Iterable[str], table: LabelTable, corpus: str, source: str) -> None:
    """Raise a one-line :class:`ConfigError` naming every label that maps to no emotion."""
    unknown = sorted({c for c in codes if user_label(table, corpus, c) is None})
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:8]) + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
        where = f"corpora.{corpus}" if corpus in table.code_maps else "generic"
        raise ConfigError(f"{source}: label(s) {shown} map to no emotion (looked up in the label table's "
                          f"{where} section; map them under corpora.{corpus} in a labels YAML given "
                          "with --labels_config)")


def resolve(base: str, path: str) -> str:
    """A manifest entry relative to the manifest's folder; absolute paths and URIs as given."""
    if "://" in path or path.startswith("/"):
        return path
    return posixpath.normpath(posixpath.join(base, path)) if "://" not in base else f"{base}/{path}"


def read_manifest(text: str, manifest_path: str, corpus: str, table: LabelTable):
    """Manifest text -> Utterances (``split`` left empty). Raises :class:`ConfigError` for a bad manifest."""
    from ser_model.corpora import Utterance

    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if manifest_path.lower().endswith(".tsv") else ",")
    columns = [(c or "").strip().lower() for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ConfigError(f"{manifest_path}: the header must name the columns path,label[,speaker][,gender]; "
                          f"missing {', '.join(missing)} (found {', '.join(columns) or 'nothing'})")
    base = posixpath.dirname(manifest_path.replace("\\", "/"))
    rows, seen = [], set()
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        if not row["path"] or not row["label"]:
            raise ConfigError(f"{manifest_path}:{line}: empty path or label")
        gender = GENDER_WORDS.get(row.get("gender", "").lower())
        if gender is None:
            raise ConfigError(f"{manifest_path}:{line}: gender {row['gender']!r} is not one of "
                              "female/f, male/m or empty")
        path = resolve(base, row["path"])
        if path in seen:
            raise ConfigError(f"{manifest_path}:{line}: {row['path']} is listed twice")
        seen.add(path)
        rows.append((path, row["label"], row.get("speaker", ""), gender))
    if not rows:
        raise ConfigError(f"{manifest_path}: no rows under the header")
    check_labels((code for _, code, _, _ in rows), table, corpus, manifest_path)
    return [Utterance(path=path, corpus=corpus, speaker=speaker, gender=gender,
                      label=user_label(table, corpus, code), raw_label=code)
            for path, code, speaker, gender in rows]


def folder_label(path: str, root: str) -> str | None:
    """The label folder of a file under ``root`` (its first folder below the root), or None."""
    root = root.rstrip("/")
    if not path.startswith(root + "/"):
        return None
    parts = path[len(root) + 1:].split("/")
    return parts[0] if len(parts) >= 2 and parts[0] else None


def parse_label_folder(path: str, source: LabelFolders, table: LabelTable):
    """One file of a folder-per-label input -> Utterance, or :class:`Skip` with the reason."""
    from ser_model.corpora import Skip, Utterance

    code = folder_label(path, source.root)
    if code is None:
        raise Skip("not-in-a-label-folder", f"{path} is not inside a label folder of {source.root}")
    label = user_label(table, source.corpus, code)
    if label is None:
        raise Skip("unknown-emotion-code", f"{source.corpus} label folder {code!r}")
    return Utterance(path=path, corpus=source.corpus, speaker="", gender="unknown", label=label, raw_label=code)
