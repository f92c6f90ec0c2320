"""A `ser features` output folder: its feature config, label set, train statistics, manifest.

Importing this module does not import TensorFlow, so that configuration errors
are reported before TensorFlow's start-up noise. A remote folder (``gs://``,
``s3://``) is read through ``ser_model.storage``; the trainer reads a local copy
of it (:func:`ser_model.storage.local_copy`), as TensorFlow reads local shards only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping

from ser_model import storage
from ser_model.features import FeatureConfig
from ser_model.labels import LabelSet


class FeatureMismatch(ValueError):
    """Shards written with other settings than the trainer was asked for."""


@dataclass(frozen=True)
class FeatureDir:
    """A feature pipeline output folder: its config, label set and train statistics."""

    path: str
    features: FeatureConfig
    label_set: LabelSet
    stats: Mapping[str, list]
    manifest: Mapping

    def shards(self, split: str) -> list[str]:
        return [path for path, _ in storage.list_files(f"{self.path}/{split}-*.tfrecord.gz")]


def _read_json(path: str) -> dict:
    if not storage.exists(path):
        raise FileNotFoundError(f"{path} not found: is this a `ser features` output folder?")
    return json.loads(storage.read_text(path))


def open_feature_dir(path: str, expected: FeatureConfig | None = None) -> FeatureDir:
    """Load ``features.json``, ``stats.json`` and ``manifest.json``; refuse a config mismatch."""
    path = str(path).rstrip("/")
    meta = _read_json(f"{path}/features.json")
    features = FeatureConfig.from_dict(meta["features"])
    if expected is not None and features != expected:
        diff = {k: (v, getattr(expected, k)) for k, v in features.to_json().items()
                if getattr(expected, k) != v}
        raise FeatureMismatch(f"{path} was written with other feature settings "
                              f"(shards vs asked, {diff}); rerun `ser features` or change the config")
    if not storage.exists(f"{path}/stats.json"):
        raise FileNotFoundError(f"{path}/stats.json not found: the feature run had no training split")
    return FeatureDir(path, features, LabelSet.from_json(meta["label_set"]),
                      _read_json(f"{path}/stats.json"), _read_json(f"{path}/manifest.json"))
