import io

import numpy as np
import pytest
import soundfile as sf

from ser_model import audio
from ser_model.features import FeatureConfig

CFG = FeatureConfig()


def encode(x, rate, fmt="WAV", subtype=None):
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def tone(seconds, rate, freq=440.0, amp=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("FLAC", None), ("OGG", "VORBIS"),
                                         ("OGG", "OPUS"), ("AIFF", None), ("MP3", None)])
def test_every_libsndfile_format_decodes(fmt, subtype):
    data = encode(tone(1.0, 48000), 48000, fmt, subtype)
    samples, rate = audio.decode(data)
    assert rate == 48000 and samples.shape[1] == 1
    assert abs(samples.shape[0] - 48000) < 2000  # lossy codecs add a little padding


def test_aiff_with_a_wav_name_is_detected_by_content(tmp_path):
    path = tmp_path / "YAF_germ_angry.wav"
    sf.write(path, tone(0.5, 24414), 24414, format="AIFF")
    samples, rate = audio.decode(path.read_bytes())
    assert rate == 24414 and len(samples) == int(0.5 * 24414)


def test_stereo_is_mixed_down_and_resampled_to_target():
    left, right = tone(1.0, 44100, 300), tone(1.0, 44100, 300, amp=0.1)
    samples, rate = audio.decode(encode(np.stack([left, right], 1), 44100))
    mono = audio.to_mono(samples)
    assert mono.ndim == 1 and np.allclose(mono, (left + right) / 2, atol=1e-4)
    wave = audio.resample(mono, rate, 16000)
    assert len(wave) == 16000
    # Resampling keeps the tone: its spectrum still peaks at 300 Hz.
    peak = np.argmax(np.abs(np.fft.rfft(wave))) * 16000 / len(wave)
    assert abs(peak - 300) < 2


@pytest.mark.parametrize("data,kind", [
    (b"", "empty-file"),
    (b"this is not audio at all" * 20, "undecodable"),
    (encode(tone(1.0, 16000), 16000)[:30], "undecodable"),
])
def test_bad_bytes_raise_audio_error(data, kind):
    with pytest.raises(audio.AudioError) as info:
        audio.decode(data)
    assert info.value.kind == kind


def test_prepare_rejects_silence_short_and_long_audio():
    with pytest.raises(audio.AudioError, match="silent"):
        audio.prepare(np.zeros((16000, 1), np.float32), 16000, CFG)
    with pytest.raises(audio.AudioError, match="shorter"):
        audio.prepare(tone(0.1, 16000)[:, None], 16000, CFG)
    with pytest.raises(audio.AudioError, match="longer"):
        audio.prepare(tone(2.0, 16000)[:, None], 16000, CFG, max_seconds=1.0)


def test_trim_cuts_leading_and_trailing_silence():
    x = np.concatenate([np.zeros(8000), tone(1.0, 16000), np.zeros(16000)]).astype(np.float32)
    trimmed = audio.trim_silence(x, top_db=40)
    assert 16000 <= len(trimmed) <= 16000 + 2048


def test_peak_and_rms_normalisation():
    x = tone(1.0, 16000, amp=0.1)
    assert np.isclose(np.max(np.abs(audio.normalize(x, "peak", -1.0))), 10 ** (-1 / 20), rtol=1e-4)
    rms = np.sqrt(np.mean(audio.normalize(x, "rms", -20.0) ** 2))
    assert np.isclose(rms, 0.1, rtol=1e-3)
    assert audio.normalize(x, "none", 0) is x


@pytest.mark.parametrize("n,expected", [
    (1000, [0]), (48000, [0]), (60000, [0, 12000]), (96000, [0, 24000, 48000]),
    (100000, [0, 24000, 48000, 52000]),
])
def test_window_starts_cover_the_whole_clip(n, expected):
    assert audio.window_starts(n, 48000, 24000, "windows") == expected


def test_center_mode_takes_one_central_crop():
    assert audio.window_starts(100000, 48000, 24000, "center") == [26000]


def test_windows_have_exact_length_and_short_clips_are_centred():
    wave = np.ones(16000, np.float32)
    (win,) = audio.windows(wave, CFG)
    assert len(win.samples) == CFG.window_samples
    assert win.samples[:16000].sum() == 0 and win.samples[16000:32000].sum() == 16000
    long = audio.windows(np.ones(5 * 16000, np.float32), CFG)
    assert [w.start_s for w in long] == [0.0, 1.5, 2.0]
