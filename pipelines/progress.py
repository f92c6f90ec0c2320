"""Progress of a local run: files done / total, rate and ETA, on one line.

Beam's local runner gives the launcher no metrics until the job ends, so the
workers report through the file system instead: each worker process appends
one byte per finished file to its own file in a folder the launcher made
(:class:`Ticks`), and the launcher adds the sizes up twice a second
(:class:`ProgressLine`). Appending a byte costs microseconds, needs no lock and
works across processes. Remote runs (Dataflow) have their own monitoring and get
no folder: their ``Ticks`` do nothing.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time


class Ticks:
    """The workers' side: ``tick(n)`` records ``n`` more finished files. Picklable."""

    def __init__(self, folder: str | None):
        self.folder = folder
        self._file = None

    def __getstate__(self):
        return {"folder": self.folder}

    def __setstate__(self, state):
        self.__init__(state["folder"])

    def tick(self, n: int = 1) -> None:
        if not self.folder or n <= 0:
            return
        if self._file is None or self._file.closed:
            # One file per process: no two writers ever share a file.
            self._file = open(os.path.join(self.folder, str(os.getpid())), "ab", buffering=0)
        self._file.write(b"." * n)


def format_eta(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


def progress_text(done: int, total: int, elapsed: float, what: str = "files") -> str:
    """``120/1000 files (12%), 40.0 files/s, ETA 0:22`` (rate and ETA once there is something to go on)."""
    text = f"{done}/{total} {what}"
    if total:
        text += f" ({100 * done / total:.0f}%)"
    if done and elapsed > 0:
        rate = done / elapsed
        text += f", {rate:.1f} {what}/s"
        if total > done:
            text += f", ETA {format_eta((total - done) / rate)}"
    return text


class ProgressLine:
    """The launcher's side: a context manager that shows progress until the run ends.

    On a terminal the line is redrawn in place; otherwise (a log file, CI) a new
    line is printed every ``log_every`` seconds, so logs stay short.
    """

    def __init__(self, total: int, label: str, what: str = "files", stream=None, log_every: float = 10.0):
        self.total, self.label, self.what = total, label, what
        self.stream = stream or sys.stderr
        self.log_every = log_every
        self.folder: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    @property
    def ticks(self) -> Ticks:
        return Ticks(self.folder)

    def done(self) -> int:
        try:
            return sum(entry.stat().st_size for entry in os.scandir(self.folder))
        except FileNotFoundError:
            return 0

    def __enter__(self) -> "ProgressLine":
        self.folder = tempfile.mkdtemp(prefix="ser-progress-")
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._thread.start()
        return self

    def _line(self, done: int) -> str:
        return f"{self.label}: " + progress_text(done, self.total, time.monotonic() - self._started, self.what)

    def _loop(self) -> None:
        tty = self.stream.isatty()
        last_logged, logged_done = time.monotonic(), 0
        while not self._stop.wait(0.5):
            done = self.done()
            if tty:
                self.stream.write("\r\033[K" + self._line(done))
                self.stream.flush()
            elif time.monotonic() - last_logged >= self.log_every and done != logged_done:
                print(self._line(done), file=self.stream, flush=True)
                last_logged, logged_done = time.monotonic(), done

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self.stream.isatty():
            self.stream.write("\r\033[K")
        if exc[0] is None:
            print(self._line(self.done()), file=self.stream, flush=True)
        shutil.rmtree(self.folder, ignore_errors=True)
