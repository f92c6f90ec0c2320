"""Writing gzipped TFRecord files to any storage (ser_model.storage: local, gs://, s3://).

TensorFlow's own writer has no s3:// support since tensorflow-io left, and we
want the file bytes to be identical across reruns (gzip ``mtime=0``), so shards
are written here, in the framing of ``ser_model.records.frame``.
"""

from __future__ import annotations

import zlib

from ser_model import storage
from ser_model.records import frame


GZIP_MODES = {
    # "store" writes stored (uncompressed) deflate blocks: still a gzip file every
    # reader takes, at almost no CPU (a crc32). Float features are close to random
    # bytes, so Huffman coding alone ("fast") gets most of what LZ77 would.
    "store": (0, zlib.Z_DEFAULT_STRATEGY),
    "fast": (1, zlib.Z_HUFFMAN_ONLY),
    "small": (6, zlib.Z_DEFAULT_STRATEGY),
}


class TFRecordGzipWriter:
    """Write records to ``path`` atomically (:class:`ser_model.storage.AtomicFile`).

    zlib's gzip wrapper (wbits=31) writes no file name and mtime 0, so the same
    records always give the same bytes.
    """

    def __init__(self, path: str, mode: str):
        if mode not in GZIP_MODES:
            raise ValueError(f"gzip mode must be one of {sorted(GZIP_MODES)}, not {mode!r}")
        level, strategy = GZIP_MODES[mode]
        self.path = path
        self._raw = storage.open_write(path)
        self._zip = zlib.compressobj(level, zlib.DEFLATED, 31, 8, strategy)
        self.records = 0

    def write(self, record: bytes) -> None:
        self._raw.write(self._zip.compress(frame(record)))
        self.records += 1

    def close(self) -> None:
        self._raw.write(self._zip.flush())
        self._raw.close()

    def abort(self) -> None:
        self._raw.abort()
