"""Tiny synthetic speech-like clips in every corpus's real layout, plus broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

EMOTION_PITCH = {"neutral": 120, "calm": 110, "happy": 220, "sad": 100, "angry": 260,
                 "fearful": 300, "disgust": 140, "surprised": 330}


def voice(seconds: float, rate: int, pitch: float, seed: int = 0, channels: int = 1,
          silence: float = 0.3) -> np.ndarray:
    """A harmonic 'vowel' with vibrato and a little noise, framed by silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = pitch * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) * np.hanning(len(t)) * 0.4
    x = x + 0.005 * rng.standard_normal(len(t))
    pad = np.zeros(int(silence * rate))
    x = np.concatenate([pad, x, pad]).astype(np.float32)
    if channels > 1:
        x = np.stack([x * (1 - 0.1 * c) for c in range(channels)], axis=1)
    return x


def write(path: Path, seconds=1.2, rate=16000, pitch=150.0, seed=0, channels=1, fmt=None, subtype=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, voice(seconds, rate, pitch, seed, channels), rate, format=fmt, subtype=subtype)
    return path


def make_corpora(root: Path) -> dict:
    """Write a small multi-corpus tree under ``root``; returns what a reader should find.

    Returns ``{"good": {relative path: canonical label}, "skipped": [...], "failed": [...]}``.
    """
    good, skipped, failed = {}, [], []

    def add(rel, label, **kw):
        write(root / rel, pitch=EMOTION_PITCH[label], seed=len(good), **kw)
        good[rel] = label

    # RAVDESS: 48 kHz, one stereo file, speech only; 4 actors = 4 split groups.
    for actor in (1, 2, 3, 4):
        for code, label in (("01", "neutral"), ("05", "angry"), ("02", "calm")):
            add(f"ravdess/Actor_{actor:02d}/03-01-{code}-01-01-01-{actor:02d}.wav", label, rate=48000,
                channels=2 if (actor, code) == (1, "05") else 1)
    song = "ravdess/Actor_01/03-02-03-01-01-01-01.wav"
    write(root / song, rate=48000)
    skipped.append(song)

    # CREMA-D: 16 kHz, demographics CSV, a one-letter intensity tag, FLAC and Ogg copies.
    (root / "cremad").mkdir(parents=True)
    (root / "cremad/VideoDemographics.csv").write_text(
        '"ActorID","Age","Sex","Race","Ethnicity"\n1001,51,"Male","Caucasian","Not Hispanic"\n'
        '1002,21,"Female","Caucasian","Not Hispanic"\n1003,30,"Male","Asian","Not Hispanic"\n'
        '1004,40,"Female","African American","Not Hispanic"\n')
    skipped.append("cremad/VideoDemographics.csv")
    for actor in (1001, 1002, 1003, 1004):
        add(f"cremad/AudioWAV/{actor}_DFA_ANG_XX.wav", "angry")
        add(f"cremad/AudioWAV/{actor}_IEO_SAD_X.flac", "sad", fmt="FLAC")
        add(f"cremad/AudioWAV/{actor}_TIE_HAP_HI.ogg", "happy", fmt="OGG", subtype="VORBIS")
    # Unknown emotion code, a zero-length file, a truncated header, text named .wav, macOS junk.
    (root / "cremad/AudioWAV/1001_DFA_XYZ_XX.wav").write_bytes(b"RIFF")
    skipped.append("cremad/AudioWAV/1001_DFA_XYZ_XX.wav")
    (root / "cremad/AudioWAV/1002_DFA_NEU_XX.wav").write_bytes(b"")
    failed.append("cremad/AudioWAV/1002_DFA_NEU_XX.wav")
    full = (root / "cremad/AudioWAV/1001_DFA_ANG_XX.wav").read_bytes()
    (root / "cremad/AudioWAV/1003_DFA_NEU_XX.wav").write_bytes(full[:30])
    failed.append("cremad/AudioWAV/1003_DFA_NEU_XX.wav")
    (root / "cremad/AudioWAV/1004_DFA_NEU_XX.wav").write_text("this is not audio\n" * 50)
    failed.append("cremad/AudioWAV/1004_DFA_NEU_XX.wav")
    (root / "cremad/AudioWAV/._1001_DFA_ANG_XX.wav").write_bytes(b"\x00\x05\x16\x07junk")
    skipped.append("cremad/AudioWAV/._1001_DFA_ANG_XX.wav")
    (root / "cremad/AudioWAV/.DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    skipped.append("cremad/AudioWAV/.DS_Store")

    # TESS: 24414 Hz, folder case varies, _ps, a speaker typo, AIFF named .wav, 96 kHz.
    for word in ("back", "bar", "base", "bath"):
        add(f"tess/OAF_Fear/OAF_{word}_fear.wav", "fearful", rate=24414)
        add(f"tess/YAF_pleasant_surprised/YAF_{word}_ps.wav", "surprised", rate=24414)
    add("tess/OAF_neutral/OA_bite_neutral.wav", "neutral", rate=24414)
    add("tess/YAF_angry/YAF_germ_angry.wav", "angry", rate=24414, fmt="AIFF")
    add("tess/OAF_Fear/OAF_food_fear.wav", "fearful", rate=96000)

    # SAVEE: 44.1 kHz, speaker from the folder, one- and two-letter codes, Kaggle's flat form.
    for speaker in ("DC", "JE", "JK"):
        add(f"savee/{speaker}/sa01.wav", "sad", rate=44100)
        add(f"savee/{speaker}/su02.wav", "surprised", rate=44100)
        add(f"savee/{speaker}/a03.wav", "angry", rate=44100)
    add("savee_kaggle/KL_h04.wav", "happy", rate=44100)
    (root / "savee/Info.txt").write_text("SAVEE\n")
    skipped.append("savee/Info.txt")
    # Long enough for two windows, and an almost silent clip that trims to nothing useful.
    add("ravdess/Actor_03/03-01-03-02-02-01-03.wav", "happy", seconds=5.0, rate=22050)
    sf.write(root / "ravdess/Actor_04/03-01-04-01-01-01-04.wav", np.zeros(16000, np.float32), 16000)
    failed.append("ravdess/Actor_04/03-01-04-01-01-01-04.wav")
    return {"good": good, "skipped": skipped, "failed": failed}
