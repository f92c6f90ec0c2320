"""Bulk scoring: audio archives -> one Parquet row per file (and per window).

    MatchFiles per --input ─► dedupe by path (a shuffle) ─► FileWindows (decode in blocks, window, features)
        ─► BatchElements ─► Infer (model loaded once per worker in setup())
        ─► per-window rows ──────────────────────────────► [PREFIX.windows.parquet]
        ─► mean per file ─► join with file info ─► rows ─► PREFIX.files.parquet
    failures anywhere ─► dead letters (and a row with `error`) ─► PREFIX.dead_letters.jsonl

Windows of one long file are emitted as they are decoded and scored in batches
as they come (the steps are fused), so an hours-long recording is never held in
memory. One file is scored by one worker.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import apache_beam as beam
import numpy as np
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, TestOptions

from pipelines.options import (SCORE_INPUT_HELP, SCORE_OUTPUT_HELP, IOOptions, ScoreOptions, announce_matches,
                               is_local, names_flag, print_help, with_local_defaults, console_logging, wants_help)
from pipelines.tfrecord_sink import write_text
from ser_model.bundle import named_outputs
from ser_model.fast_exit import skip_final_gc
from ser_model.labels import LabelSet

LOG = logging.getLogger("ser.score")
DEAD = "dead_letter"
INFO = "file_info"


class FileWindows(beam.DoFn):
    """FileMetadata -> ``(path, index, start_s, logmel, mfcc)`` per window with sound.

    Also yields ``file_info`` ``(path, duration_s)`` for every decodable file and
    ``dead_letter`` rows for files that cannot be read or hold no usable sound.
    """

    def __init__(self, features: dict, max_seconds: float | None):
        self.features, self.max_seconds = features, max_seconds
        self.files = Metrics.counter("score", "files_opened")
        self.failed = Metrics.counter("score", "files_failed")

    def setup(self):
        from threadpoolctl import threadpool_limits

        from ser_model.features import FeatureConfig

        self.cfg = FeatureConfig.from_dict(self.features)
        self._blas = threadpool_limits(limits=1, user_api="blas")
        skip_final_gc()  # worker processes are stopped one by one: each exit counts

    def process(self, meta):
        from ser_model.audio import AudioError
        from ser_model.features import compute_features
        from ser_model.streaming import open_windows

        path = meta.path
        n = 0
        try:
            if meta.size_in_bytes == 0:
                raise AudioError("empty-file", "file is empty (0 bytes)")
            with FileSystems.open(path, compression_type="uncompressed") as f:
                rec = open_windows(f, self.cfg, max_seconds=self.max_seconds)
                for win in rec.windows:
                    logmel, mfcc = compute_features(win.samples, self.cfg)
                    n += 1
                    yield path, win.index, win.start_s, logmel, mfcc
            if n == 0:
                raise AudioError("silent", "no window with sound in it")
        except AudioError as err:
            self.failed.inc()
            yield beam.pvalue.TaggedOutput(DEAD, _dead(path, "decode", err.kind, str(err)))
            return
        except Exception as err:  # one bad file must never end the run
            self.failed.inc()
            yield beam.pvalue.TaggedOutput(DEAD, _dead(path, "read", type(err).__name__, str(err)))
            return
        self.files.inc()
        yield beam.pvalue.TaggedOutput(INFO, (path, {"duration_s": rec.duration_s, "n_windows": n}))


def _dead(path, stage, error_type, message):
    return {"path": path, "stage": stage, "error_type": error_type, "message": message}


class Infer(beam.DoFn):
    """A batch of windows -> ``(path, index, start_s, probs, gender_probs or None)`` each.

    The model is loaded once per worker, in ``setup()``.
    """

    def __init__(self, bundle_path: str):
        self.bundle_path = bundle_path
        self.windows = Metrics.counter("score", "windows_scored")

    def setup(self):
        import tensorflow as tf

        # Beam runs one worker per core: one TensorFlow thread each avoids oversubscription.
        if os.environ.get("SER_TF_THREADS"):
            threads = int(os.environ["SER_TF_THREADS"])
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        from ser_model.bundle import load_bundle

        self.bundle = load_bundle(self.bundle_path)

    def process(self, batch):
        logmel = np.stack([b[3] for b in batch])[..., None]
        mfcc = np.stack([b[4] for b in batch])[..., None]
        out = named_outputs(self.bundle.model.predict_on_batch({"logmel": logmel, "mfcc": mfcc}))
        probs = np.asarray(out["emotion"], np.float64)
        gender = np.asarray(out["gender"], np.float64) if "gender" in out else None
        self.windows.inc(len(batch))
        for i, (path, index, start, _, _) in enumerate(batch):
            yield path, index, start, probs[i], (gender[i] if gender is not None else None)


class MeanProbs(beam.CombineFn):
    """Averages window probabilities of a file (the same rule as training's evaluation)."""

    def create_accumulator(self):
        return None, None, 0

    def add_input(self, acc, scored):
        probs, gender = scored
        return self.merge_accumulators([acc, (probs, gender, 1)])

    def merge_accumulators(self, accs):
        total = gender = None
        n = 0
        for t, g, k in accs:
            if t is not None:
                total = t if total is None else total + t
            if g is not None:
                gender = g if gender is None else gender + g
            n += k
        return total, gender, n

    def extract_output(self, acc):
        total, gender, n = acc
        return total / n, (gender / n if gender is not None else None), n


def file_row(path: str, info: dict, mean, classes, gender_classes, model_id: str) -> dict:
    """One Parquet row of the files table (the scoring contract)."""
    probs, gender, _ = mean
    best = int(np.argmax(probs))
    row = {"path": path, "duration_s": float(info["duration_s"]), "n_windows": int(info["n_windows"]),
           "label": classes[best], "confidence": float(probs[best]),
           **{f"p_{c}": float(p) for c, p in zip(classes, probs)}}
    if gender_classes:
        row["gender"] = gender_classes[int(np.argmax(gender))]
        row["gender_confidence"] = float(np.max(gender))
    row.update(model_id=model_id, error=None)
    return row


def error_row(dead: dict, classes, gender_classes, model_id: str) -> dict:
    row = {"path": dead["path"], "duration_s": None, "n_windows": 0, "label": None, "confidence": None,
           **{f"p_{c}": None for c in classes}}
    if gender_classes:
        row.update(gender=None, gender_confidence=None)
    row.update(model_id=model_id, error=f"{dead['error_type']}: {dead['message']}")
    return row


def join_file(element, classes, gender_classes, model_id):
    """File info + mean probabilities -> a row; a file with one but not the other still gets a row."""
    path, grouped = element
    infos, means = list(grouped["info"]), list(grouped["mean"])
    if infos and means:
        yield file_row(path, infos[0], means[0], classes, gender_classes, model_id)
    else:  # never silently lose a file: say what went missing
        missing = "scores" if infos else "file info"
        yield error_row(_dead(path, "score", "internal", f"no {missing} for this file"),
                        classes, gender_classes, model_id)


def window_row(scored, classes, window_seconds: float) -> dict:
    path, index, start, probs, _ = scored
    best = int(np.argmax(probs))
    return {"path": path, "window_index": int(index), "start_s": float(start),
            "end_s": float(start) + window_seconds, "label": classes[best], "confidence": float(probs[best]),
            **{f"p_{c}": float(p) for c, p in zip(classes, probs)}}


def files_schema(classes, gender_classes):
    import pyarrow as pa

    fields = [("path", pa.string()), ("duration_s", pa.float64()), ("n_windows", pa.int64()),
              ("label", pa.string()), ("confidence", pa.float64())]
    fields += [(f"p_{c}", pa.float64()) for c in classes]
    if gender_classes:
        fields += [("gender", pa.string()), ("gender_confidence", pa.float64())]
    fields += [("model_id", pa.string()), ("error", pa.string())]
    return pa.schema(fields)


def windows_schema(classes):
    import pyarrow as pa

    return pa.schema([("path", pa.string()), ("window_index", pa.int64()), ("start_s", pa.float64()),
                      ("end_s", pa.float64()), ("label", pa.string()), ("confidence", pa.float64())]
                     + [(f"p_{c}", pa.float64()) for c in classes])


def build_pipeline(p: beam.Pipeline, inputs: list[str], output: str, bundle: dict, with_windows: bool,
                   batch_size: int, max_seconds: float | None) -> None:
    """Add the scoring pipeline to ``p``; ``bundle`` is :func:`ser_model.bundle.read_bundle_meta`."""
    classes, genders, model_id = bundle["classes"], bundle["gender_classes"], bundle["model_id"]
    files = ([p | f"Match{i}" >> fileio.MatchFiles(glob, empty_match_treatment=fileio.EmptyMatchTreatment.ALLOW)
              for i, glob in enumerate(inputs)]
             | "AllInputs" >> beam.Flatten()
             | "ByPath" >> beam.Map(lambda m: (m.path, m))
             | "Dedupe" >> beam.CombinePerKey(lambda metas: next(iter(metas)))  # also the reshuffle
             | "Meta" >> beam.Values())
    decoded = files | "Windows" >> beam.ParDo(FileWindows(bundle["features"], max_seconds)).with_outputs(
        DEAD, INFO, main="windows")
    scored = (decoded.windows
              | "Batch" >> beam.BatchElements(min_batch_size=min(8, batch_size), max_batch_size=batch_size)
              | "Infer" >> beam.ParDo(Infer(bundle["path"])))
    means = (scored
             | "ByFile" >> beam.Map(lambda s: (s[0], (s[3], s[4])))
             | "MeanPerFile" >> beam.CombinePerKey(MeanProbs()))
    rows = ({"info": decoded[INFO], "mean": means}
            | "Join" >> beam.CoGroupByKey()
            | "FileRows" >> beam.FlatMap(join_file, classes, genders, model_id))
    dead = decoded[DEAD]
    failed_rows = dead | "ErrorRows" >> beam.Map(error_row, classes, genders, model_id)
    ((rows, failed_rows)
     | "AllRows" >> beam.Flatten()
     | "WriteFiles" >> beam.io.WriteToParquet(f"{output}.files", files_schema(classes, genders),
                                              file_name_suffix=".parquet", num_shards=1,
                                              shard_name_template=""))
    if with_windows:
        (scored
         | "WindowRows" >> beam.Map(window_row, classes, bundle["features"]["window_seconds"])
         | "WriteWindows" >> beam.io.WriteToParquet(f"{output}.windows", windows_schema(classes),
                                                    file_name_suffix=".parquet", num_shards=1,
                                                    shard_name_template=""))
    (dead
     | "DeadList" >> beam.combiners.ToList()
     | "WriteDead" >> beam.Map(lambda rows: write_text(
         f"{output}.dead_letters.jsonl",
         "".join(json.dumps(r, sort_keys=True) + "\n" for r in sorted(rows, key=lambda r: r["path"])))))
    counts = {"inputs": files | "CountInputs" >> beam.combiners.Count.Globally(),
              "scored": rows | "CountScored" >> beam.combiners.Count.Globally(),
              "failed": dead | "CountFailed" >> beam.combiners.Count.Globally()}
    (p | "One" >> beam.Create([None])
       | "Counts" >> beam.Map(lambda _, **c: c, **{k: beam.pvalue.AsSingleton(v) for k, v in counts.items()})
       | "WriteCounts" >> beam.Map(lambda c: write_text(f"{output}.counts.json", json.dumps(c))))


def run(argv: list[str] | None = None) -> int:
    console_logging()
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_help(argv):
        print_help(ScoreOptions, "ser score", "Score audio archives with a model bundle into Parquet.",
                   SCORE_INPUT_HELP, SCORE_OUTPUT_HELP)
        return 0
    options = PipelineOptions(argv)
    opts, io = options.view_as(ScoreOptions), options.view_as(IOOptions)
    from ser_model.bundle import read_bundle_meta

    try:
        if not io.input:
            raise ValueError("give at least one --input file, folder or glob")
        if not io.output:
            raise ValueError("give --output, the prefix of the Parquet files")
        bundle = read_bundle_meta(opts.model)
    except (ValueError, FileNotFoundError) as err:
        print(f"ser score: error: {err}", file=sys.stderr)
        return 2
    inputs = [g if any(ch in g for ch in "*?[") else g.rstrip("/") + ("/**" if _is_dir(g) else "")
              for g in io.input]
    options = with_local_defaults(options, argv)
    if is_local(options):
        os.environ.setdefault("SER_TF_THREADS", "1")
        n_files = announce_matches(((glob, glob) for glob in inputs), LOG)
        if not n_files:
            print("ser score: error: no input file matched; nothing was written", file=sys.stderr)
            return 2
        direct = options.view_as(DirectOptions)
        if not names_flag(argv, "--direct_num_workers") and 0 < n_files < direct.direct_num_workers:
            # A file is decoded and scored by one worker; an idle worker would still load
            # TensorFlow and the model (~0.9 GB), so start no more workers than files.
            direct.direct_num_workers = n_files
    output = io.output
    parent = os.path.dirname(output)
    if parent and "://" not in output:
        os.makedirs(parent, exist_ok=True)
    started = time.monotonic()
    with beam.Pipeline(options=options) as p:
        build_pipeline(p, inputs, output, bundle, opts.windows, opts.batch_size, opts.max_seconds)
    if options.view_as(TestOptions).dry_run:
        print("dry run: the job was built, not submitted")
        return 0
    with FileSystems.open(f"{output}.counts.json") as f:
        counts = json.loads(f.read())
    FileSystems.delete([f"{output}.counts.json"])
    balanced = counts["inputs"] == counts["scored"] + counts["failed"]
    print(f"inputs {counts['inputs']} = scored {counts['scored']} + failed {counts['failed']}"
          + ("" if balanced else "  (MISMATCH: files were lost)"))
    if opts.summary:
        print(summary_table(f"{output}.files.parquet", LabelSet.from_json(bundle["label_set"])))
    print(f"wrote {output}.files.parquet" + (f" and {output}.windows.parquet" if opts.windows else "")
          + f" in {time.monotonic() - started:.1f} s (model {bundle['model_id']})")
    return 0 if balanced else 1


def summary_table(parquet_path: str, label_set) -> str:
    """A readable per-file table of a files table (true labels in the model's label set)."""
    import pyarrow.parquet as pq

    from ser_model.corpora import expected_class
    from ser_model.labels import load_label_table

    table = load_label_table()
    lines = [f"{'file':34s} {'true':>9s} {'predicted':>10s} {'conf':>5s} {'gender':>7s}"]
    correct = known = 0
    for row in sorted(pq.read_table(parquet_path).to_pylist(), key=lambda r: r["path"]):
        true = expected_class(row["path"], table, label_set)
        name = row["path"].rsplit("/", 1)[-1][:34]
        if row["error"]:
            lines.append(f"{name:34s} {true:>9s}  error: {row['error']}")
            continue
        if true not in ("?", "-"):
            known += 1
            correct += true == row["label"]
        lines.append(f"{name:34s} {true:>9s} {row['label']:>10s} {row['confidence']:5.2f} "
                     f"{row.get('gender') or '':>7s}")
    if known:
        lines.append(f"{correct}/{known} correct where the file name gives the true label")
    return "\n".join(lines)


def _is_dir(path: str) -> bool:
    return "://" not in path and os.path.isdir(path)


def main() -> None:
    skip_final_gc()
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
