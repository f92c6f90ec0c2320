"""Voice activity detectors on an archive-like recording with known speech, side by side in one run.

    python benchmarks/vad_accuracy.py [--input ../shared/corpora] [--minutes 10] [--seed 0]

The recording: clean corpus clips (RAVDESS, TESS, SAVEE; CREMA-D's noise floor,
10-35 dB under its peaks, makes an energy-based truth unreliable) alternating
with 1-6 s of near-silence, pink-ish noise, music-like chords or a steady tone
(tests/archivegen.py). The truth per clip: its first to last 25 ms frame within
25 dB of its loudest. Per detector setting: frame-level (10 ms) precision,
recall and F1, seconds of non-speech called speech and of speech missed, and
speed as a real-time factor. Also, "before": the seconds of non-speech that
today's scorer gives an emotion (every 3 s window that is not silent, as
``ser score`` places them on a long file), and "after": those inside detected
speech. Results: benchmarks/results/vad_accuracy.json.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.features_throughput import audio_files  # noqa: E402
from benchmarks.provenance import provenance  # noqa: E402
from ser_model.features import FeatureConfig  # noqa: E402
from ser_model.streaming import open_windows  # noqa: E402
from ser_model.vad import VadConfig, speech_segments  # noqa: E402
from tests.archivegen import RATE, frame_scores, make_archive  # noqa: E402

CLEAN = ("ravdess", "tess", "savee")
SETTINGS = {
    "silero_0.5": VadConfig("silero", threshold=0.5),
    "silero_0.3": VadConfig("silero", threshold=0.3),
    "silero_0.7": VadConfig("silero", threshold=0.7),
    "webrtc_1": VadConfig("webrtc", aggressiveness=1),
    "webrtc_2": VadConfig("webrtc", aggressiveness=2),
    "webrtc_3": VadConfig("webrtc", aggressiveness=3),
}


def scored_windows(wave: np.ndarray) -> list[tuple[float, float]]:
    """The spans today's scorer gives an emotion on a long file (non-silent windows)."""
    cfg = FeatureConfig()
    buf = io.BytesIO()
    sf.write(buf, wave, RATE, format="WAV", subtype="FLOAT")
    buf.seek(0)
    rec = open_windows(buf, cfg)
    return [(w.start_s, w.start_s + cfg.window_seconds) for w in rec.windows]


def non_speech_covered(spans, truth, duration_s: float) -> float:
    return frame_scores(spans, truth, duration_s)["non_speech_s_called_speech"]


def clean_clips(root: Path, seed: int) -> list[Path]:
    """The clean corpora's clips under ``root`` (not the untouched originals), in a seeded order."""
    clips = [f for f in audio_files(root) if "originals" not in f.parts and any(c in f.parts for c in CLEAN)]
    random.Random(seed).shuffle(clips)
    return clips


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", default=str(REPO.parent / "shared" / "corpora"))
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "vad_accuracy.json"))
    args = p.parse_args()
    clips = clean_clips(Path(args.input), args.seed)
    wave, truth = make_archive(clips, args.minutes * 60, seed=args.seed)
    duration = len(wave) / RATE
    results = {}
    for name, cfg in SETTINGS.items():
        started = time.perf_counter()
        segments = speech_segments(wave, cfg)
        seconds = time.perf_counter() - started
        results[name] = {**frame_scores(segments, truth, duration), "realtime_factor": round(duration / seconds, 1)}
        print(name, json.dumps(results[name]), flush=True)
    windows = scored_windows(wave)
    report = {"benchmark": "vad_accuracy", **provenance(), "input": args.input, "corpora": list(CLEAN),
              "duration_s": round(duration, 1), "speech_s": round(sum(e - s for s, e in truth), 1),
              "clips": len(truth), "settings": {k: vars(v) for k, v in SETTINGS.items()}, "results": results,
              "non_speech_s_given_an_emotion": {
                  "before_blind_windows": non_speech_covered(windows, truth, duration),
                  **{f"after_{k}": r["non_speech_s_called_speech"] for k, r in results.items()}}}
    Path(args.output).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["non_speech_s_given_an_emotion"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
