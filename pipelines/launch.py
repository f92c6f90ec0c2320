"""The one run skeleton of both pipeline commands (``ser features``, ``ser score``).

:func:`run_command` does what both share, in this order: ``--help``; flags
checked (a mistyped one is an error, exit 2); the command's frozen job resolved
from flags and configs (bad values: exit 2); the output checked for being
writable before any work; local defaults (every core, offline runner); unless
it is a dry run, each input's matches counted (nothing matched: exit 2; the
count also sizes the job, :class:`RunLayout`); a progress line on a local run;
the pipeline; ``--dry_run``; then the command's own summary.
A command supplies its part as a :class:`PipelineCommand`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import (CommonOptions, is_dry_run, is_local, names_flag, own_switches, print_help,
                               register_runner_options, stray_arguments, stray_message, unknown_flag_message,
                               unknown_flags, uses_dask, with_local_defaults)
from pipelines.progress import ProgressLine, Ticks
from ser_model import storage
from ser_model.config import ConfigError
from ser_model.outputs import check_writable

GLOB_CHARS = "*?["
# A Dask run's partitions when --dask_npartitions is not given: a few per worker thread, so that
# workers that finish early take more; not many more, as every shuffle costs partitions^2 tasks.
PARTITIONS_PER_DASK_THREAD = 4


@dataclass(frozen=True)
class RunLayout:
    """How a run spreads its work, decided at launch and handed to the command's ``build``."""

    n_files: int = 0              # files the inputs matched at launch (0: not counted, a dry run)
    list_shards: int = 1          # parts the inputs are listed in (pipelines.portable.list_inputs)
    ticks: Ticks = field(default_factory=lambda: Ticks(None))   # progress of a local run


class UsageError(ValueError):
    """Bad flags or settings: reported in one line, exit status 2, nothing written."""


class PipelineCommand:
    """What a pipeline command adds to :func:`run_command`. Subclasses set the class attributes."""

    prog = ""                 # "ser features"
    description = ""
    options_class: type = PipelineOptions
    input_help = ""
    output_help = ""
    progress_label = ""       # "featurised", "scored"

    def make_job(self, options: PipelineOptions) -> Any:
        """Flags and configs -> a frozen job with ``inputs`` ((shown name, glob) pairs) and ``output``.

        Raises :class:`UsageError` (or ConfigError, ValueError, FileNotFoundError) for bad input.
        """
        raise NotImplementedError

    def check_output(self, job) -> None:
        """Raise :class:`ser_model.outputs.OutputError` if the job's output cannot be written."""
        check_writable(job.output)

    def count_inputs(self, job) -> int:
        """Print how many files each input holds (before the pipeline); return the total."""
        return count_matches(job.inputs, self.prog)

    def tune_local(self, options: PipelineOptions, argv: list[str], job, n_files: int) -> None:
        """Adjust a local run's options once the number of input files is known."""

    def build(self, p: beam.Pipeline, job, layout: RunLayout) -> None:
        raise NotImplementedError

    def abandon(self, job) -> None:
        """Delete what a failed run staged (its outputs are published only by :meth:`finish`)."""

    def finish(self, job, seconds: float) -> int:
        """Print the outcome of a finished run; return the exit status."""
        raise NotImplementedError


def run_command(command: PipelineCommand, argv: list[str]) -> int:
    argv = list(argv)
    if "-h" in argv or "--help" in argv:
        print_help(command.options_class, command.prog, command.description, command.input_help,
                   command.output_help)
        return 0
    try:
        register_runner_options(argv)
        unknown = unknown_flags(argv)
        if unknown:
            raise UsageError(unknown_flag_message(unknown, command.options_class))
        stray = stray_arguments(argv, own_switches(command.options_class))
        if stray:
            raise UsageError(stray_message(stray))
        options = PipelineOptions(argv)
        console_logging(options.view_as(CommonOptions).verbose)
        job = command.make_job(options)
        command.check_output(job)
    except (UsageError, ConfigError, ValueError, FileNotFoundError) as err:
        print(f"{command.prog}: error: {err}", file=sys.stderr)
        return 2
    options = with_local_defaults(options, argv)
    local, dry_run = is_local(options), is_dry_run(options)
    n_files = 0
    if not dry_run:
        n_files = command.count_inputs(job)
        if not n_files:
            # A mistyped path must not replace a good output with an empty one.
            print(f"{command.prog}: error: no input file matched; nothing was written", file=sys.stderr)
            return 2
        if local:
            command.tune_local(options, argv, job, n_files)
    try:
        layout = RunLayout(n_files, list_shards(options, argv))
    except (OSError, TimeoutError) as err:   # a Dask scheduler that cannot be reached
        print(f"{command.prog}: error: {err}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        if local and not dry_run:
            with ProgressLine(n_files, command.progress_label) as progress:
                with beam.Pipeline(options=options) as p:
                    command.build(p, job, replace(layout, ticks=progress.ticks))
        else:
            with beam.Pipeline(options=options) as p:
                command.build(p, job, layout)
    except BaseException:
        if not dry_run:
            command.abandon(job)
        raise
    if dry_run:
        print("dry run: the job was built, not submitted")
        return 0
    return command.finish(job, time.monotonic() - started)


def list_shards(options: PipelineOptions, argv: list[str]) -> int:
    """Parts to list the inputs in: one per partition on the DaskRunner (whose bags keep the
    partitions they start with: ``--dask_npartitions``, else :data:`PARTITIONS_PER_DASK_THREAD` per
    thread of the cluster's workers), one elsewhere."""
    if not uses_dask(options):
        return 1
    if is_dry_run(options):
        return PARTITIONS_PER_DASK_THREAD
    from apache_beam.runners.dask.dask_runner import DaskOptions

    dask = options.view_as(DaskOptions)
    if dask.npartitions is None and not names_flag(argv, "--dask_partition_size"):
        dask.npartitions = PARTITIONS_PER_DASK_THREAD * dask_threads(dask)   # the flag's dest
    return dask.npartitions or PARTITIONS_PER_DASK_THREAD * (os.cpu_count() or 1)


def dask_threads(dask) -> int:
    """Worker threads of the cluster the run will use (the runner starts one on this machine when
    no scheduler is named)."""
    if not (dask.address or dask.scheduler_file):
        return os.cpu_count() or 1
    import distributed

    where = dask.address or dask.scheduler_file
    try:
        with distributed.Client(address=dask.address, scheduler_file=dask.scheduler_file,
                                timeout=dask.timeout or 30) as client:
            return max(1, sum(client.nthreads().values()))
    except (OSError, TimeoutError) as err:
        raise OSError(f"cannot reach the Dask scheduler at {where}: {err}") from err


def console_logging(verbose: bool = False) -> None:
    """Our progress on stderr; Beam's, absl's and TensorFlow's loggers only for errors unless verbose."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for noisy in ("apache_beam", "absl", "tensorflow", "distributed"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)


def expand_input(spec: str) -> str:
    """The one folder -> glob rule: a glob stays as given, a folder means everything below it.

    Without glob characters: a path ending in ``/`` or a local folder is a folder
    (``spec/**``); a local file is itself. A remote path (``gs://``, ``s3://``) is
    read as a file when its last part has an extension (``.wav``), otherwise as a
    folder: deciding needs no request to the storage service.
    """
    if any(ch in spec for ch in GLOB_CHARS):
        return spec
    if spec.endswith("/"):
        return spec + "**"
    if "://" not in spec:
        return spec + "/**" if os.path.isdir(spec) else spec
    return spec if "." in spec.rsplit("/", 1)[-1] else spec + "/**"


def count_matches(inputs, prog: str) -> int:
    """Print how many files each ``(name, glob)`` input matches; return the total.

    Both pipelines match again inside the job; this is for the console, so a
    user sees at once that a path matched nothing.
    """
    total = 0
    for name, glob in inputs:
        n = len(storage.list_files(glob))
        total += n
        print(f"{prog}: input {name}: {n} files" + ("  (matched nothing)" if n == 0 else ""),
              file=sys.stderr)
    return total


def balance_line(inputs: int, parts: dict[str, int]) -> tuple[str, bool]:
    """``inputs 12 = written 10 + skipped 1 + failed 1`` and whether the parts add up."""
    balanced = inputs == sum(parts.values())
    text = f"inputs {inputs} = " + " + ".join(f"{k} {v}" for k, v in parts.items())
    return text + ("" if balanced else "  (MISMATCH: files were lost)"), balanced
