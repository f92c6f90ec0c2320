"""Feature pipeline throughput: its fixed cost and per-clip rate against plain loops, side by side.

    python benchmarks/features_throughput.py [--corpora ../shared/corpora] [--limit N] [--rounds 3]

Each round measures, on the same files, one after the other:

* plain loop: what a pipeline worker does per file (read, decode, resample,
  window, log-mel + MFCC) in one process, no Beam, no writing;
* process per core: the same loop split over one forked process per core (a
  multiprocessing pool): what the machine allows;
* the pipeline: the real `ser features` command with its default local runner,
  writing shards, over a small sample (``--small`` files) and over all files.
  Its fixed cost and per-clip (marginal) time follow from the two runs:
  ``marginal = (wall_all - wall_small) / (files_all - files_small)``,
  ``fixed = wall_small - marginal * files_small``.

Target: the pipeline's marginal time per clip within 15% of the process-per-core
pool's time per clip. The whole-run ratio to the plain loop is reported, not
targeted. Medians over the rounds; results to benchmarks/results/features_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.provenance import provenance  # noqa: E402
from ser_model.corpora import AUDIO_EXTENSIONS  # noqa: E402
from ser_model.extract import featurize_bytes  # noqa: E402
from ser_model.features import FeatureConfig  # noqa: E402


def audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS)


def _featurize_all(files: list[Path], cfg: FeatureConfig) -> tuple[int, int]:
    """(files featurised, windows), with one BLAS thread as in the pipeline's workers."""
    from threadpoolctl import threadpool_limits

    ok = windows = 0
    with threadpool_limits(limits=1, user_api="blas"):
        for path in files:
            try:
                feats, _ = featurize_bytes(path.read_bytes(), cfg)
            except ValueError:
                continue
            ok += 1
            windows += len(feats)
    return ok, windows


def plain_loop(files: list[Path], cfg: FeatureConfig) -> dict:
    started, cpu = time.perf_counter(), time.process_time()
    ok, windows = _featurize_all(files, cfg)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return loop_figures(len(files), ok, windows, wall, cpu)


def loop_figures(files: int, ok: int, windows: int, wall: float, cpu: float) -> dict:
    """A plain loop's result record."""
    return {"files": files, "ok": ok, "windows": windows, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "clips_per_s": round(files / wall, 1), "ms_per_clip": round(1000 * wall / files, 2)}


def process_per_core(files: list[Path], cfg: FeatureConfig) -> dict:
    """The plain loop over one forked process per core, interleaved files: the machine's ceiling."""
    import multiprocessing

    n = os.cpu_count() or 1
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(n) as pool:
        parts = pool.starmap(_featurize_all, [(files[i::n], cfg) for i in range(n)])
    wall = time.perf_counter() - started
    return {"processes": n, "files": len(files), "ok": sum(p[0] for p in parts), "wall_s": round(wall, 2),
            "clips_per_s": round(len(files) / wall, 1)}


class CoreMonitor:
    """How many cores were busy (machine-wide, from /proc/stat) while a run lasted, sampled every 0.25 s.

    Machine-wide: on the benchmark machine nothing else runs, so this is the run's own use.
    """

    def __init__(self, period_s: float = 0.25):
        self.period_s, self.samples = period_s, []
        self._stop = threading.Event()

    @staticmethod
    def _read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # total, idle + iowait

    def _sample(self) -> None:
        prev = self._read()
        while not self._stop.wait(self.period_s):
            cur = self._read()
            total, idle = cur[0] - prev[0], cur[1] - prev[1]
            if total:
                self.samples.append((os.cpu_count() or 1) * (1 - idle / total))
            prev = cur

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        if os.path.exists("/proc/stat"):
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def summary(self) -> dict:
        if not self.samples:
            return {}
        n = os.cpu_count() or 1
        return {"cores_busy_mean": round(sum(self.samples) / len(self.samples), 2),
                "share_of_time_all_cores_busy": round(sum(s >= n - 0.1 for s in self.samples) / len(self.samples), 2)}


def pipeline_run(root: Path, out: Path, extra: list[str]) -> dict:
    started = time.perf_counter()
    with CoreMonitor() as cores:
        proc = subprocess.run([sys.executable, "-m", "ser_cli.main", "features", "--input", str(root),
                               "--output", str(out), *extra], capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"pipeline failed:\n{proc.stderr[-4000:]}")
    manifest = json.loads((out / "manifest.json").read_text())
    return {"inputs": manifest["inputs"], "written": manifest["written"], "failed": manifest["failed"],
            "skipped": manifest["skipped"], "wall_s": round(wall, 2),
            "clips_per_s": round(manifest["inputs"] / wall, 1), "args": extra, **cores.summary()}


def sample_tree(corpora: Path, limit: int, into: Path) -> Path:
    """Symlinks to a fixed random sample of the corpora, keeping their layout."""
    files = audio_files(corpora)
    if limit and limit < len(files):
        files = random.Random(0).sample(files, limit)
    for src in files:
        dst = into / src.relative_to(corpora)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(src.resolve())
    demo = corpora / "cremad" / "VideoDemographics.csv"
    if demo.exists():
        (into / "cremad").mkdir(exist_ok=True)
        shutil.copy(demo, into / "cremad" / demo.name)
    return into


def shard_bytes(out: Path) -> int:
    return sum(p.stat().st_size for p in out.glob("*.tfrecord.gz"))


def split_fixed_cost(small: dict, full: dict) -> dict:
    """A pipeline's fixed cost and marginal time per clip from a small and a full run."""
    marginal_s = (full["wall_s"] - small["wall_s"]) / max(1, full["inputs"] - small["inputs"])
    return {"fixed_s": round(small["wall_s"] - marginal_s * small["inputs"], 2),
            "marginal_ms_per_clip": round(1000 * marginal_s, 3)}


def one_round(root: Path, small_root: Path, files: list[Path], cfg: FeatureConfig, tmp: Path) -> dict:
    loop = plain_loop(files, cfg)
    pool = process_per_core(files, cfg)
    pool["ms_per_clip"] = round(1000 * pool["wall_s"] / pool["files"], 3)
    small = pipeline_run(small_root, tmp / "out-small", [])
    full = pipeline_run(root, tmp / "out-full", [])
    full["shard_bytes"] = shard_bytes(tmp / "out-full")
    for out in ("out-small", "out-full"):
        shutil.rmtree(tmp / out)
    split = split_fixed_cost(small, full)
    return {"plain_loop": loop, "process_per_core": pool, "pipeline_small": small, "pipeline": full, **split,
            "marginal_vs_pool": round(split["marginal_ms_per_clip"] / pool["ms_per_clip"], 3),
            "pipeline_vs_loop_whole_run": round(full["clips_per_s"] / loop["clips_per_s"], 2)}


def main() -> None:
    import statistics

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", default=str(REPO.parent / "shared" / "corpora"))
    parser.add_argument("--limit", type=int, default=0, help="sample this many files (0: all)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians are reported)")
    parser.add_argument("--small", type=int, default=60, help="files in the small run that gives the fixed cost")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "features_throughput.json"))
    args = parser.parse_args()
    corpora = Path(args.corpora)
    if not corpora.is_dir():
        raise SystemExit(f"corpora folder not found: {corpora}")
    cfg = FeatureConfig()
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = sample_tree(corpora, args.limit, tmp / "in")
        small_root = sample_tree(root, args.small, tmp / "small")
        files = audio_files(root)
        print(f"{len(files)} audio files, {args.rounds} rounds", flush=True)
        _featurize_all(files[:5], cfg)  # first-use imports and caches, not part of any round
        for i in range(args.rounds):
            rounds.append(one_round(root, small_root, files, cfg, tmp))
            r = rounds[-1]
            print(f"round {i + 1}: loop {r['plain_loop']['ms_per_clip']} ms/clip, pool "
                  f"{r['process_per_core']['ms_per_clip']} ms/clip, pipeline fixed {r['fixed_s']} s + "
                  f"{r['marginal_ms_per_clip']} ms/clip = {r['marginal_vs_pool']}x the pool's; whole run "
                  f"{r['pipeline']['wall_s']} s = {r['pipeline_vs_loop_whole_run']}x the loop", flush=True)

    def median(key):
        return round(statistics.median(r[key] for r in rounds), 3)

    result = {"benchmark": "features_throughput", **provenance(), "files": len(files), "small_files": args.small,
              "median": {"fixed_s": median("fixed_s"), "marginal_ms_per_clip": median("marginal_ms_per_clip"),
                         "pool_ms_per_clip": round(statistics.median(
                             r["process_per_core"]["ms_per_clip"] for r in rounds), 3),
                         "loop_ms_per_clip": round(statistics.median(
                             r["plain_loop"]["ms_per_clip"] for r in rounds), 3),
                         "marginal_vs_pool": median("marginal_vs_pool"),
                         "pipeline_vs_loop_whole_run": median("pipeline_vs_loop_whole_run")},
              "target": {"marginal_vs_pool_at_most": 1.15}, "rounds": rounds}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["median"]))


if __name__ == "__main__":
    main()
