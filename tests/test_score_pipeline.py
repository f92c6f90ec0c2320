"""The real scoring pipeline on generated audio of mixed formats, rates and lengths."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from pipelines import score as S
from ser_model.predict import Predictor
from ser_model import audio
from tests import audiogen
from tests.archivegen import make_archive
from tests.conftest import REPO, ser

EXAMPLES = sorted((REPO / "examples/cremad/AudioWAV").glob("*.opus"))


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    audiogen.write(root / "calls/a.wav", seconds=2.0, rate=8000, pitch=200)
    audiogen.write(root / "calls/b.flac", seconds=4.5, rate=44100, pitch=300, channels=2, fmt="FLAC")
    audiogen.write(root / "calls/deep/c.ogg", seconds=1.0, rate=48000, pitch=150, fmt="OGG", subtype="VORBIS")
    audiogen.write(root / "calls/d.aiff", seconds=3.0, rate=22050, pitch=250, fmt="AIFF")
    # A recording of a few minutes like an archive's: real speech (the bundled CREMA-D clips) between
    # music, noise, tones and silence; streamed in blocks, scored where voice activity finds speech.
    wave, _ = make_archive(EXAMPLES, 100, seed=5)
    (root / "long").mkdir()
    sf.write(root / "long/interview.flac", audio.resample(wave, 16000, 22050), 22050, format="FLAC")
    (root / "calls/empty.wav").write_bytes(b"")
    (root / "calls/truncated.wav").write_bytes((root / "calls/a.wav").read_bytes()[:40])
    (root / "calls/notes.mp3").write_text("not audio at all\n" * 20)
    return root


@pytest.fixture(scope="module")
def scored(archive, tiny_bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("scores") / "run"
    proc = ser("score", "--model", tiny_bundle[0], "--input", f"{archive}/calls/**", "--input",
               archive / "long", "--output", out, "--windows", "--segments", "--batch_size", "16")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def test_every_input_is_a_row_and_the_run_balances(scored, archive):
    out, stdout = scored
    assert "inputs 8 = scored 5 + failed 3" in stdout
    rows = pq.read_table(f"{out}.files.parquet").to_pylist()
    assert sorted(Path(r["path"]).name for r in rows) == sorted(
        ["a.wav", "b.flac", "c.ogg", "d.aiff", "interview.flac", "empty.wav", "truncated.wav", "notes.mp3"])
    assert all(r["path"].startswith(str(archive)) for r in rows)


def test_columns_probabilities_and_errors(scored, tiny_bundle):
    out, _ = scored
    table = pq.read_table(f"{out}.files.parquet")
    classes = json.loads((tiny_bundle[0] / "labels.json").read_text())["classes"]
    assert table.column_names == ["path", "duration_s", "speech_s", "n_windows", "label", "confidence",
                                  *[f"p_{c}" for c in classes], "gender", "gender_confidence",
                                  "model_id", "status", "error"]
    for row in table.to_pylist():
        if row["error"] is None:
            probs = np.array([row[f"p_{c}"] for c in classes])
            assert np.isclose(probs.sum(), 1.0, atol=1e-5)
            assert row["label"] == classes[int(probs.argmax())] and row["confidence"] == probs.max()
            assert row["n_windows"] >= 1 and row["gender"] in ("female", "male")
            assert row["model_id"].startswith("ser-") and row["status"] == "scored"
        else:
            assert row["label"] is None and row["n_windows"] == 0 and row["status"] == "failed"
    errors = {Path(r["path"]).name: r["error"] for r in table.to_pylist() if r["error"]}
    assert errors["empty.wav"].startswith("empty-file")
    assert errors["truncated.wav"].startswith("undecodable")
    assert errors["notes.mp3"].startswith("undecodable")
    dead = [json.loads(line) for line in Path(f"{out}.dead_letters.jsonl").read_text().splitlines()]
    assert [Path(d["path"]).name for d in dead] == ["empty.wav", "notes.mp3", "truncated.wav"]
    assert all(set(d) == {"path", "kind", "stage", "error_type", "message"} and d["kind"] == "failed"
               for d in dead)


def test_long_recording_is_scored_on_its_speech_only(scored):
    out, _ = scored
    files = {Path(r["path"]).name: r for r in pq.read_table(f"{out}.files.parquet").to_pylist()}
    long = files["interview.flac"]
    assert long["duration_s"] > 100
    windows = [w for w in pq.read_table(f"{out}.windows.parquet").to_pylist() if w["path"].endswith("interview.flac")]
    segments = [r for r in pq.read_table(f"{out}.segments.parquet").to_pylist()
                if r["path"].endswith("interview.flac")]
    assert len(windows) == long["n_windows"] >= len(EXAMPLES)   # every speech clip, at least one window
    assert long["speech_s"] == pytest.approx(sum(s["end_s"] - s["start_s"] for s in segments), abs=0.01)
    assert long["speech_s"] < 0.5 * long["duration_s"]        # the music, noise and tones were left out
    by_segment = {s["segment"]: s for s in segments}
    for w in windows:   # every window starts inside its speech segment
        seg = by_segment[w["segment"]]
        assert seg["start_s"] - 1e-6 <= w["start_s"] <= seg["end_s"] and w["end_s"] - w["start_s"] == pytest.approx(3.0)
    assert sum(s["n_windows"] for s in segments) == len(windows)
    for s in segments:
        probs = [s[f"p_{c}"] for c in ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")]
        assert s["label"] and s["confidence"] == max(probs) and sum(probs) == pytest.approx(1.0)


def test_without_voice_activity_every_window_with_sound_is_scored(archive, tiny_bundle):
    path = str(archive / "long/interview.flac")
    speech, blind = Predictor(str(tiny_bundle[0])).predict_file(path), \
        Predictor(str(tiny_bundle[0]), vad="off").predict_file(path)
    assert blind.segments is None and len(blind.starts_s) > 2 * len(speech.starts_s)


def test_a_file_whose_parts_went_missing_is_a_failed_row_that_says_what_arrived():
    """The join never drops a file: windows without their file's info, or info without windows, give a
    failed row and a dead letter."""
    classes = ("a", "b")
    windows = [(0, np.array([0.9, 0.1]), None, None, 0.0), (1, np.array([0.7, 0.3]), None, None, 1.5)]
    out = list(S.join_file(("x.wav", {"info": [], "windows": windows, "dead": []}), classes, [], "m"))
    assert [tag for tag, _ in out] == [S.ROW, S.DEAD]
    assert out[0][1]["status"] == "failed" and out[0][1]["label"] is None
    assert out[0][1]["error"] == "internal: no file info for this file (2 of its windows arrived without it)"
    assert out[1][1]["stage"] == "score" and out[1][1]["path"] == "x.wav"
    info_only = {"info": [{"duration_s": 2.0, "speech_s": None, "segments": None}], "windows": [], "dead": []}
    (_, row), (_, dead) = S.join_file(("y.wav", info_only), classes, [], "m")
    assert row["status"] == "failed" and dead["error_type"] == "silent" and dead["path"] == "y.wav"


def test_pipeline_scores_equal_the_in_process_predictor(scored, archive, tiny_bundle):
    out, _ = scored
    predictor = Predictor(str(tiny_bundle[0]))
    rows = {Path(r["path"]).name: r for r in pq.read_table(f"{out}.files.parquet").to_pylist()}
    for name in ("a.wav", "b.flac", "d.aiff", "interview.flac"):
        path = next(archive.rglob(name))
        pred = predictor.predict_file(str(path))
        got = np.array([rows[name][f"p_{c}"] for c in predictor.bundle.classes])
        assert np.allclose(got, pred.probs, atol=1e-5), name
        assert rows[name]["n_windows"] == len(pred.starts_s)


def test_predict_command_prints_each_files_prediction(tiny_bundle):
    examples = sorted((REPO / "examples/cremad/AudioWAV").glob("*.opus"))[:3]
    proc = ser("predict", "--model", tiny_bundle[0], *examples, REPO / "README.md", "--verbose")
    assert proc.returncode == 1  # one file (README.md) could not be scored
    # --verbose brings back TensorFlow's start-up lines (every other `ser` run in the suite checks
    # that they are hidden by default: conftest.ser)
    assert "oneDNN" in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1].split() == ["file", "true", "predicted", "conf", "windows", "gender"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    predictor = Predictor(str(tiny_bundle[0]))
    for path in examples:
        pred = predictor.predict_file(str(path))
        name, true, label, conf, windows, _ = rows[path.name]
        assert (label, float(conf), int(windows)) == (pred.label, round(pred.confidence, 2), len(pred.starts_s))
    assert rows["README.md"][2] == "error:"


def test_summary_counts_correct_files_against_the_file_names(scored, tiny_bundle):
    out, _ = scored
    from ser_model.labels import LabelSet

    bundle_labels = json.loads((tiny_bundle[0] / "labels.json").read_text())
    # The archive's names follow no corpus: nothing is "known", errors are listed as errors.
    text = S.summary_table(f"{out}.files.parquet", LabelSet.from_json(bundle_labels["label_set"]))
    assert "correct where the file name" not in text
    assert sum("error:" in line for line in text.splitlines()) == 3


def test_group_by_folder_normalises_each_folders_files(archive, tiny_bundle, tmp_path):
    """--group_by: every row gets its group; scored files of a large enough group get the normalised
    columns, rescaled by the bundle's group temperature; the rest (a group too small, failed files) none."""
    import shutil

    from ser_model.speaker_norm import normalise_by_group

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle[0], bundle)
    (bundle / "calibration.json").write_text(json.dumps({"method": "temperature", "temperature": 1.0,
                                                         "group_temperature": 0.5}))
    out = tmp_path / "run"
    proc = ser("score", "--model", bundle, "--input", f"{archive}/calls/**", "--output", out,
               "--group_by", "folder", "--min_group_files", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "3 of 4 scored files have a group_label; 1 are outside any group of at least 2 files" in proc.stdout
    assert "not calibrated" not in proc.stdout
    rows = {Path(r["path"]).name: r for r in pq.read_table(f"{out}.files.parquet").to_pylist()}
    assert {n: Path(r["group"]).name for n, r in rows.items()} == {
        "a.wav": "calls", "b.flac": "calls", "d.aiff": "calls", "c.ogg": "deep", "empty.wav": "calls",
        "truncated.wav": "calls", "notes.mp3": "calls"}
    classes = json.loads((bundle / "labels.json").read_text())["classes"]
    names = ["a.wav", "b.flac", "d.aiff"]
    expected = normalise_by_group([[rows[n][f"p_{c}"] for c in classes] for n in names], ["calls"] * 3, 2, 0.5)
    for name, q in zip(names, expected):
        got = [rows[name][f"group_p_{c}"] for c in classes]
        assert np.allclose(got, q) and rows[name]["group_label"] == classes[int(np.argmax(q))]
        assert rows[name]["group_confidence"] == pytest.approx(max(q))
    assert all(rows[n]["group_label"] is None for n in ("c.ogg", "empty.wav", "truncated.wav", "notes.mp3"))


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert S.run(["--output", str(tmp_path / "x")]) == 2
    assert S.run(["--input", str(tmp_path / "typo/**"), "--output", str(tmp_path / "x")]) == 2
    assert "no input file matched" in capsys.readouterr().err
    assert not list(tmp_path.glob("x.*"))
    assert S.run(["--input", "x", "--output", str(tmp_path / "x"), "--model", str(tmp_path)]) == 2
    capsys.readouterr()
    assert S.run(["--input", "x", "--output", str(tmp_path / "x"), "--windowz"]) == 2
    assert "unrecognized argument --windowz (did you mean --windows?)" in capsys.readouterr().err
    assert S.run(["--input", "x", "--output", "/etc/hostname/run"]) == 2
    assert "/etc/hostname is a file, not a folder" in capsys.readouterr().err
    # A glob the shell expanded: every file but the first would be dropped without a word.
    assert S.run(["--input", "a.wav", "b.wav", "c.wav", "--output", str(tmp_path / "x")]) == 2
    assert "unexpected arguments b.wav c.wav: each flag takes one value" in capsys.readouterr().err
    assert S.run(["--input", "a.wav", "--windows", "b.wav", "--output", str(tmp_path / "x")]) == 2
    assert "unexpected argument b.wav" in capsys.readouterr().err
    assert S.run(["--input", "x", "--output", str(tmp_path / "x"), "--group_by", "Actor_("]) == 2
    assert "--group_by: not 'folder' nor a valid regular expression" in capsys.readouterr().err


def test_dataflow_job_builds_offline(tiny_bundle, monkeypatch, capsys):
    monkeypatch.chdir(REPO)   # --setup_file ./setup.py, as a user runs it from the checkout
    assert S.run(["--model", str(tiny_bundle[0]), "--input", "gs://bucket/archive/**",
                  "--output", "gs://bucket/scores/run", "--runner", "DataflowRunner", "--dry_run=True",
                  "--no_auth", "--project", "my-project", "--region", "us-central1",
                  "--temp_location", "gs://bucket/tmp", "--setup_file", "./setup.py"]) == 0
    assert "dry run" in capsys.readouterr().out


def readme_block(marker: str) -> str:
    """The fenced Python block after ``<!-- marker -->`` in the README."""
    text = (REPO / "README.md").read_text()
    after = text[text.index(f"<!-- {marker} -->"):]
    return after[after.index("```python\n") + len("```python\n"):after.index("\n```", after.index("```python"))]


def test_readme_timeline_example_plots_the_long_recording(scored, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    out, _ = scored
    (tmp_path / "out").mkdir()
    for table in ("windows", "segments"):   # the example's paths, the fixture's tables
        (tmp_path / f"out/scores.{table}.parquet").symlink_to(f"{out}.{table}.parquet")
    monkeypatch.chdir(tmp_path)
    names = {}
    exec(readme_block("timeline-example"), names)
    assert names["path"].endswith("interview.flac")
    assert len(names["ax"].lines) == 7                       # one line per class
    assert len(names["ax"].patches) == len(names["s"]) > 0   # one shaded span per speech segment
    assert (tmp_path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
