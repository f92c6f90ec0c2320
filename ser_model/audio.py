"""Decode any audio libsndfile reads into mono float32 at the target rate, and cut windows.

Format detection is by content, not by file name (real TESS copies have an AIFF
file named ``.wav``). Every failure raises :class:`AudioError` with a short
reason that ends up in a dead-letter row.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from ser_model.features import FeatureConfig


SILENT_PEAK = 1e-4  # a clip or window whose samples never exceed this is silent


class AudioError(ValueError):
    """Audio that cannot be used: undecodable, empty, silent, too short or too long."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def open_sound(fileobj) -> sf.SoundFile:
    """A libsndfile handle on a binary file object (format detected by content)."""
    try:
        return sf.SoundFile(fileobj)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        # libsndfile's own words, without the "Error opening <BytesIO at 0x...>" prefix
        reason = getattr(err, "error_string", None) or str(err)
        raise AudioError("undecodable", f"not a readable audio file: {reason}") from None


def read_samples(snd: sf.SoundFile) -> np.ndarray:
    """All of an open file's samples, ``(frames, channels)`` float32, checked non-empty and finite."""
    try:
        samples = snd.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError("undecodable", f"audio data is unreadable: {err}") from None
    if samples.shape[0] == 0:
        raise AudioError("no-samples", "audio file holds no samples")
    if not np.all(np.isfinite(samples)):
        raise AudioError("undecodable", "audio holds NaN or infinite samples")
    return samples


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """Bytes of an audio file -> ``(samples (frames, channels) float32, sample rate)``."""
    if not data:
        raise AudioError("empty-file", "file is empty (0 bytes)")
    snd = open_sound(io.BytesIO(data))
    return read_samples(snd), int(snd.samplerate)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels (``(frames, channels)`` or 1-D) into one float32 channel."""
    samples = np.asarray(samples, dtype=np.float32)
    return samples if samples.ndim == 1 else samples.mean(axis=1, dtype=np.float32)


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """High-quality (soxr HQ) resampling; a no-op at the target rate."""
    if rate == target:
        return wave
    import soxr

    return soxr.resample(wave, rate, target, quality="HQ").astype(np.float32)


def trim_silence(wave: np.ndarray, top_db: float, frame: int = 1024, hop: int = 256) -> np.ndarray:
    """Cut leading and trailing frames quieter than ``top_db`` below the loudest frame."""
    if len(wave) < frame:
        return wave
    frames = np.lib.stride_tricks.sliding_window_view(wave, frame)[::hop]
    rms_db = 10 * np.log10(np.maximum(np.mean(frames ** 2, axis=1), 1e-20))
    loud = np.flatnonzero(rms_db > rms_db.max() - top_db)
    start = loud[0] * hop
    end = min(len(wave), loud[-1] * hop + frame)
    return wave[start:end]


def normalize(wave: np.ndarray, mode: str, target_db: float) -> np.ndarray:
    """Scale to a peak or RMS level in dBFS; silence is left as it is."""
    if mode == "none":
        return wave
    level = np.max(np.abs(wave)) if mode == "peak" else np.sqrt(np.mean(wave ** 2))
    if level <= 0:
        return wave
    return (wave * (10 ** (target_db / 20) / level)).astype(np.float32)


def prepare(samples: np.ndarray, rate: int, cfg: FeatureConfig, max_seconds: float | None = None) -> np.ndarray:
    """Decoded samples -> the mono, resampled, trimmed, normalised waveform the model sees."""
    limit = cfg.max_seconds if max_seconds is None else max_seconds
    duration = samples.shape[0] / rate
    if limit and duration > limit:
        raise AudioError("too-long", f"{duration:.1f} s is longer than the {limit:g} s limit")
    wave = resample(to_mono(samples), rate, cfg.sample_rate)
    if not np.any(np.abs(wave) > SILENT_PEAK):
        raise AudioError("silent", "audio is silent")
    if cfg.trim_silence:
        wave = trim_silence(wave, cfg.trim_top_db)
    if len(wave) < cfg.min_seconds * cfg.sample_rate:
        raise AudioError("too-short", f"{len(wave) / cfg.sample_rate:.2f} s of sound is shorter "
                                      f"than the {cfg.min_seconds:g} s minimum")
    return normalize(wave, cfg.normalize, cfg.normalize_target_db)


def load_bytes(data: bytes, cfg: FeatureConfig) -> tuple[np.ndarray, float]:
    """File bytes -> (prepared waveform, original duration in seconds)."""
    samples, rate = decode(data)
    return prepare(samples, rate, cfg), samples.shape[0] / rate


@dataclass(frozen=True)
class Window:
    index: int
    start_s: float
    samples: np.ndarray
    segment: int | None = None   # the speech segment it lies in (voice activity on), else None


def window_starts(n_samples: int, window: int, hop: int, mode: str) -> list[int]:
    """Start offsets of the windows of a clip of ``n_samples``.

    Short clips get one window (padded later). Long clips get either one centre
    crop or windows every ``hop`` samples with the last one aligned to the end,
    so that no audio at the end is dropped.
    """
    if n_samples <= window:
        return [0]
    if mode == "center":
        return [(n_samples - window) // 2]
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] != n_samples - window:
        starts.append(n_samples - window)
    return starts


def fit_length(segment: np.ndarray, window: int) -> np.ndarray:
    """Zero-pad a short segment on both sides (centred) to exactly ``window`` samples."""
    if len(segment) >= window:
        return segment[:window]
    before = (window - len(segment)) // 2
    return np.pad(segment, (before, window - len(segment) - before))


def windows(wave: np.ndarray, cfg: FeatureConfig) -> list[Window]:
    """Cut a prepared waveform into the model's fixed-length windows."""
    size = cfg.window_samples
    return [Window(i, start / cfg.sample_rate, fit_length(wave[start:start + size], size))
            for i, start in enumerate(window_starts(len(wave), size, cfg.hop_samples, cfg.long_clip))]
