"""Hide the native libraries' start-up chatter from the console (``--verbose`` keeps it).

TensorFlow's C++ core writes its start-up lines (oneDNN notices, CUDA probing,
"failed call to cuInit" on a machine without a GPU) straight to file
descriptor 2, before any logging setting can take effect, and Beam's worker
processes inherit that descriptor. :func:`filter_native_logs` points
descriptor 2 at a pipe and copies every line except those to the real stderr,
for this process and every process it starts. Python's own messages, warnings
and tracebacks pass through unchanged.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

# absl's C++ log line ("I0000 00:00:1796186480.897085    2335 port.cc:153] ..."), its one-line
# preamble, and the continuation line of TensorFlow's CPU-feature notice.
NATIVE_LOG_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|To enable the following instructions: .*rebuild TensorFlow)")


def is_native_log(line: bytes) -> bool:
    return bool(NATIVE_LOG_LINE.match(line))


def filter_native_logs() -> None:
    """Route descriptor 2 through a filter thread until this process exits (call once, early)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")   # what TensorFlow does honour, once initialised
    sys.stderr.flush()
    real_stderr = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def copy_lines():
        with os.fdopen(read_end, "rb") as lines, os.fdopen(real_stderr, "wb", buffering=0) as out:
            for line in lines:
                if not is_native_log(line):
                    out.write(line)

    thread = threading.Thread(target=copy_lines, name="stderr-filter", daemon=True)
    thread.start()

    def restore():
        sys.stderr.flush()
        # Point descriptor 2 back at the real stderr, which closes this process's write end of
        # the pipe: the thread ends after the last line once child processes have exited too.
        os.dup2(real_stderr, 2)
        thread.join(timeout=2)

    atexit.register(restore)
