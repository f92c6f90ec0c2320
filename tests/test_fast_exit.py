"""skip_final_gc: the exit hook freezes the collector and loses nothing a process wrote."""

import subprocess
import sys

from tests.conftest import REPO

SCRIPT = """
import atexit, gc, sys
from ser_model.fast_exit import skip_final_gc
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0, flush=True))  # runs last
skip_final_gc()
skip_final_gc()  # idempotent: one hook
print("frozen while running:", gc.get_freeze_count() > 0, flush=True)
handle = open(sys.argv[1], "w")  # never closed: exit must still flush it
handle.write("all of it\\n" * 1000)
"""


def test_hook_freezes_only_at_exit_and_open_files_are_still_flushed(tmp_path):
    out = tmp_path / "left-open.txt"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["frozen while running: False", "frozen at exit: True"]
    assert out.read_text() == "all of it\n" * 1000
