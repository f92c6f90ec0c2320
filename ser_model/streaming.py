"""Windows of a recording of any length, read in blocks so long files never sit in memory.

Two paths, chosen by the file's duration (from its header):

* up to ``cfg.max_seconds`` (60 s): the whole clip is decoded and prepared exactly
  as for training (mono, resample, trim, peak-normalise the clip), then windowed;
* longer: blocks are decoded, mixed down and resampled as a stream (soxr keeps the
  filter state between blocks), windows are cut as soon as they are complete and
  each is normalised on its own (a clip-level peak is unknown until the end).
  Windows that are silent are skipped.

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


def open_windows(fileobj: BinaryIO, cfg: FeatureConfig, block_seconds: float = 30.0,
                 max_seconds: float | None = None) -> Recording:
    """Open a seekable binary file object; raises :class:`audio.AudioError` if unusable.

    ``max_seconds`` (None: no limit) refuses longer recordings before decoding them.
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
    return Recording(duration, True, _stream(snd, cfg, block_seconds))


def _stream(snd: sf.SoundFile, cfg: FeatureConfig, block_seconds: float) -> Iterator[audio.Window]:
    """Windows every ``hop`` samples, plus an end-aligned last one (as for clips)."""
    import soxr

    rate = snd.samplerate
    resampler = soxr.ResampleStream(rate, cfg.sample_rate, 1, dtype="float32", quality="HQ") \
        if rate != cfg.sample_rate else None
    size, hop = cfg.window_samples, cfg.hop_samples
    buffer, offset = np.zeros(0, np.float32), 0   # offset: target-rate index of buffer[0]
    next_start, covered, index = 0, 0, 0
    blocks = snd.blocks(blocksize=max(1, int(block_seconds * rate)), dtype="float32", always_2d=True)

    def window(start: int, idx: int):
        segment = buffer[start - offset: start - offset + size]
        if np.max(np.abs(segment), initial=0.0) <= audio.SILENT_PEAK:
            return None
        return audio.Window(idx, start / cfg.sample_rate,
                            audio.normalize(segment, cfg.normalize, cfg.normalize_target_db))

    while True:
        block = next(blocks, None)
        finished = block is None
        mono = audio.to_mono(block) if not finished else np.zeros(0, np.float32)
        if resampler is not None:
            mono = resampler.resample_chunk(mono, last=finished)
        buffer = np.concatenate([buffer, np.asarray(mono, np.float32)])
        end = offset + len(buffer)
        while next_start + size <= end:
            win = window(next_start, index)
            if win is not None:
                yield win
            covered, next_start, index = next_start + size, next_start + hop, index + 1
        if finished:
            if covered < end and end >= size:
                win = window(end - size, index)
                if win is not None:
                    yield win
            return
        keep_from = min(next_start, end - size)   # the tail window may need the last `size` samples
        if keep_from > offset:
            buffer, offset = buffer[keep_from - offset:], keep_from
