"""Stable, group-disjoint train/val/test assignment.

Groups (speakers, or words/sentences for corpora with very few speakers) are
ordered within their corpus by a salted SHA-1, a hash that, unlike Python's
``hash()``, is the same in every process and on every machine. The first groups
in that order go to test, the next to val, the rest to train, so that

* no group is ever in two splits (the split is a function of the group);
* every corpus with at least three groups has test and val groups;
* adding or removing one group moves at most the groups at the boundaries.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

SPLITS = ("train", "val", "test")
GROUP_KEYS = ("speaker", "sentence", "word")


@dataclass(frozen=True)
class SplitConfig:
    fractions: Mapping[str, float] = field(
        default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    salt: str = "ser-v1"
    group_by: Mapping[str, str] = field(default_factory=dict)
    overrides: Mapping[str, Mapping[str, list]] = field(default_factory=dict)

    def __post_init__(self):
        if set(self.fractions) != set(SPLITS) or abs(sum(self.fractions.values()) - 1) > 1e-6:
            raise ValueError(f"split fractions must cover {SPLITS} and sum to 1: {dict(self.fractions)}")
        for corpus, key in self.group_by.items():
            if key not in GROUP_KEYS:
                raise ValueError(f"splits.group_by.{corpus}: {key!r} is not one of {GROUP_KEYS}")

    def key_name(self, corpus: str) -> str:
        return self.group_by.get(corpus, "speaker")

    @classmethod
    def from_dict(cls, data: Mapping) -> "SplitConfig":
        return cls(fractions=dict(data.get("fractions") or cls().fractions),
                   salt=str(data.get("salt", "ser-v1")),
                   group_by=dict(data.get("group_by") or {}),
                   overrides={c: dict(v) for c, v in (data.get("overrides") or {}).items()})

    def to_json(self) -> dict:
        return {"fractions": dict(self.fractions), "salt": self.salt,
                "group_by": dict(self.group_by),
                "overrides": {c: dict(v) for c, v in self.overrides.items()}}


def group_of(utt, config: SplitConfig) -> str:
    """The grouping key of an utterance: its speaker, or its word/sentence.

    A file whose speaker is not known (a user's data without a speaker column)
    is its own group: nothing better can keep a voice out of two splits.
    """
    key = config.key_name(utt.corpus)
    if key == "speaker":
        return utt.speaker or f"file:{utt.path}"
    return utt.sentence


def stable_hash(*parts: str) -> int:
    """A 64-bit hash that is identical across processes, runs and machines."""
    digest = hashlib.sha1("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def split_counts(n_groups: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """How many of a corpus's groups go to test and val (at least one each from 3 groups)."""
    n_test = round(n_groups * fractions["test"])
    n_val = round(n_groups * fractions["val"])
    if n_groups >= 3:
        n_test, n_val = max(n_test, 1), max(n_val, 1)
    elif n_groups == 2:
        n_test, n_val = 1, 0
    else:
        n_test, n_val = 0, 0
    return {"test": n_test, "val": n_val, "train": n_groups - n_test - n_val}


def assign_splits(groups: Iterable[tuple[str, str]], config: SplitConfig) -> dict[tuple[str, str], str]:
    """``{(corpus, group): split}`` for every distinct (corpus, group) pair given."""
    by_corpus: dict[str, set[str]] = {}
    for corpus, group in groups:
        by_corpus.setdefault(corpus, set()).add(group)
    plan: dict[tuple[str, str], str] = {}
    for corpus, members in by_corpus.items():
        forced = {str(g): split for split, gs in config.overrides.get(corpus, {}).items()
                  for g in gs}
        unknown = set(forced.values()) - set(SPLITS)
        if unknown:
            raise ValueError(f"splits.overrides.{corpus}: unknown split(s) {sorted(unknown)}")
        free = sorted((g for g in members if g not in forced),
                      key=lambda g: stable_hash(config.salt, corpus, g))
        counts = split_counts(len(members), config.fractions)
        for split in ("test", "val"):  # forced groups count towards their split's quota
            counts[split] = max(0, counts[split] - sum(1 for g in members if forced.get(g) == split))
        order = ["test"] * counts["test"] + ["val"] * counts["val"]
        for i, group in enumerate(free):
            plan[(corpus, group)] = order[i] if i < len(order) else "train"
        for group in members:
            if group in forced:
                plan[(corpus, group)] = forced[group]
    return plan


def shard_index(path: str, n_shards: int) -> int:
    """Which of ``n_shards`` output shards a file goes to (stable across runs)."""
    return stable_hash("shard", path) % n_shards if n_shards > 1 else 0


def shards_for(n_files: int, files_per_shard: int) -> int:
    return max(1, math.ceil(n_files / max(1, files_per_shard)))
