import librosa
import numpy as np
import pytest

from ser_model.features import (FeatureConfig, compute_features, logmel_from_power,
                                mel_filterbank, power_spectrogram)

CFG = FeatureConfig()


def tone(freq, seconds=3.0, rate=16000, amp=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_shapes_follow_the_config():
    logmel, mfcc = compute_features(tone(440), CFG)
    assert logmel.shape == CFG.logmel_shape == (128, 188)
    assert mfcc.shape == CFG.mfcc_shape == (40, 188)
    assert logmel.dtype == mfcc.dtype == np.float32


def test_power_spectrogram_matches_librosa_stft():
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    ours = power_spectrogram(x, CFG)
    ref = np.abs(librosa.stft(x, n_fft=512, hop_length=256, win_length=512, window="hann",
                              center=True, pad_mode="constant")) ** 2
    assert ours.shape == ref.shape
    assert np.allclose(ours, ref, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("freq", [250.0, 1000.0, 3000.0])
def test_a_pure_tone_lights_the_mel_band_at_its_frequency(freq):
    logmel, _ = compute_features(tone(freq), CFG)
    band = int(np.argmax(logmel[:, 50:150].mean(axis=1)))
    centres = librosa.mel_frequencies(n_mels=CFG.n_mels + 2, fmin=CFG.fmin, fmax=CFG.fmax)[1:-1]
    assert abs(centres[band] - freq) / freq < 0.08


def test_silence_sits_at_the_floor_and_level_scales_in_db():
    silent, _ = compute_features(np.zeros(48000, np.float32), CFG)
    assert np.all(silent == CFG.db_floor)
    loud, _ = compute_features(tone(1000, amp=0.5), CFG)
    quiet, _ = compute_features(tone(1000, amp=0.05), CFG)
    band = int(np.argmax(loud[:, 100]))
    assert np.isclose(loud[band, 100] - quiet[band, 100], 20.0, atol=0.1)  # 10x amplitude = 20 dB


def test_mfcc_is_librosas_dct_of_the_same_logmel():
    logmel, mfcc = compute_features(tone(700) + tone(2100, amp=0.2), CFG)
    ref = librosa.feature.mfcc(S=logmel, n_mfcc=CFG.n_mfcc, dct_type=2, norm="ortho")
    assert np.allclose(mfcc, ref, atol=1e-3)


@pytest.mark.parametrize("rate,n_fft,n_mels,fmin,fmax", [
    (16000, 512, 128, 20.0, 8000.0), (16000, 1024, 64, 0.0, 8000.0), (22050, 2048, 128, 50.0, 11025.0)])
def test_mel_filterbank_matches_librosa(rate, n_fft, n_mels, fmin, fmax):
    fb = mel_filterbank(rate, n_fft, n_mels, fmin, fmax)
    assert fb is mel_filterbank(rate, n_fft, n_mels, fmin, fmax)  # cached
    ref = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert np.allclose(fb, ref, atol=1e-6)


def test_config_round_trips_and_validates():
    cfg = FeatureConfig.from_dict({"n_mels": 64, "fmin": 0})
    assert cfg.n_mels == 64 and isinstance(cfg.fmin, float)
    assert FeatureConfig.from_dict(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="unknown setting"):
        FeatureConfig.from_dict({"n_mel": 64})
    with pytest.raises(ValueError, match="normalize"):
        FeatureConfig(normalize="loud")
    with pytest.raises(ValueError, match="fmax"):
        FeatureConfig(fmax=9000.0)


def test_logmel_floor_is_applied():
    power = np.zeros((257, 3), np.float32)
    assert np.all(logmel_from_power(power, CFG) == -80.0)
