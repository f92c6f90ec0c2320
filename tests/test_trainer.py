"""Generated audio -> feature pipeline -> a few training steps -> bundle -> evaluate -> reload and predict."""

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from ser_model import data as D
from ser_model.bundle import load_bundle
from ser_model.predict import Predictor
from tests.conftest import REPO

from tests.conftest import TINY, ser


@pytest.fixture(scope="module")
def trained(tiny_bundle):
    return tiny_bundle


def test_training_writes_a_self_describing_bundle(trained, feature_dir):
    bundle_dir, stdout = trained
    assert {p.name for p in bundle_dir.iterdir()} == {"model.keras", "labels.json", "features.json",
                                                      "metrics.json", "MODEL_CARD.md"}
    labels = json.loads((bundle_dir / "labels.json").read_text())
    assert labels["classes"][0] == "neutral" and len(labels["classes"]) == 7
    assert labels["gender_classes"] == ["female", "male"]
    feats = json.loads((bundle_dir / "features.json").read_text())
    assert feats["stats"] == json.loads((feature_dir / "stats.json").read_text())
    metrics = json.loads((bundle_dir / "metrics.json").read_text())
    m = np.asarray(metrics["file"]["confusion"], float)
    present = m.sum(axis=1) > 0
    assert metrics["file"]["uar"] == pytest.approx((np.diag(m)[present] / m.sum(axis=1)[present]).mean())
    assert metrics["split"] == "test" and m.sum() == metrics["file"]["n"]
    assert set(metrics["file"]["per_corpus"]) == {"ravdess", "cremad", "tess", "savee"}
    assert "UAR" in (bundle_dir / "MODEL_CARD.md").read_text()
    assert "validation UAR" in stdout and "bundle written" in stdout
    assert not (bundle_dir.parent / "bundle.work" / "state").exists()  # cleared after success


def test_reloaded_bundle_predicts_what_the_shards_say(trained, feature_dir, corpora_tree):
    """Serving (Predictor on the audio file) == training features (shards) -> same probabilities."""
    bundle = load_bundle(trained[0])
    fdir = D.open_feature_dir(feature_dir)
    inputs, meta = next(iter(D.eval_dataset(fdir, "test", batch_size=64)))
    path = meta["path"].numpy()[0].decode()
    rows = [i for i, p in enumerate(meta["path"].numpy()) if p.decode() == path]
    predictor = Predictor(bundle)
    pred = predictor.predict_file(path)
    starts, logmel, mfcc = predictor.features(
        __import__("ser_model.audio", fromlist=["x"]).load_bytes(Path(path).read_bytes(), bundle.features)[0])
    assert np.allclose(logmel, inputs["logmel"].numpy()[rows], atol=1e-4)
    assert np.allclose(mfcc, inputs["mfcc"].numpy()[rows], atol=1e-3)
    shard_probs = bundle.model.predict_on_batch({k: v.numpy()[rows] for k, v in inputs.items()})["emotion"]
    assert np.allclose(pred.window_probs, shard_probs, atol=1e-4)
    assert pred.probs.shape == (7,) and np.isclose(pred.probs.sum(), 1, atol=1e-5)
    assert pred.label in bundle.classes and pred.gender_probs.shape == (2,)


def test_evaluate_command_reports_and_writes_plots(trained, feature_dir, tmp_path):
    proc = ser("evaluate", "--model", trained[0], "--features", feature_dir, "--output", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "UAR" in proc.stdout and "cremad" in proc.stdout
    assert {"metrics.json", "confusion.csv", "confusion.png", "report.txt"} <= {p.name for p in tmp_path.iterdir()}
    assert (tmp_path / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_trainer_refuses_shards_with_other_features(feature_dir, tmp_path):
    other = tmp_path / "features.yaml"
    other.write_text("features:\n  n_mels: 64\n")
    proc = ser("train", "--features", feature_dir, "--output", tmp_path / "b", "--features_config", other)
    assert proc.returncode == 2
    # Checked before TensorFlow is imported: the error is the only thing printed.
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("ser train: error:") and "other feature settings" in proc.stderr
    assert "n_mels" in proc.stderr


def test_unknown_setting_is_a_one_line_error(feature_dir, tmp_path):
    proc = ser("train", "--features", feature_dir, "--output", tmp_path / "b", "--set", "training.epoch=3")
    assert proc.returncode == 2 and "unknown setting 'epoch'" in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]


def test_killed_training_resumes(feature_dir, tmp_path):
    out = tmp_path / "bundle"
    args = [sys.executable, "-m", "ser_cli.main", "train", "--features", str(feature_dir), "--output", str(out),
            *TINY, "--set", "training.epochs=3"]   # state saved at each epoch end (and every 200 steps)
    state = tmp_path / "bundle.work" / "state" / "state.json"
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (state.exists() and json.loads(state.read_text())["epoch"] >= 1):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert state.exists(), "no resumable state was written"
    saved_epoch = json.loads(state.read_text())["epoch"]
    assert not out.exists()  # nothing half-written
    again = ser("train", "--features", feature_dir, "--output", out, *TINY, "--set", "training.epochs=3")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stdout and f"at epoch {saved_epoch + 1}" in again.stdout
    assert f"Epoch {saved_epoch + 1}/3" in again.stdout and "Epoch 1/3" not in again.stdout
    assert (out / "model.keras").exists()


def test_local_backbone_weights_file_is_loaded(tmp_path):
    from ser_model.model import build_model, densenet_backbone

    source = densenet_backbone("densenet_tiny", None, (32, 47, 3))
    weights = tmp_path / "tiny_notop.weights.h5"
    source.save_weights(weights)
    stats = {"logmel_mean": [0.0] * 64, "logmel_std": [1.0] * 64, "mfcc_mean": [0.0] * 8, "mfcc_std": [1.0] * 8}
    cfg = {"backbone": "densenet_tiny", "weights": str(weights), "mel_pool": [2, 2], "mfcc_filters": [4],
           "dropout": 0.1, "gender_head": False}
    model = build_model(cfg, 3, (64, 94), (8, 94), stats)
    loaded = model.get_layer("densenet_tiny")
    for a, b in zip(source.get_weights(), loaded.get_weights()):
        assert np.array_equal(a, b)
    random = build_model({**cfg, "weights": None}, 3, (64, 94), (8, 94), stats).get_layer("densenet_tiny")
    assert not all(np.array_equal(a, b) for a, b in zip(source.get_weights(), random.get_weights()))


AUG = {"time_masks": 2, "time_mask_max": 20, "freq_masks": 2, "freq_mask_max": 12, "max_shift_frames": 20,
       "gain_db": 6.0}


def test_augmentation_changes_train_batches_only(feature_dir):
    fdir = D.open_feature_dir(feature_dir)
    # Every optional augmentation on too, so that each runs inside tf.data's graph.
    aug = {**AUG, "noise_p": 0.5, "noise_snr_db": [15, 50], "band_limit_p": 0.5, "band_limit_hz": [3400, 7000],
           "reverb_p": 0.5, "reverb_rt60_s": [0.2, 0.8], "vtlp": [0.9, 1.1], "tempo": [0.9, 1.1]}
    cfg = {"cache": False, "shuffle_buffer": 8, "batch_size": 4}
    weights = np.ones(7, np.float32)
    x, y, w = next(iter(D.train_dataset(fdir, cfg, aug, weights, True, seed=1)))
    assert x["logmel"].shape == (4, 128, 188, 1) and x["mfcc"].shape == (4, 40, 188, 1)
    assert y["emotion"].shape == (4, 7) and w["gender"].shape == (4,)
    assert float(tf.reduce_min(x["logmel"])) >= fdir.features.db_floor
    plain = next(iter(D.read_split(fdir, "train", shuffle_files=False).batch(100)))
    # Augmented windows are not any stored window as-is.
    stored = plain["logmel"].numpy()
    for example in x["logmel"].numpy()[..., 0]:
        assert not any(np.array_equal(example, s) for s in stored)
    val_x, _ = next(iter(D.eval_dataset(fdir, "val", batch_size=100)))
    val_plain = next(iter(D.read_split(fdir, "val").batch(100)))
    assert np.array_equal(val_x["logmel"].numpy()[..., 0], val_plain["logmel"].numpy())


def test_mixup_gives_blended_targets_when_switched_on(feature_dir):
    fdir = D.open_feature_dir(feature_dir)
    cfg = {"cache": False, "shuffle_buffer": 8, "batch_size": 8}
    weights = np.ones(7, np.float32)
    for alpha, soft in ((0.0, False), (0.4, True)):
        _, y, _ = next(iter(D.train_dataset(fdir, cfg, {**AUG, "mixup_alpha": alpha}, weights, True, seed=1)))
        labels_per_row = (y["emotion"].numpy() > 1e-6).sum(axis=1)
        assert (labels_per_row > 1).any() == soft


def test_training_is_data_parallel_over_two_logical_devices(feature_dir, tiny_bundle, tmp_path):
    """The multi-device path (MirroredStrategy) on two logical CPU devices: same steps, finite loss."""
    proc = ser("train", "--features", feature_dir, "--output", tmp_path / "b", *TINY, "--max_steps", "3",
               "--cpu_devices", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "device: 2 logical CPU devices, data-parallel" in proc.stdout
    steps = re.compile(r"(\d+) training windows, (\d+) steps/epoch")
    assert steps.search(proc.stdout).groups() == steps.search(tiny_bundle[1]).groups()
    losses = [float(x) for x in re.findall(r"- loss: (\S+)", proc.stdout)]
    assert losses and all(math.isfinite(x) for x in losses)
    assert (tmp_path / "b" / "model.keras").exists()


def test_weight_averaging_finishes_on_the_moving_average_of_the_steps():
    import keras

    from ser_model.train import compile_model

    keras.utils.set_random_seed(0)
    inp = keras.Input((6,), name="x")
    model = keras.Model(inp, {"emotion": keras.layers.Dense(3, activation="softmax", name="emotion")(inp)})
    t = {"epochs": 1, "warmup_epochs": 0, "learning_rate": 0.05, "weight_decay": 0.0, "label_smoothing": 0.0,
         "ema_momentum": 0.7}
    compile_model(model, t, steps_per_epoch=6, gender_head=False, gender_weight=0.0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 6)).astype("float32")
    y = {"emotion": np.eye(3, dtype="float32")[rng.integers(0, 3, 24)]}
    seen = []
    step_end = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append([w.copy() for w in model.get_weights()]))
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[step_end])
    average = seen[0]
    for weights in seen[1:]:
        average = [0.7 * a + 0.3 * w for a, w in zip(average, weights)]
    assert len(seen) == 6
    assert not np.allclose(seen[-1][0], average[0])   # the last step's weights are not what is kept
    for kept, expected in zip(model.get_weights(), average):
        assert np.allclose(kept, expected, atol=1e-5)
