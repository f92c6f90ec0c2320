"""How far does each codec move the log-mel the model sees, and would a higher floor hide it?

    python benchmarks/codec_features.py [--input DIR] [--limit 150] [--seed 0]
                                        [--floors -80,-60,-45,-30]

The clips codec_agreement.py samples (same seed, same codecs) are decoded to the
feature rate, aligned with their WAV version (codecs add a start delay; the lag
is found by cross-correlation) and turned into log-mel in dB re full scale
without a floor. For each codec and each candidate ``db_floor``, both versions
are floored and compared cell by cell: the mean absolute difference in dB, the
share of cells that moved by more than 10 dB ("holes"), and how many cells sit
above the floor at all (what the floor leaves the model to see). The mean level
per mel band (at the lowest floor given), and over the bands above 3 kHz, is
also compared (a low-pass shows there). This
measures the features, not the model: which floor to train with is decided on
speaker folds (``ser features --set db_floor=...``, then ``ser crossval``), and
agreement of labels by codec_agreement.py.
Results: benchmarks/results/codec_features.json (``--output`` to change).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.codec_agreement import CODECS, encode, sample_files  # noqa: E402
from benchmarks.provenance import provenance  # noqa: E402
from ser_model import audio  # noqa: E402
from ser_model.features import FeatureConfig, mel_band_centres_hz, mel_filterbank, power_spectrogram  # noqa: E402
from ser_model.labels import load_label_table  # noqa: E402

MAX_LAG_S = 0.25      # codec start delays are a few ms; allow far more
HOLE_DB = 10.0
HIGH_HZ = 3000.0


def decoded(blob: bytes, cfg: FeatureConfig) -> np.ndarray:
    """The product's decode path up to the feature rate: decode, mono, resample."""
    wave, rate = audio.decode(blob)
    wave = audio.to_mono(wave)
    return audio.resample(wave, rate, cfg.sample_rate) if rate != cfg.sample_rate else wave


def lag_of(reference: np.ndarray, other: np.ndarray, max_lag: int) -> int:
    """Samples by which ``other`` starts later than ``reference`` (cross-correlation peak)."""
    n = min(len(reference), len(other))
    size = 1 << int(np.ceil(np.log2(2 * n)))
    corr = np.fft.irfft(np.fft.rfft(other[:n], size) * np.conj(np.fft.rfft(reference[:n], size)), size)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    return int(lags[np.argmax(corr[lags])])


def aligned(reference: np.ndarray, other: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    lag = lag_of(reference, other, max_lag)
    other = other[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag, other.dtype), other])
    n = min(len(reference), len(other))
    return reference[:n], other[:n]


def mel_db(wave: np.ndarray, cfg: FeatureConfig, bank: np.ndarray) -> np.ndarray:
    """Log-mel in dB re full scale with no floor (``logmel_from_power`` less its floor)."""
    return 10.0 * np.log10(np.maximum(bank @ power_spectrogram(wave, cfg), 1e-10))


def compare(ref_db: np.ndarray, other_db: np.ndarray, floors: list[float], high: np.ndarray) -> dict:
    out = {}
    for floor in floors:
        a, b = np.maximum(ref_db, floor), np.maximum(other_db, floor)
        diff = np.abs(a - b)
        out[str(floor)] = {"mean_abs_db": float(diff.mean()), "holes": float((diff > HOLE_DB).mean()),
                           "above_floor": float((ref_db > floor).mean())}
    out["high_band_level_db"] = float(np.mean(other_db[high]) - np.mean(ref_db[high]))
    out["band_level_db"] = np.mean(np.maximum(other_db, floors[0]) - np.maximum(ref_db, floors[0]), axis=1)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", default=str(REPO.parent / "shared" / "corpora"), help="folder of corpus clips")
    p.add_argument("--limit", type=int, default=150, help="clips to sample")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--floors", default="-80,-60,-45,-30", help="candidate db_floor values, comma-separated")
    p.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "codec_features.json"))
    args = p.parse_args(argv)
    floors = [float(f) for f in args.floors.split(",")]

    cfg = FeatureConfig()
    bank = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
    high = mel_band_centres_hz(cfg) >= HIGH_HZ
    table = load_label_table()
    files = sample_files(Path(args.input), args.limit, args.seed, table, table.label_set())
    if not files:
        print(f"no labelled clips under {args.input}", file=sys.stderr)
        return 1
    per_codec: dict[str, list[dict]] = {c: [] for c in CODECS if c != "wav"}
    started, failed = time.perf_counter(), []
    for i, (path, _) in enumerate(files, 1):
        try:
            wave, rate = audio.decode(path.read_bytes())
            wave = audio.to_mono(wave)
            reference = decoded(encode(wave, rate, "wav"), cfg)
            for codec, rows in per_codec.items():
                ref, other = aligned(reference, decoded(encode(wave, rate, codec), cfg),
                                     int(MAX_LAG_S * cfg.sample_rate))
                rows.append(compare(mel_db(ref, cfg, bank), mel_db(other, cfg, bank), floors, high))
        except audio.AudioError as e:
            failed.append(f"{path}: {e}")
        if i % 25 == 0 or i == len(files):
            print(f"{i}/{len(files)} clips, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    summary = {codec: {"high_band_level_db": round(float(np.mean([r["high_band_level_db"] for r in rows])), 2),
                       "band_level_db": [round(float(v), 2) for v in np.mean([r["band_level_db"] for r in rows], 0)],
                       "by_floor": {f: {k: round(float(np.mean([r[f][k] for r in rows])), 4)
                                        for k in ("mean_abs_db", "holes", "above_floor")}
                                    for f in map(str, floors)}}
               for codec, rows in per_codec.items()}
    report = {"benchmark": "codec_features", **provenance(), "input": args.input, "clips": len(files) - len(failed),
              "failed": failed, "seed": args.seed, "hole_db": HOLE_DB, "high_band_from_hz": HIGH_HZ,
              "feature_floor_now": cfg.db_floor,
              "band_centres_hz": [round(float(f)) for f in mel_band_centres_hz(cfg)], "per_codec": summary}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
