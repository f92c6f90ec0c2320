"""Command-line flags of the pipelines: Beam ``PipelineOptions`` subclasses, checked strictly.

Beam accepts any ``--flag`` and only logs a warning for one it does not know;
:func:`unknown_flags` makes a mistyped flag an error instead.
"""

from __future__ import annotations

import difflib
import os

from apache_beam.options.pipeline_options import (DirectOptions, PipelineOptions, StandardOptions,
                                                  TestOptions)

from ser_model.speaker_norm import MIN_GROUP_FILES

FEATURES_INPUT_HELP = ("a corpus root folder, glob or URI (local, gs://, s3://); repeatable. Prefix with "
                       "ravdess=, cremad=, tess= or savee= to force a corpus; otherwise each file's corpus "
                       "is recognised from its name.")
FEATURES_OUTPUT_HELP = "output folder or URI; an earlier run there is replaced when this one succeeds"
SCORE_INPUT_HELP = ("file, folder or glob (local, gs://, s3://); repeatable; 'archive/**' is recursive, "
                    "a folder means everything below it")
SCORE_OUTPUT_HELP = ("output prefix: PREFIX.files.parquet (one row per file), PREFIX.windows.parquet "
                     "with --windows, PREFIX.segments.parquet with --segments, PREFIX.dead_letters.jsonl")

class IOOptions(PipelineOptions):
    """--input/--output, shared by both pipelines (Beam allows each flag in one class only)."""

    # No required=True: Beam parses every registered options class on workers too.
    @classmethod
    def _add_argparse_args(cls, parser, input_help="input file, folder or glob; repeatable",
                           output_help="output location"):
        parser.add_argument("--input", action="append", default=[], help=input_help)
        parser.add_argument("--output", default=None, help=output_help)


class CommonOptions(PipelineOptions):
    """Flags every pipeline command has."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--verbose", action="store_true",
                            help="show Beam's and TensorFlow's own log output (hidden by default)")


class FeaturesOptions(PipelineOptions):
    """Flags of ``ser features`` (plus IOOptions and CommonOptions)."""

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
                            help="shard compression: store (a gzip container without compression, least "
                                 "CPU), fast (Huffman coding only), small (zlib level 6, the most CPU); "
                                 "default: output.gzip of the features YAML")
        parser.add_argument("--files_per_shard", type=int, default=None,
                            help="files per output shard (default: output.files_per_shard of the features YAML)")


class ScoreOptions(PipelineOptions):
    """Flags of ``ser score`` (plus IOOptions and CommonOptions)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--model", default=None,
                            help="model bundle folder (default: $SER_MODEL or the bundled model)")
        parser.add_argument("--windows", action="store_true",
                            help="also write the per-window table (an emotion timeline per file)")
        parser.add_argument("--segments", action="store_true",
                            help="also write the per-speech-segment table of long recordings (when did "
                                 "someone sound angry): needs --vad long")
        parser.add_argument("--vad", choices=("long", "off"), default="long",
                            help="long (default): score only the speech of recordings longer than the "
                                 "bundle's max_seconds, found by voice activity detection (music, noise "
                                 "and silence get no emotion; a file without speech gets status "
                                 "no_speech); clips are scored as in training either way. off: every "
                                 "window with sound")
        parser.add_argument("--batch_size", type=int, default=64, help="windows per inference batch")
        parser.add_argument("--max_seconds", type=float, default=None,
                            help="refuse recordings longer than this (default: no limit)")
        parser.add_argument("--summary", action="store_true",
                            help="print a per-file table at the end (true label where the file name "
                                 "follows a corpus's naming, predicted label, confidence)")
        parser.add_argument("--group_by", default=None, metavar="RULE",
                            help="speaker normalisation: also give each file a group_label, its emotion "
                                 "relative to the other files of its speaker or session, which takes off "
                                 "the pull an unheard voice has towards some classes. RULE: 'folder' (one "
                                 "folder per speaker) or a regular expression searched in the path whose "
                                 "capture group names the speaker (e.g. 'Actor_(\\d+)'). Assumes the "
                                 "groups act similar mixes of emotions; see README, Speaker normalisation")
        parser.add_argument("--min_group_files", type=int, default=MIN_GROUP_FILES, metavar="N",
                            help="with --group_by: smallest group normalised; files of smaller groups get "
                                 "no group_label (default: %(default)s)")


class _FlagNames:
    """Stands in for a parser to collect the flag names an options class adds."""

    def __init__(self):
        self.names: list[str] = []
        self.switches: list[str] = []   # flags that take no value

    def add_argument(self, *names, **kwargs):
        self.names.extend(names)
        if kwargs.get("action") in ("store_true", "store_false"):
            self.switches.extend(names)


def _recorded(options_class) -> _FlagNames:
    recorder = _FlagNames()
    for cls in (IOOptions, CommonOptions, options_class):
        cls._add_argparse_args(recorder)
    return recorder


def own_flags(options_class) -> list[str]:
    """The ``--flags`` a command documents in its ``--help``."""
    return sorted(_recorded(options_class).names)


def own_switches(options_class) -> set[str]:
    """The command's own flags that take no value (``--windows``)."""
    return set(_recorded(options_class).switches)


def wants_dask(argv: list[str]) -> bool:
    return any("DaskRunner" in a or a.startswith("--dask_") for a in argv)


def register_runner_options(argv: list[str]) -> None:
    """Make the flags of an optional runner known (Beam registers a runner's options when its module
    is imported): the DaskRunner's ``--dask_*`` flags when the command line names that runner."""
    if wants_dask(argv):
        try:
            import apache_beam.runners.dask.dask_runner  # noqa: F401  (registers DaskOptions)
        except ImportError as err:
            raise ValueError(f"the Dask runner needs apache-beam[dask] (pip install 'apache-beam[dask]'): "
                             f"{err}") from err


def unknown_flags(argv: list[str]) -> list[str]:
    """Flags in ``argv`` that neither this project nor Beam defines (e.g. ``--segmentz``)."""
    known = set(PipelineOptions([]).get_all_options())
    given = PipelineOptions(argv).get_all_options(retain_unknown_options=True)
    return sorted(f"--{name}" for name in set(given) - known)


def stray_arguments(argv: list[str], switches: set[str] = frozenset()) -> list[str]:
    """Words in ``argv`` that no flag takes: every flag here takes at most one value, so a word that does
    not follow a flag taking one (``--input a.wav b.wav``: ``b.wav``, often a glob the shell expanded)
    would be dropped without a word by Beam's parser. ``switches``: flags known to take no value."""
    def takes_next(flag: str) -> bool:
        return flag.startswith("-") and "=" not in flag and flag not in switches

    return [word for i, word in enumerate(argv) if not word.startswith("-") and (i == 0 or not takes_next(argv[i - 1]))]


def stray_message(words: list[str]) -> str:
    shown = " ".join(words[:3]) + (f" (and {len(words) - 3} more)" if len(words) > 3 else "")
    return (f"unexpected argument{'s' if len(words) > 1 else ''} {shown}: each flag takes one value; give "
            "--input once per file, folder or glob, and quote a glob ('archive/*.wav') so the shell does not "
            "expand it")


def unknown_flag_message(flags: list[str], options_class) -> str:
    """``unrecognized argument --segmentz (did you mean --segments?); valid: ...``."""
    valid = own_flags(options_class)
    parts = []
    for flag in flags:
        close = difflib.get_close_matches(flag, valid, n=1)
        parts.append(flag + (f" (did you mean {close[0]}?)" if close else ""))
    return (f"unrecognized argument{'s' if len(flags) > 1 else ''} {', '.join(parts)}; "
            f"this command's flags: {' '.join(valid)} (plus any Apache Beam pipeline option)")


def with_local_defaults(options: PipelineOptions, argv: list[str]) -> PipelineOptions:
    """Pick a runner that works offline and uses every core when none was named.

    Beam's default runner (and DirectRunner itself) first tries to download the
    Prism binary, which fails without internet; the FnApiRunner is what
    DirectRunner falls back to, so it is named directly, in Beam's
    multi-processing mode with one worker process per core.
    """
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = "FnApiRunner"
        direct = options.view_as(DirectOptions)
        if direct.direct_running_mode == "in_memory":
            direct.direct_running_mode = "multi_processing"
        if not names_flag(argv, "--direct_num_workers"):
            direct.direct_num_workers = os.cpu_count() or 1
    return options


def names_flag(argv, flag: str) -> bool:
    """Whether ``argv`` sets ``flag`` (``--flag value`` or ``--flag=value``)."""
    return any(arg == flag or arg.startswith(flag + "=") for arg in argv)


def is_local(options: PipelineOptions) -> bool:
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    name = runner if isinstance(runner, str) else type(runner).__name__
    return any(local in name for local in ("Direct", "FnApi", "Prism"))


def uses_dask(options: PipelineOptions) -> bool:
    runner = options.view_as(StandardOptions).runner or ""
    return "DaskRunner" in (runner if isinstance(runner, str) else type(runner).__name__)


def is_dry_run(options: PipelineOptions) -> bool:
    return bool(options.view_as(TestOptions).dry_run)


def print_help(options_class, prog: str, description: str, input_help: str, output_help: str) -> None:
    """``--help`` for our own flags only (Beam's full list runs to hundreds of lines)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog=prog, description=description,
        epilog="Any Apache Beam pipeline option is accepted too, e.g. --runner DataflowRunner "
               "--project P --region R --temp_location gs://B/tmp --setup_file ./setup.py; "
               "locally the default is Beam's FnApiRunner with one worker process per core.")
    IOOptions._add_argparse_args(parser, input_help, output_help)
    CommonOptions._add_argparse_args(parser)
    options_class._add_argparse_args(parser)
    parser.print_help()
