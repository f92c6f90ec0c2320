"""Bulk scoring: audio archives -> one Parquet row per file (and per window, per speech segment).

    list the inputs (pipelines.portable) -> one element per distinct path
    -> Plan (the header): a clip is one unit; a long recording is voice-activity pieces, or window chunks
    -> spread -> Voice (pieces -> frame probabilities)
    -> by file -> Speech (a long recording's probabilities -> speech segments -> window chunks)
    -> spread -> Windows (clips and chunks: decode, window, featurise, batch) -> Infer (one model per process)
    -> by file -> join: one files-table row per file (scored | no_speech | failed, with one dead letter),
       its window rows, its segment rows -> PREFIX.files / .windows / .segments.parquet, .dead_letters.jsonl
    -> one last step that reads every output's counts and writes PREFIX.counts.json

Short clips travel as paths, grouped 32 a group for many files; each piece and
window chunk of a long recording is a group of its own, so one recording is
shared by all workers, each decoding only its ranges (ser_model.streaming) and
memory staying bounded. The steps form one chain: each passes on the elements
it does not handle, ``(kind, path, payload)`` triples, so no step merges two
collections. Every step has one output, no step emits anything from
``finish_bundle`` or reads a side input, and the job ends in one step that
depends on all outputs: the shape Beam's DaskRunner runs correctly and in
parallel (see pipelines.portable).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import DirectOptions

from pipelines.dead_letters import DEAD, dead_letter, to_jsonl
from pipelines.launch import PipelineCommand, RunLayout, UsageError, balance_line, expand_input, run_command
from pipelines.options import IOOptions, SCORE_INPUT_HELP, SCORE_OUTPUT_HELP, ScoreOptions, names_flag
from pipelines.portable import count, gather, list_inputs
from pipelines.progress import Ticks
from pipelines.tagged import by_tag
from pipelines.worker import one_blas_thread
from ser_model import storage
from ser_model.aggregate import file_probabilities, segment_probabilities
from ser_model.calibration import apply_temperature
from ser_model.bundle import named_outputs
from ser_model.speaker_norm import MIN_GROUP_FILES, GroupRuleError, group_rule, normalise_by_group

@dataclass(frozen=True)
class ScoreJob:
    """Everything a scoring run needs, resolved from the flags and the bundle before the pipeline is built."""

    inputs: tuple[tuple[str, str], ...]   # (name shown, glob)
    output: str                           # prefix of the output files
    staging: str                          # prefix this run writes to until it succeeds
    bundle: dict                          # ser_model.bundle.read_bundle_meta
    windows: bool
    segments: bool
    vad: str                              # "long" | "off"
    batch_size: int
    max_seconds: float | None
    summary: bool
    group_by: str | None = None           # speaker normalisation's rule (ser_model.speaker_norm.group_rule)
    min_group_files: int = MIN_GROUP_FILES


def make_job(opts: ScoreOptions, io: IOOptions) -> ScoreJob:
    from ser_model.bundle import read_bundle_meta

    if not io.input:
        raise UsageError("give at least one --input file, folder or glob")
    if not io.output:
        raise UsageError("give --output, the prefix of the Parquet files")
    if opts.batch_size < 1:
        raise UsageError(f"--batch_size must be at least 1, not {opts.batch_size}")
    if opts.segments and opts.vad == "off":
        raise UsageError("--segments needs voice activity detection (--vad long)")
    if opts.group_by is not None:
        try:
            group_rule(opts.group_by)
        except GroupRuleError as err:
            raise UsageError(f"--group_by: {err}") from None
        if opts.min_group_files < 1:
            raise UsageError(f"--min_group_files must be at least 1, not {opts.min_group_files}")
    return ScoreJob(inputs=tuple((spec, expand_input(spec)) for spec in io.input), output=io.output,
                    staging=f"{io.output}.staging-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}",
                    bundle=read_bundle_meta(opts.model), windows=opts.windows, segments=opts.segments,
                    vad=opts.vad, batch_size=opts.batch_size,
                    max_seconds=opts.max_seconds, summary=opts.summary, group_by=opts.group_by,
                    min_group_files=opts.min_group_files)


FILES_PER_GROUP = 32   # short files decoded, windowed and batched together by one worker
MAX_SPREAD = 64        # up to this many files, every short file is a group of its own


def file_groups(n_files: int) -> int:
    """How many groups ``n_files`` short files are spread over: one per file for a few, ``FILES_PER_GROUP``
    a group for many (fuller batches, fewer elements)."""
    return max(min(n_files, MAX_SPREAD), -(-n_files // FILES_PER_GROUP), 1)


# What travels between the steps: (kind, path, payload) triples (see build_pipeline).
CLIP, PIECE, LONG, PROBS = "clip", "vad_piece", "long_file", "piece_probs"
CHUNK, INFO, BATCH, WINDOW = "window_chunk", "file_info", "batch", "window"


def spread_key(element, n_files: int) -> str:
    """The shuffle key of an element: short clips share groups (``file_groups``), every piece and window
    chunk of a long recording is a group of its own (so the workers share one recording), and everything
    else about a file meets in that file's group."""
    from ser_model.splits import stable_hash

    kind, path, payload = element
    if kind == CLIP:
        return f"files/{stable_hash('score-group', path) % file_groups(n_files)}"
    if kind in (PIECE, CHUNK):
        return f"{kind}/{path}/{payload[0]}"
    return f"file/{path}"


def spread(elements, label: str, n_files: int):
    """Group the elements by :func:`spread_key` for the next step, which gets ``(key, [elements])``."""
    return (elements | f"{label}Key" >> beam.Map(lambda e: (spread_key(e, n_files), e))
            | f"{label}" >> beam.GroupByKey())


class _Decoding(beam.DoFn):
    """A step that opens audio files with the bundle's feature settings."""

    def __init__(self, features: dict, max_seconds: float | None, vad: dict | None, ticks: Ticks = Ticks(None)):
        self.features, self.max_seconds, self.vad_settings, self.ticks = features, max_seconds, vad, ticks

    def setup(self):
        from ser_model.features import FeatureConfig
        from ser_model.vad import VadConfig

        self.cfg = FeatureConfig.from_dict(self.features)
        self.vad = VadConfig(**self.vad_settings) if self.vad_settings is not None else None
        self._blas = one_blas_thread()


def failed(path: str, err: Exception) -> tuple:
    """``(DEAD, path, dead letter)`` for an exception met while reading ``path``."""
    from ser_model.audio import AudioError

    if isinstance(err, AudioError):
        return DEAD, path, dead_letter(path, "decode", err.kind, str(err))
    return DEAD, path, dead_letter(path, "read", type(err).__name__, str(err))


class PlanFiles(_Decoding):
    """A file -> its units of work, from its header. A short clip is one ``CLIP``; a long recording is,
    with voice activity on, its ``PIECE`` s ``(k, span)`` and one ``LONG`` (its facts), without, its
    ``INFO`` and ``CHUNK`` s ``(c, [WindowSpec], last)`` (see ``ser_model.streaming``). A file that cannot
    be opened is a ``DEAD`` letter."""

    def process(self, meta):
        from ser_model import audio, streaming

        path = meta.path
        try:
            if meta.size_in_bytes == 0:
                raise audio.AudioError("empty-file", "file is empty (0 bytes)")
            with storage.open_read(path) as f:
                snd = audio.open_sound(f)
                duration = streaming.check_duration(snd, self.max_seconds)
                units = list(self._long(path, snd, duration)) if streaming.is_long(duration, self.cfg) else None
        except Exception as err:  # one bad file must never end the run
            self.ticks.tick()
            yield failed(path, err)
            return
        yield from units if units is not None else [(CLIP, path, meta)]

    def _long(self, path, snd, duration):
        from ser_model import streaming

        samples = streaming.model_rate_length(snd, self.cfg)
        if self.vad is not None:
            spans = streaming.vad_pieces(snd, self.cfg, self.vad)
            yield LONG, path, {"duration_s": duration, "pieces": len(spans), "samples": samples}
            for k, span in enumerate(spans):
                yield PIECE, path, (k, span)
            return
        yield INFO, path, {"duration_s": duration, "speech_s": None, "segments": None}
        yield from chunk_units(path, streaming.window_plan(samples, self.cfg), self.ticks)


def chunk_units(path: str, plan, ticks: Ticks):
    from ser_model.streaming import window_chunks

    chunks = window_chunks(plan)
    for c, chunk in enumerate(chunks):
        yield CHUNK, path, (c, chunk, c == len(chunks) - 1)
    if not chunks:
        ticks.tick()


class VoicePieces(_Decoding):
    """``PIECE`` -> ``PROBS`` ``(k, frame probabilities)``, or a ``DEAD`` letter; the rest passes."""

    def process(self, element):
        from ser_model import audio, streaming

        for kind, path, payload in element[1]:
            if kind != PIECE:
                yield kind, path, payload
                continue
            k, span = payload
            try:
                with storage.open_read(path) as f:
                    probs = streaming.piece_probabilities(audio.open_sound(f), span, self.cfg, self.vad)
            except Exception as err:  # one bad file must never end the run
                yield failed(path, err)
                continue
            yield PROBS, path, (k, probs)


def speech_plan(element, features: dict, vad: dict | None, ticks: Ticks):
    """A long recording's ``LONG`` and its pieces' ``PROBS`` -> its ``INFO`` (speech segments) and window
    ``CHUNK`` s; nothing more if a piece is missing (that piece's dead letter fails the file). The rest
    passes."""
    from ser_model import streaming
    from ser_model.features import FeatureConfig
    from ser_model.vad import VadConfig

    longs, probs = [], {}
    for kind, path, payload in element[1]:
        if kind == LONG:
            longs.append((path, payload))
        elif kind == PROBS:
            probs[payload[0]] = payload[1]
        else:
            yield kind, path, payload
    if not longs:
        return
    path, facts = longs[0]
    if len(probs) != facts["pieces"]:
        ticks.tick()   # the file is done: a dead letter from its failed piece says why
        return
    segments = streaming.speech_segments([probs[k] for k in sorted(probs)], facts["duration_s"], VadConfig(**vad))
    yield INFO, path, {"duration_s": facts["duration_s"], "segments": [list(map(float, s)) for s in segments],
                       "speech_s": round(sum(e - s for s, e in segments), 3)}
    yield from chunk_units(path, streaming.window_plan(facts["samples"], FeatureConfig.from_dict(features),
                                                       segments), ticks)


class GroupWindows(_Decoding):
    """``CLIP`` s and ``CHUNK`` s -> ``BATCH`` es of at most ``batch_size`` windows with sound
    ``(path, index, start_s, logmel, mfcc, segment)``, across the group's units (in order, each once);
    ``segment`` is the speech segment of a long recording's window (voice activity on). Also an ``INFO``
    for every decodable clip and a ``DEAD`` letter for a clip or chunk that cannot be read or holds no
    usable sound. The rest passes.
    """

    def __init__(self, features: dict, max_seconds: float | None, batch_size: int, vad: dict | None = None,
                 ticks: Ticks = Ticks(None)):
        super().__init__(features, max_seconds, vad, ticks)
        self.batch_size = batch_size

    def process(self, element):
        units = {}
        for kind, path, payload in element[1]:
            if kind == CLIP:
                units[(kind, path)] = (kind, path, payload)   # a unit twice in a group is decoded once
            elif kind == CHUNK:
                units[(kind, path, payload[0])] = (kind, path, payload)
            else:
                yield kind, path, payload
        batch = []
        for key in sorted(units):
            kind, path, payload = units[key]
            for out in self._clip(path, payload) if kind == CLIP else self._chunk(path, *payload[1:]):
                if out[0] != BATCH:
                    yield out
                    continue
                batch.append(out[2])
                if len(batch) == self.batch_size:
                    yield BATCH, None, batch
                    batch = []
        if batch:
            yield BATCH, None, batch

    def _clip(self, path, meta):
        """One short file: ``BATCH`` per window (as decoded), then its ``INFO``; or a ``DEAD`` letter."""
        from ser_model.audio import AudioError
        from ser_model.streaming import open_windows

        try:
            with storage.open_read(path) as f:
                rec = open_windows(f, self.cfg, max_seconds=self.max_seconds)
                windows = list(featurize_rows(path, rec.windows, self.cfg))
            if not windows:
                raise AudioError("silent", "no window with sound in it")
        except Exception as err:  # one bad file must never end the run
            yield failed(path, err)
            return
        finally:
            self.ticks.tick()
        for row in windows:
            yield BATCH, path, row
        yield INFO, path, {"duration_s": rec.duration_s, "speech_s": None, "segments": None}

    def _chunk(self, path, chunk, last):
        """One window chunk of a long recording: ``BATCH`` per window with sound; or a ``DEAD`` letter."""
        from ser_model import audio, streaming

        try:
            with storage.open_read(path) as f:
                rows = list(featurize_rows(path, streaming.chunk_windows(audio.open_sound(f), chunk, self.cfg),
                                           self.cfg))
        except Exception as err:  # one bad file must never end the run
            yield failed(path, err)
            return
        finally:
            if last:
                self.ticks.tick()
        for row in rows:
            yield BATCH, path, row


def featurize_rows(path: str, windows, cfg):
    from ser_model.extract import featurize_windows

    for win in featurize_windows(windows, cfg):
        yield path, win.index, win.start_s, win.logmel, win.mfcc, win.segment


_BUNDLES: dict = {}


def cached_bundle(path: str):
    """The bundle at ``path``, loaded once per worker process: runners that call ``DoFn.setup`` for
    every bundle of work (Beam's DaskRunner: every partition) do not reload the model each time."""
    if path not in _BUNDLES:
        from ser_model.bundle import load_bundle

        _BUNDLES[path] = load_bundle(path)
    return _BUNDLES[path]


class Infer(beam.DoFn):
    """A ``BATCH`` of windows -> a ``WINDOW`` ``(index, probs, gender_probs or None, segment, start_s)``
    each; the rest passes.

    The model is loaded once per worker process (:func:`cached_bundle`).
    """

    def __init__(self, bundle_path: str):
        self.bundle_path = bundle_path

    def setup(self):
        import tensorflow as tf

        # Beam runs one worker per core: one TensorFlow thread each avoids oversubscription.
        if os.environ.get("SER_TF_THREADS"):
            threads = int(os.environ["SER_TF_THREADS"])
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        self.bundle = cached_bundle(self.bundle_path)

    def process(self, element):
        kind, path, batch = element
        if kind != BATCH:
            yield element
            return
        logmel = np.stack([b[3] for b in batch])[..., None]
        mfcc = np.stack([b[4] for b in batch])[..., None]
        out = named_outputs(self.bundle.model.predict_on_batch({"logmel": logmel, "mfcc": mfcc}))
        probs = np.asarray(out["emotion"], np.float64)
        gender = np.asarray(out["gender"], np.float64) if "gender" in out else None
        for i, (path, index, start, _, _, segment) in enumerate(batch):
            yield WINDOW, path, (index, probs[i], gender[i] if gender is not None else None, segment, start)


def file_row(path: str, info: dict, probs, gender, classes, gender_classes, model_id: str) -> dict:
    """One Parquet row of the files table (the scoring contract)."""
    best = int(np.argmax(probs))
    row = {"path": path, "duration_s": float(info["duration_s"]), "speech_s": info.get("speech_s"),
           "n_windows": int(info["n_windows"]), "label": classes[best], "confidence": float(probs[best]),
           **{f"p_{c}": float(p) for c, p in zip(classes, probs)}}
    if gender_classes:
        row["gender"] = gender_classes[int(np.argmax(gender))]
        row["gender_confidence"] = float(np.max(gender))
    row.update(model_id=model_id, status="scored", error=None)
    return row


def empty_row(path: str, classes, gender_classes, model_id: str, status: str, error: str | None = None,
              info: dict | None = None) -> dict:
    """A files-table row without an emotion: no speech found, or the file failed (``error``)."""
    info = info or {}
    row = {"path": path, "duration_s": info.get("duration_s"), "speech_s": info.get("speech_s"), "n_windows": 0,
           "label": None, "confidence": None, **{f"p_{c}": None for c in classes}}
    if gender_classes:
        row.update(gender=None, gender_confidence=None)
    row.update(model_id=model_id, status=status, error=error)
    return row


def error_row(dead: dict, classes, gender_classes, model_id: str) -> dict:
    return empty_row(dead["path"], classes, gender_classes, model_id, "failed",
                     f"{dead['error_type']}: {dead['message']}")


ROW = "row"


def by_kind(element) -> tuple[str, dict]:
    """A file's group of elements -> ``(path, {"info": [...], "windows": [...], "dead": [...]})``."""
    _, elements = element
    grouped, path = {"info": [], "windows": [], "dead": []}, None
    for kind, path, payload in elements:
        grouped[{INFO: "info", WINDOW: "windows", DEAD: "dead"}[kind]].append(payload)
    return path, grouped


def join_file(element, classes, gender_classes, model_id, temperature: float = 1.0):
    """A file's info, scored windows and failures -> exactly one ``(ROW, files-table row)``, and for a
    failed file one ``(DEAD, dead letter)``: its first failure (a long recording fails as a whole if any
    of its pieces or chunks does), or what went missing."""
    path, grouped = element
    infos, dead = list(grouped["info"]), sorted(grouped.get("dead", []), key=lambda d: (d["stage"], d["message"]))
    windows = sorted(grouped["windows"], key=lambda w: w[0])   # time order: the same sums every run
    if not dead and infos and windows:
        probs = file_probabilities([w[1] for w in windows], temperature)
        gender = file_probabilities([w[2] for w in windows]) if windows[0][2] is not None else None
        yield ROW, file_row(path, {**infos[0], "n_windows": len(windows)}, probs, gender, classes, gender_classes,
                            model_id)
        return
    if not dead and infos and infos[0].get("segments") is not None:   # voice activity found no speech
        yield ROW, empty_row(path, classes, gender_classes, model_id, "no_speech", None, infos[0])
        return
    if not dead:   # never silently lose a file: say what went missing
        dead = [dead_letter(path, "decode", "silent", "no window with sound in it") if infos else
                dead_letter(path, "score", "internal",
                            f"no file info for this file ({len(windows)} of its windows arrived without it)")]
    yield ROW, error_row(dead[0], classes, gender_classes, model_id)
    yield DEAD, dead[0]


def segment_rows(element, classes, temperature: float = 1.0):
    """A file's speech segments (from voice activity) -> one row each: its windows' probabilities
    averaged (``file_probabilities``), the segment's own times."""
    path, grouped = element
    infos = list(grouped["info"])
    if grouped.get("dead") or not infos or not infos[0].get("segments"):
        return
    windows = sorted(grouped["windows"], key=lambda w: w[0])   # time order, as for the file row
    if not windows:
        return
    window_segments = [w[3] for w in windows]
    per_segment = segment_probabilities(window_segments, [w[1] for w in windows], len(infos[0]["segments"]),
                                        temperature)
    for segment, ((start, end), probs) in enumerate(zip(infos[0]["segments"], per_segment)):
        if probs is None:   # every window of it was digital silence
            continue
        best = int(np.argmax(probs))
        yield {"path": path, "segment": segment, "start_s": float(start), "end_s": float(end),
               "n_windows": window_segments.count(segment), "label": classes[best],
               "confidence": float(probs[best]), **{f"p_{c}": float(p) for c, p in zip(classes, probs)}}


def window_rows(element, classes, window_seconds: float, temperature: float = 1.0):
    """A scored file's windows -> a windows-table row each (a failed file's are left out)."""
    path, grouped = element
    if grouped["dead"] or not grouped["info"]:
        return
    for index, probs, gender, segment, start in grouped["windows"]:
        yield window_row((path, index, start, probs, gender, segment), classes, window_seconds, temperature)


def window_row(scored, classes, window_seconds: float, temperature: float = 1.0) -> dict:
    path, index, start, probs, _, segment = scored
    probs = apply_temperature(probs, temperature)
    best = int(np.argmax(probs))
    return {"path": path, "window_index": int(index), "segment": None if segment is None else int(segment),
            "start_s": float(start), "end_s": float(start) + window_seconds, "label": classes[best],
            "confidence": float(probs[best]), **{f"p_{c}": float(p) for c, p in zip(classes, probs)}}


def files_schema(classes, gender_classes, grouped: bool = False):
    import pyarrow as pa

    fields = [("path", pa.string()), ("duration_s", pa.float64()), ("speech_s", pa.float64()),
              ("n_windows", pa.int64()), ("label", pa.string()), ("confidence", pa.float64())]
    fields += [(f"p_{c}", pa.float64()) for c in classes]
    if gender_classes:
        fields += [("gender", pa.string()), ("gender_confidence", pa.float64())]
    if grouped:
        fields += [("group", pa.string()), ("group_label", pa.string()), ("group_confidence", pa.float64())]
        fields += [(f"group_p_{c}", pa.float64()) for c in classes]
    fields += [("model_id", pa.string()), ("status", pa.string()), ("error", pa.string())]
    return pa.schema(fields)


def with_groups(rows: list[dict], classes, rule: str, min_files: int, temperature: float | None) -> list[dict]:
    """Files-table rows with speaker normalisation's columns (``ser_model.speaker_norm``): ``group`` (from
    the path by ``rule``; None where it does not match) and, for a scored file in a group of at least
    ``min_files`` scored files, ``group_label``, ``group_confidence`` and ``group_p_*`` (rescaled by the
    bundle's ``temperature`` for them; None: left as normalised). The run's rows come here together: a
    group's mean needs all of its files."""
    group_of = group_rule(rule)
    groups = [group_of(r["path"]) for r in rows]
    scored = [i for i, r in enumerate(rows) if r["status"] == "scored"]
    out = [{**r, "group": g, "group_label": None, "group_confidence": None, **{f"group_p_{c}": None for c in classes}}
           for r, g in zip(rows, groups)]
    if not scored:
        return out
    probs = np.array([[rows[i][f"p_{c}"] for c in classes] for i in scored])
    normalised = normalise_by_group(probs, [groups[i] for i in scored], min_files, temperature or 1.0)
    for i, q in zip(scored, normalised):
        if np.isnan(q).any():
            continue
        best = int(np.argmax(q))
        out[i].update(group_label=classes[best], group_confidence=float(q[best]),
                      **{f"group_p_{c}": float(p) for c, p in zip(classes, q)})
    return out


def windows_schema(classes):
    import pyarrow as pa

    return pa.schema([("path", pa.string()), ("window_index", pa.int64()), ("segment", pa.int64()),
                      ("start_s", pa.float64()), ("end_s", pa.float64()), ("label", pa.string()),
                      ("confidence", pa.float64())] + [(f"p_{c}", pa.float64()) for c in classes])


def segments_schema(classes):
    import pyarrow as pa

    return pa.schema([("path", pa.string()), ("segment", pa.int64()), ("start_s", pa.float64()),
                      ("end_s", pa.float64()), ("n_windows", pa.int64()), ("label", pa.string()),
                      ("confidence", pa.float64())] + [(f"p_{c}", pa.float64()) for c in classes])


def vad_settings(job: ScoreJob) -> dict | None:
    """The voice-activity settings of a run: the bundle's (``read_bundle_meta``), or None when off."""
    return None if job.vad == "off" else job.bundle["vad"]


def write_parquet(rows: list[dict], path: str, schema, sort_key) -> str:
    """``rows`` sorted by ``sort_key`` as one Parquet file at ``path`` (any Beam file system), written
    whole (ser_model.storage): a reader never sees half a table."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(sorted(rows, key=sort_key), schema=schema), buf)
    storage.write_bytes(path, buf.getvalue())
    return path


def build_pipeline(p: beam.Pipeline, job: ScoreJob, layout: RunLayout = RunLayout()) -> None:
    """Add the scoring pipeline to ``p``. No step reads a side input and the last step depends on every
    output through its main input (see pipelines.portable)."""
    bundle, output, batch_size = job.bundle, job.staging, job.batch_size   # published by ScoreCommand.finish
    classes, genders, model_id = bundle["classes"], bundle["gender_classes"], bundle["model_id"]
    features, vad = bundle["features"], vad_settings(job)
    n_files = layout.n_files
    files = list_inputs(p, [glob for _, glob in job.inputs], layout.list_shards) | "Files" >> beam.Values()
    # A file matched by two inputs is scored once.
    unique = (files | "ByPath" >> beam.Map(lambda m: (m.path, m)) | "SamePath" >> beam.GroupByKey()
              | "OnePerPath" >> beam.MapTuple(lambda _, metas: next(iter(metas))))
    # One chain of steps, each passing on what it does not handle: a merge of collections (Flatten,
    # CoGroupByKey) would add up their partitions on Beam's DaskRunner, and each shuffle costs about
    # partitions squared tasks there.
    planned = unique | "Plan" >> beam.ParDo(PlanFiles(features, job.max_seconds, vad, layout.ticks))
    voiced = spread(planned, "SpreadPieces", n_files) | "Voice" >> beam.ParDo(VoicePieces(features, job.max_seconds, vad))
    speech = spread(voiced, "ByFile", n_files) | "Speech" >> beam.FlatMap(speech_plan, features, vad, layout.ticks)
    scored = (spread(speech, "SpreadUnits", n_files)
              | "Windows" >> beam.ParDo(GroupWindows(features, job.max_seconds, batch_size, vad, layout.ticks))
              | "Infer" >> beam.ParDo(Infer(bundle["path"])))
    joined = spread(scored, "Join", n_files) | "ByKind" >> beam.Map(by_kind)
    outcome = by_tag(joined | "FileRows" >> beam.FlatMap(join_file, classes, genders, model_id, bundle["temperature"]),
                     "Outcome", (ROW, DEAD))
    rows, dead = outcome[ROW], outcome[DEAD]
    # Each output step yields one ("name", facts) pair; the last step reads them all.
    grouping = (None if job.group_by is None else
                {"classes": classes, "rule": job.group_by, "min_files": job.min_group_files,
                 "temperature": bundle.get("group_temperature")})
    written = [gather(rows, "FileRowList")
               | "WriteFiles" >> beam.Map(write_files_table, f"{output}.files.parquet",
                                          files_schema(classes, genders, grouping is not None), grouping)]
    if job.windows:
        written.append(gather(joined | "WindowRows" >> beam.FlatMap(window_rows, classes, features["window_seconds"],
                                                                  bundle["temperature"]), "WindowRowList")
                       | "WriteWindows" >> beam.Map(write_table, "windows", f"{output}.windows.parquet",
                                                    windows_schema(classes), lambda r: (r["path"], r["window_index"])))
    if job.segments:
        written.append(gather(joined | "SegmentRows" >> beam.FlatMap(segment_rows, classes, bundle["temperature"]),
                              "SegmentRowList")
                       | "WriteSegments" >> beam.Map(write_table, "segments", f"{output}.segments.parquet",
                                                     segments_schema(classes), lambda r: (r["path"], r["segment"])))
    written.append(gather(dead, "DeadList")
                   | "WriteDead" >> beam.Map(write_dead_letters, f"{output}.dead_letters.jsonl"))
    # Inputs are counted as distinct paths, as they are scored (a file matched twice is one input).
    written.append(count(unique, "CountInputs") | "Inputs" >> beam.Map(lambda n: ("inputs", n)))
    (gather(written | "AllWritten" >> beam.Flatten(), "Written")
     | "Done" >> beam.Map(write_counts, output))


def write_files_table(rows: list[dict], path: str, schema, grouping: dict | None = None) -> tuple[str, dict]:
    """The files table; ``("statuses", {status: files, "grouped": files with a group_label})``.
    ``grouping``: :func:`with_groups`'s arguments after the rows, for speaker normalisation."""
    if grouping:
        rows = with_groups(rows, **grouping)
    write_parquet(rows, path, schema, lambda r: r["path"])
    counts = dict(Counter(r["status"] for r in rows))
    if grouping:
        counts["grouped"] = sum(r["group_label"] is not None for r in rows)
    return "statuses", counts


def write_table(rows: list[dict], name: str, path: str, schema, sort_key) -> tuple[str, int]:
    write_parquet(rows, path, schema, sort_key)
    return name, len(rows)


def write_dead_letters(rows: list[dict], path: str) -> tuple[str, int]:
    storage.write_text(path, to_jsonl(rows))
    return "failed", len(rows)


def write_counts(facts: list[tuple[str, object]], output: str) -> None:
    """``PREFIX.counts.json`` from the output steps' facts: written last, so it exists only once
    every output does (``ScoreCommand.finish`` reads it)."""
    facts = dict(facts)
    statuses = facts["statuses"]
    counts = {"inputs": facts["inputs"], "scored": statuses.get("scored", 0),
              "no_speech": statuses.get("no_speech", 0), "failed": facts["failed"],
              "grouped": statuses.get("grouped")}
    storage.write_text(f"{output}.counts.json", json.dumps(counts))


def summary_table(parquet_path: str, label_set) -> str:
    """The per-file table of a files table (true labels in the model's label set)."""
    import pyarrow.parquet as pq

    from ser_model.corpora import expected_class
    from ser_model.file_table import FileResult, format_file_table
    from ser_model.labels import load_label_table

    table = load_label_table()
    return format_file_table(
        FileResult(row["path"], expected_class(row["path"], table, label_set), row["label"], row["confidence"],
                   row["n_windows"], row.get("gender"), row["error"])
        for row in pq.read_table(parquet_path).to_pylist())


def holds_a_long_recording(job: ScoreJob) -> bool:
    """Whether the inputs (a few files: each header is read) hold a recording that workers share."""
    from ser_model import audio, streaming
    from ser_model.features import FeatureConfig

    cfg = FeatureConfig.from_dict(job.bundle["features"])
    for _, glob in job.inputs:
        for path, _ in storage.list_files(glob):
            try:
                with storage.open_read(path) as f:
                    if streaming.is_long(streaming.check_duration(audio.open_sound(f), None), cfg):
                        return True
            except Exception:   # the run itself reports a file it cannot read
                continue
    return False


class ScoreCommand(PipelineCommand):
    prog = "ser score"
    description = "Score audio archives with a model bundle into Parquet."
    options_class = ScoreOptions
    input_help, output_help = SCORE_INPUT_HELP, SCORE_OUTPUT_HELP
    progress_label = "scored"

    def make_job(self, options):
        return make_job(options.view_as(ScoreOptions), options.view_as(IOOptions))

    def tune_local(self, options, argv, job, n_files):
        # Beam runs one worker per core: one TensorFlow thread each avoids oversubscription.
        os.environ.setdefault("SER_TF_THREADS", "1")
        direct = options.view_as(DirectOptions)
        if names_flag(argv, "--direct_num_workers") or not 0 < n_files < direct.direct_num_workers:
            return
        if not holds_a_long_recording(job):
            # A short file is decoded by one worker, and every worker loads TensorFlow and
            # the model: start no more workers than there are files.
            direct.direct_num_workers = n_files
        elif not names_flag(argv, "--direct_running_mode"):
            # A long recording is shared by every worker. As threads of one process they hold one
            # TensorFlow and one model instead of one each (the heavy work, decoding, voice
            # activity and the model, runs outside Python's lock).
            direct.direct_running_mode = "multi_threading"

    def build(self, p, job, layout):
        build_pipeline(p, job, layout)

    def abandon(self, job):
        storage.delete(path for path, _ in storage.list_files(f"{job.staging}.*"))

    def finish(self, job, seconds):
        from ser_model.labels import LabelSet

        output, staging = job.output, job.staging
        counts = json.loads(storage.read_text(f"{staging}.counts.json"))
        parts = (["files.parquet", "dead_letters.jsonl"] + (["windows.parquet"] if job.windows else [])
                 + (["segments.parquet"] if job.segments else []))
        # Every output of the run is in place before any is published: no mix of two runs.
        storage.delete(f"{output}.{part}" for part in parts)
        for part in parts:
            storage.replace(f"{staging}.{part}", f"{output}.{part}")
        storage.delete([f"{staging}.counts.json"])
        parts = {"scored": counts["scored"], **({"no speech": counts["no_speech"]} if counts["no_speech"] else {}),
                 "failed": counts["failed"]}
        line, balanced = balance_line(counts["inputs"], parts)
        print(line)
        if job.group_by is not None:
            print(grouping_line(counts, job))
        if job.summary:
            print(summary_table(f"{output}.files.parquet", LabelSet.from_json(job.bundle["label_set"])))
        extra = [f"{output}.{t}.parquet" for t, on in (("windows", job.windows), ("segments", job.segments)) if on]
        print(f"wrote {output}.files.parquet" + "".join(f" and {x}" for x in extra)
              + f" in {seconds:.1f} s (model {job.bundle['model_id']})")
        return 0 if balanced else 1


def grouping_line(counts: dict, job: ScoreJob) -> str:
    """What speaker normalisation did, and whether its confidences are calibrated."""
    left = counts["scored"] - counts["grouped"]
    line = (f"speaker normalisation (--group_by {job.group_by}): {counts['grouped']} of {counts['scored']} scored "
            f"files have a group_label" + (f"; {left} are outside any group of at least {job.min_group_files} files"
                                           if left else ""))
    if job.bundle.get("group_temperature") is None:
        line += ("\nnote: this bundle has no calibration for normalised outputs (its cross-validation report "
                 "predates them): group_confidence is not calibrated")
    return line


def run(argv: list[str] | None = None) -> int:
    """``ser score``."""
    return run_command(ScoreCommand(), sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(run())
