"""`ser score` on the local runner and on a local dask cluster with one and with two workers, in one run.

    python benchmarks/dask_scaling.py [--input ../shared/corpora] [--limit N] [--model BUNDLE]

The same job three ways, one after the other: Beam's local runner (FnApiRunner, a
worker process per core), then Beam's DaskRunner on a cluster started here
(`dask scheduler` on a free port and 1, then 2, `dask worker` processes with one
thread each and `SER_TF_THREADS=1`). Each is also run on 4 files, which gives its
fixed cost (start-up, model loading, cluster round trips); a new cluster's
workers import TensorFlow and load the model once, on their first task, so each
cluster gets a first 4-file run, reported separately. Reported: wall time,
files/s, the per-file marginal rate ((wall - fixed) / files), and the
2-worker/1-worker ratio of wall time and of the marginal rate (target >= 1.7x on
2 cores). Every run's output rows are checked to be the same files.
Results: benchmarks/results/dask_scaling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.features_throughput import audio_files  # noqa: E402
from benchmarks.provenance import provenance  # noqa: E402

DASK = ["--runner", "apache_beam.runners.dask.dask_runner.DaskRunner"]


def sample(root: Path, limit: int | None, folder: Path) -> int:
    """Symlink a seeded sample of ``root``'s audio (or all of it) into ``folder``; the number linked."""
    files = [p for p in audio_files(root) if "originals" not in p.parts]
    if limit:
        random.Random(0).shuffle(files)
        files = files[:limit]
    folder.mkdir(parents=True)
    for i, f in enumerate(sorted(files)):
        (folder / f"{i:06d}_{f.name}").symlink_to(f.resolve())
    return len(files)


def score(input_dir: Path, output: Path, model: str | None, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "ser_cli.main", "score", "--input", str(input_dir), "--output", str(output),
           *(["--model", model] if model else []), *extra]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return {"wall_s": round(wall, 2), "summary": proc.stdout.strip().splitlines()[0]}


def measured(name: str, run, n_files: int, warm_up: bool = False) -> dict:
    """Fixed cost (4 files) and the full run; ``warm_up``: a first small run, reported on its own, for
    a cluster whose worker processes import TensorFlow and load the model on their first task."""
    cold = run("small") if warm_up else None
    fixed, full = run("small"), run("full")
    marginal = (full["wall_s"] - fixed["wall_s"]) / n_files
    out = {"files": n_files, "wall_s": full["wall_s"], "files_per_s": round(n_files / full["wall_s"], 1),
           "fixed_cost_s": fixed["wall_s"], "marginal_ms_per_file": round(1000 * marginal, 2),
           "summary": full["summary"]}
    if cold:
        out["first_run_on_a_new_cluster_4_files_s"] = cold["wall_s"]
    print(name, json.dumps(out), flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", default=str(REPO.parent / "shared" / "corpora"))
    p.add_argument("--limit", type=int, default=None, help="score a seeded sample of this many files")
    p.add_argument("--model", default=None)
    p.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "dask_scaling.json"))
    args = p.parse_args()
    from tests.dask_cluster import Cluster
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n = sample(Path(args.input), args.limit, tmp / "full")
        sample(tmp / "full", 4, tmp / "small")
        inputs = {"full": tmp / "full", "small": tmp / "small"}
        results, paths = {}, {}

        def local(which):
            out = score(inputs[which], tmp / f"local-{which}", args.model, [])
            paths.setdefault("local", tmp / f"local-{which}")
            return out

        results["local_runner"] = measured("local_runner", local, n)
        env = {**os.environ, "SER_TF_THREADS": "1"}
        for workers in (1, 2):
            cluster = Cluster(tmp / f"cluster{workers}", n_workers=workers, env=env)
            try:
                def on_dask(which, w=workers, c=cluster):
                    return score(inputs[which], tmp / f"dask{w}-{which}", args.model,
                                 [*DASK, "--dask_scheduler_file", str(c.file)])
                results[f"dask_{workers}_worker{'s' if workers > 1 else ''}"] = measured(
                    f"dask {workers}", on_dask, n, warm_up=True)
            finally:
                cluster.stop()
        same = {name: sorted(r["path"] for r in pq.read_table(tmp / f"{prefix}-full.files.parquet").to_pylist())
                for name, prefix in (("local", "local"), ("dask1", "dask1"), ("dask2", "dask2"))}
        one, two = results["dask_1_worker"], results["dask_2_workers"]
        report = {"benchmark": "dask_scaling", **provenance(), "input": args.input, "files": n,
                  **results,
                  "dask_2_over_1_wall": round(one["wall_s"] / two["wall_s"], 3),
                  "dask_2_over_1_marginal": round(one["marginal_ms_per_file"] / two["marginal_ms_per_file"], 3),
                  "target_2_over_1": 1.7,
                  "same_files_in_every_run": same["local"] == same["dask1"] == same["dask2"]}
    Path(args.output).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k.startswith("dask_2") or k == "same_files_in_every_run"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
