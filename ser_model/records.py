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
import gzip
import struct
from typing import BinaryIO, Iterator, Mapping

import numpy as np

from ser_model.features import FeatureConfig

GENDERS = ("female", "male", "unknown")
_FLOAT_KEYS = ("start_s", "duration_s")
_INT_KEYS = ("label_id", "window_index", "n_windows")
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


# --- TFRecord framing: len (u64 LE) | masked crc32c(len) | data | masked crc32c(data) -------------

class RecordError(ValueError):
    """A shard that is not whole: a truncated record or a checksum that does not match."""


def masked_crc(data: bytes) -> int:
    import google_crc32c

    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(record: bytes) -> bytes:
    """One record in TFRecord framing."""
    length = struct.pack("<Q", len(record))
    return b"".join((length, struct.pack("<I", masked_crc(length)), record,
                     struct.pack("<I", masked_crc(record))))


def read_records(fileobj: BinaryIO) -> Iterator[bytes]:
    """The records of a gzip-compressed TFRecord file (a shard), checksums checked, without TensorFlow."""
    with gzip.GzipFile(fileobj=fileobj) as f:
        while True:
            head = f.read(12)
            if not head:
                return
            if len(head) < 12 or struct.unpack("<I", head[8:])[0] != masked_crc(head[:8]):
                raise RecordError("a record's length is truncated or corrupt")
            (length,) = struct.unpack("<Q", head[:8])
            data, crc = f.read(length), f.read(4)
            if len(data) < length or len(crc) < 4 or struct.unpack("<I", crc)[0] != masked_crc(data):
                raise RecordError("a record is truncated or corrupt")
            yield data


# --- Example decoding without TensorFlow (the wire format encode_example writes) ------------------

def _varint_at(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int, object]]:
    """``(field number, wire type, value)`` of a protobuf message: an int for varints, a memoryview
    for length-delimited and fixed-width fields."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint_at(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint_at(buf, pos)
        elif wire == 2:
            length, pos = _varint_at(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, pos = buf[pos:pos + width], pos + width
        else:
            raise RecordError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _feature_values(buf: memoryview):
    """A ``Feature`` message: a list of bytes, a float32 array or an int64 array."""
    for kind, _, values in _fields(buf):
        if kind == 1:                                     # bytes_list
            return [bytes(v) for n, _, v in _fields(values) if n == 1]
        if kind == 2:                                     # float_list: packed, or one float a field
            parts = [np.frombuffer(v, "<f4") for n, _, v in _fields(values) if n == 1]
            return np.concatenate(parts) if parts else np.zeros(0, np.float32)
        if kind == 3:                                     # int64_list: packed varints, or one a field
            out = []
            for n, wire, v in _fields(values):
                if n != 1:
                    continue
                if wire == 0:
                    out.append(v)
                else:
                    pos = 0
                    while pos < len(v):
                        x, pos = _varint_at(v, pos)
                        out.append(x)
            return np.array([x - (1 << 64) if x >= 1 << 63 else x for x in out], np.int64)
    return []


def decode_example(data: bytes, cfg: FeatureConfig) -> dict:
    """One window's record as numpy values shaped as :func:`parse_examples` gives them: ``logmel``
    ``(n_mels, frames)``, ``mfcc`` ``(n_mfcc, frames)``, int and float scalars, bytes strings."""
    raw = {}
    for number, _, features in _fields(memoryview(data)):
        if number != 1:                                   # Example.features
            continue
        for entry_number, _, entry in _fields(features):  # Features.feature map entries
            if entry_number != 1:
                continue
            key, value = None, None
            for n, _, v in _fields(entry):
                if n == 1:
                    key = bytes(v).decode("utf-8")
                elif n == 2:
                    value = v
            raw[key] = _feature_values(value) if value is not None else []
    out = {"logmel": raw["logmel"].reshape(cfg.logmel_shape), "mfcc": raw["mfcc"].reshape(cfg.mfcc_shape)}
    out.update({k: np.int64(raw[k][0]) for k in _INT_KEYS})
    out.update({k: np.float32(raw[k][0]) for k in _FLOAT_KEYS})
    out.update({k: raw[k][0] if len(raw.get(k, [])) else b"" for k in _STRING_KEYS})
    return out
