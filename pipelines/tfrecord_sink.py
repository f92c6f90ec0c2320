"""Writing gzipped TFRecord files through Beam's filesystems (local, gs://, s3://).

TensorFlow's own writer has no s3:// support since tensorflow-io left, and we
want the file bytes to be identical across reruns (gzip ``mtime=0``), so the
framing is written here: ``len (u64 LE) | masked crc32c(len) | data | masked crc32c(data)``.
"""

from __future__ import annotations

import struct
import zlib
import uuid

import google_crc32c
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems


def masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(record: bytes) -> bytes:
    """One record in TFRecord framing."""
    length = struct.pack("<Q", len(record))
    return b"".join((length, struct.pack("<I", masked_crc(length)), record,
                     struct.pack("<I", masked_crc(record))))


GZIP_MODES = {
    # "store" writes stored (uncompressed) deflate blocks: still a gzip file every
    # reader takes, at almost no CPU (a crc32). Float features are close to random
    # bytes, so Huffman coding alone ("fast") gets most of what LZ77 would.
    "store": (0, zlib.Z_DEFAULT_STRATEGY),
    "fast": (1, zlib.Z_HUFFMAN_ONLY),
    "small": (6, zlib.Z_DEFAULT_STRATEGY),
}


class TFRecordGzipWriter:
    """Write records to ``path`` atomically: a temporary name, renamed on close.

    zlib's gzip wrapper (wbits=31) writes no file name and mtime 0, so the same
    records always give the same bytes.
    """

    def __init__(self, path: str, mode: str):
        if mode not in GZIP_MODES:
            raise ValueError(f"gzip mode must be one of {sorted(GZIP_MODES)}, not {mode!r}")
        level, strategy = GZIP_MODES[mode]
        self.path = path
        self.tmp_path = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        self._raw = FileSystems.create(self.tmp_path, mime_type="application/octet-stream",
                                       compression_type=CompressionTypes.UNCOMPRESSED)
        self._zip = zlib.compressobj(level, zlib.DEFLATED, 31, 8, strategy)
        self.records = 0

    def write(self, record: bytes) -> None:
        self._raw.write(self._zip.compress(frame(record)))
        self.records += 1

    def close(self) -> None:
        self._raw.write(self._zip.flush())
        self._raw.close()
        _replace(self.tmp_path, self.path)

    def abort(self) -> None:
        try:
            self._raw.close()
        finally:
            if FileSystems.exists(self.tmp_path):
                FileSystems.delete([self.tmp_path])


def write_text(path: str, text: str) -> None:
    """Write a small text file through Beam's filesystems (atomic via rename)."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with FileSystems.create(tmp, mime_type="text/plain",
                            compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(text.encode("utf-8"))
    _replace(tmp, path)


def _replace(tmp: str, path: str) -> None:
    """Move a finished temporary file over ``path`` (rename does not overwrite on every filesystem)."""
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()
