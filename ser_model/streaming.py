"""Windows of a recording of any length, read in blocks so long files never sit in memory.

Two paths, chosen by the file's duration (from its header):

* up to ``cfg.max_seconds`` (60 s): the whole clip is decoded and prepared exactly
  as for training (mono, resample, trim, peak-normalise the clip), then windowed;
* longer: blocks are decoded, mixed down and resampled as a stream (soxr keeps the
  filter state between blocks), windows are cut as soon as they are complete and
  each is normalised on its own (a clip-level peak is unknown until the end).
  Windows that are silent are skipped. With voice activity on (``vad``), a
  long recording is read twice instead: once to find the speech segments
  (``ser_model.vad``), once to cut windows inside them only (a segment shorter
  than a window is one window, zero-padded; a longer one is windowed every hop
  with the last window end-aligned, as a clip is). Music, noise and silence
  between segments get no window.

The scorer, the predictor and the app all use :func:`open_windows`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np
import soundfile as sf

from ser_model import audio
from ser_model.features import FeatureConfig

@dataclass
class Recording:
    duration_s: float
    long: bool              # streamed, window-normalised
    windows: Iterator[audio.Window]
    segments: list | None = None   # [(start_s, end_s)] of speech when voice activity placed the windows

    @property
    def speech_s(self) -> float | None:
        return None if self.segments is None else round(sum(e - s for s, e in self.segments), 3)


def open_windows(fileobj: BinaryIO, cfg: FeatureConfig, block_seconds: float = 30.0,
                 max_seconds: float | None = None, vad=None) -> Recording:
    """Open a seekable binary file object; raises :class:`audio.AudioError` if unusable.

    ``max_seconds`` (None: no limit) refuses longer recordings before decoding them.
    ``vad`` (a :class:`ser_model.vad.VadConfig`, or None): place a long recording's windows
    on its speech only; clips up to ``cfg.max_seconds`` are windowed as in training either way.
    """
    snd = audio.open_sound(fileobj)
    frames, rate = snd.frames, snd.samplerate
    if frames <= 0:
        raise audio.AudioError("no-samples", "audio file holds no samples")
    duration = frames / rate
    if max_seconds and duration > max_seconds:
        raise audio.AudioError("too-long", f"{duration:.1f} s is longer than the {max_seconds:g} s limit")
    if duration <= cfg.max_seconds:
        wave = audio.prepare(audio.read_samples(snd), rate, cfg)
        return Recording(duration, False, iter(audio.windows(wave, cfg)))
    if vad is None:
        return Recording(duration, True, _stream(snd, cfg, block_seconds))
    segments = _speech_segments(snd, cfg, vad, block_seconds)
    snd.seek(0)
    return Recording(duration, True, _segment_windows(snd, cfg, segments, block_seconds), segments)


def _mono_blocks(snd: sf.SoundFile, cfg: FeatureConfig, block_seconds: float) -> Iterator[np.ndarray]:
    """The recording as mono blocks at the model's rate (resampled as a stream)."""
    import soxr

    rate = snd.samplerate
    resampler = soxr.ResampleStream(rate, cfg.sample_rate, 1, dtype="float32", quality="HQ") \
        if rate != cfg.sample_rate else None
    for block in snd.blocks(blocksize=max(1, int(block_seconds * rate)), dtype="float32", always_2d=True):
        mono = audio.to_mono(block)
        yield resampler.resample_chunk(mono) if resampler is not None else mono
    if resampler is not None:
        yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)


def _speech_segments(snd: sf.SoundFile, cfg: FeatureConfig, vad, block_seconds: float) -> list:
    from ser_model.vad import SAMPLE_RATE, segments_of_blocks

    if cfg.sample_rate != SAMPLE_RATE:
        raise ValueError(f"voice activity needs {SAMPLE_RATE} Hz features, not {cfg.sample_rate} Hz")
    return segments_of_blocks(_mono_blocks(snd, cfg, block_seconds), snd.frames / snd.samplerate, vad)


def _segment_windows(snd: sf.SoundFile, cfg: FeatureConfig, segments: list,
                     block_seconds: float) -> Iterator[audio.Window]:
    """Windows inside each speech segment (see the module doc), cut as the stream passes by."""
    size, hop, sr = cfg.window_samples, cfg.hop_samples, cfg.sample_rate
    spans = [(int(round(s * sr)), int(round(e * sr))) for s, e in segments]
    buffer, offset, current, index = np.zeros(0, np.float32), 0, 0, 0

    def cut(seg: int, start: int, samples: np.ndarray, first_index: int):
        for i, rel in enumerate(audio.window_starts(len(samples), size, hop, "slide")):
            piece = audio.fit_length(samples[rel:rel + size], size)
            if np.max(np.abs(piece), initial=0.0) > audio.SILENT_PEAK:
                yield audio.Window(first_index + i, (start + rel) / sr,
                                   audio.normalize(piece, cfg.normalize, cfg.normalize_target_db), seg)

    def count(n: int) -> int:
        return len(audio.window_starts(n, size, hop, "slide"))

    for block in _mono_blocks(snd, cfg, block_seconds):
        buffer = np.concatenate([buffer, np.asarray(block, np.float32)])
        while current < len(spans) and spans[current][1] <= offset + len(buffer):
            start, end = spans[current]
            yield from cut(current, start, buffer[start - offset:end - offset], index)
            index += count(end - start)
            current += 1
        keep_from = spans[current][0] if current < len(spans) else offset + len(buffer)
        if keep_from > offset:
            buffer, offset = buffer[keep_from - offset:], keep_from
    for seg in range(current, len(spans)):   # a segment rounded past the last sample: what there is
        start, end = spans[seg][0], min(spans[seg][1], offset + len(buffer))
        if end > start:
            yield from cut(seg, start, buffer[start - offset:end - offset], index)
            index += count(end - start)


def _stream(snd: sf.SoundFile, cfg: FeatureConfig, block_seconds: float) -> Iterator[audio.Window]:
    """Windows every ``hop`` samples, plus an end-aligned last one (as for clips)."""
    size, hop = cfg.window_samples, cfg.hop_samples
    buffer, offset = np.zeros(0, np.float32), 0   # offset: target-rate index of buffer[0]
    next_start, covered, index = 0, 0, 0

    def window(start: int, idx: int):
        segment = buffer[start - offset: start - offset + size]
        if np.max(np.abs(segment), initial=0.0) <= audio.SILENT_PEAK:
            return None
        return audio.Window(idx, start / cfg.sample_rate,
                            audio.normalize(segment, cfg.normalize, cfg.normalize_target_db))

    for mono in _mono_blocks(snd, cfg, block_seconds):
        buffer = np.concatenate([buffer, np.asarray(mono, np.float32)])
        end = offset + len(buffer)
        while next_start + size <= end:
            win = window(next_start, index)
            if win is not None:
                yield win
            covered, next_start, index = next_start + size, next_start + hop, index + 1
        keep_from = min(next_start, end - size)   # the tail window may need the last `size` samples
        if keep_from > offset:
            buffer, offset = buffer[keep_from - offset:], keep_from
    end = offset + len(buffer)
    if covered < end and end >= size:
        win = window(end - size, index)
        if win is not None:
            yield win
