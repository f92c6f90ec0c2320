"""The model's per-window normalisation: what it removes, what it keeps, and that it survives saving."""

import keras
import numpy as np
import pytest

from ser_model.features import FeatureConfig
from ser_model.model import build_model

CFG = FeatureConfig()
# Unit training statistics, so a shift of the raw input is the same shift after standardisation.
UNIT_STATS = {"logmel_mean": [0.0] * CFG.n_mels, "logmel_std": [1.0] * CFG.n_mels,
              "mfcc_mean": [0.0] * CFG.n_mfcc, "mfcc_std": [1.0] * CFG.n_mfcc}


_MODELS = {}


def tiny_model(window_norm):
    """One model per mode for the whole module (building and tracing one costs seconds)."""
    if window_norm not in _MODELS:
        _MODELS[window_norm] = _build(window_norm)
    return _MODELS[window_norm]


def _build(window_norm):
    keras.utils.set_random_seed(3)
    return build_model({"backbone": "densenet_tiny", "weights": None, "mel_pool": [4, 4], "mfcc_filters": [4],
                        "dropout": 0.0, "gender_head": False, "window_norm": window_norm},
                       7, CFG.logmel_shape, CFG.mfcc_shape, UNIT_STATS)


def windows(seed=0, n=3):
    rng = np.random.default_rng(seed)
    return {"logmel": rng.normal(-40, 12, (n, *CFG.logmel_shape, 1)).astype("float32"),
            "mfcc": rng.normal(0, 20, (n, *CFG.mfcc_shape, 1)).astype("float32")}


def shifted(x, logmel_shift, mfcc_shift=0.0):
    return {"logmel": x["logmel"] + logmel_shift, "mfcc": x["mfcc"] + mfcc_shift}


def probs(model, x):
    return model.predict_on_batch(x)["emotion"]


def test_level_norm_ignores_recording_gain():
    x = windows()
    gain = 9.0  # dB on every band: a louder recording of the same speech
    assert np.allclose(probs(tiny_model("level"), x), probs(tiny_model("level"), shifted(x, gain)), atol=1e-5)
    assert not np.allclose(probs(tiny_model("none"), x), probs(tiny_model("none"), shifted(x, gain)), atol=1e-3)


def test_band_norm_ignores_channel_colouring_that_level_norm_keeps():
    x = windows(1)
    # A microphone/room response: a fixed dB tilt over the mel bands, a fixed offset per MFCC.
    tilt = np.linspace(-10, 6, CFG.n_mels, dtype="float32")[None, :, None, None]
    offset = np.linspace(3, -3, CFG.n_mfcc, dtype="float32")[None, :, None, None]
    coloured = shifted(x, tilt, offset)
    assert np.allclose(probs(tiny_model("band"), x), probs(tiny_model("band"), coloured), atol=1e-5)
    assert not np.allclose(probs(tiny_model("level"), x), probs(tiny_model("level"), coloured), atol=1e-3)


def test_window_norm_survives_save_and_load(tmp_path):
    model, x = tiny_model("band"), windows(2)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert reloaded is not model
    assert reloaded.get_layer("logmel_window_norm") is not None
    assert np.allclose(probs(model, x), probs(reloaded, x), atol=1e-6)


def test_unknown_window_norm_is_refused():
    with pytest.raises(ValueError, match="window_norm"):
        _build("speaker")
