"""The canonical emotion table, per-corpus code maps and training label sets."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping

from ser_model.config import ConfigError, load_yaml

CANONICAL = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


@dataclass(frozen=True)
class LabelSet:
    """Training classes: canonical emotions folded (``calm -> neutral``) or dropped."""

    name: str
    classes: tuple[str, ...]
    fold: Mapping[str, str] = field(default_factory=dict)
    drop: tuple[str, ...] = ()

    def class_of(self, canonical: str) -> str | None:
        """The training class for a canonical label, or None when the set drops it."""
        if canonical in self.drop:
            return None
        name = self.fold.get(canonical, canonical)
        return name if name in self.classes else None

    def index_of(self, canonical: str) -> int | None:
        name = self.class_of(canonical)
        return None if name is None else self.classes.index(name)

    def to_json(self) -> dict:
        return {"name": self.name, "classes": list(self.classes),
                "fold": dict(self.fold), "drop": list(self.drop)}

    @classmethod
    def from_json(cls, data: Mapping) -> "LabelSet":
        return cls(name=data["name"], classes=tuple(data["classes"]),
                   fold=dict(data.get("fold", {})), drop=tuple(data.get("drop", ())))


@dataclass(frozen=True)
class LabelTable:
    """Explicit ``corpus -> {raw code -> canonical emotion}`` maps plus label sets."""

    code_maps: Mapping[str, Mapping[str, str]]
    label_sets: Mapping[str, LabelSet]
    default_label_set: str
    generic: Mapping[str, str] = field(default_factory=dict)  # lower-case label -> canonical (own data)

    def canonical(self, corpus: str, code: str) -> str | None:
        """The canonical emotion of a corpus code, or None when the code is unknown."""
        return self.code_maps.get(corpus, {}).get(code)

    def label_set(self, name: str | None = None) -> LabelSet:
        name = name or self.default_label_set
        if name not in self.label_sets:
            raise ConfigError(f"unknown label set {name!r}; known: {sorted(self.label_sets)}")
        return self.label_sets[name]


def parse_label_table(data: Mapping) -> LabelTable:
    """Validate the ``labels.yaml`` mapping: every target must be canonical."""
    canonical = tuple(data.get("canonical", CANONICAL))
    if set(canonical) != set(CANONICAL):
        raise ConfigError(f"labels: canonical emotions must be {CANONICAL}")
    code_maps = {}
    for corpus, codes in data["corpora"].items():
        for code, emotion in codes.items():
            if emotion not in CANONICAL:
                raise ConfigError(f"labels: {corpus} code {code!r} maps to non-canonical {emotion!r}")
        code_maps[corpus] = {str(code): emotion for code, emotion in codes.items()}
    generic = {str(name).strip().lower(): emotion for name, emotion in (data.get("generic") or {}).items()}
    for name, emotion in generic.items():
        if emotion not in CANONICAL:
            raise ConfigError(f"labels: generic name {name!r} maps to non-canonical {emotion!r}")
    label_sets = {}
    for name, spec in data["label_sets"].items():
        classes = tuple(spec["classes"])
        fold = dict(spec.get("fold") or {})
        drop = tuple(spec.get("drop") or ())
        for emotion in (*classes, *fold, *fold.values(), *drop):
            if emotion not in CANONICAL:
                raise ConfigError(f"labels: label set {name!r} names non-canonical {emotion!r}")
        label_sets[name] = LabelSet(name, classes, fold, drop)
    default = data.get("default_label_set", next(iter(label_sets)))
    if default not in label_sets:
        raise ConfigError(f"labels: default_label_set {default!r} is not defined")
    return LabelTable(code_maps, label_sets, default, generic)


@lru_cache(maxsize=4)
def load_label_table(path: str = "labels") -> LabelTable:
    return parse_label_table(load_yaml(path))


# The app's three-way summary. Surprise in these corpora is acted as pleasant
# (TESS names it "pleasant surprise"), so it counts as positive; calm is neutral.
VALENCE = {"happy": "positive", "surprised": "positive", "neutral": "neutral", "calm": "neutral",
           "sad": "negative", "angry": "negative", "fearful": "negative", "disgust": "negative"}


def valence_summary(probs, classes) -> dict[str, float]:
    """Sum class probabilities into positive / neutral / negative (see VALENCE)."""
    out = {"positive": 0.0, "neutral": 0.0, "negative": 0.0}
    for p, c in zip(probs, classes):
        out[VALENCE[c]] += float(p)
    return out
