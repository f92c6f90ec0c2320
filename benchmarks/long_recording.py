"""One long archive-like recording scored by `ser score` with one worker and with every worker, in one run.

    python benchmarks/long_recording.py [--input ../shared/corpora] [--minutes 60] [--seed 0]

The recording is tests/archivegen.py's (corpus speech between silence, noise,
music-like chords and tones), written as a 16 kHz FLAC file. It is scored twice
on the local runner, with ``--direct_num_workers 1`` and with the default (a
worker per core); voice activity on (the default). Reported per run: wall time,
real-time factor (wall / audio duration), the peak memory of the whole process
tree (the sum of every process's resident set, sampled every 0.1 s) and of its
largest process, the CPU seconds of the whole tree and how many cores that kept
busy on average (CPU seconds / wall), the windows scored; and the ratio of the two walls (issue 14's target: >= 1.8x on 2
cores). Three more runs put that ratio in context: the recording's first tenth
on one worker (whether memory grows with length), and one short clip on one
worker and on every worker (the fixed cost of a run: start-up and loading the
model, which more workers cannot shorten), giving the ratio of the walls less
their fixed costs. The recording is also scored by every worker as threads of one
process (Beam's ``--direct_running_mode multi_threading``: one TensorFlow and
one model in memory instead of one per worker process), which is what `ser
score` picks by itself for a long recording among fewer files than cores. The voice-activity pass alone
(``ser_model.vad.speech_segments`` over the file, in this process) is timed
too, as a share of the one-worker wall. The cores the one-worker run already keeps busy
bound what more workers can gain: at most cores / busy cores, reported as
``speedup_ceiling``. What a worker
process pays before it scores anything is broken down in a fresh interpreter
(``worker_startup``: importing TensorFlow, building the model, the traced first
batch, a batch of another size, traced again).
Results: benchmarks/results/long_recording.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.provenance import provenance  # noqa: E402
from benchmarks.score_throughput import run_measured  # noqa: E402
from benchmarks.vad_accuracy import clean_clips  # noqa: E402
from tests.archivegen import RATE, make_archive  # noqa: E402


def score(path: Path, output: Path, extra: list[str]) -> dict:
    run = run_measured([sys.executable, "-m", "ser_cli.main", "score", "--input", str(path),
                        "--output", str(output), "--windows", *extra])
    import pyarrow.parquet as pq

    windows = pq.read_table(f"{output}.windows.parquet").num_rows
    return {"wall_s": round(run.wall_s, 1), "cpu_s": round(run.cpu_s, 1),
            "busy_cores": round(run.cpu_s / run.wall_s, 2),   # how many cores the run kept busy on average
            "peak_rss_tree_mib": round(run.peak_rss / 2**20),
            "peak_rss_largest_process_mib": round(run.peak_rss_largest / 2**20), "windows": windows,
            "summary": run.proc.stdout.strip().splitlines()[0]}


# What one worker process pays before its first window is scored, step by step, in a fresh interpreter.
STARTUP_STEPS = """
import json, time
import numpy as np
t = [time.perf_counter()]
import tensorflow  # noqa: F401
t.append(time.perf_counter())
from ser_model.bundle import load_bundle
model = load_bundle().model
t.append(time.perf_counter())
def batch(n):
    return {i.name: np.zeros((n, *i.shape[1:]), "float32") for i in model.inputs}
for n in (32, 12, 32):
    model.predict_on_batch(batch(n))
    t.append(time.perf_counter())
steps = ("import_tensorflow_s", "load_model_s", "first_batch_s", "second_batch_size_s", "same_size_again_s")
print(json.dumps({k: round(b - a, 2) for k, a, b in zip(steps, t, t[1:])}))
"""


def startup_breakdown() -> dict:
    """The fixed cost of one worker process: importing TensorFlow, building the model from the bundle, the
    first batch (Keras traces the predict function), a batch of another size (traced once more, with the
    batch size left open) and a third, untraced batch for comparison."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", STARTUP_STEPS], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", default=str(REPO.parent / "shared" / "corpora"))
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "long_recording.json"))
    args = p.parse_args()
    from ser_model.bundle import read_bundle_meta
    from ser_model.vad import VadConfig, speech_segments

    clips = clean_clips(Path(args.input), args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wave, truth = make_archive(clips, args.minutes * 60, args.seed)
        duration = len(wave) / RATE
        path = tmp / "recording.flac"
        sf.write(path, wave, RATE, format="FLAC")
        print(f"recording: {duration / 60:.1f} min, {len(truth)} speech clips", flush=True)

        vad = VadConfig(**read_bundle_meta()["vad"])
        started = time.perf_counter()
        segments = speech_segments(wave, vad)
        vad_s = time.perf_counter() - started
        print(f"voice activity alone: {vad_s:.1f} s, {len(segments)} segments", flush=True)

        tenth = tmp / "first_tenth.flac"   # the same recording's first tenth: does memory grow with length?
        sf.write(tenth, wave[: len(wave) // 10], RATE, format="FLAC")
        clip = tmp / "clip.flac"            # one short clip: the fixed cost of a run (start-up, model loading)
        sf.write(clip, wave[int(truth[0][0] * RATE): int(truth[0][1] * RATE)], RATE, format="FLAC")

        startup = startup_breakdown()
        print("one worker's start-up:", json.dumps(startup), flush=True)
        runs, workers = {}, str(os.cpu_count())
        processes, threads = (["--direct_running_mode", mode] for mode in ("multi_processing", "multi_threading"))
        for name, source, extra in (("one_worker", path, ["--direct_num_workers", "1", *processes]),
                                    ("every_worker", path, ["--direct_num_workers", workers, *processes]),
                                    ("every_worker_threads", path, threads),   # ser score's own choice
                                    ("one_worker_first_tenth", tenth, ["--direct_num_workers", "1"]),
                                    ("fixed_one_worker", clip, ["--direct_num_workers", "1"]),
                                    ("fixed_every_worker", clip, ["--direct_num_workers", workers, *processes]),
                                    ("fixed_every_worker_threads", clip, ["--direct_num_workers", workers, *threads])):
            runs[name] = {**score(source, tmp / name, extra)}
            runs[name]["real_time_factor"] = round(runs[name]["wall_s"] / sf.info(source).duration, 4)
            print(name, json.dumps(runs[name]), flush=True)
    one, every = runs["one_worker"], runs["every_worker"]
    marginal = (one["wall_s"] - runs["fixed_one_worker"]["wall_s"]) / (every["wall_s"] - runs["fixed_every_worker"]["wall_s"])
    report = {"benchmark": "long_recording", **provenance(), "audio_minutes": round(duration / 60, 2),
              "workers_every": os.cpu_count(), **runs,
              "every_over_one_wall": round(one["wall_s"] / every["wall_s"], 3), "target_every_over_one": 1.8,
              "every_over_one_after_fixed_cost": round(marginal, 3),
              "threads_over_one_wall": round(one["wall_s"] / runs["every_worker_threads"]["wall_s"], 3),
              "threads_over_one_after_fixed_cost": round(
                  (one["wall_s"] - runs["fixed_one_worker"]["wall_s"])
                  / (runs["every_worker_threads"]["wall_s"] - runs["fixed_every_worker_threads"]["wall_s"]), 3),
              "speedup_ceiling": round(os.cpu_count() / one["busy_cores"], 2),
              "peak_rss_target_mib": 1536,
              "vad_alone_s": round(vad_s, 1), "vad_share_of_one_worker_wall": round(vad_s / one["wall_s"], 3),
              "speech_segments": len(segments), "worker_startup": startup}
    Path(args.output).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("every_over_one_wall", "every_over_one_after_fixed_cost",
                                             "threads_over_one_wall", "speedup_ceiling",
                                             "vad_share_of_one_worker_wall")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
