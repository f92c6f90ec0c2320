"""One recording analysed for display: prediction, waveform, features as the model sees them.

Pure (no Streamlit): the web app renders what this returns, and tests call it directly.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from ser_model import audio
from ser_model.features import compute_features
from ser_model.labels import valence_summary
from ser_model.predict import Prediction, Predictor
from ser_model.streaming import open_windows


class InputError(ValueError):
    """Input the app refuses, with a message for the page."""


@dataclass
class Analysis:
    prediction: Prediction
    rate: int                  # of `wave`
    wave: np.ndarray           # the decoded recording, mono, at the model's rate (for the plot)
    logmel: np.ndarray         # (n_mels, frames) of the first window, as the model sees it
    mfcc: np.ndarray           # (n_mfcc, frames)
    valence: dict
    mfcc_standardised: np.ndarray  # per-coefficient z-scores with the bundle's train statistics


def analyse(data: bytes, predictor: Predictor, max_bytes: int, max_seconds: float) -> Analysis:
    """Bytes of an uploaded or recorded file -> :class:`Analysis`, or :class:`InputError`."""
    if not data:
        raise InputError("The file is empty.")
    if len(data) > max_bytes:
        raise InputError(f"The file is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB.")
    try:
        rec = open_windows(io.BytesIO(data), predictor.cfg, max_seconds=max_seconds, vad=predictor.vad)
        windows = list(rec.windows)  # at most max_seconds of audio: kept for the display
        prediction = predictor.predict_windows(windows, rec.duration_s, segments=rec.segments)
        samples, rate = audio.decode(data)  # the raw recording, for the waveform plot
    except audio.AudioError as err:
        messages = {"undecodable": "This is not an audio file this app can read "
                                   "(wav, flac, ogg, opus, mp3, aiff).",
                    "silent": "The recording is silent.",
                    "no-speech": "No speech was found in this recording (only music, noise or silence).",
                    "too-short": "The recording is too short: there is less than "
                                 f"{predictor.cfg.min_seconds:g} s of sound.",
                    "too-long": f"The recording is too long: the limit is {max_seconds:g} s.",
                    "no-samples": "The file holds no audio samples."}
        raise InputError(messages.get(err.kind, str(err))) from None
    cfg = predictor.cfg
    wave = audio.resample(audio.to_mono(samples), rate, cfg.sample_rate)
    logmel, mfcc = compute_features(windows[0].samples, cfg)
    stats = predictor.bundle.stats
    z = (mfcc - np.asarray(stats["mfcc_mean"])[:, None]) / np.asarray(stats["mfcc_std"])[:, None]
    return Analysis(prediction, cfg.sample_rate, wave, logmel, mfcc,
                    valence_summary(prediction.probs, prediction.classes), z)


def envelope(wave: np.ndarray, points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Min/max envelope of a waveform in ``points`` buckets, for a light plot."""
    n = max(1, len(wave) // points)
    usable = wave[: len(wave) // n * n].reshape(-1, n)
    return usable.min(axis=1), usable.max(axis=1)
