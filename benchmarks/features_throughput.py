"""Feature pipeline throughput versus a plain single-process loop, side by side in one run.

    python benchmarks/features_throughput.py [--corpora ../shared/corpora] [--limit N]

The plain loop does what each pipeline worker does per file (read, decode,
resample, window, log-mel + MFCC) with no Beam and no writing. The pipeline run
is the real `ser features` job with its default local runner (FnApiRunner,
multi-processing, one worker per core), writing gzipped TFRecord shards. Target:
pipeline clips/s >= 1.6x the loop on the 2-core machine. Results go to
benchmarks/results/features_throughput.json.

The shared machine's speed drifts by ~10% from minute to minute, so the loop
and the pipeline run in rounds (``--rounds``, default 5), each a sandwich: the
loop over half the files, the pipeline over all, the loop over the other half;
the ratio reported is the median of the per-round ratios.

Three more figures explain the ratio, measured in the same run:
* ceiling: the same plain loop split over one process per core (a
  multiprocessing pool, no Beam, no writing): what the machine allows;
* fixed cost: the pipeline over a small sample of the same files (start-up,
  worker start and stop, the small stages, publishing), from which the marginal
  cost per clip of a large run follows:
  ``(wall_full - wall_small) / (files_full - files_small)``;
* shard writer vs loop: ``WriteShard.process`` against the plain loop on the
  same files in one process (no Beam): the per-clip work writing adds.
Each pipeline run also records how many cores were busy while it ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

from ser_model.corpora import AUDIO_EXTENSIONS  # noqa: E402
from ser_model.extract import featurize_bytes  # noqa: E402
from ser_model.features import FeatureConfig  # noqa: E402


def audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS)


def _featurize_all(files: list[Path], cfg: FeatureConfig) -> tuple[int, int]:
    """(files featurised, windows) - one BLAS thread: extra OpenBLAS threads only spin-wait
    here (measured: same wall time, twice the CPU), so the loop is truly single-core."""
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


def sandwiched_round(files: list[Path], cfg: FeatureConfig, run_pipeline) -> tuple[dict, dict]:
    """Half the plain loop, the pipeline, the other half: ``(loop over all files, pipeline run)``.

    The loop's two halves (alternate files) sit on either side of the pipeline
    run, so a steady drift of the machine's speed during a round cancels out.
    """
    first = plain_loop(files[0::2], cfg)
    run = run_pipeline()
    second = plain_loop(files[1::2], cfg)
    loop = loop_figures(len(files), *(first[k] + second[k] for k in ("ok", "windows", "wall_s", "cpu_s")))
    loop["halves_wall_s"] = [first["wall_s"], second["wall_s"]]
    return loop, run


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
        proc = subprocess.run([sys.executable, "-m", "ser_model.cli", "features", "--input", str(root),
                               "--output", str(out), *extra], capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"pipeline failed:\n{proc.stderr[-4000:]}")
    manifest = json.loads((out / "manifest.json").read_text())
    return {"inputs": manifest["inputs"], "written": manifest["written"], "failed": manifest["failed"],
            "skipped": manifest["skipped"], "wall_s": round(wall, 2),
            "clips_per_s": round(manifest["inputs"] / wall, 1), "args": extra, **cores.summary()}


def dofn_overhead(files: list[Path], cfg: FeatureConfig, out: Path, rounds: int = 5) -> dict:
    """The shard writer's per-clip work beyond the loop's, without Beam.

    ``WriteShard.process`` (read, decode, features, encode, write the shard, train
    statistics) against the plain loop over the same files in this one process,
    in alternating rounds; the median ratio.
    """
    import contextlib
    import io
    import statistics

    from threadpoolctl import threadpool_limits

    from pipelines.transforms import WriteShard
    from ser_model.corpora import Skip, parse_path
    from ser_model.labels import load_label_table
    from ser_model.splits import SplitConfig

    table = load_label_table()
    label_set = table.label_set()
    members = []
    for path in files:
        try:
            utt = parse_path(str(path), table)
        except Skip:
            continue
        if label_set.class_of(utt.label) is not None:
            members.append((utt.with_(split="train"), path.stat().st_size))
    paths = [Path(u.path) for u, _ in members]
    writer = WriteShard(str(out), cfg, label_set, SplitConfig.from_dict({}), "store", 0)
    writer.setup()
    out.mkdir(parents=True, exist_ok=True)
    ratios = []
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(rounds):
            started = time.perf_counter()
            _featurize_all(paths, cfg)
            loop_s = time.perf_counter() - started
            started = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):  # its per-shard progress line
                list(writer.process(("train-00000-of-00001", members)))
            ratios.append((time.perf_counter() - started) / loop_s)
    return {"files": len(members), "rounds": rounds, "ratio_median": round(statistics.median(ratios), 3),
            "ratios": [round(r, 3) for r in ratios]}


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


def median_round(rounds: list[dict]) -> dict:
    """The round with the median ratio (the lower middle one for an even count)."""
    return sorted(rounds, key=lambda r: r["ratio"])[(len(rounds) - 1) // 2]


def fixed_cost(small: dict, full: dict, loop: dict) -> dict:
    """Split the full run's wall time into a fixed part and a per-clip part."""
    marginal_s = (full["wall_s"] - small["wall_s"]) / max(1, full["inputs"] - small["inputs"])
    return {"small_inputs": small["inputs"], "small_wall_s": small["wall_s"],
            "fixed_s": round(small["wall_s"] - marginal_s * small["inputs"], 2),
            "marginal_ms_per_clip": round(1000 * marginal_s, 3),
            "marginal_ratio_vs_loop": round(loop["ms_per_clip"] / (1000 * marginal_s), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", default=str(REPO.parent / "shared" / "corpora"))
    parser.add_argument("--limit", type=int, default=0, help="sample this many files (0: all)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds of plain loop (half before, half after) around the default pipeline "
                             "(median ratio reported)")
    parser.add_argument("--variants", default="--direct_running_mode=multi_processing,--gzip=fast,"
                                              "--runner=FnApiRunner --direct_running_mode=multi_threading "
                                              "--direct_num_workers=2",
                        help="comma-separated extra pipeline variants, each run once against the median "
                             "round's loop: flags joined by spaces (default: Beam's own worker start, "
                             "without forked workers; Huffman gzip; multi-threading), e.g. '--gzip=small' or "
                             "'--runner=FnApiRunner --direct_running_mode=multi_threading "
                             "--direct_num_workers=2' ('' for none)")
    parser.add_argument("--small", type=int, default=60,
                        help="files in the small run that measures the pipeline's fixed cost (0: skip)")
    parser.add_argument("--dofn_files", type=int, default=400,
                        help="files in the in-process comparison of the shard writer with the plain loop")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "features_throughput.json"))
    args = parser.parse_args()
    corpora = Path(args.corpora)
    if not corpora.is_dir():
        raise SystemExit(f"corpora folder not found: {corpora}")
    cfg = FeatureConfig.from_dict(__import__("yaml").safe_load(open(REPO / "configs" / "features.yaml"))["features"])
    with tempfile.TemporaryDirectory() as tmp:
        root = sample_tree(corpora, args.limit, Path(tmp) / "in")
        files = audio_files(root)
        print(f"{len(files)} audio files; {args.rounds} rounds of plain loop and pipeline ...", flush=True)
        _featurize_all(files[:5], cfg)  # first-use imports and caches, not part of any round
        rounds = []
        for i in range(args.rounds):
            out = Path(tmp) / f"out-round-{i}"
            loop, run = sandwiched_round(files, cfg, lambda: pipeline_run(root, out, []))
            run["ratio_vs_loop"] = round(run["clips_per_s"] / loop["clips_per_s"], 2)
            run["shard_bytes"] = shard_bytes(out)
            print(json.dumps(loop), flush=True)
            print(json.dumps(run), flush=True)
            rounds.append({"plain_loop": loop, "pipeline": run, "ratio": run["ratio_vs_loop"]})
            shutil.rmtree(out)
        loop = median_round(rounds)["plain_loop"]
        print("plain loop, one process per core ...", flush=True)
        ceiling = process_per_core(files, cfg)
        ceiling["ratio_vs_loop"] = round(ceiling["clips_per_s"] / loop["clips_per_s"], 2)
        print(json.dumps(ceiling), flush=True)
        runs = {}
        for i, variant in enumerate(v for v in args.variants.split(",") if v):
            extra = variant.split()
            print(f"pipeline ({variant}) ...", flush=True)
            runs[variant] = pipeline_run(root, Path(tmp) / f"out-{i}", extra)
            runs[variant]["ratio_vs_loop"] = round(runs[variant]["clips_per_s"] / loop["clips_per_s"], 2)
            runs[variant]["shard_bytes"] = shard_bytes(Path(tmp) / f"out-{i}")
            print(json.dumps(runs[variant]), flush=True)
        print(f"shard writer vs plain loop, {args.dofn_files} files, in process ...", flush=True)
        dofn = dofn_overhead(random.Random(1).sample(files, min(args.dofn_files, len(files))), cfg,
                             Path(tmp) / "out-dofn")
        print(json.dumps(dofn), flush=True)
        fixed = None
        if args.small:
            print(f"pipeline (default) over {args.small} files: the fixed cost ...", flush=True)
            small = pipeline_run(sample_tree(root, args.small, Path(tmp) / "small"), Path(tmp) / "out-small", [])
            fixed = fixed_cost(small, median_round(rounds)["pipeline"], loop)
            print(json.dumps(fixed), flush=True)
    result = {"benchmark": "features_throughput", "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "processor": platform.machine()},
              "files": len(files), "rounds": rounds,
              "ratio_median": median_round(rounds)["ratio"],
              "plain_loop": loop, "pipeline": median_round(rounds)["pipeline"],
              "process_per_core": ceiling, "variants": runs, "fixed_cost": fixed,
              "shard_writer_vs_loop_in_process": dofn, "target_ratio": 1.6}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"ratio_median": result["ratio_median"], "rounds": [r["ratio"] for r in rounds],
                      **{m: r["ratio_vs_loop"] for m, r in runs.items()}}))


if __name__ == "__main__":
    main()
