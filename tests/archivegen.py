"""A long recording like an archive's, with known speech: real speech clips between silence,
noise, music-like chords and steady tones (for the VAD tests and benchmarks/vad_accuracy.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ser_model import audio

RATE = 16000
NON_SPEECH = ("silence", "noise", "music", "tone")


def speech_span(wave: np.ndarray, top_db: float = 25.0) -> tuple[int, int]:
    """First and last sample of a clip's speech: 25 ms frames within ``top_db`` of its loudest (the
    corpora's noise floor is some 35 dB down; breaths and room noise before it do not count)."""
    frame = 400
    n = len(wave) // frame
    rms = np.sqrt(np.mean(wave[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > -top_db)
    return int(loud[0] * frame), int((loud[-1] + 1) * frame)


def non_speech(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    if kind == "silence":
        return (1e-4 * rng.standard_normal(n)).astype(np.float32)
    if kind == "noise":   # pink-ish: white noise through a one-pole low-pass, at a speech-like level
        white = rng.standard_normal(n)
        pink = np.empty(n)
        acc = 0.0
        for i, w in enumerate(white):
            acc = 0.97 * acc + w
            pink[i] = acc
        return (0.1 * pink / np.abs(pink).max()).astype(np.float32)
    if kind == "music":   # chords of harmonic notes changing every half second, with plucked envelopes
        out = np.zeros(n)
        for start in range(0, n, RATE // 2):
            seg = slice(start, min(n, start + RATE // 2))
            root = 110 * 2 ** (rng.integers(0, 24) / 12)
            env = np.exp(-3 * (t[seg] - t[start]))
            for ratio in (1, 1.25, 1.5):
                for k in range(1, 5):
                    out[seg] += env * np.sin(2 * np.pi * root * ratio * k * t[seg]) / k
        return (0.2 * out / np.abs(out).max()).astype(np.float32)
    if kind == "tone":
        return (0.2 * np.sin(2 * np.pi * rng.uniform(300, 1200) * t)).astype(np.float32)
    raise ValueError(kind)


def make_archive(clips: list[Path], seconds: float, seed: int = 0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """``(16 kHz waveform, [(start_s, end_s)] of speech)``: speech clips (in the given order,
    repeated as needed) alternating with 1-6 s of silence, noise, music or a tone."""
    rng = np.random.default_rng(seed)
    parts, truth, pos, i = [], [], 0, 0
    while pos < seconds * RATE:
        gap = non_speech(NON_SPEECH[rng.integers(len(NON_SPEECH))], rng.uniform(1, 6), rng)
        parts.append(gap)
        pos += len(gap)
        samples, rate = audio.decode(clips[i % len(clips)].read_bytes())
        clip = audio.resample(audio.to_mono(samples), rate, RATE)
        clip = 0.5 * clip / max(1e-6, np.abs(clip).max())
        first, last = speech_span(clip)
        truth.append(((pos + first) / RATE, (pos + last) / RATE))
        parts.append(clip.astype(np.float32))
        pos += len(clip)
        i += 1
    return np.concatenate(parts), truth


def frame_scores(segments, truth, duration_s: float, frame_s: float = 0.01) -> dict:
    """Frame-level precision, recall and F1 of detected segments against the true speech."""
    n = int(duration_s / frame_s)

    def mask(spans):
        m = np.zeros(n, bool)
        for start, end in spans:
            m[int(start / frame_s):int(end / frame_s)] = True
        return m

    found, true = mask(segments), mask(truth)
    tp = float((found & true).sum())
    precision = tp / max(1.0, found.sum())
    recall = tp / max(1.0, true.sum())
    return {"precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(2 * precision * recall / max(1e-9, precision + recall), 4),
            "non_speech_s_called_speech": round(float((found & ~true).sum()) * frame_s, 2),
            "speech_s_missed": round(float((~found & true).sum()) * frame_s, 2)}
