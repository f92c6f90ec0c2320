"""`ser train`, `ser evaluate`, `ser predict`: flags, checks and printing over the library."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

VERBOSE_HELP = "show TensorFlow's own log output (hidden by default)"
MODEL_HELP = "bundle folder (default: $SER_MODEL or the bundled model)"


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    return p


def train(argv: list[str]) -> int:
    p = _parser("ser train", "Train the fused DenseNet + MFCC-CNN model on `ser features` shards and export "
                "a model bundle. Run the same command again after an interruption: it resumes.")
    p.add_argument("--features", required=True, help="output folder of `ser features` (local or gs://)")
    p.add_argument("--output", required=True, help="bundle folder to write (replaced at the end)")
    p.add_argument("--config", default="train", help="training YAML (default: configs/train.yaml)")
    p.add_argument("--features_config", default="features",
                   help="the feature settings the shards must have been written with "
                        "(default: configs/features.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set training.epochs=5 --set model.weights=imagenet")
    p.add_argument("--work_dir", default=None,
                   help="checkpoints, resumable state and TensorBoard logs (default: OUTPUT.work)")
    p.add_argument("--max_steps", type=int, default=None,
                   help="stop after this many training steps in all (smoke tests, benchmarks)")
    p.add_argument("--train_on", choices=("train", "train+val"), default="train",
                   help="train+val refits on the validation speakers too, for the fixed epoch count "
                        "(no early stopping); the test split stays held out")
    args = p.parse_args(argv)
    from ser_model.config import ConfigError, load_yaml
    from ser_model.feature_dir import FeatureMismatch, open_feature_dir
    from ser_model.features import FeatureConfig
    from ser_model.outputs import check_writable
    from ser_model.train import apply_overrides, fit_and_export

    work = args.work_dir or f"{args.output}.work"
    try:
        check_writable(args.output, folder=True)
        check_writable(work, folder=True)
        cfg = apply_overrides(load_yaml(args.config), args.overrides)
        expected = FeatureConfig.from_dict(load_yaml(args.features_config).get("features") or {})
        fdir = open_feature_dir(args.features, expected)
    except (ConfigError, FeatureMismatch, FileNotFoundError, ValueError) as err:
        print(f"ser train: error: {err}", file=sys.stderr)
        return 2
    return fit_and_export(fdir, cfg, Path(args.output), Path(work), args.max_steps, args.train_on)


def evaluate(argv: list[str]) -> int:
    p = _parser("ser evaluate", "Evaluate a model bundle on a split of `ser features` shards: UAR, accuracy, "
                "macro-F1, confusion, per-corpus and per-gender breakdowns.")
    p.add_argument("--model", default=None, help=MODEL_HELP)
    p.add_argument("--features", required=True, help="`ser features` output folder")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--output", default=None, help="write metrics.json, confusion.csv/png, report.txt here")
    args = p.parse_args(argv)
    from ser_model.bundle import load_bundle
    from ser_model.evaluate import evaluate_split, format_report, write_report
    from ser_model.feature_dir import FeatureMismatch, open_feature_dir
    from ser_model.outputs import check_writable

    try:
        if args.output:
            check_writable(args.output, folder=True)
        bundle = load_bundle(args.model)
        fdir = open_feature_dir(args.features, bundle.features)
        if fdir.label_set.classes != bundle.classes:
            raise FeatureMismatch(f"shards use classes {fdir.label_set.classes}, the model {bundle.classes}")
    except (FileNotFoundError, FeatureMismatch, ValueError) as err:
        print(f"ser evaluate: error: {err}", file=sys.stderr)
        return 2
    print(f"ser evaluate: scoring the {args.split} split of {args.features} with model {bundle.model_id} ...",
          file=sys.stderr, flush=True)
    rep = evaluate_split(bundle.model, fdir, args.split)
    print(format_report(rep, f"{args.split} split, model {bundle.model_id}"))
    if args.output:
        write_report(rep, Path(args.output), f"{args.split} split")
        print(f"report written to {args.output}")
    return 0


def predict(argv: list[str]) -> int:
    p = _parser("ser predict", "Predict the emotion of a few audio files (for archives, use `ser score`).")
    p.add_argument("files", nargs="+", help="audio files (wav, flac, ogg, opus, mp3, aiff)")
    p.add_argument("--model", default=None, help=MODEL_HELP)
    p.add_argument("--max_seconds", type=float, default=600.0, help="refuse longer files (default 600)")
    args = p.parse_args(argv)
    from ser_model.audio import AudioError
    from ser_model.corpora import expected_class
    from ser_model.file_table import FileResult, format_file_table
    from ser_model.labels import load_label_table
    from ser_model.predict import Predictor

    try:
        predictor = Predictor(args.model)
    except (FileNotFoundError, ValueError) as err:
        print(f"ser predict: error: {err}", file=sys.stderr)
        return 2
    table, bundle = load_label_table(), predictor.bundle
    print(f"model {bundle.model_id} ({len(bundle.classes)} classes)")
    results = []
    for i, path in enumerate(args.files, 1):
        print(f"ser predict: {i}/{len(args.files)} {os.path.basename(path)}", file=sys.stderr, flush=True)
        true = expected_class(path, table, bundle.label_set)
        try:
            pred = predictor.predict_file(path, max_seconds=args.max_seconds)
        except (AudioError, OSError) as err:
            results.append(FileResult(path, true, error=str(err)))
            continue
        gender = (bundle.gender_classes[int(pred.gender_probs.argmax())]
                  if pred.gender_probs is not None and bundle.gender_classes else None)
        results.append(FileResult(path, true, pred.label, pred.confidence, len(pred.starts_s), gender))
    print(format_file_table(results, name_width=40))
    return 1 if any(r.error for r in results) else 0
