"""The one file-system layer: every file a run reads or writes (inputs, bundles, feature folders,
configs, outputs) goes through these calls, whatever the path.

A local path is handled by the standard library, so a local run's paths, listings
and bytes are exactly those of a plain file system. A URL (``gs://``, ``s3://``,
``memory://``, any protocol fsspec knows) goes through fsspec: ``gs://`` needs
``gcsfs`` and ``s3://`` needs ``s3fs`` (both installed with this project), with
credentials as those packages find them (``GOOGLE_APPLICATION_CREDENTIALS``,
``AWS_*``). A storage emulator or another S3-compatible service is named with
fsspec's own environment settings, e.g. ``FSSPEC_S3_ENDPOINT_URL=http://host:port``.

Files are written under a temporary name and moved into place (to a URL: written
here, then uploaded in one piece), so a reader never sees half a file.
Keras and TensorFlow read local files only: :func:`local_copy` brings a remote
bundle or feature folder to this machine first.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from typing import IO, Iterator

GLOB_CHARS = "*?["


def is_url(path: str) -> bool:
    return "://" in str(path)


def _fs(url: str):
    import fsspec

    # No listings cache: other processes (workers, later commands) write the same folders.
    fs, _ = fsspec.core.url_to_fs(url, use_listings_cache=False)
    return fs


def _protocol(url: str) -> str:
    return str(url).split("://", 1)[0] + "://"


def join(base: str, *names: str) -> str:
    """``base/name/...`` for a local path or a URL."""
    base = str(base)
    if is_url(base):
        return "/".join([base.rstrip("/"), *names])
    return os.path.join(base, *names)


def exists(path: str) -> bool:
    return _fs(path).exists(path) if is_url(path) else os.path.exists(path)


def isdir(path: str) -> bool:
    return _fs(path).isdir(path) if is_url(path) else os.path.isdir(path)


def size(path: str) -> int:
    return int(_fs(path).size(path)) if is_url(path) else os.path.getsize(path)


def open_read(path: str) -> IO[bytes]:
    """A seekable binary file: a URL is read by ranged requests as it is read, not downloaded whole."""
    return _fs(path).open(path, "rb") if is_url(path) else open(path, "rb")


def read_bytes(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


class AtomicFile:
    """A binary file written under a temporary name on this machine: :meth:`close` moves it to
    ``path`` whole (a rename here; one upload for a URL, which an object store shows only once
    complete), :meth:`abort` (or an error inside a ``with`` block) deletes it."""

    def __init__(self, path: str):
        self.path = str(path)
        if is_url(self.path):
            fd, self.tmp = tempfile.mkstemp(prefix="ser-upload-")
            self._f = os.fdopen(fd, "wb")
            return
        if os.path.dirname(self.path):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.tmp = f"{self.path}.tmp-{uuid.uuid4().hex[:8]}"
        self._f = open(self.tmp, "wb")

    def write(self, data: bytes) -> int:
        return self._f.write(data)

    def close(self) -> None:
        self._f.close()
        if not is_url(self.path):
            os.replace(self.tmp, self.path)
            return
        try:
            _fs(self.path).put_file(self.tmp, self.path)
        finally:
            os.remove(self.tmp)

    def abort(self) -> None:
        try:
            self._f.close()
        finally:
            if os.path.exists(self.tmp):
                os.remove(self.tmp)

    def __enter__(self) -> "AtomicFile":
        return self

    def __exit__(self, exc_type, *_) -> None:
        self.abort() if exc_type else self.close()


def open_write(path: str) -> AtomicFile:
    """A binary file that appears at ``path`` whole when closed, and not at all if aborted."""
    return AtomicFile(path)


def write_bytes(path: str, data: bytes) -> None:
    with open_write(path) as f:
        f.write(data)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def replace(src: str, dst: str) -> None:
    """Move the file ``src`` over ``dst`` (on an object store: a copy made by the service, then
    the original deleted)."""
    if is_url(dst):
        fs = _fs(dst)
        fs.copy(src, dst)
        fs.rm(src)
    else:
        os.replace(src, dst)


def delete(paths) -> None:
    """Delete files; a missing one is no error."""
    for path in paths:
        if is_url(path):
            fs = _fs(path)
            if fs.exists(path):
                fs.rm(path)
        elif os.path.exists(path):
            os.remove(path)


def delete_tree(folder: str) -> None:
    """Delete a folder and everything under it; a missing folder is no error."""
    if is_url(folder):
        fs = _fs(folder)
        if fs.exists(folder):
            fs.rm(folder, recursive=True)
    elif os.path.isdir(folder):
        shutil.rmtree(folder)
    elif os.path.exists(folder):
        os.remove(folder)


def makedirs(folder: str) -> None:
    if is_url(folder):
        _fs(folder).makedirs(folder, exist_ok=True)   # nothing to do on an object store
    else:
        os.makedirs(folder, exist_ok=True)


def pattern_regex(pattern: str) -> re.Pattern:
    """A glob as a regular expression: ``*`` is any run of characters but ``/``, ``**`` any run at
    all (folders included), ``?`` one character, ``[...]`` a class (Beam's match rules)."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
            continue
        i += 1
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "."
        elif c == "[" and "]" in pattern[i + 1:]:
            j = pattern.index("]", i + 1)
            stuff = pattern[i:j]
            out += "[" + ("^" + stuff[1:] if stuff.startswith("!") else stuff) + "]"
            i = j + 1
        else:
            out += re.escape(c)
    return re.compile(r"(?s)" + out + r"\Z")


def list_files(pattern: str) -> list[tuple[str, int]]:
    """``(path, size in bytes)`` of every file ``pattern`` matches, by path. A pattern without glob
    characters matches that one file; a pattern that matches nothing gives ``[]``."""
    pattern = str(pattern)
    if not any(ch in pattern for ch in GLOB_CHARS):
        return [(pattern, size(pattern))] if exists(pattern) and not isdir(pattern) else []
    prefix = re.match(r"^[^[*?]*", pattern).group(0)
    folder = prefix if prefix.endswith("/") else prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    regex = pattern_regex(pattern)
    found = []
    if is_url(pattern):
        fs, protocol = _fs(pattern), _protocol(pattern)
        if fs.exists(folder):
            for key, info in fs.find(folder, detail=True).items():
                path = protocol + key if not key.startswith(protocol) else key
                if info.get("type") == "file" and regex.match(path):
                    found.append((path, int(info.get("size") or 0)))
    else:
        root = folder or "."
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = os.path.join(dirpath, name) if folder else os.path.relpath(os.path.join(dirpath, name))
                if regex.match(path):
                    try:
                        found.append((path, os.path.getsize(path)))
                    except OSError:   # a broken link: not a file
                        continue
    return sorted(found)


def upload_tree(local_folder: str, url: str, last: str | None = None) -> None:
    """Copy a local folder's files to ``url`` (a folder URL), each file whole; ``last`` (a file
    name) is uploaded after all the others."""
    names = sorted(os.path.relpath(os.path.join(d, n), local_folder).replace(os.sep, "/")
                   for d, _, ns in os.walk(local_folder) for n in ns)
    for rel in sorted(names, key=lambda r: r == last):
        with open(os.path.join(local_folder, *rel.split("/")), "rb") as f, open_write(join(url, rel)) as out:
            shutil.copyfileobj(f, out, 1 << 20)


def publish_tree(local_folder: str, url: str, last: str) -> None:
    """Replace the folder at ``url`` with a local folder's files, removing ``url/last`` first and
    uploading it last: a reader that checks for ``last`` never uses a half-written folder."""
    delete([join(url, last)])
    delete_tree(url)
    upload_tree(local_folder, url, last=last)


def download_tree(url: str, local_folder: str) -> None:
    """Copy every file under the folder ``url`` into ``local_folder``."""
    base = url.rstrip("/") + "/"
    for path, _ in list_files(base + "**"):
        target = os.path.join(local_folder, *path[len(base):].split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open_read(path) as f, open(target, "wb") as out:
            shutil.copyfileobj(f, out, 1 << 20)


@contextlib.contextmanager
def local_copy(folder: str) -> Iterator[str]:
    """A local path with the folder's files: the folder itself when it is local, else a temporary
    copy, deleted when the block ends."""
    if not is_url(folder):
        yield str(folder)
        return
    with tempfile.TemporaryDirectory(prefix="ser-remote-") as tmp:
        download_tree(str(folder), tmp)
        yield tmp


@contextlib.contextmanager
def local_output(folder: str) -> Iterator[str]:
    """A local folder to write an output into: ``folder`` itself when local; else a temporary folder
    uploaded to ``folder`` when the block ends without an error (and deleted)."""
    if not is_url(folder):
        yield str(folder)
        return
    with tempfile.TemporaryDirectory(prefix="ser-upload-") as tmp:
        local = os.path.join(tmp, "out")
        yield local
        upload_tree(local, str(folder))


@contextlib.contextmanager
def synced_folder(folder: str) -> Iterator[str]:
    """A local folder that mirrors ``folder``: itself when local; for a URL, a temporary copy of what
    is there (a previous run's work, to resume), uploaded back when the block ends, an error included
    (finished work is kept), then deleted."""
    if not is_url(folder):
        yield str(folder)
        return
    with tempfile.TemporaryDirectory(prefix="ser-sync-") as tmp:
        if exists(folder):
            download_tree(str(folder), tmp)
        try:
            yield tmp
        finally:
            upload_tree(tmp, str(folder))
