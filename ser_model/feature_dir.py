"""A `ser features` output folder: its feature config, label set, train statistics, manifest.

Importing this module does not import TensorFlow, so that configuration errors
are reported before TensorFlow's start-up noise; remote paths (gs://) are read
through ``tf.io.gfile`` when needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping

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
        import tensorflow as tf

        return sorted(tf.io.gfile.glob(f"{self.path}/{split}-*.tfrecord.gz"))


def _is_remote(path: str) -> bool:
    return "://" in path


def _exists(path: str) -> bool:
    if _is_remote(path):
        import tensorflow as tf

        return tf.io.gfile.exists(path)
    import os

    return os.path.exists(path)


def _read_json(path: str) -> dict:
    if not _exists(path):
        raise FileNotFoundError(f"{path} not found: is this a `ser features` output folder?")
    if _is_remote(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(path) as f:
            return json.load(f)
    with open(path) as f:
        return json.load(f)


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
    if not _exists(f"{path}/stats.json"):
        raise FileNotFoundError(f"{path}/stats.json not found: the feature run had no training split")
    return FeatureDir(path, features, LabelSet.from_json(meta["label_set"]),
                      _read_json(f"{path}/stats.json"), _read_json(f"{path}/manifest.json"))
