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

import functools
import struct
from typing import Mapping

import numpy as np

from ser_model.features import FeatureConfig

GENDERS = ("female", "male", "unknown")
GENDER_CLASSES = ("female", "male")  # the gender head's outputs, in order
_STRING_KEYS = ("label", "emotion", "raw_label", "speaker", "corpus", "gender", "split", "sentence", "path")


_ONE_BYTE = tuple(bytes((i,)) for i in range(0x80))


def _varint(n: int) -> bytes:
    if 0 <= n < 0x80:  # tags, short lengths, small ints: most varints of an Example
        return _ONE_BYTE[n]
    n &= (1 << 64) - 1  # negative int64 -> two's complement, as protobuf does
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_TAGS = {number: _varint(number << 3 | 2) for number in (1, 2, 3)}


def _header(number: int, length: int) -> bytes:
    """Tag and length of a length-delimited protobuf field (wire type 2)."""
    return _TAGS[number] + _varint(length)


def _field(number: int, payload: bytes) -> bytes:
    return _header(number, len(payload)) + payload


def _float_array(values: np.ndarray) -> tuple[bytes, memoryview]:
    """``Feature.float_list`` of an array: its header and the packed floats, not copied."""
    packed = memoryview(np.ascontiguousarray(values, dtype="<f4")).cast("B")
    inner = _header(1, packed.nbytes)
    return _header(2, len(inner) + packed.nbytes) + inner, packed


def _float_scalar(value: float) -> bytes:
    return _field(2, _field(1, struct.pack("<f", value)))         # Feature.float_list of one


def _int_feature(values) -> bytes:
    packed = b"".join(_varint(int(v)) for v in values)
    return _field(3, _field(1, packed) if packed else b"")        # Feature.int64_list


def _bytes_feature(value: str) -> bytes:
    return _field(1, _field(1, str(value).encode("utf-8")))        # Feature.bytes_list


@functools.lru_cache(maxsize=None)
def _map_key(key: str) -> bytes:
    return _field(1, key.encode())


def encode_example(logmel: np.ndarray, mfcc: np.ndarray, meta: Mapping[str, object]) -> bytes:
    """Serialise one window's features and its metadata to ``tf.train.Example`` bytes.

    Written straight in protobuf wire format (a test checks that TensorFlow
    parses it to the same message it builds itself): much faster than
    building the proto from numpy, and pipeline workers need not import
    TensorFlow at all. Map entries are sorted by key, so the bytes are the same
    on every run (protobuf's own map order follows a per-process string hash).
    The float arrays are copied once, by the final join: every extra copy of
    these large records adds to the pipeline's per-file cost.
    """
    feature = {  # key -> the Feature message as pieces (bytes, or a float array's memoryview)
        "logmel": _float_array(logmel), "logmel_shape": (_int_feature(logmel.shape),),
        "mfcc": _float_array(mfcc), "mfcc_shape": (_int_feature(mfcc.shape),),
        "label_id": (_int_feature([meta["label_id"]]),),
        "window_index": (_int_feature([meta["window_index"]]),),
        "n_windows": (_int_feature([meta["n_windows"]]),),
        "start_s": (_float_scalar(meta["start_s"]),),
        "duration_s": (_float_scalar(meta["duration_s"]),),
    }
    feature.update({key: (_bytes_feature(meta.get(key, "")),) for key in _STRING_KEYS})
    pieces, size = [], 0
    for key, value in sorted(feature.items()):                   # Features.feature map entries
        value_size = sum(len(v) if isinstance(v, bytes) else v.nbytes for v in value)
        entry = _map_key(key) + _header(2, value_size)
        entry_size = len(entry) + value_size
        head = _header(1, entry_size)
        pieces += [head + entry, *value]
        size += len(head) + entry_size
    return b"".join([_header(1, size), *pieces])                   # Example.features


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
