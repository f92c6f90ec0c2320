"""The ``ser`` command: one entry point for every stage.

    ser features --input CORPUS_ROOT --output DIR     corpora -> TFRecord shards (Beam)
    ser train --features DIR --output BUNDLE          fit, evaluate, export a model bundle
    ser evaluate --features DIR [--model BUNDLE]      test-split report of a bundle
    ser predict FILE... [--model BUNDLE]              emotion of a few files, as a table
    ser score --input GLOB --output PREFIX            archives -> Parquet, one row per file (Beam)
    ser app [--port 8501]                             the web app
"""

from __future__ import annotations

import argparse
import sys

COMMANDS = {
    "features": ("pipelines.features", "run",
                 "corpora -> speaker-independent TFRecord shards (Apache Beam)"),
    "train": ("ser_model.train", "run", "fit the fused model on shards and export a bundle"),
    "evaluate": ("ser_model.evaluate", "run", "evaluate a bundle on a split of shards"),
    "predict": ("ser_model.predict", "run", "predict the emotion of a few audio files"),
    "score": ("pipelines.score", "run", "score audio archives into Parquet (Apache Beam)"),
    "app": ("ser_model.webapp", "run", "start the web app (Streamlit)"),
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
    args = parser.parse_args(argv[:1])
    module_name, func_name, _ = COMMANDS[args.command]
    from ser_model.fast_exit import skip_final_gc

    skip_final_gc()
    if args.command == "features":
        # A local run imports Beam once, here, and forks its worker processes from this one
        # (see pipelines/local_workers.py).
        from pipelines.local_workers import forked_workers, workers_wanted

        n_workers = workers_wanted(argv[1:])
        if n_workers:
            with forked_workers(n_workers) as workers:
                from pipelines.features import run

                sys.exit(run(argv[1:], workers=workers))
    module = __import__(module_name, fromlist=[func_name])
    sys.exit(getattr(module, func_name)(argv[1:]))


if __name__ == "__main__":
    main()
