"""The fused model's training and inference speed on any Keras backend, with synthetic batches.

    python benchmarks/model_throughput.py [--backends tensorflow,jax] [--batch 32] [--steps 20]
        [--infer_batches 1,32,256] [--backbone densenet121] [--mel_pools 2x2,1x1] [--find_max_batch]

Each backend runs in its own process (``KERAS_BACKEND``), one after the other in
one run, on the same synthetic batches of the real input shapes (log-mel
128x188, MFCC 40x188, the project's FeatureConfig): no feature folder and no
TensorFlow are needed for the JAX or PyTorch backends, only ``keras`` and this
project's pure-Python code. Reported per backend: training samples/s
(``fit`` on in-memory arrays, after a warm-up epoch that compiles), inference
samples/s at several batch sizes (``predict_on_batch``), the device, the
precision policy (``mixed_bfloat16`` on a GPU by default), and on an NVIDIA GPU
the mean utilisation sampled by ``nvidia-smi`` during training (did the
accelerator stay busy). ``--find_max_batch`` doubles the training batch until
the device runs out of memory. ``--mel_pools 2x2,1x1`` also measures each backend with
the log-mel image pooled otherwise before the DenseNet (``model.mel_pool``; 1x1 is the
full-resolution image), one after the other in the same run. Results: benchmarks/results/model_throughput_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def device_name() -> tuple[str, bool]:
    """(description, is a GPU) of the device the current Keras backend computes on."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        d = jax.devices()[0]
        return f"{d.platform}: {getattr(d, 'device_kind', d)} (x{len(jax.devices())})", d.platform == "gpu"
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return f"cuda: {torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()})", True
        return f"cpu ({os.cpu_count()} cores)", False
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return f"gpu: {tf.config.experimental.get_device_details(gpus[0]).get('device_name', 'GPU')} (x{len(gpus)})", True
    return f"cpu ({os.cpu_count()} cores)", False


class GpuUtilisation:
    """Mean GPU utilisation (%) sampled every 0.2 s by nvidia-smi while the block runs (None without it)."""

    def __enter__(self):
        self.samples, self._stop = [], threading.Event()
        if shutil.which("nvidia-smi"):
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.2):
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True).stdout.split()
            if out:
                self.samples.append(float(out[0]))

    def __exit__(self, *exc):
        self._stop.set()

    @property
    def mean(self):
        return round(sum(self.samples) / len(self.samples), 1) if self.samples else None


def one_backend(args) -> dict:
    import keras
    import numpy as np

    from ser_model.features import FeatureConfig
    from ser_model.model import build_model
    from ser_model.train import compile_model

    device, gpu = device_name()
    policy = {"auto": "mixed_bfloat16" if gpu else "float32", "on": "mixed_bfloat16", "off": "float32"}[args.mixed]
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    cfg = FeatureConfig()
    stats = {"logmel_mean": [-40.0] * cfg.n_mels, "logmel_std": [12.0] * cfg.n_mels,
             "mfcc_mean": [0.0] * cfg.n_mfcc, "mfcc_std": [20.0] * cfg.n_mfcc}
    model_cfg = {"backbone": args.backbone, "weights": None, "mel_pool": args.mel_pool, "mfcc_filters": [32, 64, 128],
                 "dropout": 0.4, "gender_head": True}
    train_cfg = {"epochs": 2, "warmup_epochs": 0, "learning_rate": 1e-3, "label_smoothing": 0.1,
                 "weight_decay": 1e-4}
    rng = np.random.default_rng(0)

    def data(n):
        x = {"logmel": rng.normal(-40, 12, (n, *cfg.logmel_shape, 1)).astype("float32"),
             "mfcc": rng.normal(0, 20, (n, *cfg.mfcc_shape, 1)).astype("float32")}
        y = {"emotion": np.eye(7, dtype="float32")[rng.integers(0, 7, n)], "gender": rng.integers(0, 2, n)}
        return x, y

    def train_rate(batch: int) -> tuple[float, float | None]:
        model = build_model(model_cfg, 7, cfg.logmel_shape, cfg.mfcc_shape, stats)
        compile_model(model, train_cfg, args.steps, True, 0.2)
        x, y = data(batch * args.steps)
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)       # compiles
        with GpuUtilisation() as util:
            started = time.perf_counter()
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
            seconds = time.perf_counter() - started
        return batch * args.steps / seconds, util.mean

    rate, util = train_rate(args.batch)
    result = {"backend": keras.backend.backend(), "keras": keras.__version__, "device": device, "policy": policy,
              "backbone": args.backbone, "mel_pool": args.mel_pool, "batch": args.batch, "steps": args.steps,
              "train_samples_per_s": round(rate, 1), "gpu_utilisation_pct_during_training": util}
    model = build_model(model_cfg, 7, cfg.logmel_shape, cfg.mfcc_shape, stats)
    infer = {}
    for b in args.infer_batches:
        x, _ = data(b)
        model.predict_on_batch(x)
        started, calls = time.perf_counter(), max(3, 256 // b)
        for _ in range(calls):
            model.predict_on_batch(x)
        infer[str(b)] = round(b * calls / (time.perf_counter() - started), 1)
    result["inference_samples_per_s"] = infer
    if args.find_max_batch:
        largest, b = None, args.batch
        while b <= 65536:
            try:
                train_rate(b)
                largest, b = b, b * 2
            except Exception as err:  # out of device memory, whatever the backend calls it
                result["max_batch_stopped_by"] = type(err).__name__
                break
        result["largest_training_batch_that_fits"] = largest
    return result


def mel_pools(text: str) -> list[list[int]]:
    """``"2x2,1x1"`` -> ``[[2, 2], [1, 1]]``."""
    try:
        pools = [[int(n) for n in item.lower().split("x")] for item in text.split(",")]
    except ValueError:
        pools = []
    if not pools or any(len(p) != 2 or min(p) < 1 for p in pools):
        raise argparse.ArgumentTypeError(f"{text!r}: expected poolings like 2x2,1x1")
    return pools


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backends", default="tensorflow,jax")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--infer_batches", default="1,32,256")
    p.add_argument("--backbone", default="densenet121")
    p.add_argument("--mixed", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--mel_pools", default="2x2", type=mel_pools,
                   help="comma-separated log-mel poolings to measure, e.g. 2x2,1x1 (default 2x2, the recipe's)")
    p.add_argument("--mel_pool", type=lambda v: mel_pools(v)[0], default=[2, 2], help=argparse.SUPPRESS)
    p.add_argument("--find_max_batch", action="store_true")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)   # run in this process's backend
    p.add_argument("--output", default=None)
    args = p.parse_args()
    args.infer_batches = [int(b) for b in str(args.infer_batches).split(",")]
    if args.one:
        print("RESULT " + json.dumps(one_backend(args)), flush=True)
        return 0
    from benchmarks.provenance import provenance

    results = []
    for backend, pool in ((b, pool) for b in args.backends.split(",") for pool in args.mel_pools):
        argv = ["--batch", str(args.batch), "--steps", str(args.steps), "--backbone", args.backbone,
                "--mixed", args.mixed, "--infer_batches", ",".join(map(str, args.infer_batches)),
                "--mel_pool", "x".join(map(str, pool)), *(["--find_max_batch"] if args.find_max_batch else [])]
        proc = subprocess.run([sys.executable, __file__, *argv, "--one"], capture_output=True, text=True,
                              env={**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"})
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            results.append({"backend": backend, "mel_pool": pool, "error": proc.stderr.strip().splitlines()[-1:]})
        else:
            results.append(json.loads(lines[-1][len("RESULT "):]))
        print(json.dumps(results[-1]), flush=True)
    kind = "gpu" if any("gpu" in r.get("device", "") or "cuda" in r.get("device", "") for r in results) else "cpu"
    out = Path(args.output or REPO / "benchmarks" / "results" / f"model_throughput_{kind}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "model_throughput", **provenance(), "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
