"""Do predictions survive the codec? The same clips in several codecs, side by side in one run.

    python benchmarks/codec_agreement.py [--model BUNDLE] [--input DIR] [--limit 300] [--seed 0]

Every sampled clip is decoded once, written back as 16-bit WAV (the reference)
and re-encoded into the codecs users' archives arrive in: FLAC, MP3 at two
bitrates, Ogg Vorbis, 8 kHz mu-law telephone WAV, and the source file itself (the
corpora here are Opus). Each version is scored through the product's own path
(``Predictor.predict_fileobj``: decode, resample, window, featurise, model,
calibration). Reported per codec: the share of files whose label equals the
WAV's (agreement), the mean total-variation distance between the two
probability vectors, the UAR against the corpus label, and the encoded bitrate.
Results: benchmarks/results/codec_agreement.json (``--output`` to change).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.features_throughput import audio_files  # noqa: E402
from benchmarks.provenance import provenance  # noqa: E402
from ser_model import audio  # noqa: E402
from ser_model.corpora import expected_class  # noqa: E402
from ser_model.evaluate import scores  # noqa: E402
from ser_model.labels import load_label_table  # noqa: E402

TELEPHONE_RATE = 8000

# name -> (format, subtype, extra soundfile.write arguments, sample rate or None for the clip's own)
CODECS = {
    "wav": ("WAV", "PCM_16", {}, None),
    "flac": ("FLAC", "PCM_16", {}, None),
    "mp3_high": ("MP3", "MPEG_LAYER_III", {"compression_level": 0.2}, None),
    "mp3_low": ("MP3", "MPEG_LAYER_III", {"compression_level": 0.9}, None),
    "ogg_vorbis": ("OGG", "VORBIS", {}, None),
    "telephone_ulaw_8k": ("WAV", "ULAW", {}, TELEPHONE_RATE),
}


def encode(wave: np.ndarray, rate: int, codec: str) -> bytes:
    """The clip as a file of ``codec`` (see CODECS), in memory."""
    fmt, subtype, extra, target = CODECS[codec]
    if target and target != rate:
        wave, rate = audio.resample(wave, rate, target), target
    buf = io.BytesIO()
    sf.write(buf, np.clip(wave, -1.0, 1.0), rate, format=fmt, subtype=subtype, **extra)
    return buf.getvalue()


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    return float(0.5 * np.abs(p - q).sum())


def sample_files(root: Path, limit: int, seed: int, table, label_set) -> list[tuple[Path, str]]:
    """A seeded random sample of clips whose name gives a class of the model's label set."""
    labelled = [(p, c) for p in audio_files(root) if "originals" not in p.parts
                for c in [expected_class(str(p), table, label_set)] if c not in ("?", "-")]
    random.Random(seed).shuffle(labelled)
    return sorted(labelled[:limit])


def score_versions(predictor, path: Path) -> dict[str, tuple[np.ndarray, float]]:
    """{version: (file probabilities, encoded kbit/s)} for the source and every codec."""
    data = path.read_bytes()
    wave, rate = audio.decode(data)
    wave = audio.to_mono(wave)
    seconds = len(wave) / rate
    versions = {"source": data} | {codec: encode(wave, rate, codec) for codec in CODECS}
    return {name: (predictor.predict_fileobj(io.BytesIO(blob)).probs, 8 * len(blob) / seconds / 1000)
            for name, blob in versions.items()}


def summarise(results: list[dict[str, tuple[np.ndarray, float]]], truth: list[int], classes) -> dict:
    reference = [np.argmax(r["wav"][0]) for r in results]
    out = {}
    for name in results[0]:
        labels = [int(np.argmax(r[name][0])) for r in results]
        out[name] = {
            "agreement_with_wav": round(float(np.mean([a == b for a, b in zip(labels, reference)])), 4),
            "mean_total_variation_vs_wav": round(float(np.mean([total_variation(r[name][0], r["wav"][0])
                                                                for r in results])), 4),
            "uar": round(scores(truth, labels, classes)["uar"], 4),
            "mean_kbit_per_s": round(float(np.mean([r[name][1] for r in results])), 1),
        }
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="model bundle (default: the bundled model)")
    p.add_argument("--input", default=str(REPO.parent / "shared" / "corpora"), help="folder of corpus clips")
    p.add_argument("--limit", type=int, default=300, help="clips to sample")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "codec_agreement.json"))
    args = p.parse_args(argv)

    from ser_model.predict import Predictor

    predictor = Predictor(args.model)
    classes = list(predictor.bundle.classes)
    files = sample_files(Path(args.input), args.limit, args.seed, load_label_table(), predictor.bundle.label_set)
    if not files:
        print(f"no labelled clips under {args.input}", file=sys.stderr)
        return 1
    started, results, truth, failed = time.perf_counter(), [], [], []
    for i, (path, cls) in enumerate(files, 1):
        try:
            results.append(score_versions(predictor, path))
            truth.append(classes.index(cls))
        except audio.AudioError as e:
            failed.append(f"{path}: {e}")
        if i % 25 == 0 or i == len(files):
            print(f"{i}/{len(files)} clips, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    report = {"benchmark": "codec_agreement", **provenance(), "model": predictor.bundle.model_id,
              "input": args.input, "clips": len(results), "failed": failed,
              "codecs": {name: {"format": f, "subtype": s, **extra, "sample_rate": r or "the clip's own"}
                         for name, (f, s, extra, r) in CODECS.items()},
              "per_codec": summarise(results, truth, classes)}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["per_codec"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
