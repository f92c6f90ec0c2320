"""Log-mel spectrograms and MFCCs from a waveform: pure numpy, shared by all stages.

The feature pipeline, the trainer's bundle, the scorer and the app all call
:func:`compute_features` with the :class:`FeatureConfig` stored in
``features.json``, so training and serving cannot drift apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any, Mapping

import numpy as np


@dataclass(frozen=True)
class FeatureConfig:
    """Every parameter that changes what a model sees. Stored in ``features.json``.

    The defaults below are the project's only copy of them: ``configs/features.yaml``
    holds just the settings a user changes.
    """

    sample_rate: int = 16000          # Hz; every input is resampled to this (soxr, high quality)
    trim_silence: bool = True         # cut leading/trailing silence of a clip before windowing
    trim_top_db: float = 40.0         # dB below the clip's peak that counts as silence
    normalize: str = "peak"           # peak | rms | none
    normalize_target_db: float = -1.0  # dBFS: the peak level, or the RMS level with "rms"
    window_seconds: float = 3.0       # model input length; shorter clips are zero-padded (centred)
    window_hop_seconds: float = 1.5   # hop between the windows of a longer clip
    long_clip: str = "windows"        # windows (all, the last one end-aligned) | center (one centre crop)
    min_seconds: float = 0.25         # less sound than this is a dead letter ("too short")
    max_seconds: float = 60.0         # longer training clips are dead letters; the scorer streams them
    n_fft: int = 512
    win_length: int = 512             # 32 ms at 16 kHz
    hop_length: int = 256             # 16 ms: a 3 s window is 188 frames
    n_mels: int = 128
    fmin: float = 20.0
    fmax: float = 8000.0
    n_mfcc: int = 40
    db_floor: float = -80.0           # log-mel floor in dB (re 1.0 full-scale power)

    def __post_init__(self):
        problems = []
        if self.normalize not in ("peak", "rms", "none"):
            problems.append(f"normalize must be peak|rms|none, not {self.normalize!r}")
        if self.long_clip not in ("windows", "center"):
            problems.append(f"long_clip must be windows|center, not {self.long_clip!r}")
        if self.win_length > self.n_fft:
            problems.append("win_length must not exceed n_fft")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            problems.append("need 0 <= fmin < fmax <= sample_rate/2")
        if self.n_mfcc > self.n_mels:
            problems.append("n_mfcc must not exceed n_mels")
        if self.window_seconds <= 0 or self.window_hop_seconds <= 0:
            problems.append("window_seconds and window_hop_seconds must be positive")
        if problems:
            raise ValueError("feature config: " + "; ".join(problems))

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return int(round(self.window_hop_seconds * self.sample_rate))

    @property
    def n_frames(self) -> int:
        """Frames of one window (centred STFT frames)."""
        return 1 + self.window_samples // self.hop_length

    @property
    def logmel_shape(self) -> tuple[int, int]:
        return (self.n_mels, self.n_frames)

    @property
    def mfcc_shape(self) -> tuple[int, int]:
        return (self.n_mfcc, self.n_frames)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureConfig":
        known = {f.name: f.type for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"feature config: unknown setting(s) {sorted(unknown)}")
        return cls(**{k: _coerce(getattr(cls, k), v) for k, v in data.items()})


def _coerce(default: Any, value: Any) -> Any:
    """YAML gives ints where floats are meant (``fmin: 20``); keep types stable for equality."""
    if isinstance(default, bool):
        return bool(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, int):
        return int(value)
    return value


# Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above.
_MEL_HZ_PER_MEL = 200.0 / 3
_MEL_LOG_FROM_HZ = 1000.0
_MEL_LOG_FROM_MEL = _MEL_LOG_FROM_HZ / _MEL_HZ_PER_MEL
_MEL_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(freq):
    freq = np.asarray(freq, dtype=np.float64)
    return np.where(freq >= _MEL_LOG_FROM_HZ,
                    _MEL_LOG_FROM_MEL + np.log(np.maximum(freq, 1e-10) / _MEL_LOG_FROM_HZ) / _MEL_LOG_STEP,
                    freq / _MEL_HZ_PER_MEL)


def mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= _MEL_LOG_FROM_MEL, _MEL_LOG_FROM_HZ * np.exp(_MEL_LOG_STEP * (mel - _MEL_LOG_FROM_MEL)),
                    _MEL_HZ_PER_MEL * mel)


def mel_band_centres_hz(cfg: "FeatureConfig") -> np.ndarray:
    """Centre frequency of each mel band, ``(n_mels,)``: the band layout of :func:`mel_filterbank`."""
    return mel_to_hz(np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax), cfg.n_mels + 2))[1:-1]


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney-normalised triangular mel filters, ``(n_mels, 1 + n_fft // 2)`` float32.

    The same matrix as ``librosa.filters.mel`` (a test checks it), computed here
    so that pipeline workers and the app need not import librosa and numba.
    """
    fft_freqs = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    mel_freqs = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_freqs[2:n_mels + 2] - mel_freqs[:n_mels]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=8)
def _hann(win_length: int, n_fft: int) -> np.ndarray:
    window = np.hanning(win_length + 1)[:-1].astype(np.float32)  # periodic Hann
    pad = (n_fft - win_length) // 2
    return np.pad(window, (pad, n_fft - win_length - pad))


def power_spectrogram(wave: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """|STFT|^2 with centred frames (zero padding), shape ``(1 + n_fft//2, frames)``."""
    wave = np.asarray(wave, dtype=np.float32)
    half = cfg.n_fft // 2
    padded = np.pad(wave, (half, half))
    n_frames = 1 + len(wave) // cfg.hop_length
    needed = (n_frames - 1) * cfg.hop_length + cfg.n_fft
    if len(padded) < needed:
        padded = np.pad(padded, (0, needed - len(padded)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, cfg.n_fft)[:: cfg.hop_length][:n_frames]
    # scipy's FFT stays in float32 (numpy's computes in float64): several times faster.
    # Imported here, not at the top: a pipeline launcher needs FeatureConfig
    # only, and scipy.fft adds to its start-up.
    import scipy.fft

    spectrum = scipy.fft.rfft(frames * _hann(cfg.win_length, cfg.n_fft), axis=1)
    return (spectrum.real ** 2 + spectrum.imag ** 2).T.astype(np.float32)


def logmel_from_power(power: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Mel power in dB re full scale, floored at ``db_floor``: ``(n_mels, frames)``."""
    mel = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax) @ power
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    return np.maximum(db, cfg.db_floor).astype(np.float32)


def mfcc_from_logmel(logmel: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """MFCCs as the orthonormal DCT-II of the log-mel (librosa's convention)."""
    import scipy.fft

    return scipy.fft.dct(logmel, type=2, axis=0, norm="ortho")[: cfg.n_mfcc].astype(np.float32)


def compute_features(window: np.ndarray, cfg: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(logmel (n_mels, frames), mfcc (n_mfcc, frames))`` of one window, from one STFT."""
    logmel = logmel_from_power(power_spectrogram(window, cfg), cfg)
    return logmel, mfcc_from_logmel(logmel, cfg)
