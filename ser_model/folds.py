"""Cross-validation folds that are speaker-disjoint in every corpus.

A fold plan maps every ``(corpus, speaker)`` to a fold name. Fold ``f``'s model
trains on every speaker outside ``f`` and is tested on the speakers inside it,
so each speaker is scored once, by a model that never heard them: the four
corpora's speakers all count, SAVEE's and TESS's too (whose feature-time test
groups are sentences and words, not speakers).

Three ways to make a plan:

* :func:`speaker_folds`: ``k`` folds; within each corpus the speakers are
  ordered by gender and a salted hash and dealt round-robin, starting at a
  per-corpus offset, so small corpora do not all land in the first folds and
  each fold gets both genders where a corpus has both;
* :func:`corpus_folds`: leave one corpus out (train on three, test on the fourth);
* :func:`read_fold_file`: an explicit CSV, mapping speakers (``corpus,speaker,fold``)
  or files (``path,fold``) to folds, e.g. a published benchmark's partition.
  A file map must still be speaker-disjoint; a file that splits one speaker
  over two folds is refused.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from typing import Iterable, Mapping

from ser_model.splits import stable_hash

Speaker = tuple[str, str]   # (corpus, speaker)


class FoldError(ValueError):
    """A fold plan that cannot be used, with the reason."""


def speaker_folds(speakers: Mapping[Speaker, str], k: int, salt: str = "ser-folds-v1") -> dict[Speaker, str]:
    """``{(corpus, speaker): "fold-i"}`` for ``speakers`` (``{(corpus, speaker): gender}``)."""
    if k < 2:
        raise FoldError(f"need at least 2 folds, not {k}")
    by_corpus: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for (corpus, speaker), gender in speakers.items():
        by_corpus[corpus].append((speaker, gender or "unknown"))
    plan = {}
    for corpus, members in sorted(by_corpus.items()):
        ordered = sorted(members, key=lambda m: (m[1], stable_hash(salt, corpus, m[0])))
        offset = stable_hash(salt, corpus) % k
        for i, (speaker, _) in enumerate(ordered):
            plan[(corpus, speaker)] = f"fold-{(offset + i) % k + 1}"
    return plan


def corpus_folds(speakers: Iterable[Speaker]) -> dict[Speaker, str]:
    """Leave one corpus out: each corpus is a fold."""
    return {(corpus, speaker): corpus for corpus, speaker in speakers}


def read_fold_file(text: str, files: Mapping[str, Speaker]) -> dict[Speaker, str]:
    """Parse an explicit fold CSV; ``files`` maps the feature folder's paths to their speakers.

    ``corpus,speaker,fold`` rows name speakers; ``path,fold`` rows name files (a
    path matches a file whose path ends with it, so relative paths work).
    """
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise FoldError("the fold file has no rows")
    columns = set(rows[0])
    if {"corpus", "speaker", "fold"} <= columns:
        return {(r["corpus"].strip(), r["speaker"].strip()): r["fold"].strip() for r in rows}
    if {"path", "fold"} <= columns:
        plan: dict[Speaker, str] = {}
        for row in rows:
            path, fold = row["path"].strip(), row["fold"].strip()
            matches = [spk for p, spk in files.items() if p == path or p.endswith("/" + path.lstrip("/"))]
            if not matches:
                raise FoldError(f"fold file: no file in the features folder matches {path!r}")
            for speaker in matches:
                if plan.setdefault(speaker, fold) != fold:
                    raise FoldError(f"fold file puts speaker {speaker[1]} of {speaker[0]} in folds "
                                    f"{plan[speaker]} and {fold}: folds must be speaker-disjoint")
        return plan
    raise FoldError(f"the fold file needs the columns corpus,speaker,fold or path,fold; it has {sorted(columns)}")


def check_plan(plan: Mapping[Speaker, str], speakers: Iterable[Speaker]) -> list[str]:
    """The plan's fold names, in order; refuses a plan that leaves a speaker out or has one fold."""
    missing = sorted(set(speakers) - set(plan))
    if missing:
        shown = ", ".join(f"{c}/{s}" for c, s in missing[:5])
        raise FoldError(f"{len(missing)} speaker(s) have no fold: {shown}" + (" ..." if len(missing) > 5 else ""))
    folds = sorted(set(plan.values()))
    if len(folds) < 2:
        raise FoldError("a fold plan needs at least two folds")
    return folds


def fold_members(plan: Mapping[Speaker, str], fold: str) -> tuple[frozenset[Speaker], frozenset[Speaker]]:
    """``(training speakers, test speakers)`` of one fold: disjoint by construction."""
    test = frozenset(s for s, f in plan.items() if f == fold)
    return frozenset(plan) - test, test
