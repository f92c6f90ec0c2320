"""Small DoFns and CombineFns of the feature pipeline.

Each docstring says what the step yields and where its failures go. Failures
are rows for the dead-letter output (``path, stage, error_type, message``),
never exceptions that kill the run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.metrics import Metrics

from ser_model import audio, storage
from ser_model.corpora import CREMAD_DEMOGRAPHICS, Skip, Utterance, parse_path
from ser_model.corpora.cremad import parse_demographics
from ser_model.extract import examples_for, featurize_bytes
from ser_model.features import FeatureConfig
from ser_model.labels import LabelSet, LabelTable
from ser_model.splits import SplitConfig, assign_splits, group_of, shard_index, shards_for
from ser_model.stats import FeatureStats
from pipelines.dead_letters import DEAD, dead_letter
from pipelines.progress import Ticks
from pipelines.worker import one_blas_thread
from pipelines.tfrecord_sink import TFRecordGzipWriter

# Tags of the steps' outputs (see pipelines.tagged); dead letters are tagged DEAD.
UTTERANCES, COUNTS, STATS = "utterances", "counts", "stats"


def check_in_label_set(utt: Utterance, label_set: LabelSet) -> Utterance:
    """The utterance, or :class:`Skip` (``label-not-in-set``) when the label set drops its emotion."""
    if label_set.class_of(utt.label) is None:
        raise Skip("label-not-in-set", f"{utt.label} is not in label set {label_set.name}")
    return utt


class ParseFile(beam.DoFn):
    """``(corpus hint, FileMetadata)`` -> ``(UTTERANCES, (Utterance, size in bytes))``.

    Yields ``(DEAD, row)`` (kind ``skipped``) every path that is not a speech
    utterance of an emotion in the label set, with the reason.
    """

    def __init__(self, table: LabelTable, label_set: LabelSet, ticks: Ticks = Ticks(None)):
        self.table, self.label_set, self.ticks = table, label_set, ticks
        self.parsed = Metrics.counter("features", "files_parsed")
        self.skipped = Metrics.counter("features", "files_skipped")

    def process(self, element):
        corpus, meta = element
        try:
            utt = check_in_label_set(parse_path(meta.path, self.table, corpus), self.label_set)
        except Skip as skip:
            self.skipped.inc()
            self.ticks.tick()
            yield DEAD, dead_letter(meta.path, "parse", skip.reason, str(skip), kind="skipped")
            return
        self.parsed.inc()
        yield UTTERANCES, (utt, meta.size_in_bytes)


class ListedFile(beam.DoFn):
    """An Utterance listed in a user's manifest -> ``(UTTERANCES, (Utterance, None))`` (size looked up
    when written).

    Yields ``(DEAD, row)`` (kind ``skipped``) a row whose emotion the label set drops.
    """

    def __init__(self, label_set: LabelSet, ticks: Ticks = Ticks(None)):
        self.label_set, self.ticks = label_set, ticks

    def process(self, utt):
        try:
            check_in_label_set(utt, self.label_set)
        except Skip as skip:
            self.ticks.tick()
            yield DEAD, dead_letter(utt.path, "parse", skip.reason, str(skip), kind="skipped")
            return
        yield UTTERANCES, (utt, None)


def file_size(path: str) -> int:
    """Bytes of one file (any storage); :class:`audio.AudioError` if it is missing."""
    if not storage.exists(path):
        raise audio.AudioError("missing-file", f"{path} does not exist")
    return storage.size(path)


def input_facts(element):
    """What one matched input tells the split plan: ``("matched", 1)`` always, and
    ``("genders", {speaker: gender})`` for CREMA-D's demographics table."""
    _, meta = element
    yield "matched", 1
    if meta.path.endswith("/" + CREMAD_DEMOGRAPHICS):
        yield "genders", parse_demographics(storage.read_bytes(meta.path).decode("utf-8", "replace"))


def utterance_fact(element, split_cfg: SplitConfig):
    """What one parsed utterance tells the split plan: its ``(corpus, group)``."""
    utt, _ = element
    return "group", (utt.corpus, group_of(utt, split_cfg))


class PlanFacts(beam.CombineFn):
    """Input facts -> ``{"matched": n, "genders": {...}, "groups": Counter}`` in one pass.

    One combiner instead of one per fact: every global combine is two more
    runner stages, and on the local runner each costs a round trip to the workers.
    """

    def create_accumulator(self):
        return {"matched": 0, "genders": {}, "groups": Counter()}

    def add_input(self, acc, fact):
        kind, value = fact
        if kind == "matched":
            acc["matched"] += value
        elif kind == "genders":
            acc["genders"].update(value)
        else:
            acc["groups"][value] += 1
        return acc

    def merge_accumulators(self, accs):
        total = self.create_accumulator()
        for acc in accs:
            total["matched"] += acc["matched"]
            total["genders"].update(acc["genders"])
            total["groups"].update(acc["groups"])
        return total

    def extract_output(self, acc):
        return acc


def make_plan(facts: dict, split_cfg: SplitConfig, files_per_shard: int) -> dict:
    """Split assignment of every (corpus, group), shards per split, CREMA-D genders, inputs matched."""
    group_counts = sorted(facts["groups"].items())
    groups = assign_splits((key for key, _ in group_counts), split_cfg)
    files = Counter()
    for key, n in group_counts:
        files[groups[key]] += n
    return {"groups": groups, "shards": {s: shards_for(n, files_per_shard) for s, n in files.items()},
            "genders": facts["genders"], "matched": facts["matched"]}


def assign_shard(element, plan: dict, split_cfg: SplitConfig):
    """``(Utterance, size)`` -> ``(shard name, (Utterance with split and gender, size))``."""
    utt, size = element
    split = plan["groups"][(utt.corpus, group_of(utt, split_cfg))]
    genders = plan["genders"]
    if utt.corpus == "cremad" and utt.speaker in genders:
        utt = utt.with_(gender=genders[utt.speaker])
    utt = utt.with_(split=split)
    n = plan["shards"][split]
    return f"{split}-{shard_index(utt.path, n):05d}-of-{n:05d}", (utt, size)


def assign_shards(joined, split_cfg: SplitConfig):
    """``(None, {"plan": [plan], "utterances": [(Utterance, size)]})`` -> :func:`assign_shard` of each."""
    _, parts = joined
    (plan,) = parts["plan"]
    for element in parts["utterances"]:
        yield assign_shard(element, plan, split_cfg)


class WriteShard(beam.DoFn):
    """``(shard name, [(Utterance, size)])`` -> one ``<shard>.tfrecord.gz`` in the staging folder.

    Files are featurised in path order, so a rerun writes identical bytes.
    Yields ``(COUNTS, Counter)``: the shard's manifest counters (one per shard,
    not a row per file: fewer elements through the runner); ``(DEAD, row)`` per
    file that could not be read or decoded (the shard goes on); ``(STATS,
    FeatureStats)``: the shard's partial feature statistics (train shards only).
    """

    def __init__(self, staging: str, cfg: FeatureConfig, label_set: LabelSet, split_cfg: SplitConfig,
                 gzip: str, max_bytes: int, ticks: Ticks = Ticks(None)):
        self.staging, self.cfg, self.label_set, self.split_cfg = staging, cfg, label_set, split_cfg
        self.gzip, self.max_bytes, self.ticks = gzip, max_bytes, ticks
        self.written = Metrics.counter("features", "files_written")
        self.failed = Metrics.counter("features", "files_failed")
        self.windows = Metrics.counter("features", "windows_written")

    def setup(self):
        self._blas = one_blas_thread()

    def process(self, element):
        shard, members = element
        members = sorted(members, key=lambda m: m[0].path)
        stats = FeatureStats.empty(self.cfg.n_mels, self.cfg.n_mfcc)
        writer = TFRecordGzipWriter(f"{self.staging}/{shard}.tfrecord.gz", self.gzip)
        counts = Counter()
        try:
            for utt, size in members:
                result = self._one(utt, size, writer, stats)
                self.ticks.tick()
                if isinstance(result, dict):
                    yield DEAD, result
                else:
                    counts.update(count_written(utt, result, group_of(utt, self.split_cfg)))
            writer.close()
        except BaseException:
            writer.abort()
            raise
        yield COUNTS, counts
        if stats.count:
            yield STATS, stats

    def _one(self, utt: Utterance, size: int | None, writer: TFRecordGzipWriter, stats: FeatureStats) -> int | dict:
        """Featurise and write one file: its number of windows, or its dead-letter row."""
        stage = "read"
        try:
            if size is None:  # listed in a manifest: not matched, so not sized yet
                size = file_size(utt.path)
            if self.max_bytes and size > self.max_bytes:
                raise audio.AudioError("too-large", f"{size} bytes exceeds the {self.max_bytes}-byte limit")
            data = storage.read_bytes(utt.path)
            stage = "decode"
            windows, duration = featurize_bytes(data, self.cfg)
        except audio.AudioError as err:
            self.failed.inc()
            return dead_letter(utt.path, stage, err.kind, str(err))
        except Exception as err:  # an unexpected error in one file must not end the run
            self.failed.inc()
            return dead_letter(utt.path, stage, type(err).__name__, str(err))
        label = self.label_set.class_of(utt.label)
        for record in examples_for(utt, self.label_set.classes.index(label), label, windows, duration):
            writer.write(record)
        if utt.split == "train":
            for w in windows:
                stats.add(w.logmel, w.mfcc)
        self.written.inc()
        self.windows.inc(len(windows))
        return len(windows)


def count_written(utt: Utterance, n_windows: int, group: str) -> Counter:
    """The manifest counters one written file contributes to."""
    split, corpus, label = utt.split, utt.corpus, utt.label
    return Counter({("total", "written"): 1, ("windows", split): n_windows, ("split", split): 1,
                    ("corpus_split", corpus, split): 1, ("label_split", label, split): 1,
                    ("corpus_label", corpus, label): 1,
                    ("speaker", corpus, utt.speaker, utt.gender, split): 1,
                    ("group", corpus, group, split): 1})


def count_dead(row: dict) -> Counter:
    """The manifest counters one dead letter (skipped or failed input) contributes to."""
    return Counter({("total", row["kind"]): 1, ("reason", row["kind"], row["stage"], row["error_type"]): 1})


@dataclass
class Summary:
    """A run's outcome: manifest counters, dead-letter rows, the train split's feature statistics."""

    counts: Counter
    dead_letters: list
    stats: FeatureStats


class Summarise(beam.CombineFn):
    """Shard counters, dead-letter rows and per-shard statistics -> :class:`Summary`.

    One combiner for the three outputs, for the same reason as :class:`PlanFacts`.
    """

    def __init__(self, n_mels: int, n_mfcc: int):
        self.n_mels, self.n_mfcc = n_mels, n_mfcc

    def create_accumulator(self):
        return Summary(Counter(), [], FeatureStats.empty(self.n_mels, self.n_mfcc))

    def add_input(self, acc, item):
        if isinstance(item, FeatureStats):
            acc.stats = acc.stats.merge(item)
        elif isinstance(item, Counter):  # a shard's counters (Counter before dict: it is one)
            acc.counts.update(item)
        else:  # a dead letter
            acc.counts.update(count_dead(item))
            acc.dead_letters.append(item)
        return acc

    def merge_accumulators(self, accs):
        total = self.create_accumulator()
        for acc in accs:
            total.counts.update(acc.counts)
            total.dead_letters.extend(acc.dead_letters)
            total.stats = total.stats.merge(acc.stats)
        return total

    def extract_output(self, acc):
        return acc
