"""Bulk scoring throughput and memory, side by side in one run.

    python benchmarks/score_throughput.py [--limit 1500] [--model BUNDLE] [--long_minutes 60]

1. `ser score` (the Beam pipeline, default local runner) over a fixed random
   sample of ../shared/corpora, versus a naive loop that decodes each file and
   calls `model.predict` on it, one file at a time. Both report audio seconds
   scored per wall second (real-time factor); the ratio is pipeline / loop.
2. Peak memory (summed RSS of the whole process tree, sampled every 0.1 s) while
   `ser score` scores one long recording made by concatenating corpus clips.
Targets: >= 200x real time on 2 cores, >= 10x the naive loop, <= 1.5 GB for 60 minutes.
Results: benchmarks/results/score_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.features_throughput import audio_files  # noqa: E402
from benchmarks.provenance import provenance  # noqa: E402


def process_tree(pid: int) -> list[int]:
    """A process and its live descendants."""
    pids, stack = [], [pid]
    while stack:
        p = stack.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):  # children are listed per creating thread
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        pids.append(p)
    return pids


def process_rss(pid: int) -> int:
    """Resident memory of one process in bytes (0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (FileNotFoundError, ProcessLookupError):
        return 0


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds one process has used so far (0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()   # after "pid (comm)": state is field 3
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")   # utime, stime: fields 14, 15


def process_tree_rss(pid: int) -> list[int]:
    """Resident memory of a process and of each of its descendants, in bytes."""
    return [process_rss(p) for p in process_tree(pid)]


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    return sum(process_tree_rss(pid))


class Measured(NamedTuple):
    wall_s: float
    peak_rss: int            # bytes, the whole process tree
    peak_rss_largest: int    # bytes, its largest process
    cpu_s: float             # user + system seconds of every process of the tree, as last sampled
    proc: subprocess.CompletedProcess


def run_measured(cmd: list[str]) -> Measured:
    """Run a command from the repository, sampling its process tree every 0.1 s; exits if it fails.
    CPU time is each process's last sample, so a process's final 0.1 s can be missed."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, cpu = [0, 0], {}

    def sample():
        while proc.poll() is None:
            pids = process_tree(proc.pid)
            sizes = [process_rss(p) for p in pids]
            peak[0], peak[1] = max(peak[0], sum(sizes)), max(peak[1], max(sizes, default=0))
            for p in pids:
                cpu[p] = max(cpu.get(p, 0.0), process_cpu_seconds(p))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out, err = proc.communicate()
    sampler.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed:\n{err[-3000:]}")
    return Measured(wall, peak[0], peak[1], sum(cpu.values()),
                    subprocess.CompletedProcess(cmd, proc.returncode, out, err))


def naive_loop(files: list[Path], model_path: str) -> dict:
    """Decode each file and call model.predict on its windows, one file at a time."""
    from ser_model import audio
    from ser_model.bundle import load_bundle
    from ser_model.features import compute_features

    bundle = load_bundle(model_path)
    started = time.perf_counter()
    seconds = 0.0
    for path in files:
        samples, rate = audio.decode(path.read_bytes())
        wave = audio.prepare(samples, rate, bundle.features)
        feats = [compute_features(w.samples, bundle.features) for w in audio.windows(wave, bundle.features)]
        bundle.model.predict({"logmel": np.stack([f[0] for f in feats])[..., None],
                              "mfcc": np.stack([f[1] for f in feats])[..., None]}, verbose=0)
        seconds += samples.shape[0] / rate
    wall = time.perf_counter() - started
    return {"files": len(files), "audio_s": round(seconds, 1), "wall_s": round(wall, 2),
            "realtime_factor": round(seconds / wall, 1)}


def long_recording(files: list[Path], minutes: float, path: Path) -> float:
    """Concatenate corpus clips (16 kHz) into one FLAC of about ``minutes``; returns its length."""
    from ser_model import audio

    rng = random.Random(1)
    with sf.SoundFile(path, "w", samplerate=16000, channels=1, format="FLAC") as out:
        written = 0
        while written < minutes * 60 * 16000:
            samples, rate = audio.decode(rng.choice(files).read_bytes())
            mono = audio.resample(audio.to_mono(samples), rate, 16000)
            out.write(mono)
            written += len(mono)
    return written / 16000


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpora", default=str(REPO.parent / "shared" / "corpora"))
    p.add_argument("--limit", type=int, default=0, help="files in a random sample (default 0: all)")
    p.add_argument("--naive_limit", type=int, default=300, help="files for the naive loop (slow)")
    p.add_argument("--model", default=None, help="bundle (default: the bundled model)")
    p.add_argument("--long_minutes", type=float, default=60.0)
    p.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "score_throughput.json"))
    args = p.parse_args()
    from ser_model.bundle import resolve_bundle_path

    model = str(resolve_bundle_path(args.model))
    files = audio_files(Path(args.corpora))
    if args.limit and args.limit < len(files):
        files = random.Random(0).sample(files, args.limit)
    ser = [sys.executable, "-m", "ser_cli.main", "score", "--model", model]
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "sample"
        for i, f in enumerate(files):  # symlinks: the pipeline reads the real files
            (listing / f"{i // 500:03d}").mkdir(parents=True, exist_ok=True)
            (listing / f"{i // 500:03d}" / f"{i:05d}_{f.name}").symlink_to(f.resolve())
        print(f"pipeline over {len(files)} files ...", flush=True)
        wall, peak, _, _, proc = run_measured([*ser, "--input", str(listing), "--output", f"{tmp}/sample"])
        import pyarrow.parquet as pq

        rows = pq.read_table(f"{tmp}/sample.files.parquet").to_pylist()
        audio_s = sum(r["duration_s"] or 0 for r in rows)
        pipeline = {"files": len(rows), "failed": sum(1 for r in rows if r["error"]), "audio_s": round(audio_s, 1),
                    "wall_s": round(wall, 2), "realtime_factor": round(audio_s / wall, 1),
                    "peak_rss_mb": round(peak / 2 ** 20), "summary": proc.stdout.strip().splitlines()[-2:]}
        print(json.dumps(pipeline), flush=True)
        print(f"naive loop over {min(len(files), args.naive_limit)} files ...", flush=True)
        naive = naive_loop(files[: args.naive_limit], model)
        print(json.dumps(naive), flush=True)
        long_path = Path(tmp) / "long.flac"
        long_s = long_recording(files, args.long_minutes, long_path)
        print(f"long recording {long_s / 60:.1f} min ...", flush=True)
        wall, peak, _, _, proc = run_measured([*ser, "--input", str(long_path), "--output", f"{tmp}/long", "--windows"])
        long = {"audio_s": round(long_s, 1), "wall_s": round(wall, 2), "realtime_factor": round(long_s / wall, 1),
                "peak_rss_mb": round(peak / 2 ** 20), "target_peak_rss_mb": 1536}
        print(json.dumps(long), flush=True)
    result = {"benchmark": "score_throughput", **provenance(), "model": model, "pipeline": pipeline, "naive_loop": naive,
              "ratio_vs_naive": round(pipeline["realtime_factor"] / naive["realtime_factor"], 2),
              "targets": {"realtime_factor": 200, "ratio_vs_naive": 10, "peak_rss_mb_60min": 1536},
              "long_recording": long}
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("ratio_vs_naive",)}))


if __name__ == "__main__":
    main()
