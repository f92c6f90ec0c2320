"""The TFRecord contract: one ``tf.train.Example`` per window of an utterance.

Float features are stored flat with their shapes; the shapes are also fixed by
``features.json`` written beside the shards, which is what the parser uses.

======================  =======  ===========================================
key                     type     meaning
======================  =======  ===========================================
logmel, logmel_shape    float,   log-mel dB, ``(n_mels, frames)`` row-major
                        int64
mfcc, mfcc_shape        float,   MFCC, ``(n_mfcc, frames)``
label, label_id         bytes,   training class (label set in features.json)
                        int64
emotion, raw_label      bytes    canonical emotion; the corpus's own code
speaker, corpus,        bytes    as in the Utterance
gender, split,
sentence, path
window_index,           int64    this window, of how many for the file
n_windows
start_s, duration_s     float    window start; whole file duration (seconds)
======================  =======  ===========================================
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ser_model.features import FeatureConfig

GENDERS = ("female", "male", "unknown")
_STRING_KEYS = ("label", "emotion", "raw_label", "speaker", "corpus", "gender", "split", "sentence", "path")


def encode_example(logmel: np.ndarray, mfcc: np.ndarray, meta: Mapping[str, object]) -> bytes:
    """Serialise one window's features and its metadata to ``tf.train.Example`` bytes."""
    import tensorflow as tf

    def floats(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=np.ravel(values)))

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

    def text(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode("utf-8")]))

    feature = {
        "logmel": floats(logmel), "logmel_shape": ints(logmel.shape),
        "mfcc": floats(mfcc), "mfcc_shape": ints(mfcc.shape),
        "label_id": ints([int(meta["label_id"])]),
        "window_index": ints([int(meta["window_index"])]),
        "n_windows": ints([int(meta["n_windows"])]),
        "start_s": floats([float(meta["start_s"])]),
        "duration_s": floats([float(meta["duration_s"])]),
    }
    feature.update({key: text(meta.get(key, "")) for key in _STRING_KEYS})
    # deterministic=True sorts the map keys: otherwise the order follows the
    # per-process string hash and reruns would write different bytes.
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


def feature_spec(cfg: FeatureConfig) -> dict:
    """The ``tf.io.parse_example`` spec for shards written with ``cfg``."""
    import tensorflow as tf

    n_mels, frames = cfg.logmel_shape
    spec = {
        "logmel": tf.io.FixedLenFeature([n_mels * frames], tf.float32),
        "mfcc": tf.io.FixedLenFeature([cfg.n_mfcc * frames], tf.float32),
        "label_id": tf.io.FixedLenFeature([], tf.int64),
        "window_index": tf.io.FixedLenFeature([], tf.int64),
        "n_windows": tf.io.FixedLenFeature([], tf.int64),
        "start_s": tf.io.FixedLenFeature([], tf.float32),
        "duration_s": tf.io.FixedLenFeature([], tf.float32),
    }
    spec.update({key: tf.io.FixedLenFeature([], tf.string) for key in _STRING_KEYS})
    return spec


def parse_examples(serialized, cfg: FeatureConfig) -> dict:
    """Parse a batch (or one) of serialised examples into shaped tensors."""
    import tensorflow as tf

    parsed = tf.io.parse_example(serialized, feature_spec(cfg))
    lead = tf.shape(parsed["label_id"])
    parsed["logmel"] = tf.reshape(parsed["logmel"], tf.concat([lead, cfg.logmel_shape], 0))
    parsed["mfcc"] = tf.reshape(parsed["mfcc"], tf.concat([lead, cfg.mfcc_shape], 0))
    return parsed
