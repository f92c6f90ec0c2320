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
GENDER_CLASSES = ("female", "male")  # the gender head's outputs, in order
_STRING_KEYS = ("label", "emotion", "raw_label", "speaker", "corpus", "gender", "split", "sentence", "path")


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 -> two's complement, as protobuf does
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _float_feature(values) -> bytes:
    packed = np.ascontiguousarray(np.ravel(values), dtype="<f4").tobytes()
    return _field(2, _field(1, packed) if packed else b"")        # Feature.float_list


def _int_feature(values) -> bytes:
    packed = b"".join(_varint(int(v)) for v in values)
    return _field(3, _field(1, packed) if packed else b"")        # Feature.int64_list


def _bytes_feature(value: str) -> bytes:
    return _field(1, _field(1, str(value).encode("utf-8")))        # Feature.bytes_list


def encode_example(logmel: np.ndarray, mfcc: np.ndarray, meta: Mapping[str, object]) -> bytes:
    """Serialise one window's features and its metadata to ``tf.train.Example`` bytes.

    Written straight in protobuf wire format (a test checks that TensorFlow
    parses it to the same message it builds itself): about 30x faster than
    building the proto from numpy, and pipeline workers need not import
    TensorFlow at all. Map entries are sorted by key, so the bytes are the same
    on every run (protobuf's own map order follows a per-process string hash).
    """
    feature = {
        "logmel": _float_feature(logmel), "logmel_shape": _int_feature(logmel.shape),
        "mfcc": _float_feature(mfcc), "mfcc_shape": _int_feature(mfcc.shape),
        "label_id": _int_feature([meta["label_id"]]),
        "window_index": _int_feature([meta["window_index"]]),
        "n_windows": _int_feature([meta["n_windows"]]),
        "start_s": _float_feature([meta["start_s"]]),
        "duration_s": _float_feature([meta["duration_s"]]),
    }
    feature.update({key: _bytes_feature(meta.get(key, "")) for key in _STRING_KEYS})
    entries = b"".join(_field(1, _field(1, key.encode()) + _field(2, value))   # Features.feature map
                       for key, value in sorted(feature.items()))
    return _field(1, entries)                                                    # Example.features


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
