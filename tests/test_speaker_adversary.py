"""The speaker adversary: a gradient reversal, speaker targets, and a bundle that ships without it."""

import json

import keras
import numpy as np
import tensorflow as tf

from ser_model import arrays as A
from ser_model import data as D
from ser_model.model import GradientReversal, build_model, inference_model
from ser_model.train import speaker_vocabulary
from tests.conftest import TINY, ser

MODEL = {"backbone": "densenet_tiny", "weights": None, "mel_pool": [2, 2], "mfcc_filters": [8],
         "dropout": 0.0, "gender_head": True, "speaker_adversary": 0.5}
STATS = {"logmel_mean": [0.0] * 128, "logmel_std": [1.0] * 128, "mfcc_mean": [0.0] * 40, "mfcc_std": [1.0] * 40}


def test_gradient_reversal_is_identity_forward_and_negates_the_gradient_scaled():
    x = tf.constant([[1.0, -2.0, 3.0]])
    w = tf.constant([[0.5, 2.0, -1.0]])
    layer = GradientReversal(0.3)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * w)
    assert np.array_equal(y.numpy(), x.numpy())
    assert np.allclose(tape.gradient(loss, x).numpy(), -0.3 * w.numpy())


def test_the_shipped_model_drops_the_speaker_head_and_predicts_the_same():
    model = build_model(MODEL, 7, (128, 188), (40, 188), STATS, n_speakers=5)
    assert set(model.output_names) == {"emotion", "gender", "speaker"}
    shipped = inference_model(model)
    assert set(shipped.output_names) == {"emotion", "gender"}
    rng = np.random.default_rng(0)
    x = {"logmel": rng.normal(size=(2, 128, 188, 1)).astype("float32"),
         "mfcc": rng.normal(size=(2, 40, 188, 1)).astype("float32")}
    full, kept = model.predict(x, verbose=0), shipped.predict(x, verbose=0)
    assert full["speaker"].shape == (2, 5)
    for name in ("emotion", "gender"):
        assert np.allclose(full[name], kept[name])
    plain = build_model({**MODEL, "speaker_adversary": 0.0}, 7, (128, 188), (40, 188), STATS, n_speakers=5)
    assert "speaker" not in plain.output_names and inference_model(plain) is plain


def test_training_batches_carry_speaker_targets_on_both_input_paths(feature_dir):
    fdir = D.open_feature_dir(feature_dir)
    vocab = speaker_vocabulary(fdir)
    assert len(vocab) >= 4 and all("/" in key for key in vocab)
    known = vocab[: len(vocab) // 2]   # the other half stands for speakers the adversary does not know
    aug = {"time_masks": 0, "time_mask_max": 0, "freq_masks": 0, "freq_mask_max": 0,
           "max_shift_frames": 0, "gain_db": 0.0}
    cfg = {"cache": False, "shuffle_buffer": 1, "batch_size": 8}
    weights = np.ones(7, np.float32)
    parsed = next(iter(D.read_split(fdir, "train").batch(64)))
    _, y, w = D.training_targets(parsed, tf.constant(weights), True, D.speaker_index(known))
    expected = np.array([known.index(f"{c.decode()}/{s.decode()}") if f"{c.decode()}/{s.decode()}" in known else -1
                         for c, s in zip(parsed["corpus"].numpy(), parsed["speaker"].numpy())])
    assert (expected >= 0).any() and (expected < 0).any()
    assert np.array_equal(y["speaker"].numpy(), np.maximum(expected, 0))
    assert np.array_equal(w["speaker"].numpy(), (expected >= 0).astype(np.float32))
    _, y, w = next(iter(D.train_dataset(fdir, cfg, aug, weights, True, seed=1, speaker_vocab=known)))
    assert y["speaker"].shape == (8,) and int(tf.reduce_max(y["speaker"])) < len(known)

    batches = A.WindowBatches(A.load_windows(fdir), 64, weights, True, shuffle=False, speaker_vocab=known)
    _, y_np, w_np = batches[0]
    windows = A.load_windows(fdir)
    keys = [f"{c}/{s}" for c, s in zip(windows["corpus"][:64], windows["speaker"][:64])]
    expected_np = np.array([known.index(k) if k in known else -1 for k in keys])
    assert np.array_equal(y_np["speaker"], np.maximum(expected_np, 0))
    assert np.array_equal(w_np["speaker"], (expected_np >= 0).astype(np.float32))


def test_ser_train_with_the_adversary_ships_a_bundle_without_it(feature_dir, tmp_path):
    out = tmp_path / "bundle"
    proc = ser("train", "--features", feature_dir, "--output", out, *TINY, "--max_steps", "3",
               "--set", "model.speaker_adversary=0.3")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "speaker_loss" in proc.stdout
    shipped = keras.models.load_model(out / "model.keras", compile=False)
    assert set(shipped.output_names) == {"emotion", "gender"}
    assert json.loads((out / "labels.json").read_text())["gender_classes"] == ["female", "male"]
