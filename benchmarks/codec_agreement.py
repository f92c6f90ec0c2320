"""Do predictions survive the codec (and the room)? The same clips in several codecs, side by side in one run.

    python benchmarks/codec_agreement.py [--model BUNDLE ...] [--input DIR] [--limit 300] [--seed 0]
                                         [--unseen_speakers FOLD_MODEL_OR_FEATURES]

Every sampled clip is decoded once, written back as 16-bit WAV (the reference)
and re-encoded into the codecs users' archives arrive in: FLAC, MP3 at two
bitrates, Ogg Vorbis, 8 kHz mu-law telephone WAV, and the source file itself (the
corpora here are Opus), plus the WAV as heard in reverberant rooms of two kinds:
two synthetic rooms (exponentially decaying noise as the impulse response,
reverberation time 0.4 s and 0.8 s, the tail 3 dB below the direct sound: the kind
``augment.reverb_p`` trains on) and two shoebox rooms, an office and a hall, whose
impulse responses come from the image-source method (pyroomacoustics: discrete
early reflections off walls of one absorption, a geometry, a talker a few metres
away; their measured reverberation time and direct-to-reverberant ratio are in the
report). Each version is scored through the product's own path
(``Predictor.predict_fileobj``: decode, resample, window, featurise, model,
calibration). Reported per model and codec: the share of files whose label
equals the WAV's (agreement), the mean total-variation distance between the two
probability vectors, the UAR against the corpus label, and the encoded bitrate.
``--model`` repeated scores the same versions with several bundles side by side
(a recipe against its variant). ``--unseen_speakers FOLDER`` samples only the
clips of speakers the models never heard: a fold model's test speakers (``ser
crossval --keep_models``: every corpus), or a feature folder's test split (the
corpora it splits by speaker), for models trained on its train split.
Results: benchmarks/results/codec_agreement.json (``--output`` to change).
"""

from __future__ import annotations

import argparse
import functools
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
from ser_model.corpora import Skip, parse_path  # noqa: E402
from ser_model.evaluate import scores  # noqa: E402
from ser_model.features import FeatureConfig  # noqa: E402
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


# name -> reverberation time (s) of a synthetic room the WAV is played in
ROOMS = {"room_rt60_0.4s": 0.4, "room_rt60_0.8s": 0.8}
ROOM_DRR_DB = 3.0   # direct-to-reverberant energy ratio: a talker a few metres from the microphone


# name -> (size, target reverberation time (s), talker, microphone; metres): shoebox rooms whose
# impulse response the image-source method computes. Sabine's formula sets the walls' absorption
# from the target; the response's own decay differs from it and is measured and reported.
SHOEBOX_ROOMS = {
    "office_rt60_0.4s": ([5.0, 4.0, 3.0], 0.4, [1.5, 2.0, 1.6], [3.5, 2.6, 1.2]),
    "hall_rt60_0.8s": ([10.0, 7.0, 3.5], 0.8, [2.5, 3.0, 1.6], [6.0, 4.5, 1.2]),
}
DIRECT_SOUND_S = 0.0025   # the direct path's share of a response: its peak +- 2.5 ms


@functools.lru_cache(maxsize=None)
def room_impulse_response(rt60: float, rate: int, drr_db: float = ROOM_DRR_DB, seed: int = 0) -> np.ndarray:
    """A direct-path impulse and a late tail of Gaussian noise whose power falls 60 dB in ``rt60``
    seconds, its energy ``drr_db`` below the direct sound (seeded: every clip hears the same room)."""
    t = np.arange(1, int(1.2 * rt60 * rate)) / rate
    tail = np.random.default_rng(seed).normal(size=t.size) * 10 ** (-3 * t / rt60)
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail ** 2))
    return read_only(np.concatenate([[1.0], tail]))


@functools.lru_cache(maxsize=None)
def shoebox_impulse_response(name: str, rate: int) -> np.ndarray:
    """The image-source response of ``SHOEBOX_ROOMS[name]`` from the talker to the microphone,
    starting just before the direct sound (the propagation delay dropped: same timing as the WAV)."""
    import pyroomacoustics as pra

    size, rt60, talker, microphone = SHOEBOX_ROOMS[name]
    absorption, max_order = pra.inverse_sabine(rt60, size)
    room = pra.ShoeBox(size, fs=rate, materials=pra.Material(absorption), max_order=max_order)
    room.add_source(talker)
    room.add_microphone(microphone)
    room.compute_rir()
    response = np.asarray(room.rir[0][0], dtype=np.float64)
    start = max(0, int(np.argmax(np.abs(response))) - int(DIRECT_SOUND_S * rate))
    return read_only(response[start:])


def read_only(array: np.ndarray) -> np.ndarray:
    """``array``, locked against writes: the cached responses are shared by every clip, so an
    in-place edit by one caller must fail instead of changing the room for all later clips."""
    array.setflags(write=False)
    return array


def direct_to_reverberant_db(response: np.ndarray, rate: int) -> float:
    """Energy within ``DIRECT_SOUND_S`` of the response's peak over the energy of all the rest, in dB."""
    peak, half = int(np.argmax(np.abs(response))), int(DIRECT_SOUND_S * rate)
    energy = response ** 2
    direct = energy[max(0, peak - half): peak + half + 1].sum()
    return float(10 * np.log10(direct / max(energy.sum() - direct, 1e-20)))


def decay_time_s(response: np.ndarray, rate: int) -> float:
    """The response's reverberation time: Schroeder's backward integral, its -5 to -25 dB slope
    extrapolated to 60 dB (T20)."""
    energy = np.cumsum((response ** 2)[::-1])[::-1]
    level = 10 * np.log10(energy / energy[0] + 1e-30)
    t = np.arange(len(level)) / rate
    fit = (level <= -5) & (level >= -25)
    slope = np.polyfit(t[fit], level[fit], 1)[0]   # dB per second, negative
    return float(-60.0 / slope)


def in_room(wave: np.ndarray, response: np.ndarray) -> np.ndarray:
    """The clip played through a room's impulse ``response``, same length and peak level."""
    from scipy.signal import fftconvolve

    wet = fftconvolve(wave, response)[: len(wave)]
    return wet * (np.max(np.abs(wave)) / max(np.max(np.abs(wet)), 1e-9))


def room_responses(rate: int) -> dict[str, np.ndarray]:
    """Every room's impulse response at ``rate``, both kinds (each computed once and cached)."""
    return ({name: room_impulse_response(rt60, rate) for name, rt60 in ROOMS.items()}
            | {name: shoebox_impulse_response(name, rate) for name in SHOEBOX_ROOMS})


def room_versions(wave: np.ndarray, rate: int) -> dict[str, bytes]:
    """The clip as WAV in every room of both kinds."""
    return {name: encode(in_room(wave, h), rate, "wav") for name, h in room_responses(rate).items()}


def describe_rooms(rate: int) -> dict:
    """Every room's settings and its response's measured decay time (T20) and direct-to-reverberant
    ratio, at ``rate``."""
    settings = ({name: {"kind": "exponential noise tail", "rt60_s": rt60, "drr_db": ROOM_DRR_DB}
                 for name, rt60 in ROOMS.items()}
                | {name: {"kind": "image-source shoebox (pyroomacoustics)", "size_m": size, "sabine_rt60_s": rt60,
                          "talker_m": talker, "microphone_m": microphone}
                   for name, (size, rt60, talker, microphone) in SHOEBOX_ROOMS.items()})
    return {name: settings[name] | {"measured_t20_s": round(decay_time_s(h, rate), 3),
                                    "measured_drr_db": round(direct_to_reverberant_db(h, rate), 2),
                                    "written_as": "WAV PCM_16"}
            for name, h in room_responses(rate).items()}


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


def test_speakers(folder: Path) -> set[tuple[str, str]]:
    """``{(corpus, speaker)}`` kept from training: a ``ser crossval --keep_models`` fold model's test
    speakers, or a ``ser features`` folder's test split for the corpora it splits by speaker (the
    others' test groups are sentences or words of speakers it trains on)."""
    if (folder / "manifest.json").exists():
        groups = json.loads((folder / "manifest.json").read_text())["split_groups"]
        return {(corpus, speaker) for corpus, g in groups.items() if g["group_by"] == "speaker"
                for speaker in g["test"]}
    listed = json.loads((folder / "metrics.json").read_text()).get("test_speakers")
    if not listed:
        raise SystemExit(f"--unseen_speakers {folder}: neither a feature folder nor a fold model")
    return {tuple(s.split("/", 1)) for s in listed}


def sample_files(root: Path, limit: int, seed: int, table, label_set,
                 speakers: set[tuple[str, str]] | None = None) -> list[tuple[Path, str]]:
    """A seeded random sample of clips whose name gives a class of the model's label set (and,
    given ``speakers``, whose speaker is one of them)."""
    labelled = []
    for path in audio_files(root):
        if "originals" in path.parts:
            continue
        try:
            utt = parse_path(str(path), table)
        except Skip:   # the name says nothing of an emotion
            continue
        cls = label_set.class_of(utt.label)   # None: the label set drops this emotion
        if cls and (speakers is None or (utt.corpus, utt.speaker) in speakers):
            labelled.append((path, cls))
    random.Random(seed).shuffle(labelled)
    return sorted(labelled[:limit])


def score_versions(predictors, path: Path) -> list[dict[str, tuple[np.ndarray, float]]]:
    """Per predictor, {version: (file probabilities, encoded kbit/s)} for the source, every codec and
    every room (each version encoded once, scored by every predictor)."""
    data = path.read_bytes()
    wave, rate = audio.decode(data)
    wave = audio.to_mono(wave)
    seconds = len(wave) / rate
    versions = {"source": data} | {codec: encode(wave, rate, codec) for codec in CODECS} | room_versions(wave, rate)
    return [{name: (predictor.predict_fileobj(io.BytesIO(blob)).probs, 8 * len(blob) / seconds / 1000)
             for name, blob in versions.items()} for predictor in predictors]


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
    p.add_argument("--model", action="append", default=None,
                   help="model bundle; repeat to score several side by side (default: the bundled model)")
    p.add_argument("--input", default=str(REPO.parent / "shared" / "corpora"), help="folder of corpus clips")
    p.add_argument("--limit", type=int, default=300, help="clips to sample")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--unseen_speakers", type=Path, metavar="FOLDER", default=None,
                   help="sample only clips of the speakers a `ser crossval --keep_models` fold model was "
                        "kept from, or of a `ser features` folder's test split")
    p.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "codec_agreement.json"))
    args = p.parse_args(argv)

    from ser_model.predict import Predictor

    predictors = [Predictor(m) for m in (args.model or [None])]
    classes = list(predictors[0].bundle.classes)
    if any(list(pr.bundle.classes) != classes for pr in predictors):
        p.error("the models predict different classes; compare models of one label set")
    speakers = test_speakers(args.unseen_speakers) if args.unseen_speakers else None
    files = sample_files(Path(args.input), args.limit, args.seed, load_label_table(),
                         predictors[0].bundle.label_set, speakers)
    if not files:
        print(f"no labelled clips under {args.input}", file=sys.stderr)
        return 1
    started, results, truth, failed = time.perf_counter(), [], [], []
    for i, (path, cls) in enumerate(files, 1):
        try:
            results.append(score_versions(predictors, path))
            truth.append(classes.index(cls))
        except audio.AudioError as e:
            failed.append(f"{path}: {e}")
        if i % 25 == 0 or i == len(files):
            print(f"{i}/{len(files)} clips, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    models = [{"model": pr.bundle.model_id, "path": m or "the bundled model"}
              for pr, m in zip(predictors, args.model or [None])]
    report = {"benchmark": "codec_agreement", **provenance(), "models": models,
              "input": args.input, "clips": len(results), "failed": failed,
              "unseen_speakers": sorted("/".join(s) for s in speakers) if speakers else None,
              "codecs": {name: {"format": f, "subtype": s, **extra, "sample_rate": r or "the clip's own"}
                         for name, (f, s, extra, r) in CODECS.items()},
              "rooms": describe_rooms(FeatureConfig().sample_rate),
              "per_model": {m["path"]: summarise([r[k] for r in results], truth, classes)
                            for k, m in enumerate(models)}}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["per_model"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
