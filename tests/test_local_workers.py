"""Forked local SDK workers: used only for default local runs, and nothing is left behind."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from pipelines.local_workers import PrestartedWorkers, workers_wanted
from tests.conftest import REPO

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers: Linux only")


@pytest.mark.parametrize("argv, wanted", [
    (["--input", "x", "--output", "y"], os.cpu_count() or 1),
    (["--input", "x", "--direct_num_workers=3"], 3),
    (["--input", "x", "--direct_num_workers", "1"], 1),
    (["--input", "x", "--runner", "DataflowRunner"], 0),
    (["--input", "x", "--runner=FnApiRunner"], 0),
    (["--input", "x", "--direct_running_mode=multi_threading"], 0),
    (["--input", "x", "--dry_run=True"], 0),
    (["--help"], 0),
])
@linux_only
def test_only_default_local_runs_pre_start_workers(argv, wanted):
    assert workers_wanted(argv) == wanted


def test_beam_imports_without_the_integrations_the_feature_pipeline_does_not_use():
    # A fresh interpreter: in this one pandas may already be imported (and then stays).
    script = "\n".join([
        "import sys",
        "from pipelines.local_workers import beam_without_unused_integrations",
        "with beam_without_unused_integrations():",
        "    import apache_beam.runners.worker.sdk_worker_main, pipelines.features",
        "    try:",
        "        import pandas",
        "    except ImportError:",
        "        print('pandas hidden')",
        "from pipelines.local_workers import UNUSED_BEAM_INTEGRATIONS",
        "print([m for m in UNUSED_BEAM_INTEGRATIONS if sys.modules.get(m)])",
        "from apache_beam.io.filesystems import FileSystems",
        "print(type(FileSystems.get_filesystem('gs://bucket/x')).__name__)",  # gs:// still works
        "import pandas, pyarrow",  # importable again once Beam is in
        "print(pandas.DataFrame({'a': [1]}).shape, pyarrow.array([1, 2]).to_pylist())",
    ])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["pandas hidden", "[]", "GCSFileSystem", "(1, 1) [1, 2]"]
    assert "bson" not in done.stderr  # Beam's MongoDB IO warning about the hidden bson is not shown


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _in_fresh_interpreter(script: str, tmp_path) -> list[str]:
    """Run ``script`` in a new single-threaded interpreter (a test process may have threads: no fork there)."""
    # A launcher killed outright leaves its (empty) pipes' folder behind: keep it in tmp_path.
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


@linux_only
def test_unclaimed_workers_end_when_the_pool_closes(tmp_path):
    out = _in_fresh_interpreter(
        "import os; from pipelines.local_workers import forked_workers\n"
        "with forked_workers(2) as pool:\n"
        "    print(*pool.pids, pool.folder, flush=True)\n"
        "print(*pool.exit_codes, os.path.exists(pool.folder))", tmp_path)
    pids = [int(p) for p in out[:2]]
    assert out[3:] == ["0", "0", "False"]  # both ended by themselves, the folder is gone
    assert not any(_running(pid) for pid in pids)


@linux_only
def test_unclaimed_workers_end_when_the_launcher_dies(tmp_path):
    out = _in_fresh_interpreter(
        "import os; from pipelines.local_workers import forked_workers\n"
        "pool = forked_workers(1).__enter__(); print(pool.pids[0], flush=True); os._exit(0)", tmp_path)
    pid = int(out[0])
    deadline = time.monotonic() + 30
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(pid)


def test_workers_are_not_forked_from_a_process_with_threads():
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    try:
        with pytest.raises(RuntimeError, match="single-threaded"):
            PrestartedWorkers(1)
    finally:
        stop.set()
        helper.join()


@linux_only
def test_a_launcher_with_blas_threads_leaves_the_workers_to_beam(corpora_tree, tmp_path):
    # A user's OPENBLAS_NUM_THREADS=2 wins over our default of 1: numpy then starts a BLAS thread,
    # and a process with threads is not forked.
    root, _ = corpora_tree
    proc = subprocess.run([sys.executable, "-m", "ser_model.cli", "features", "--input", str(root / "savee"),
                           "--output", str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO,
                          timeout=300, env={**os.environ, "OPENBLAS_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SDK workers forked" not in proc.stderr
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["written"] > 0


@linux_only
def test_ser_features_uses_them_and_leaves_no_process_or_folder(corpora_tree, tmp_path):
    root, _ = corpora_tree
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.run([sys.executable, "-m", "ser_model.cli", "features", "--input", str(root / "savee"),
                           "--output", str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO,
                          timeout=300, env={**os.environ, "TMPDIR": str(scratch)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{os.cpu_count()} SDK workers forked" in proc.stderr
    assert (tmp_path / "out" / "manifest.json").exists()
    assert list(scratch.iterdir()) == []  # the pipes' folder is gone
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(scratch) not in ps  # no worker or attach process is left
