"""`ser train`, `ser evaluate`, `ser crossval`, `ser predict`: flags, checks and printing over the library."""

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


class SettingsError(ValueError):
    """A setting, config or output that cannot be used: one line, exit 2."""


def with_local_features(prog: str, args: argparse.Namespace, prepare, body) -> int:
    """``body(args, prepare(args))`` with ``args.features`` on this machine: a URL (gs://, s3://) is
    copied here first, as TensorFlow reads local shards only; the copy is deleted afterwards.

    ``prepare`` checks everything that does not need the shards (configs, ``--set``, outputs) before
    any copy, so a mistyped setting is not reported after a long download; it raises
    :class:`SettingsError`."""
    from ser_model import storage

    try:
        prepared = prepare(args)
    except SettingsError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    if not storage.is_url(args.features):
        return body(args, prepared)
    if not storage.exists(storage.join(args.features, "features.json")):
        print(f"{prog}: error: {args.features}/features.json not found: is this a `ser features` output folder?",
              file=sys.stderr)
        return 2
    print(f"{prog}: copying {args.features} to this machine ...", file=sys.stderr, flush=True)
    with storage.local_copy(args.features) as local:
        return body(argparse.Namespace(**{**vars(args), "features": local}), prepared)


def local_work_dir(output: str) -> str:
    """The default work folder of ``ser train``: beside a local output; for a URL, a folder on this
    machine named after it (the same URL resumes from the same folder)."""
    import hashlib
    import tempfile

    from ser_model import storage

    if not storage.is_url(output):
        return f"{output}.work"
    return os.path.join(tempfile.gettempdir(), "ser-train-" + hashlib.sha256(output.encode()).hexdigest()[:12])


def train(argv: list[str]) -> int:
    p = _parser("ser train", "Train the fused DenseNet + MFCC-CNN model on `ser features` shards and export "
                "a model bundle. Run the same command again after an interruption: it resumes.")
    p.add_argument("--features", required=True,
                   help="output folder of `ser features` (local, or a URL: gs://, s3://, copied here first)")
    p.add_argument("--output", required=True, help="bundle folder to write, local or a URL (replaced at the end)")
    p.add_argument("--config", default="train", help="training YAML (default: configs/train.yaml)")
    p.add_argument("--features_config", default="features",
                   help="the feature settings the shards must have been written with "
                        "(default: configs/features.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set training.epochs=5 --set model.weights=imagenet")
    p.add_argument("--work_dir", default=None,
                   help="checkpoints, resumable state and TensorBoard logs, on this machine (default: OUTPUT.work; "
                        "for a URL output, a folder in the temporary folder named after it)")
    p.add_argument("--max_steps", type=int, default=None,
                   help="stop after this many training steps in all (smoke tests, benchmarks)")
    p.add_argument("--train_on", choices=("train", "train+val", "all"), default="train",
                   help="train+val refits on the validation speakers too, for the fixed epoch count "
                        "(no early stopping); the test split stays held out. all: refits on every split "
                        "(needs --crossval: with no speaker held out, only the folds can say how the "
                        "recipe does on new voices)")
    p.add_argument("--calibration", default=None, metavar="CROSSVAL_JSON",
                   help="crossval.json of `ser crossval` with the same recipe: its temperature, fitted on "
                        "speakers the fold models never heard, calibrates the bundle's probabilities")
    p.add_argument("--crossval", action="append", default=[], metavar="CROSSVAL_JSON",
                   help="a finished `ser crossval` report of the same recipe (speaker folds, and/or leave one "
                        "corpus out; repeatable): the model card and the app lead with its figures on "
                        "speakers the fold models never heard")
    p.add_argument("--cpu_devices", type=int, default=1, metavar="N",
                   help="without GPUs: split the CPU into N logical devices and train data-parallel over "
                        "them (checks the multi-GPU path; no faster). With GPUs every GPU is used anyway")
    return with_local_features("ser train", p.parse_args(argv), _train_settings, _train)


def _train_settings(args: argparse.Namespace) -> dict:
    from ser_model.config import ConfigError, load_yaml
    from ser_model.features import FeatureConfig
    from ser_model.outputs import check_writable
    from ser_model.train import apply_overrides, split_cpu

    if args.cpu_devices > 1:
        split_cpu(args.cpu_devices)  # before anything runs on a device
    work = args.work_dir or local_work_dir(args.output)
    try:
        check_writable(args.output, folder=True)
        check_writable(work, folder=True)
        settings = {"work": work, "cfg": apply_overrides(load_yaml(args.config), args.overrides),
                    "expected": FeatureConfig.from_dict(load_yaml(args.features_config).get("features") or {})}
    except (ConfigError, FileNotFoundError, ValueError) as err:
        raise SettingsError(str(err)) from None
    if args.train_on == "all" and not args.crossval:
        raise SettingsError("--train_on all needs --crossval CROSSVAL_JSON: a model trained on every "
                            "speaker has no held-out split of its own to report")
    # The training config, and the feature settings `_train` holds the shards to.
    recipe = settings["cfg"], settings["expected"].to_json()
    try:
        settings["evidence"] = [crossval_evidence(path, *recipe) for path in args.crossval]
    except (OSError, ValueError, KeyError) as err:
        raise SettingsError(f"--crossval: {err}") from None
    try:
        settings["calibration"] = calibration_from_crossval(args.calibration, *recipe) if args.calibration else None
    except (OSError, ValueError, KeyError) as err:
        raise SettingsError(f"--calibration {args.calibration}: {err}") from None
    return settings


def _train(args: argparse.Namespace, settings: dict) -> int:
    from ser_model.feature_dir import FeatureMismatch, open_feature_dir
    from ser_model.train import TrainingDataError, fit_and_export

    try:
        fdir = open_feature_dir(args.features, settings["expected"])
    except (FeatureMismatch, FileNotFoundError, ValueError) as err:
        print(f"ser train: error: {err}", file=sys.stderr)
        return 2
    try:
        return fit_and_export(fdir, settings["cfg"], args.output, Path(settings["work"]), args.max_steps,
                              args.train_on, settings["calibration"], settings["evidence"])
    except TrainingDataError as err:
        print(f"ser train: error: {err}", file=sys.stderr)
        return 2


def _report_of_recipe(path: str, cfg: dict, features: dict | None = None) -> dict:
    """A `ser crossval` report, refused unless its folds trained the recipe ``cfg`` describes (on
    shards of the feature settings ``features``, where the report records them)."""
    import json

    from ser_model import storage
    from ser_model.crossval import check_finished, check_same_recipe

    report = json.loads(storage.read_text(path))
    try:
        check_finished(report)
        check_same_recipe(report, cfg, features)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    return report


def crossval_evidence(path: str, cfg: dict, features: dict | None = None) -> dict:
    """The figures a bundle keeps from a `ser crossval` report of its recipe (``ser_model.crossval.evidence``)."""
    from ser_model.crossval import evidence

    return evidence(_report_of_recipe(path, cfg, features), str(path))


def calibration_from_crossval(path: str, cfg: dict, features: dict | None = None) -> dict:
    """The calibration a bundle stores, from a `ser crossval` report of its recipe
    (``ser_model.crossval.calibration_of``)."""
    from ser_model.crossval import calibration_of

    return calibration_of(_report_of_recipe(path, cfg, features), str(path))


def evaluate(argv: list[str]) -> int:
    p = _parser("ser evaluate", "Evaluate a model bundle on a split of `ser features` shards: UAR, accuracy, "
                "macro-F1, confusion, per-corpus and per-gender breakdowns.")
    p.add_argument("--model", default=None, help=MODEL_HELP)
    p.add_argument("--features", required=True, help="`ser features` output folder (local or a URL)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--output", default=None,
                   help="write metrics.json, confusion.csv/png, report.txt in this folder (local or a URL)")
    return with_local_features("ser evaluate", p.parse_args(argv), _evaluate_model, _evaluate)


def _evaluate_model(args: argparse.Namespace):
    """The bundle to evaluate, once the output is known to be writable."""
    from ser_model.bundle import load_bundle
    from ser_model.outputs import check_writable

    try:
        if args.output:
            check_writable(args.output, folder=True)
        return load_bundle(args.model)
    except (FileNotFoundError, ValueError) as err:
        raise SettingsError(str(err)) from None


def _evaluate(args: argparse.Namespace, bundle) -> int:
    from ser_model import storage
    from ser_model.evaluate import evaluate_split, format_report, write_report
    from ser_model.feature_dir import FeatureMismatch, open_feature_dir

    try:
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
        with storage.local_output(args.output) as folder:
            write_report(rep, Path(folder), f"{args.split} split")
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


def crossval(argv: list[str]) -> int:
    p = _parser("ser crossval", "Speaker-level cross-validation on `ser features` shards: every speaker is "
                "scored by a model trained without them. Writes OUTPUT/crossval.json and crossval.md; run the "
                "same command again after an interruption and finished folds are kept.")
    p.add_argument("--features", required=True, help="output folder of `ser features` (local or a URL)")
    p.add_argument("--output", required=True,
                   help="folder for the fold reports and the summary (local, or a URL: its reports are "
                        "copied here, and the folder is uploaded when the command ends, an error included)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--folds", type=int, default=5, help="speaker folds per corpus (default 5)")
    how.add_argument("--by_corpus", action="store_true", help="leave one corpus out instead of speaker folds")
    how.add_argument("--fold_file", default=None,
                     help="CSV of explicit folds: corpus,speaker,fold or path,fold (e.g. a published partition)")
    p.add_argument("--config", default="train", help="training YAML (default: configs/train.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training setting, e.g. --set training.epochs=4 (a shorter schedule)")
    p.add_argument("--max_steps", type=int, default=None, help="training steps per fold at most (smoke tests)")
    p.add_argument("--only", default=None, metavar="FOLD[,FOLD]",
                   help="train only these folds now (e.g. fold-1 on a long schedule); the summary covers "
                        "the folds finished so far and says it is partial")
    p.add_argument("--keep_models", action="store_true",
                   help="also save each fold trained now as a model bundle, OUTPUT/folds/FOLD/model, naming "
                        "its test speakers (e.g. for benchmarks/codec_agreement.py --unseen_speakers)")
    return with_local_features("ser crossval", p.parse_args(argv), _crossval_settings, _crossval)


def _crossval_settings(args: argparse.Namespace) -> dict:
    from ser_model import storage
    from ser_model.config import ConfigError, load_yaml
    from ser_model.train import apply_overrides

    try:
        return {"cfg": apply_overrides(load_yaml(args.config), args.overrides),
                "fold_file": storage.read_text(args.fold_file) if args.fold_file else None}
    except (ConfigError, OSError, ValueError) as err:
        raise SettingsError(str(err)) from None


def _crossval(args: argparse.Namespace, settings: dict) -> int:
    from ser_model import storage

    with storage.synced_folder(args.output) as local:
        return _crossval_in(args, settings, local)


def _crossval_in(args: argparse.Namespace, settings: dict, local_output: str) -> int:
    from ser_model import folds as F
    from ser_model.crossval import SettingsMismatch, run_crossval, speakers_of
    from ser_model.data import file_speakers
    from ser_model.feature_dir import FeatureMismatch, open_feature_dir
    from ser_model.outputs import check_writable
    from ser_model.train import TrainingDataError

    cfg = settings["cfg"]
    try:
        check_writable(local_output, folder=True)
        fdir = open_feature_dir(args.features)
        speakers = speakers_of(fdir)
        if args.by_corpus:
            plan, title, kind = F.corpus_folds(speakers), "Leave-one-corpus-out cross-validation", "by_corpus"
        elif args.fold_file:
            files = file_speakers(fdir)
            plan, title, kind = (F.read_fold_file(settings["fold_file"], files),
                                 f"Folds of {args.fold_file}", "fold_file")
        else:
            plan, title, kind = (F.speaker_folds(speakers, args.folds), f"{args.folds}-fold speaker cross-validation",
                                 "speaker_folds")
        F.check_plan(plan, speakers)
    except (FeatureMismatch, FileNotFoundError, ValueError) as err:
        print(f"ser crossval: error: {err}", file=sys.stderr)
        return 2
    try:
        only = [f.strip() for f in args.only.split(",") if f.strip()] if args.only else None
        report = run_crossval(fdir, cfg, plan, Path(local_output), args.max_steps, title, only, kind,
                              args.keep_models)
    except (TrainingDataError, SettingsMismatch, ValueError) as err:
        print(f"ser crossval: error: {err}", file=sys.stderr)
        return 2
    print((Path(local_output) / "crossval.md").read_text())
    partial = "" if report["complete"] else f" of {len(set(plan.values()))}: partial"
    print(f"wrote {args.output}/crossval.json and crossval.md ({len(report['folds'])} folds{partial})")
    return 0

