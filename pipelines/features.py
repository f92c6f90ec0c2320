"""The feature pipeline: raw corpora -> speaker-independent TFRecord shards.

    list every input root (pipelines.portable)
      -> ParseFile          Utterance | dead letter (skipped, with reason)
      -> split plan         one combiner over the inputs (files per group, CREMA-D
                            genders, inputs matched): every (corpus, group) ->
                            train/val/test
      -> join with the plan (one key), key by shard: stable hash of the path,
                            shard count from the plan
      -> GroupByKey         (the reshuffle: spreads shards over workers)
      -> WriteShard         read, decode, window, featurise, write one .tfrecord.gz
      -> Summarise          one combiner over shard counters, dead letters, shard statistics
      -> stats.json, manifest.json, dead_letters.jsonl

Shards are written by the worker that owns them, in path order, so feature
arrays never travel through the shuffle and a rerun writes identical bytes.
Everything goes to a staging folder first; only a successful run replaces the
output (see :func:`publish`).
"""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import apache_beam as beam

from ser_model import storage
from ser_model.config import ConfigError, load_yaml, parse_override
from ser_model.corpora import AUDIO_EXTENSIONS, CORPORA, split_name
from ser_model.corpora.labelled import LabelFolders, check_labels, folder_label, is_manifest, read_manifest
from ser_model.features import FeatureConfig
from ser_model.labels import LabelSet, parse_label_table
from ser_model.outputs import check_writable
from ser_model.splits import SplitConfig
from pipelines import transforms as T
from pipelines.dead_letters import DEAD, to_jsonl
from pipelines.launch import (GLOB_CHARS, PipelineCommand, RunLayout, UsageError, balance_line, count_matches,
                              expand_input, run_command)
from pipelines.options import FEATURES_INPUT_HELP, FEATURES_OUTPUT_HELP, FeaturesOptions, IOOptions
from pipelines.portable import combine_once, gather, list_inputs
from pipelines.tagged import by_tag

MAX_FILE_BYTES = 2 * 1024 ** 3  # beyond any training clip; larger files are dead letters
USER_CORPUS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Job:
    """Everything a run needs, resolved from configs and flags before the pipeline is built."""

    inputs: tuple[tuple[str, str], ...]   # (name shown, glob) of the inputs matched by glob
    corpora: tuple                        # per glob input: the corpus it is forced to, a user's
                                          # LabelFolders, or None (every reader is tried)
    manifests: tuple                      # (name shown, (Utterance, ...)) per manifest input
    output: str
    staging: str                          # where this run writes until it succeeds
    features: FeatureConfig
    label_set: LabelSet
    label_table: object
    splits: SplitConfig
    files_per_shard: int
    gzip: str

    def features_json(self) -> dict:
        return {"format": "ser-features/1", "features": self.features.to_json(),
                "label_set": self.label_set.to_json(), "splits": self.splits.to_json()}


def parse_input(spec: str) -> tuple[str | None, str]:
    """``[name=]root`` -> ``(name or None, root)``; a name that is not a corpus reader is the
    user's own corpus (:mod:`ser_model.corpora.labelled`)."""
    head, sep, tail = spec.partition("=")
    if sep and "/" not in head and ":" not in head:
        if not USER_CORPUS_NAME.match(head):
            raise ConfigError(f"--input {spec!r}: a corpus name is letters, digits, '_' and '-' "
                              f"(the readers: {', '.join(CORPORA)}; any other name is your own data)")
        return head, tail
    return None, spec


def own_folder_source(name: str, root: str, table) -> tuple[str, LabelFolders]:
    """``(glob, LabelFolders)`` of a folder-per-label input, its label folders checked at launch."""
    if any(ch in root for ch in GLOB_CHARS):
        raise UsageError(f"--input {name}={root}: give the folder that holds one folder per label, not a glob")
    glob = expand_input(root.rstrip("/") + "/")
    source = LabelFolders(name, glob[: -len("/**")])
    paths = [path for path, _ in storage.list_files(glob)]
    labels = {folder_label(p, source.root) for p in paths if split_name(p)[2] in AUDIO_EXTENSIONS}
    check_labels(labels - {None}, table, name,
                 f"--input {name}={root} (your own data, one folder per label: {name!r} is not one of the "
                 f"corpus readers {', '.join(CORPORA)})")
    return glob, source


def own_manifest(name: str, path: str, table) -> tuple:
    """The Utterances a manifest lists (read and checked at launch)."""
    if not storage.exists(path):
        raise FileNotFoundError(f"--input {name}={path}: no such manifest")
    return tuple(read_manifest(storage.read_bytes(path).decode("utf-8-sig"), path, name, table))


def make_job(opts: FeaturesOptions, io: IOOptions) -> Job:
    """Load the YAML configs and apply the command-line overrides."""
    if not io.input:
        raise UsageError("give at least one --input corpus root")
    if not io.output:
        raise UsageError("give --output, the folder to write the shards to")
    feature_yaml = load_yaml(opts.features_config)
    feature_settings = dict(feature_yaml.get("features") or {})
    for text in opts.overrides:
        key, value = parse_override(text)
        feature_settings[key] = value
    table = parse_label_table(load_yaml(opts.labels_config))
    output_cfg = feature_yaml.get("output") or {}
    missing = {"files_per_shard", "gzip"} - set(output_cfg)
    if missing:
        raise ConfigError(f"{opts.features_config}: output section lacks {sorted(missing)}")
    globbed, corpora, manifests = [], [], []
    for spec in io.input:
        name, root = parse_input(spec)
        if name is not None and name not in CORPORA and is_manifest(root):
            manifests.append((spec, own_manifest(name, root, table)))
        elif name is not None and name not in CORPORA:
            glob, source = own_folder_source(name, root, table)
            globbed.append((spec, glob)), corpora.append(source)
        else:
            globbed.append((spec, expand_input(root))), corpora.append(name)
    output = io.output.rstrip("/")
    return Job(
        inputs=tuple(globbed),
        corpora=tuple(corpora),
        manifests=tuple(manifests),
        output=output,
        staging=f"{output}.staging-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}",
        features=FeatureConfig.from_dict(feature_settings),
        label_set=table.label_set(opts.label_set),
        label_table=table,
        splits=SplitConfig.from_dict(feature_yaml.get("splits") or {}),
        files_per_shard=int(opts.files_per_shard or output_cfg["files_per_shard"]),
        gzip=str(opts.gzip or output_cfg["gzip"]),
    )


def build_pipeline(p: beam.Pipeline, job: Job, layout: RunLayout = RunLayout()) -> None:
    """Add the feature pipeline to ``p``, writing every output under ``job.staging``. No step reads a
    side input: the split plan reaches the utterances and the summary through a join (see
    pipelines.portable)."""
    staging, ticks = job.staging, layout.ticks
    files = (list_inputs(p, [glob for _, glob in job.inputs], layout.list_shards)
             | "Tag" >> beam.MapTuple(lambda i, meta, corpora=job.corpora: (corpora[i], meta)))

    parsed = by_tag(files | "Parse" >> beam.ParDo(T.ParseFile(job.label_table, job.label_set, ticks)),
                    "Parsed", (T.UTTERANCES, DEAD))
    rows = [p | f"Manifest{i}" >> beam.Create(utts) for i, (_, utts) in enumerate(job.manifests)]
    listed = [by_tag(r | f"ManifestRows{i}" >> beam.ParDo(T.ListedFile(job.label_set, ticks)),
                     f"Listed{i}", (T.UTTERANCES, DEAD))
              for i, r in enumerate(rows)]
    utterances = ([parsed[T.UTTERANCES], *(m[T.UTTERANCES] for m in listed)]
                  | "AllUtterances" >> beam.Flatten())

    facts = ((files | "InputFacts" >> beam.FlatMap(T.input_facts),
              *(r | f"RowFacts{i}" >> beam.Map(lambda _: ("matched", 1)) for i, r in enumerate(rows)),
              utterances | "UtteranceFacts" >> beam.Map(T.utterance_fact, job.splits))
             | "AllFacts" >> beam.Flatten())
    plan = combine_once(facts, T.PlanFacts(), "PlanFacts") | "Plan" >> beam.Map(T.make_plan, job.splits,
                                                                                 job.files_per_shard)

    shards = by_tag({"plan": plan | "PlanKey" >> beam.Map(lambda pl: (None, pl)),
                     "utterances": utterances | "UtteranceKey" >> beam.Map(lambda u: (None, u))}
                    | "WithPlan" >> beam.CoGroupByKey()
                    | "KeyByShard" >> beam.FlatMap(T.assign_shards, job.splits)
                    | "GroupShards" >> beam.GroupByKey()
                    | "WriteShards" >> beam.ParDo(T.WriteShard(staging, job.features, job.label_set, job.splits,
                                                               job.gzip, MAX_FILE_BYTES, ticks)),
                    "Written", (T.COUNTS, DEAD, T.STATS))

    summary = combine_once((shards[T.COUNTS], parsed[DEAD], *(m[DEAD] for m in listed), shards[DEAD],
                            shards[T.STATS]) | "AllResults" >> beam.Flatten(),
                           T.Summarise(job.features.n_mels, job.features.n_mfcc), "Summarise")
    (gather((summary | "SummaryFact" >> beam.Map(lambda s: ("summary", s)),
             plan | "PlanFact" >> beam.Map(lambda pl: ("plan", pl))) | "SummaryAndPlan" >> beam.Flatten(),
            "Results")
     | "WriteSummary" >> beam.Map(_write_summary, staging, job))


def _write_summary(results: list, staging: str, job: Job) -> None:
    """``dead_letters.jsonl``, ``stats.json`` (when there is a train split) and ``counts.json``, from
    ``[("summary", Summary), ("plan", plan)]``."""
    results = dict(results)
    summary, plan = results["summary"], results["plan"]
    storage.write_text(f"{staging}/dead_letters.jsonl", to_jsonl(summary.dead_letters))
    if summary.stats.count:  # no train split: nothing to normalise with; the trainer says so
        storage.write_text(f"{staging}/stats.json", json.dumps(summary.stats.to_json(), indent=1))
    counts = manifest_from_counts(summary.counts, plan["matched"], job)
    storage.write_text(f"{staging}/counts.json", json.dumps(counts, indent=1, sort_keys=True))


def manifest_from_counts(counter: Counter, n_matched: int, job: Job) -> dict:
    """Readable counts per corpus, split, label and speaker, and the input balance."""
    def nest(prefix):
        out: dict = {}
        for key, n in sorted(counter.items()):
            if key[0] != prefix:
                continue
            node = out
            for part in key[1:-1]:
                node = node.setdefault(part, {})
            node[key[-1]] = n
        return out

    totals = {k: counter.get(("total", k), 0) for k in ("written", "skipped", "failed")}
    groups = nest("group")
    return {
        "inputs": n_matched,
        **totals,
        "balanced": n_matched == sum(totals.values()),
        "windows": nest("windows"),
        "files_per_split": nest("split"),
        "corpus_split": nest("corpus_split"),
        "label_split": nest("label_split"),
        "corpus_label": nest("corpus_label"),
        "speakers": nest("speaker"),
        "split_groups": {corpus: {"group_by": job.splits.key_name(corpus),
                                  **{split: sorted(g for g, s in gs.items() if split in s)
                                     for split in ("train", "val", "test")}}
                         for corpus, gs in groups.items()},
        "reasons": nest("reason"),
    }


def _files_under(prefix: str) -> list[str]:
    return [path for path, _ in storage.list_files(prefix + "/**")]


def _delete_tree(prefix: str) -> None:
    storage.delete_tree(prefix)


def publish(staging: str, output: str, job: Job, counts: dict) -> dict:
    """Replace ``output`` with the staged run: old files out, new files in, manifest last.

    A failed run never reaches this point, so a previous good output stays whole.
    ``manifest.json`` is written last and lists every file of the run: readers
    can trust a folder whose manifest exists.
    """
    staged = [p for p in _files_under(staging) if not p.endswith("/counts.json") and ".tmp-" not in p]
    storage.delete(_files_under(output))
    storage.makedirs(output)
    targets = [output + p[len(staging):] for p in staged]
    for src, dst in zip(staged, targets):
        storage.replace(src, dst)
    storage.write_text(f"{output}/features.json", json.dumps(job.features_json(), indent=1))
    manifest = {**counts, "format": "ser-manifest/1",
                "files": sorted(t[len(output) + 1:] for t in targets) + ["features.json"]}
    storage.write_text(f"{output}/manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
    _delete_tree(staging)
    return manifest


def report(m: dict) -> str:
    lines = [balance_line(m["inputs"], {k: m[k] for k in ("written", "skipped", "failed")})[0]]
    for split in ("train", "val", "test"):
        per_corpus = {c: s.get(split, 0) for c, s in m["corpus_split"].items()}
        windows = m["windows"].get(split, 0)
        lines.append(f"  {split:5s} {m['files_per_split'].get(split, 0):6d} files {windows:6d} windows  "
                     + " ".join(f"{c}={n}" for c, n in sorted(per_corpus.items())))
    for (kind, stages) in sorted(m["reasons"].items()):
        for stage, errors in sorted(stages.items()):
            for err, n in sorted(errors.items()):
                lines.append(f"  {kind} at {stage}: {err} x{n}")
    return "\n".join(lines)


class FeaturesCommand(PipelineCommand):
    prog = "ser features"
    description = __doc__.split("\n")[0]
    options_class = FeaturesOptions
    input_help, output_help = FEATURES_INPUT_HELP, FEATURES_OUTPUT_HELP
    progress_label = "featurised"

    def make_job(self, options):
        return make_job(options.view_as(FeaturesOptions), options.view_as(IOOptions))

    def check_output(self, job):
        check_writable(job.output, folder=True)

    def count_inputs(self, job):
        total = count_matches(job.inputs, self.prog) if job.inputs else 0
        for name, utts in job.manifests:
            print(f"{self.prog}: input {name}: {len(utts)} files listed", file=sys.stderr)
            total += len(utts)
        return total

    def build(self, p, job, layout):
        build_pipeline(p, job, layout)

    def abandon(self, job):
        _delete_tree(job.staging)

    def finish(self, job, seconds):
        counts = json.loads(storage.read_bytes(f"{job.staging}/counts.json"))
        if not counts["written"]:
            _delete_tree(job.staging)
            print(report(counts))
            print(f"ser features: error: no file could be used; {job.output} was left as it was",
                  file=sys.stderr)
            return 1
        manifest = publish(job.staging, job.output, job, counts)
        print(report(manifest))
        print(f"wrote {job.output} in {seconds:.1f} s")
        return 0 if manifest["balanced"] else 1


def run(argv: list[str] | None = None) -> int:
    """``ser features``: run the pipeline into a staging folder, publish, print the counts."""
    return run_command(FeaturesCommand(), sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(run())
