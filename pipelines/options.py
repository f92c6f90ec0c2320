"""Command-line flags of the pipelines (Beam ``PipelineOptions`` subclasses)."""

from __future__ import annotations

import os

from apache_beam.options.pipeline_options import (DirectOptions, PipelineOptions,
                                                  StandardOptions)

# Defined in a Beam-free module so `ser features` can use them before it imports Beam.
from pipelines.local_workers import default_to_one_blas_thread, names_flag

FEATURES_INPUT_HELP = ("a corpus root folder, glob or URI (local, gs://, s3://); repeatable. Prefix with "
                       "ravdess=, cremad=, tess= or savee= to force a corpus; otherwise each file's corpus "
                       "is recognised from its name.")
FEATURES_OUTPUT_HELP = "output folder or URI; an earlier run there is replaced when this one succeeds"
SCORE_INPUT_HELP = ("file, folder or glob (local, gs://, s3://); repeatable; 'archive/**' is recursive, "
                    "a folder means everything below it")
SCORE_OUTPUT_HELP = ("output prefix: PREFIX.files.parquet (one row per file), PREFIX.windows.parquet "
                     "with --windows, PREFIX.dead_letters.jsonl")


class IOOptions(PipelineOptions):
    """--input/--output, shared by both pipelines (Beam allows each flag in one class only)."""

    # No required=True: Beam parses every registered options class on workers too.
    @classmethod
    def _add_argparse_args(cls, parser, input_help="input file, folder or glob; repeatable",
                           output_help="output location"):
        parser.add_argument("--input", action="append", default=[], help=input_help)
        parser.add_argument("--output", default=None, help=output_help)


class FeaturesOptions(PipelineOptions):
    """Flags of ``ser features`` / ``python -m pipelines.features`` (plus IOOptions)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--features_config", default="features",
                            help="features YAML (default: configs/features.yaml)")
        parser.add_argument("--labels_config", default="labels",
                            help="labels YAML (default: configs/labels.yaml)")
        parser.add_argument("--label_set", default=None,
                            help="label set from the labels YAML (default: its default_label_set)")
        parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                            help="override a feature setting, e.g. --set n_mels=64; repeatable")
        parser.add_argument("--gzip", choices=("store", "fast", "small"), default=None,
                            help="shard compression: store (gzip container, no compression, least CPU), "
                                 "fast (Huffman only: 0.81 of the size on the development corpora, "
                                 "+15%% pipeline CPU), small (level 6: smaller, 3-4x the CPU of fast); "
                                 "default from the features YAML (store)")
        parser.add_argument("--files_per_shard", type=int, default=None,
                            help="files per output shard (default: from the features YAML)")


def with_local_defaults(options: PipelineOptions, argv: list[str] = ()) -> PipelineOptions:
    """Pick a runner that works offline and uses every core when none was named.

    Beam's default runner (and DirectRunner itself, since 2.6x) first tries to
    download the Prism binary, which fails without internet; the FnApiRunner is
    what DirectRunner falls back to, so it is named directly, in
    multi-processing mode with one worker per core.
    """
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = "FnApiRunner"
        direct = options.view_as(DirectOptions)
        if direct.direct_running_mode == "in_memory":
            direct.direct_running_mode = "multi_processing"
        if not names_flag(argv, "--direct_num_workers"):
            direct.direct_num_workers = os.cpu_count() or 1
        default_to_one_blas_thread()  # worker processes inherit this environment
    return options


def announce_matches(inputs, log) -> int:
    """Log how many files each input matches, before a local run starts; return the total.

    ``inputs`` are ``(name shown, glob)`` pairs. Both pipelines match again inside
    the job (``fileio.MatchFiles``); this is only progress for the console, so a
    user sees at once that a path matched nothing.
    """
    from apache_beam.io.filesystems import FileSystems

    total = 0
    for name, glob in inputs:
        n = len(FileSystems.match([glob])[0].metadata_list)
        total += n
        log.info("input %s: %d files", name, n)
        if n == 0:
            log.warning("input %s matched no files", name)
    return total


def is_local(options: PipelineOptions) -> bool:
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    name = runner if isinstance(runner, str) else type(runner).__name__
    return any(local in name for local in ("Direct", "FnApi", "Prism"))


def print_help(options_class, prog: str, description: str, input_help: str, output_help: str) -> None:
    """``--help`` for our own flags only (Beam's full list runs to hundreds of lines)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog=prog, description=description,
        epilog="Any Apache Beam pipeline option is accepted too, e.g. --runner DataflowRunner "
               "--project P --region R --temp_location gs://B/tmp --setup_file ./setup.py; "
               "locally the default is DirectRunner using every core.")
    IOOptions._add_argparse_args(parser, input_help, output_help)
    options_class._add_argparse_args(parser)
    parser.print_help()


class ScoreOptions(PipelineOptions):
    """Flags of ``ser score`` / ``python -m pipelines.score`` (plus IOOptions)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--model", default=None,
                            help="model bundle folder (default: $SER_MODEL or the bundled model)")
        parser.add_argument("--windows", action="store_true",
                            help="also write the per-window table (an emotion timeline per file)")
        parser.add_argument("--batch_size", type=int, default=64, help="windows per inference batch")
        parser.add_argument("--max_seconds", type=float, default=None,
                            help="refuse recordings longer than this (default: no limit)")
        parser.add_argument("--summary", action="store_true",
                            help="print a per-file table at the end (true label where the file name "
                                 "follows a corpus's naming, predicted label, confidence)")


def console_logging() -> None:
    """INFO lines with a timestamp from our loggers; Beam, absl and TensorFlow only warnings."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("apache_beam", "absl", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def wants_help(argv) -> bool:
    return "-h" in argv or "--help" in argv
