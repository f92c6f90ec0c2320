"""Windows of a recording of any length, decoded range by range so long files never sit in memory.

Two paths, chosen by the file's duration (from its header):

* up to ``cfg.max_seconds`` (60 s): the whole clip is decoded and prepared exactly
  as for training (mono, resample, trim, peak-normalise the clip), then windowed;
* longer: the recording is planned from its header and decoded by seeking, one
  time range at a time (:func:`read_range`). Windows are placed every hop with
  the last one end-aligned, as for a clip, or, with voice activity on (``vad``),
  inside the speech segments only (found first, piece by piece: see
  ``ser_model.vad.piece_spans``; a segment shorter than a window is one
  zero-padded window, a longer one is windowed every hop with the last window
  end-aligned). Each window is normalised on its own (a clip-level peak is
  unknown until the end) and silent windows are skipped. Music, noise and
  silence between speech segments get no window.

A long recording's work comes in independent units: the voice-activity pieces
(:func:`piece_probabilities`) and chunks of ``CHUNK_WINDOWS`` consecutive
windows (:func:`window_chunks`, :func:`chunk_windows`). One process runs them in
order (:func:`open_windows`: the predictor and the app); the scorer spreads them
over its workers and puts the results back in order. Both compute exactly the
same thing, because the units depend on the recording only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np
import soundfile as sf

from ser_model import audio
from ser_model.features import FeatureConfig

CHUNK_WINDOWS = 32       # windows of a long recording decoded and featurised as one unit of work
RESAMPLE_MARGIN_S = 0.1  # decoded on each side of a range that is resampled (the filter's reach is shorter)


@dataclass
class Recording:
    duration_s: float
    long: bool              # decoded range by range, window-normalised
    windows: Iterator[audio.Window]
    segments: list | None = None   # [(start_s, end_s)] of speech when voice activity placed the windows

    @property
    def speech_s(self) -> float | None:
        return None if self.segments is None else round(sum(e - s for s, e in self.segments), 3)


@dataclass(frozen=True)
class WindowSpec:
    """Where one window of a long recording lies: ``length`` samples from ``start`` (model rate);
    shorter than a window only for a short speech segment (zero-padded, centred, when cut)."""

    index: int
    start: int
    length: int
    segment: int | None = None


def check_duration(snd: sf.SoundFile, max_seconds: float | None) -> float:
    """The duration of an open file, in seconds; an :class:`audio.AudioError` if empty or over ``max_seconds``."""
    if snd.frames <= 0:
        raise audio.AudioError("no-samples", "audio file holds no samples")
    duration = snd.frames / snd.samplerate
    if max_seconds and duration > max_seconds:
        raise audio.AudioError("too-long", f"{duration:.1f} s is longer than the {max_seconds:g} s limit")
    return duration


def is_long(duration_s: float, cfg: FeatureConfig) -> bool:
    return duration_s > cfg.max_seconds


def model_rate_length(snd: sf.SoundFile, cfg: FeatureConfig) -> int:
    """The recording's length in samples at the model's rate (from the header)."""
    return int(round(snd.frames * cfg.sample_rate / snd.samplerate))


def read_range(snd: sf.SoundFile, start: int, end: int, sample_rate: int) -> np.ndarray:
    """Mono samples ``[start, end)`` at ``sample_rate`` of an open file, decoded from a seek point (what
    the file holds of the range: shorter at its end).

    At another rate, the decoded source range starts on a sample where both rates' clocks meet and
    reaches ``RESAMPLE_MARGIN_S`` beyond both ends, so the samples equal those of resampling the whole
    recording (up to the filter's edge effects, which fall in the margins).
    """
    rate = snd.samplerate
    if rate == sample_rate:
        src_from, src_to, offset = start, min(end, snd.frames), 0
    else:
        common = math.gcd(rate, sample_rate)
        target_step, source_step = sample_rate // common, rate // common
        margin = int(RESAMPLE_MARGIN_S * sample_rate)
        first = max(0, start - margin) // target_step
        src_from, offset = first * source_step, start - first * target_step
        src_to = min(snd.frames, -(-(end + margin) * rate // sample_rate))
    if src_to <= src_from:
        return np.zeros(0, np.float32)
    snd.seek(src_from)
    try:
        samples = snd.read(src_to - src_from, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise audio.AudioError("undecodable", f"audio data is unreadable: {err}") from None
    if not np.all(np.isfinite(samples)):
        raise audio.AudioError("undecodable", "audio holds NaN or infinite samples")
    wave = audio.resample(audio.to_mono(samples), rate, sample_rate)
    return wave[offset:offset + end - start]


def window_plan(n_samples: int, cfg: FeatureConfig, segments: list | None = None) -> list[WindowSpec]:
    """Every window of a long recording of ``n_samples`` (model rate): over the whole of it, or inside
    each speech segment when ``segments`` (``[(start_s, end_s)]``) is given."""
    size, hop, sr = cfg.window_samples, cfg.hop_samples, cfg.sample_rate
    if segments is None:
        return [WindowSpec(i, start, size) for i, start in enumerate(audio.window_starts(n_samples, size, hop, "slide"))]
    plan = []
    for seg, (start_s, end_s) in enumerate(segments):
        start, end = int(round(start_s * sr)), min(n_samples, int(round(end_s * sr)))
        if end <= start:
            continue
        for rel in audio.window_starts(end - start, size, hop, "slide"):
            plan.append(WindowSpec(len(plan), start + rel, min(size, end - start - rel), seg))
    return plan


def window_chunks(plan: list[WindowSpec], per_chunk: int = CHUNK_WINDOWS) -> list[list[WindowSpec]]:
    return [plan[i:i + per_chunk] for i in range(0, len(plan), per_chunk)]


def read_spans(chunk: list[WindowSpec], gap: int) -> list[tuple[int, int]]:
    """The sample ranges to decode for a chunk: its windows' ranges, merged where less than ``gap`` apart
    (so a chunk spread over an hour of music between two speech segments is not decoded whole)."""
    spans: list[list[int]] = []
    for w in chunk:
        if spans and w.start <= spans[-1][1] + gap:
            spans[-1][1] = max(spans[-1][1], w.start + w.length)
        else:
            spans.append([w.start, w.start + w.length])
    return [(s, e) for s, e in spans]


def chunk_windows(snd: sf.SoundFile, chunk: list[WindowSpec], cfg: FeatureConfig) -> Iterator[audio.Window]:
    """The windows of one chunk that hold sound, decoded by seeking, each normalised on its own."""
    size, sr = cfg.window_samples, cfg.sample_rate
    for span_start, span_end in read_spans(chunk, gap=size):
        samples = read_range(snd, span_start, span_end, sr)
        for w in chunk:
            if not span_start <= w.start < span_end:
                continue
            rel = w.start - span_start
            piece = audio.fit_length(samples[rel:rel + w.length], size)
            if np.max(np.abs(piece), initial=0.0) > audio.SILENT_PEAK:
                yield audio.Window(w.index, w.start / sr, audio.normalize(piece, cfg.normalize, cfg.normalize_target_db),
                                   w.segment)


def piece_probabilities(snd: sf.SoundFile, span: tuple[int, int, int], cfg: FeatureConfig, vad) -> np.ndarray:
    """Speech probabilities of the frames of one voice-activity piece (``ser_model.vad.piece_spans``)."""
    from ser_model.vad import piece_probabilities as probabilities

    read_from, start, end = span
    return probabilities(read_range(snd, read_from, end, cfg.sample_rate), start - read_from, vad)


def vad_pieces(snd: sf.SoundFile, cfg: FeatureConfig, vad) -> list[tuple[int, int, int]]:
    from ser_model.vad import SAMPLE_RATE, piece_spans

    if cfg.sample_rate != SAMPLE_RATE:
        raise ValueError(f"voice activity needs {SAMPLE_RATE} Hz features, not {cfg.sample_rate} Hz")
    return piece_spans(model_rate_length(snd, cfg), vad)


def speech_segments(probs: list[np.ndarray], duration_s: float, vad) -> list:
    """The pieces' probabilities, in order -> ``[(start_s, end_s)]`` of speech."""
    from ser_model.vad import segments_of_probabilities

    return segments_of_probabilities(np.concatenate(probs or [np.zeros(0)]), duration_s, vad)


def open_windows(fileobj: BinaryIO, cfg: FeatureConfig, max_seconds: float | None = None, vad=None) -> Recording:
    """Open a seekable binary file object; raises :class:`audio.AudioError` if unusable.

    ``max_seconds`` (None: no limit) refuses longer recordings before decoding them.
    ``vad`` (a :class:`ser_model.vad.VadConfig`, or None): place a long recording's windows
    on its speech only; clips up to ``cfg.max_seconds`` are windowed as in training either way.
    """
    snd = audio.open_sound(fileobj)
    duration = check_duration(snd, max_seconds)
    if not is_long(duration, cfg):
        wave = audio.prepare(audio.read_samples(snd), snd.samplerate, cfg)
        return Recording(duration, False, iter(audio.windows(wave, cfg)))
    segments = None
    if vad is not None:
        segments = speech_segments([piece_probabilities(snd, span, cfg, vad) for span in vad_pieces(snd, cfg, vad)],
                                   duration, vad)
    chunks = window_chunks(window_plan(model_rate_length(snd, cfg), cfg, segments))
    return Recording(duration, True, (w for chunk in chunks for w in chunk_windows(snd, chunk, cfg)), segments)
