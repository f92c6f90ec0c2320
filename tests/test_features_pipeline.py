"""The real feature pipeline, end to end, on generated corpora (FnApiRunner, in process)."""

import dataclasses
import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pipelines import features as F
from pipelines import transforms as T
from ser_model.features import FeatureConfig
from ser_model.records import parse_examples
from tests.conftest import REPO

IN_PROCESS = ["--runner", "FnApiRunner"]


def run_features(inputs, output, *extra):
    args = [a for i in inputs for a in ("--input", str(i))]
    return F.run([*args, "--output", str(output), *IN_PROCESS, *extra])


def read_split(out: Path, split: str):
    cfg = FeatureConfig.from_dict(json.loads((out / "features.json").read_text())["features"])
    files = sorted(str(p) for p in out.glob(f"{split}-*.tfrecord.gz"))
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(1000)
    rows = []
    for batch in ds:
        parsed = parse_examples(batch, cfg)
        for i in range(len(parsed["label_id"])):
            rows.append({k: (v[i].numpy().decode() if v.dtype == tf.string else v[i].numpy())
                         for k, v in parsed.items()})
    return rows


@pytest.fixture(scope="module")
def first_run(corpora_tree, feature_dir):
    root, expected = corpora_tree
    out = feature_dir
    rows = {split: read_split(out, split) for split in ("train", "val", "test")}
    return root, expected, out, rows


def test_inputs_balance_and_match_what_was_generated(first_run):
    root, expected, out, _ = first_run
    manifest = json.loads((out / "manifest.json").read_text())
    n_inputs = len(expected["good"]) + len(expected["skipped"]) + len(expected["failed"])
    assert manifest["inputs"] == n_inputs
    assert manifest["written"] == len(expected["good"])
    assert manifest["skipped"] == len(expected["skipped"])
    assert manifest["failed"] == len(expected["failed"])
    assert manifest["balanced"] is True
    assert set(manifest["files"]) == {p.name for p in out.iterdir()} - {"manifest.json"}


def test_every_good_file_is_in_the_shards_with_its_label(first_run):
    root, expected, _, rows = first_run
    seen = {}
    for split_rows in rows.values():
        for r in split_rows:
            seen.setdefault(r["path"], set()).add(r["emotion"])
    assert {str(Path(p).relative_to(root)): e.pop() for p, e in seen.items()} == expected["good"]


def test_shapes_labels_and_metadata(first_run, label_table):
    *_, rows = first_run
    classes = label_table.label_set().classes
    by_path = {r["path"]: r for split_rows in rows.values() for r in split_rows}
    for r in by_path.values():
        assert r["logmel"].shape == (128, 188) and r["mfcc"].shape == (40, 188)
        assert classes[r["label_id"]] == r["label"]
        assert np.isfinite(r["logmel"]).all()
    calm = next(r for r in by_path.values() if r["raw_label"] == "02")
    assert (calm["emotion"], calm["label"]) == ("calm", "neutral")
    stereo = next(r for p, r in by_path.items() if p.endswith("03-01-05-01-01-01-01.wav"))
    assert stereo["gender"] == "male" and stereo["speaker"] == "01"
    cremad = {r["speaker"]: r["gender"] for r in by_path.values() if r["corpus"] == "cremad"}
    assert cremad == {"1001": "male", "1002": "female", "1003": "male", "1004": "female"}
    typo = next(r for p, r in by_path.items() if p.endswith("OA_bite_neutral.wav"))
    assert typo["speaker"] == "OAF"


def test_long_clips_become_several_windows_in_one_split(first_run):
    *_, rows = first_run
    windows = defaultdict(list)
    for split, split_rows in rows.items():
        for r in split_rows:
            windows[r["path"]].append((split, r["window_index"], r["n_windows"]))
    long = next(w for p, w in windows.items() if p.endswith("03-01-03-02-02-01-03.wav"))
    assert sorted(i for _, i, _ in long) == [0, 1, 2] and {n for *_, n in long} == {3}
    for per_file in windows.values():
        assert len({s for s, *_ in per_file}) == 1


def test_no_group_in_two_splits_and_every_corpus_in_test(first_run):
    *_, rows = first_run
    group_by = {"ravdess": "speaker", "cremad": "speaker", "tess": "sentence", "savee": "sentence"}
    splits_of = defaultdict(set)
    for split, split_rows in rows.items():
        for r in split_rows:
            splits_of[(r["corpus"], r[group_by[r["corpus"]]])].add(split)
            assert r["split"] == split
    assert all(len(s) == 1 for s in splits_of.values())
    assert {r["corpus"] for r in rows["test"]} == {"ravdess", "cremad", "tess", "savee"}


def test_dead_letters_name_every_failed_and_skipped_file(first_run):
    root, expected, out, _ = first_run
    dead = [json.loads(line) for line in (out / "dead_letters.jsonl").read_text().splitlines()]
    got = {(str(Path(d["path"]).relative_to(root)), d["kind"]) for d in dead}
    want = {(p, "skipped") for p in expected["skipped"]} | {(p, "failed") for p in expected["failed"]}
    assert got == want
    reasons = {Path(d["path"]).name: d["error_type"] for d in dead}
    assert reasons["1002_DFA_NEU_XX.wav"] == "empty-file"
    assert reasons["1004_DFA_NEU_XX.wav"] == "undecodable"
    assert reasons["03-02-03-01-01-01-01.wav"] == "ravdess-song"
    assert reasons["03-01-04-01-01-01-04.wav"] == "silent"
    assert all(d["message"] and d["stage"] in ("parse", "read", "decode") for d in dead)


def test_stats_come_from_the_train_split_only(first_run):
    *_, out, rows = first_run
    stats = json.loads((out / "stats.json").read_text())
    train = np.stack([r["logmel"] for r in rows["train"]])
    assert stats["frames"] == train.shape[0] * train.shape[2]
    assert np.allclose(stats["logmel_mean"], train.mean(axis=(0, 2)), atol=1e-3)
    assert np.allclose(stats["logmel_std"], train.std(axis=(0, 2)), atol=1e-2)
    test = np.stack([r["logmel"] for r in rows["test"]])
    assert not np.allclose(stats["logmel_mean"], test.mean(axis=(0, 2)), atol=1e-3)


def test_cli_rerun_with_both_cores_writes_identical_shards_and_replaces_output(first_run, tmp_path):
    """The real `ser features` command (multi-processing runner) into a used folder."""
    root, _, first_out, _ = first_run
    out = tmp_path / "out"
    out.mkdir()
    (out / "train-00007-of-00009.tfrecord.gz").write_bytes(b"stale shard of an older run")
    proc = subprocess.run([sys.executable, "-m", "ser_cli.main", "features", "--input", str(root),
                           "--output", str(out)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "inputs 56 = written 46 + skipped 6 + failed 4" in proc.stdout
    assert "featurised: 56/56 files (100%)" in proc.stderr  # the progress line's last state
    assert "cuInit" not in proc.stderr and "I0000" not in proc.stderr
    assert not (out / "train-00007-of-00009.tfrecord.gz").exists()
    assert not list(tmp_path.glob("*.staging-*"))
    shards = sorted(p.name for p in first_out.glob("*.tfrecord.gz"))
    assert shards == sorted(p.name for p in out.glob("*.tfrecord.gz"))
    for name in shards + ["stats.json", "dead_letters.jsonl"]:
        assert (out / name).read_bytes() == (first_out / name).read_bytes(), name


def test_a_failed_run_leaves_the_previous_output_whole(first_run, tmp_path, monkeypatch):
    root, _, first_out, _ = first_run
    out = tmp_path / "out"
    shutil.copytree(first_out, out)   # a previous good output
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def explode(self, element):
        raise RuntimeError("disk full")
        yield

    monkeypatch.setattr(T.WriteShard, "process", explode)
    with pytest.raises(Exception, match="disk full"):
        run_features([root], out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not list(tmp_path.glob("*.staging-*"))


def test_an_input_that_matches_nothing_is_an_error_and_keeps_the_output(first_run, tmp_path, capsys):
    root, _, first_out, _ = first_run
    out = tmp_path / "out"
    shutil.copytree(first_out, out)   # a previous good output
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert run_features([tmp_path / "typo"], out) == 2
    assert "no input file matched" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_run_with_no_usable_file_is_not_published(first_run, tmp_path, capsys):
    root, _, first_out, _ = first_run
    out = tmp_path / "out"
    shutil.copytree(first_out, out)   # a previous good output
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    junk = tmp_path / "junk" / "DC"
    junk.mkdir(parents=True)
    (junk / "a01.wav").write_bytes(b"RIFF not really a wave file")   # a SAVEE name, not audio
    (junk / "notes.txt").write_text("not audio")
    capsys.readouterr()
    assert run_features([junk.parent], out) == 1
    captured = capsys.readouterr()
    assert "inputs 2 = written 0 + skipped 1 + failed 1" in captured.out
    assert "left as it was" in captured.err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not list(tmp_path.glob("*.staging-*"))


def test_named_corpus_root_and_label_set(first_run, tmp_path):
    root, expected, *_ = first_run
    out = tmp_path / "out"
    assert run_features([f"tess={root / 'tess'}"], out, "--label_set", "cremad6") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    tess = [label for p, label in expected["good"].items() if p.startswith("tess/")]
    assert manifest["written"] == len([x for x in tess if x != "surprised"])
    assert manifest["reasons"]["skipped"]["parse"]["label-not-in-set"] == tess.count("surprised")
    features = json.loads((out / "features.json").read_text())
    assert features["label_set"]["name"] == "cremad6"


@pytest.mark.parametrize("args,message", [
    (["--output", "x"], "give at least one --input"),
    (["--input", "x"], "give --output"),
    (["--input", "bad name=/x", "--output", "y"], "a corpus name is letters"),
    (["--input", "/x", "--output", "y", "--set", "n_mels=-1"], "feature config"),
    (["--input", "/x", "--output", "y", "--set", "colour=red"], "unknown setting"),
    (["--input", "/x", "--output", "y", "--gzipp", "fast"], "unrecognized argument --gzipp (did you mean --gzip?)"),
    (["--input", "/x", "--output", "/etc/hostname/features"], "/etc/hostname is a file, not a folder"),
    (["--input", "/x", "--output", "/etc/hostname"], "it is a file, not a folder"),
])
def test_bad_flags_give_one_line_and_exit_2(args, message, capsys):
    assert F.run(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_help_lists_our_flags_not_all_of_beams(capsys):
    assert F.run(["--help"]) == 0
    text = capsys.readouterr().out
    assert "--input" in text and "--files_per_shard" in text and "DataflowRunner" in text
    assert len(text.splitlines()) < 60


def test_dataflow_job_builds_offline_with_dry_run(monkeypatch, capsys):
    monkeypatch.chdir(REPO)   # --setup_file ./setup.py, as a user runs it from the checkout
    assert F.run(["--input", "gs://bucket/corpora", "--output", "gs://bucket/features", "--runner", "DataflowRunner",
                  "--dry_run=True", "--no_auth", "--project", "my-project", "--region", "us-central1",
                  "--temp_location", "gs://bucket/tmp", "--setup_file", "./setup.py"]) == 0
    assert "dry run: the job was built, not submitted" in capsys.readouterr().out


def test_the_builder_runs_under_beams_test_pipeline(corpora_tree, tmp_path):
    """build_pipeline, driven by Beam's TestPipeline, stages shards, stats and counts."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.test_pipeline import TestPipeline

    from pipelines.options import FeaturesOptions, IOOptions

    root, expected = corpora_tree
    options = PipelineOptions(["--input", str(root), "--output", str(tmp_path / "out")])
    staging = tmp_path / "staging"
    job = dataclasses.replace(F.make_job(options.view_as(FeaturesOptions), options.view_as(IOOptions)),
                              staging=str(staging))
    with TestPipeline(runner="FnApiRunner") as p:
        F.build_pipeline(p, job)
    counts = json.loads((staging / "counts.json").read_text())
    assert (counts["inputs"], counts["written"], counts["skipped"], counts["failed"]) == (
        sum(len(expected[k]) for k in ("good", "skipped", "failed")),
        len(expected["good"]), len(expected["skipped"]), len(expected["failed"]))
    dead = [json.loads(line) for line in (staging / "dead_letters.jsonl").read_text().splitlines()]
    assert len(dead) == len(expected["skipped"]) + len(expected["failed"])
    assert json.loads((staging / "stats.json").read_text())["frames"] > 0
    shards = sorted(p.name for p in staging.glob("*.tfrecord.gz"))
    assert {name.split("-")[0] for name in shards} == {"train", "val", "test"}


def test_plan_facts_count_inputs_groups_and_merge_genders(tmp_path):
    """One combiner gathers what the split plan needs; TestPipeline + assert_that."""
    import apache_beam as beam
    from apache_beam.io.filesystem import FileMetadata
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from ser_model.corpora import Utterance
    from ser_model.splits import SplitConfig

    demo = tmp_path / "VideoDemographics.csv"
    demo.write_text('ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n'
                    '1002,21,Female,Caucasian,Not Hispanic\n')
    files = [(None, FileMetadata(str(demo), 100)), (None, FileMetadata("/x/a.wav", 10))]
    utts = [(Utterance(corpus="ravdess", speaker=s, gender="female", label="angry", raw_label="05",
                       sentence="01", path=f"/x/{s}-{i}.wav"), 10) for s in ("01", "02") for i in range(3)]
    split_cfg = SplitConfig.from_dict({})
    with TestPipeline(runner="FnApiRunner") as p:
        facts = ((p | "Files" >> beam.Create(files) | beam.FlatMap(T.input_facts),
                  p | "Utts" >> beam.Create(utts) | beam.Map(T.utterance_fact, split_cfg))
                 | beam.Flatten() | beam.CombineGlobally(T.PlanFacts())
                 | beam.Map(lambda f: (f["matched"], sorted(f["genders"].items()), sorted(f["groups"].values()))))
        assert_that(facts, equal_to([(2, [("1001", "male"), ("1002", "female")], [3, 3])]))
