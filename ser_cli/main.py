"""The ``ser`` command: one entry point for every stage.

    ser features --input CORPUS_ROOT --output DIR     corpora -> TFRecord shards (Beam)
    ser train --features DIR --output BUNDLE          fit, evaluate, export a model bundle
    ser evaluate --features DIR [--model BUNDLE]      test-split report of a bundle
    ser crossval --features DIR --output DIR          speaker folds: train without, test on each
    ser predict FILE... [--model BUNDLE]              emotion of a few files, as a table
    ser score --input GLOB --output PREFIX            archives -> Parquet, one row per file (Beam)
    ser app [--port 8501]                             the web app

Every command takes ``--verbose`` to show the native libraries' own log output.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import sys

COMMANDS = {
    "features": ("pipelines.features", "run", "corpora -> speaker-independent TFRecord shards (Apache Beam)"),
    "train": ("ser_cli.commands", "train", "fit the fused model on shards and export a bundle"),
    "evaluate": ("ser_cli.commands", "evaluate", "evaluate a bundle on a split of shards"),
    "predict": ("ser_cli.commands", "predict", "predict the emotion of a few audio files"),
    "crossval": ("ser_cli.commands", "crossval", "speaker-level cross-validation (every speaker unseen once)"),
    "score": ("pipelines.score", "run", "score audio archives into Parquet (Apache Beam)"),
    "app": ("ser_cli.serve", "run", "start the web app (Streamlit)"),
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="ser", description="Speech emotion recognition at archive scale.",
        epilog="Run 'ser COMMAND --help' for a command's flags.")
    parser.add_argument("command", choices=sorted(COMMANDS),
                        help="; ".join(f"{k}: {v[2]}" for k, v in COMMANDS.items()))
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        sys.exit(0 if argv else 2)
    command = parser.parse_args(argv[:1]).command
    rest = argv[1:]
    if "--verbose" not in rest:
        from ser_cli.quiet import filter_native_logs

        filter_native_logs()
    # Beam and TensorFlow leave a few hundred thousand objects behind; the
    # collector's last pass over them at exit is work nobody waits for.
    atexit.register(gc.freeze)
    module_name, func_name, _ = COMMANDS[command]
    sys.exit(getattr(importlib.import_module(module_name), func_name)(rest))


if __name__ == "__main__":
    main()
