"""Fit the fused model on feature shards, evaluate it, export a bundle.

The library side of `ser train` (its flags are in ser_cli/commands.py).

Seed first; every hyper-parameter from configs/train.yaml (dotted --set
overrides); GPU with mixed precision and a MirroredStrategy when present, plain
CPU otherwise; resumable state every N steps (kill it and run the same command
again); early stopping and best-model selection on validation UAR; TensorBoard
logs; the bundle is written only at the end, atomically.
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Mapping

from ser_model.config import ConfigError, parse_override


class TrainingDataError(ValueError):
    """Too little training data for the configured run."""


def apply_overrides(cfg: dict, overrides: list[str]) -> dict:
    """``training.epochs=5`` style overrides on a nested config (keys must exist)."""
    cfg = copy.deepcopy(cfg)
    for text in overrides:
        key, value = parse_override(text)
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"--set {key}: no section {part!r} in the training config")
            node = node[part]
        if leaf not in node:
            raise ConfigError(f"--set {key}: unknown setting {leaf!r}; known: {sorted(node)}")
        node[leaf] = value
    check_factor_ranges(cfg.get("augment") or {})
    return cfg


FACTOR_RANGES = ("vtlp", "tempo", "reverb_rt60_s")


def check_factor_ranges(aug: dict) -> None:
    """The perturbation factors are null (off) or ``[lo, hi]`` with ``0 < lo <= hi``; a share of
    reverberated windows needs its range of reverberation times."""
    share = aug.get("reverb_p")
    if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1):
        raise ConfigError(f"augment.reverb_p: expected null or a share from 0 to 1, got {share!r}")
    if (share or 0) > 0 and aug.get("reverb_rt60_s") is None:
        raise ConfigError("augment.reverb_p: set augment.reverb_rt60_s too, e.g. [0.2, 0.8] (seconds)")
    for key in FACTOR_RANGES:
        value = aug.get(key)
        if value is None:
            continue
        ok = (isinstance(value, list) and len(value) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
              and 0 < value[0] <= value[1])
        if not ok:
            raise ConfigError(f"augment.{key}: expected null or [lo, hi] with 0 < lo <= hi, got {value!r}")


def split_cpu(n_devices: int) -> None:
    """Split the CPU into ``n_devices`` logical devices, so that :func:`setup_devices` mirrors over
    them: the multi-device path on a machine without GPUs (tests). Call before TensorFlow runs anything."""
    import keras

    if keras.backend.backend() != "tensorflow":   # XLA reads this when JAX first looks for devices
        flag = f"--xla_force_host_platform_device_count={n_devices}"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
        return
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n_devices)


def input_functions():
    """The trainer's input module: ``ser_model.data`` (tf.data, augmented) with TensorFlow as the
    Keras backend, ``ser_model.arrays`` (numpy, no TensorFlow) with any other."""
    import keras

    if keras.backend.backend() == "tensorflow":
        from ser_model import data
        return data
    from ser_model import arrays
    return arrays


class _NoStrategy:
    """``strategy.scope()`` where Keras's own distribution API (not tf.distribute) places the model."""

    def scope(self):
        import contextlib

        return contextlib.nullcontext()


def setup_devices(seed: int):
    """Seed everything; a distribution strategy over every visible device and its description.

    On TensorFlow: GPUs get mixed precision and a MirroredStrategy over all of
    them (data-parallel: each global batch is split between the devices and the
    gradients summed); several logical CPU devices (:func:`split_cpu`) a
    MirroredStrategy over them. On other backends (JAX): Keras's ``DataParallel``
    distribution over every device when there are several, bf16 mixed precision
    on GPUs.
    """
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() != "tensorflow":
        devices = keras.distribution.list_devices()
        gpus = [d for d in devices if not str(d).lower().startswith("cpu")]
        if gpus:
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        kind = f"{len(gpus)} GPU(s), mixed precision" if gpus else f"CPU ({os.cpu_count()} cores)"
        if len(devices) > 1:
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
            kind += f", data-parallel over {len(devices)} devices"
        return _NoStrategy(), f"{kind}, Keras on {keras.backend.backend()}"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
        keras.mixed_precision.set_global_policy("mixed_float16")
        return tf.distribute.MirroredStrategy(), f"{len(gpus)} GPU(s), mixed precision"
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(cpus) > 1:
        return (tf.distribute.MirroredStrategy(cpus),
                f"{len(cpus)} logical CPU devices, data-parallel ({os.cpu_count()} cores)")
    return tf.distribute.get_strategy(), f"CPU ({os.cpu_count()} cores)"


def fit(fdir, cfg: Mapping, work: Path, max_steps: int | None, *, splits: tuple[str, ...],
        speakers=None, stats: Mapping | None = None, val_ds=None, early_stopping: bool = True):
    """Train on the windows of ``splits`` (only ``speakers`` if given); ``(model, training facts)``.

    With ``val_ds`` the validation UAR is computed after every epoch and, with
    ``early_stopping``, the best epoch's model is kept; without it the last
    epoch's model is. ``stats``: normalisation statistics (default: the feature
    folder's train-split ``stats.json``). Resumes from ``work/state``.
    """
    import keras
    import numpy as np

    from ser_model.callbacks import ResumableState, ValidationUAR
    from ser_model.model import build_model, inference_model

    strategy, device = setup_devices(cfg["seed"])
    D = input_functions()
    t, m = cfg["training"], cfg["model"]
    classes = fdir.label_set.classes
    counts = D.class_counts(fdir, splits, speakers=speakers)
    weights = D.balanced_class_weights(counts) if t["class_weighting"] == "balanced" \
        else (counts > 0).astype(np.float32)
    n_windows = int(counts.sum())
    if n_windows < t["batch_size"]:
        raise TrainingDataError(f"{n_windows} training windows: fewer than one batch of {t['batch_size']} "
                                "(lower training.batch_size)")
    steps = max(1, n_windows // t["batch_size"])
    print(f"device: {device}; {n_windows} training windows, {steps} steps/epoch; "
          f"classes {list(classes)}; windows per class {counts.tolist()}", flush=True)
    vocab = speaker_vocabulary(fdir, speakers) if (m.get("speaker_adversary") or 0) > 0 else None
    if vocab is not None and len(vocab) < 2:
        # Data without named speakers (a folder per label): nothing to tell apart, so train without it.
        print(f"speaker adversary off: the training data names {len(vocab)} speaker(s), it needs two or more",
              flush=True)
        m = {**m, "speaker_adversary": None}
        cfg = {**cfg, "model": m}
        vocab = None
    train_ds = D.train_dataset(fdir, t, cfg["augment"], weights, m["gender_head"], cfg["seed"],
                               splits=splits, speakers=speakers, speaker_vocab=vocab)
    if hasattr(train_ds, "repeat"):   # tf.data; a PyDataset starts over every epoch by itself
        train_ds = train_ds.repeat()

    work.mkdir(parents=True, exist_ok=True)
    state = ResumableState(work / "state", every_steps=t["checkpoint_every_steps"])
    with strategy.scope():
        model = state.load_model()
        if model is None:
            model = build_model(m, len(classes), fdir.features.logmel_shape, fdir.features.mfcc_shape,
                                stats or fdir.stats, n_speakers=len(vocab or ()))
            compile_model(model, t, steps, m["gender_head"], m.get("gender_loss_weight", 0.2))
    initial_epoch = state.epoch
    if initial_epoch:
        best = f" (best validation UAR so far {state.best:.3f})" if val_ds is not None else ""
        print(f"resuming from {state.dir} at epoch {initial_epoch + 1}{best}", flush=True)

    epochs = t["epochs"]
    if max_steps:
        epochs = min(epochs, initial_epoch + max(1, -(-max_steps // steps)))
        steps = min(steps, max_steps)
    callbacks = [state, keras.callbacks.CSVLogger(str(work / "history.csv"), append=True)]
    if keras.backend.backend() == "tensorflow":   # TensorBoard's writer is TensorFlow's
        callbacks.insert(1, keras.callbacks.TensorBoard(str(work / "logs"), update_freq="epoch"))
    validation = None
    if val_ds is not None:
        validation = ValidationUAR(val_ds, classes, patience=t["early_stopping_patience"],
                                   best_path=work / "best.keras", state=state, early_stopping=early_stopping)
        callbacks.insert(0, validation)
    started = time.monotonic()
    model.fit(train_ds, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
              callbacks=callbacks, shuffle=False,  # the dataset shuffles
              verbose=1 if sys.stdout.isatty() else 2)
    facts = {"device": device, "train_seconds_this_run": round(time.monotonic() - started, 1),
             "windows": n_windows, "config": cfg, "epochs_run": epochs}
    if validation is not None:
        facts.update(epochs_run=validation.epochs_seen + initial_epoch, best_epoch=state.best_epoch + 1,
                     best_val_uar=round(state.best, 4))
        if (work / "best.keras").exists():
            model = keras.models.load_model(work / "best.keras", compile=False)
    if vocab:
        facts["adversary_speakers"] = len(vocab)
    return inference_model(model), facts


def speaker_vocabulary(fdir, speakers=None) -> tuple[str, ...]:
    """``corpus/speaker`` keys the speaker adversary tells apart: ``speakers`` (a fold's training
    speakers) or every speaker of the feature folder's manifest."""
    if speakers is None:
        from ser_model.crossval import speakers_of

        speakers = speakers_of(fdir)
    return tuple(sorted(f"{c}/{s}" for c, s in speakers if s))


def clear_state(work: Path) -> None:
    """Drop the resumable state once a run's result is safely written."""
    shutil.rmtree(work / "state", ignore_errors=True)


# What `ser train --train_on` trains on. A refit (train+val, all) runs the fixed epoch count.
TRAIN_ON = {"train": ("train",), "train+val": ("train", "val"), "all": ("train", "val", "test")}


def fit_and_export(fdir, cfg: Mapping, output: str, work: Path, max_steps: int | None,
                   train_on: str = "train", calibration: Mapping | None = None,
                   crossval: list | None = None) -> int:
    """`ser train`: fit on the train split (or train+val, or every split), evaluate on test unless it
    was trained on, write the bundle.

    ``crossval``: :func:`ser_model.crossval.evidence` of reports of the same recipe, kept in the
    bundle's metrics.json (``crossval``) and leading its model card (for ``train_on="all"`` the only
    figures it has)."""
    from ser_model.bundle import save_bundle
    from ser_model.evaluate import evaluate_split, format_report
    from ser_model.model_card import model_card

    splits = TRAIN_ON[train_on]
    # The validation UAR after each epoch selects the model (train) or shows progress (train+val);
    # a model that trains on every split has no split left to show it on.
    val_ds = None if "test" in splits else input_functions().eval_dataset(fdir, "val", batch_size=64, cache=True)
    model, facts = fit(fdir, cfg, work, max_steps, splits=splits, val_ds=val_ds,
                       early_stopping=train_on == "train")
    if "test" in splits:
        rep = {"split": None, "classes": list(fdir.label_set.classes)}
    else:
        rep = evaluate_split(model, fdir, "test")
        print(format_report(rep), flush=True)
    rep["training"] = {**facts, "train_on": train_on}
    if crossval:
        rep["crossval"] = list(crossval)
    card = model_card(rep, fdir, facts["config"], calibrated=calibration is not None)   # as trained
    save_bundle(output, model, fdir.features, fdir.label_set, fdir.stats, rep, card,
                calibration)
    clear_state(work)
    print(f"bundle written to {output}", flush=True)
    return 0


def compile_model(model, t: Mapping, steps_per_epoch: int, gender_head: bool, gender_weight: float):
    import keras

    total = max(1, t["epochs"] * steps_per_epoch)
    warmup = min(total - 1, int(t["warmup_epochs"] * steps_per_epoch))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=t["learning_rate"] * 0.01 if warmup else t["learning_rate"],
        decay_steps=max(1, total - warmup), alpha=0.01,
        warmup_target=t["learning_rate"] if warmup else None, warmup_steps=warmup)
    losses = {"emotion": keras.losses.CategoricalCrossentropy(label_smoothing=t["label_smoothing"])}
    loss_weights = {"emotion": 1.0}
    if gender_head:
        losses["gender"] = keras.losses.SparseCategoricalCrossentropy()
        loss_weights["gender"] = gender_weight
    if "speaker" in model.output_names:   # the adversary: its strength is the reversal's scale
        losses["speaker"] = keras.losses.SparseCategoricalCrossentropy()
        loss_weights["speaker"] = 1.0
    # Weight averaging: Keras keeps an exponential moving average of the weights and puts it in
    # place of the last step's weights when fit ends (not between epochs: validation sees the raw ones).
    ema = t.get("ema_momentum")
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=t["weight_decay"], use_ema=bool(ema),
                                       ema_momentum=ema or 0.99)
    model.compile(optimizer=optimizer,
                  loss=losses, loss_weights=loss_weights,
                  metrics={"emotion": [keras.metrics.CategoricalAccuracy(name="acc")]})

