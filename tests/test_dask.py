"""Both pipelines on a real dask.distributed cluster (a scheduler and two worker processes on
127.0.0.1), compared with the local runner; and a worker killed in the middle of a run."""

import threading
import time

import distributed
import pyarrow.parquet as pq
import pytest

from tests import audiogen
from tests.conftest import REPO, ser
from tests.dask_cluster import Cluster

DASK = ["--runner", "apache_beam.runners.dask.dask_runner.DaskRunner"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("dask"))
    yield c
    c.stop()


def on_cluster(cluster, *args):
    """Run a `ser` command on the cluster; also which workers ran its tasks (the scheduler's task stream)."""
    with cluster.client() as client, distributed.get_task_stream(client) as stream:
        proc = ser(*args, *DASK, "--dask_scheduler_file", cluster.file)
    return proc, {task["worker"] for task in stream.data}


def test_features_on_dask_write_the_local_runners_shards(cluster, corpora_tree, feature_dir, tmp_path):
    root, _ = corpora_tree
    out = tmp_path / "features"
    proc, workers = on_cluster(cluster, "features", "--input", root, "--output", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    local = {p.name: p.read_bytes() for p in feature_dir.iterdir()}
    assert {p.name: p.read_bytes() for p in out.iterdir()} == local   # byte for byte, the manifest too
    assert len(workers) == 2   # the work was spread over both workers


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    for i in range(12):
        audiogen.write(root / f"clip{i:02d}.wav", seconds=1.0 + 0.4 * i, pitch=120 + 20 * i, seed=i)
    audiogen.write(root / "long.flac", seconds=20.0, rate=22050, pitch=200, fmt="FLAC")
    (root / "empty.wav").write_bytes(b"")
    (root / "notes.mp3").write_text("not audio\n" * 10)
    return root


def score_rows(prefix):
    return {kind: pq.read_table(f"{prefix}.{kind}.parquet").to_pylist() for kind in ("files", "windows")}


def same_rows(a, b):
    """Equal rows; probabilities within float32 rounding (workers may run other TensorFlow thread counts)."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            if isinstance(x[k], float):
                assert y[k] == pytest.approx(x[k], abs=1e-5), k
            else:
                assert x[k] == y[k], k


def test_score_on_dask_gives_the_local_runners_rows(cluster, archive, tiny_bundle, tmp_path):
    args = ["score", "--model", tiny_bundle[0], "--input", archive, "--windows"]
    local = ser(*args, "--output", tmp_path / "local")
    assert local.returncode == 0, local.stderr[-3000:]
    proc, workers = on_cluster(cluster, *args, "--output", tmp_path / "dask")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "inputs 15 = scored 13 + failed 2" in proc.stdout
    a, b = score_rows(tmp_path / "local"), score_rows(tmp_path / "dask")
    same_rows(a["files"], b["files"])
    same_rows(a["windows"], b["windows"])
    assert (tmp_path / "local.dead_letters.jsonl").read_text() == (tmp_path / "dask.dead_letters.jsonl").read_text()
    assert len(workers) == 2
    assert not list(tmp_path.glob("*.staging-*"))


def test_a_worker_killed_mid_run_loses_no_file_silently(tmp_path_factory, archive, tiny_bundle, tmp_path):
    """Dask reruns a dead worker's tasks elsewhere: the job finishes with every file accounted for,
    or it fails loudly and publishes nothing."""
    c = Cluster(tmp_path_factory.mktemp("dask-kill"))
    try:
        killer = threading.Thread(target=kill_when_busy, args=(c, "w1"))
        killer.start()
        proc, _ = on_cluster(c, "score", "--model", tiny_bundle[0], "--input", archive,
                             "--output", tmp_path / "run")
        killer.join()
    finally:
        c.stop()
    assert c.procs["w1"].returncode is not None   # the worker really died during the run
    if proc.returncode == 0:
        rows = pq.read_table(tmp_path / "run.files.parquet").to_pylist()
        assert "inputs 15 = scored 13 + failed 2" in proc.stdout
        assert sorted(r["path"] for r in rows) == sorted(str(p) for p in archive.iterdir())
    else:
        assert not list(tmp_path.glob("run.*"))   # no partial output, staged or published
        assert proc.stderr.strip()


def kill_when_busy(cluster, name, timeout=120):
    """Kill worker ``name`` as soon as the scheduler says it is running a task."""
    deadline = time.monotonic() + timeout
    with cluster.client() as client:
        while time.monotonic() < deadline:
            busy = client.processing()
            if any(tasks for worker, tasks in busy.items() if name in str(client.scheduler_info()["workers"]
                                                                          .get(worker, {}).get("name", ""))):
                break
            time.sleep(0.05)
    cluster.kill(name)


def test_a_scheduler_that_cannot_be_reached_is_a_one_line_error(tmp_path):
    proc = ser("score", "--input", REPO / "examples", "--output", tmp_path / "s", *DASK,
               "--dask_client_address", "127.0.0.1:1", "--dask_connection_timeout", "3")
    assert proc.returncode == 2
    assert "ser score: error: cannot reach the Dask scheduler at 127.0.0.1:1" in proc.stderr
    assert "Traceback" not in proc.stderr and not list(tmp_path.iterdir())
