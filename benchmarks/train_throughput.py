"""Trainer throughput: the model step alone versus the input pipeline alone, side by side.

    python benchmarks/train_throughput.py --features out/features [--steps 30] [--set model.mel_pool=[1,1]]

* model step: `train_on_batch` on one batch held in memory (no input pipeline), samples/s;
* input pipeline: the real training `tf.data` pipeline (read, parse, cache, shuffle,
  augment, batch) iterated with no model, samples/s, after a first pass that fills the cache
  (timed separately);
* inference: `predict_on_batch`, samples/s.
Target: input pipeline >= 5x the model step. Runs on the GPU when TensorFlow sees
one (mixed precision, as `ser train` does). Results: benchmarks/results/train_throughput[_<device>].json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.provenance import provenance  # noqa: E402
from ser_model.config import load_yaml  # noqa: E402
from ser_model.train import apply_overrides, compile_model, setup_devices  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--features", required=True)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch_size", type=int, default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--output", default=None)
    args = p.parse_args()

    from ser_model import data as D
    from ser_model.model import build_model

    cfg = apply_overrides(load_yaml("train"), args.overrides)
    if args.batch_size:
        cfg["training"]["batch_size"] = args.batch_size
    t, m = cfg["training"], cfg["model"]
    strategy, device = setup_devices(cfg["seed"])
    fdir = D.open_feature_dir(args.features)
    weights = D.balanced_class_weights(D.class_counts(fdir))

    ds = D.train_dataset(fdir, t, cfg["augment"], weights, m["gender_head"], cfg["seed"]).repeat()
    it = iter(ds)
    started = time.perf_counter()
    n_cache = max(1, int(sum(D.class_counts(fdir))) // t["batch_size"])
    for _ in range(n_cache):
        batch = next(it)
    first_pass = time.perf_counter() - started
    started = time.perf_counter()
    n_input = max(args.steps * 10, 100)
    for _ in range(n_input):
        batch = next(it)
    input_rate = n_input * t["batch_size"] / (time.perf_counter() - started)

    with strategy.scope():
        model = build_model(m, len(fdir.label_set.classes), fdir.features.logmel_shape,
                            fdir.features.mfcc_shape, fdir.stats)
        compile_model(model, t, 1000, m["gender_head"], m.get("gender_loss_weight", 0.2))
    x, y, w = batch
    for _ in range(3):  # trace and warm up
        model.train_on_batch(x, y, sample_weight=w)
    started = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(x, y, sample_weight=w)
    model_rate = args.steps * t["batch_size"] / (time.perf_counter() - started)
    model.predict_on_batch(x)
    started = time.perf_counter()
    for _ in range(args.steps):
        model.predict_on_batch(x)
    infer_rate = args.steps * t["batch_size"] / (time.perf_counter() - started)

    result = {"benchmark": "train_throughput", **provenance(), "device": device,
              "backbone": m["backbone"], "mel_pool": m["mel_pool"], "batch_size": t["batch_size"],
              "input_shape": {"logmel": list(fdir.features.logmel_shape), "mfcc": list(fdir.features.mfcc_shape)},
              "model_train_samples_per_s": round(model_rate, 1),
              "model_inference_samples_per_s": round(infer_rate, 1),
              "input_pipeline_samples_per_s": round(input_rate, 1),
              "input_first_pass_s": round(first_pass, 1),
              "input_to_model_ratio": round(input_rate / model_rate, 1), "target_ratio": 5.0,
              "epoch_minutes_estimate": round(sum(D.class_counts(fdir)) / model_rate / 60, 2)}
    print(json.dumps(result, indent=1))
    kind = "gpu" if "GPU" in device else "cpu"
    out = Path(args.output or REPO / "benchmarks" / "results" / f"train_throughput_{kind}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
