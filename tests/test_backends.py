"""The fused model on Keras's JAX backend: it trains, saves and reloads there, and a bundle saved
under TensorFlow predicts the same probabilities under JAX."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO

pytest.importorskip("jax")

JAX_SCRIPT = r"""
import json, sys
import keras, numpy as np
from ser_model.features import FeatureConfig
from ser_model.model import build_model
from ser_model.train import compile_model
mode, path, backend = sys.argv[1], sys.argv[2], sys.argv[3]
assert keras.backend.backend() == backend
cfg = FeatureConfig()
rng = np.random.default_rng(0)
def inputs(n):
    return {"logmel": rng.normal(-40, 12, (n, *cfg.logmel_shape, 1)).astype("float32"),
            "mfcc": rng.normal(0, 20, (n, *cfg.mfcc_shape, 1)).astype("float32")}
if mode == "train":
    stats = {"logmel_mean": [-40.0] * cfg.n_mels, "logmel_std": [12.0] * cfg.n_mels,
             "mfcc_mean": [0.0] * cfg.n_mfcc, "mfcc_std": [20.0] * cfg.n_mfcc}
    keras.utils.set_random_seed(1)
    model = build_model({"backbone": "densenet_tiny", "weights": None, "mel_pool": [4, 4], "mfcc_filters": [8],
                         "dropout": 0.1, "gender_head": True, "window_norm": "band"},
                        7, cfg.logmel_shape, cfg.mfcc_shape, stats)
    compile_model(model, {"epochs": 1, "warmup_epochs": 0, "learning_rate": 1e-3, "label_smoothing": 0.1,
                          "weight_decay": 1e-4}, 4, True, 0.2)
    x = inputs(16)
    y = {"emotion": np.eye(7, dtype="float32")[rng.integers(0, 7, 16)], "gender": rng.integers(0, 2, 16)}
    w = {"emotion": np.ones(16, "float32"), "gender": np.array([1, 0] * 8, "float32")}  # gender masked on half
    before = [v.numpy().copy() for v in model.trainable_variables]
    history = model.fit(x, y, sample_weight=w, batch_size=4, epochs=1, verbose=0).history
    changed = any(not np.array_equal(a, v.numpy()) for a, v in zip(before, model.trainable_variables))
    model.save(path)
    again = keras.saving.load_model(path)
    same = bool(np.allclose(model.predict_on_batch(x)["emotion"], again.predict_on_batch(x)["emotion"], atol=1e-6))
    print(json.dumps({"loss": history["loss"], "weights_changed": changed, "reload_same": same}))
else:
    model = keras.saving.load_model(path, compile=False)
    print(json.dumps({"probs": np.asarray(model.predict_on_batch(inputs(4))["emotion"]).tolist()}))
"""


NO_TENSORFLOW = r"""
import importlib.abc, json, sys
class Refuse(importlib.abc.MetaPathFinder):   # TensorFlow is not there, as on a JAX-only GPU machine
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, Refuse())
"""


def run_script(script: str, *args, backend: str = "jax") -> subprocess.CompletedProcess:
    """``python -c script args`` from the repository, with Keras on ``backend``."""
    path = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=600)


def last_json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def under_jax(*args, backend="jax"):
    return last_json(run_script(JAX_SCRIPT, *args, backend, backend=backend))


def test_the_model_trains_saves_and_reloads_under_jax(tmp_path):
    out = under_jax("train", tmp_path / "jax.keras")
    assert len(out["loss"]) == 1 and np.isfinite(out["loss"][0])
    assert out["weights_changed"] and out["reload_same"]


def test_the_model_trains_saves_and_reloads_under_pytorch(tmp_path):
    """Opt-in: runs where PyTorch is installed (not in requirements-dev: see README)."""
    pytest.importorskip("torch")
    out = under_jax("train", tmp_path / "torch.keras", backend="torch")
    assert len(out["loss"]) == 1 and np.isfinite(out["loss"][0])
    assert out["weights_changed"] and out["reload_same"]


def test_a_bundle_saved_under_tensorflow_predicts_the_same_under_jax(tiny_bundle):
    import keras

    from ser_model.features import FeatureConfig

    assert keras.backend.backend() == "tensorflow"
    cfg = FeatureConfig()
    rng = np.random.default_rng(0)   # the same inputs as the JAX script's
    x = {"logmel": rng.normal(-40, 12, (4, *cfg.logmel_shape, 1)).astype("float32"),
         "mfcc": rng.normal(0, 20, (4, *cfg.mfcc_shape, 1)).astype("float32")}
    model = keras.saving.load_model(tiny_bundle[0] / "model.keras", compile=False)
    tf_probs = np.asarray(model.predict_on_batch(x)["emotion"])
    jax_probs = np.asarray(under_jax("predict", tiny_bundle[0] / "model.keras")["probs"])
    assert np.allclose(tf_probs, jax_probs, atol=1e-5)


NO_TF_FIT = NO_TENSORFLOW + r"""
import keras, numpy as np
from ser_model.arrays import WindowBatches, load_windows
from ser_model.feature_dir import open_feature_dir
from ser_model.model import build_model
from ser_model.train import compile_model
assert keras.backend.backend() == "jax"
fdir = open_feature_dir(sys.argv[1])
windows = load_windows(fdir, ("train",))
batches = WindowBatches(windows, 4, np.ones(len(fdir.label_set.classes), "float32"), True, seed=0)
keras.utils.set_random_seed(1)
model = build_model({"backbone": "densenet_tiny", "weights": None, "mel_pool": [4, 4], "mfcc_filters": [8],
                     "dropout": 0.1, "gender_head": True}, len(fdir.label_set.classes),
                    fdir.features.logmel_shape, fdir.features.mfcc_shape, fdir.stats)
compile_model(model, {"epochs": 1, "warmup_epochs": 0, "learning_rate": 1e-3, "label_smoothing": 0.1,
                      "weight_decay": 1e-4}, len(batches), True, 0.2)
history = model.fit(batches, epochs=2, verbose=0).history
print(json.dumps({"windows": len(windows["label_id"]), "steps": len(batches), "loss": history["loss"],
                  "tensorflow_loaded": any(m.split(".")[0] == "tensorflow" for m in sys.modules)}))
"""


def test_the_model_trains_on_the_shards_under_jax_without_tensorflow(feature_dir):
    """The TF-free input path (ser_model.arrays) reads the pipeline's shards and feeds fit on JAX."""
    out = last_json(run_script(NO_TF_FIT, feature_dir))
    manifest = json.loads((feature_dir / "manifest.json").read_text())
    assert out["windows"] == manifest["windows"]["train"]          # every train window, once
    assert out["steps"] == out["windows"] // 4 and len(out["loss"]) == 2 and all(np.isfinite(out["loss"]))
    assert not out["tensorflow_loaded"]


NO_TF_CLI = NO_TENSORFLOW + r"""
from ser_cli.main import main
main(sys.argv[1:])
"""


def test_ser_train_runs_under_jax_without_tensorflow_data_parallel_over_two_devices(feature_dir, tmp_path):
    """`ser train` on Keras's JAX backend, TensorFlow unimportable: the TF-free input path, Keras's
    DataParallel over two CPU devices, a bundle written and loadable."""
    from tests.conftest import TINY

    out = tmp_path / "bundle"
    proc = run_script(NO_TF_CLI, "train", "--features", feature_dir, "--output", out, *TINY, "--max_steps", "3",
                      "--cpu_devices", "2")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "data-parallel over 2 devices, Keras on jax" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["window"]["n"] > 0 and "Keras on jax" in metrics["training"]["device"]
    assert (out / "model.keras").is_file()
