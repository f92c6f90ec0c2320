"""A user's own labelled recordings: a manifest or a folder per label, through features, train and score."""

import json

import pyarrow.parquet as pq
import pytest

from ser_model.config import ConfigError, load_yaml
from ser_model.corpora.labelled import read_manifest
from ser_model.labels import load_label_table
from tests import audiogen
from tests.conftest import TINY, ser
from tests.test_features_pipeline import read_split, run_features

# label as the user wrote it -> the pitch audiogen gives that emotion
OWN_LABELS = {"Anger": "angry", "happiness": "happy", "NEUTRAL": "neutral", "sadness": "sad"}


@pytest.fixture(scope="module")
def own_manifest(tmp_path_factory):
    """``mydata/manifest.csv``: 4 speakers x 4 labels, relative paths, one listed file missing."""
    root = tmp_path_factory.mktemp("mydata")
    lines = ["path,label,speaker,gender"]
    for s, speaker in enumerate(("ann", "bob", "cy", "dee")):
        for code, emotion in OWN_LABELS.items():
            rel = f"audio/{speaker}_{code}.wav"
            audiogen.write(root / rel, pitch=audiogen.EMOTION_PITCH[emotion], seed=s)
            lines.append(f"{rel},{code},{speaker},{'f' if s % 2 else 'M'}")
    lines.append("audio/never_recorded.wav,anger,ann,f")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def own_features(own_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("own") / "features"
    assert run_features([f"mydata={own_manifest / 'manifest.csv'}"], out) == 0  # the missing file: a dead letter
    return out


def test_manifest_rows_become_shards_with_their_speakers_and_labels(own_features, own_manifest):
    manifest = json.loads((own_features / "manifest.json").read_text())
    assert (manifest["inputs"], manifest["written"], manifest["failed"]) == (17, 16, 1)
    assert manifest["reasons"]["failed"]["read"]["missing-file"] == 1
    rows = [r for split in ("train", "val", "test") for r in read_split(own_features, split)]
    assert {r["corpus"] for r in rows} == {"mydata"}
    by_file = {r["path"]: r for r in rows}
    ann_anger = by_file[str(own_manifest / "audio/ann_Anger.wav")]
    assert (ann_anger["label"], ann_anger["speaker"], ann_anger["gender"]) == ("angry", "ann", "male")
    assert by_file[str(own_manifest / "audio/bob_sadness.wav")]["gender"] == "female"
    # Speaker-independent: every speaker's files are in one split, and there is a test speaker.
    splits_of = {}
    for split in ("train", "val", "test"):
        for r in read_split(own_features, split):
            splits_of.setdefault(r["speaker"], set()).add(split)
    assert all(len(s) == 1 for s in splits_of.values()) and any("test" in s for s in splits_of.values())


def test_train_then_score_own_data(own_features, own_manifest, tmp_path):
    bundle = tmp_path / "bundle"
    trained = ser("train", "--features", own_features, "--output", bundle, *TINY, "--max_steps", "3")
    assert trained.returncode == 0, trained.stderr[-3000:]
    scored = ser("score", "--model", bundle, "--input", own_manifest / "audio", "--output", tmp_path / "scores")
    assert scored.returncode == 0, scored.stderr[-3000:]
    rows = pq.read_table(tmp_path / "scores.files.parquet").to_pylist()
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in (own_manifest / "audio").glob("*.wav"))
    assert all(r["label"] and not r["error"] for r in rows)


def test_folder_per_label_with_a_stray_file(tmp_path):
    root = tmp_path / "clips"
    for i, folder in enumerate(("angry", "Happy", "fear")):
        for j in range(2):
            audiogen.write(root / folder / f"take{j}.wav", pitch=150 + 60 * i, seed=j)
    audiogen.write(root / "unsorted.wav")
    out = tmp_path / "out"
    assert run_features([f"clips={root}"], out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["inputs"], manifest["written"], manifest["skipped"]) == (7, 6, 1)
    assert manifest["reasons"]["skipped"]["parse"]["not-in-a-label-folder"] == 1
    labels = sorted(r["label"] for s in ("train", "val", "test") for r in read_split(out, s))
    assert labels == ["angry", "angry", "fearful", "fearful", "happy", "happy"]
    # No speakers: each file is its own split group, so the split is by file.
    assert set(manifest["split_groups"]["clips"]["test"]) <= {f"file:{p}" for p in map(str, root.rglob("*.wav"))}


def test_data_without_speakers_trains_without_the_speaker_adversary(tmp_path):
    """The default recipe's speaker adversary needs named speakers; a folder per label has none."""
    root = tmp_path / "clips"
    for i, folder in enumerate(("angry", "happy", "sad")):
        for j in range(6):
            audiogen.write(root / folder / f"take{j}.wav", pitch=150 + 60 * i, seed=j)
    features, bundle = tmp_path / "features", tmp_path / "bundle"
    assert run_features([f"clips={root}"], features) == 0
    assert load_yaml("train")["model"]["speaker_adversary"] > 0   # on by default
    trained = ser("train", "--features", features, "--output", bundle, *TINY, "--max_steps", "2")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "speaker adversary off: the training data names 0 speaker(s)" in trained.stdout
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert metrics["training"]["config"]["model"]["speaker_adversary"] is None
    assert "speaker adversary" not in (bundle / "MODEL_CARD.md").read_text()


def test_labels_that_map_to_nothing_stop_before_any_work(tmp_path, capsys):
    root = tmp_path / "clips"
    audiogen.write(root / "angry" / "a.wav")
    audiogen.write(root / "bored" / "b.wav")
    audiogen.write(root / "meh" / "c.wav")
    assert run_features([f"clips={root}"], tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'bored', 'meh' map to no emotion" in err
    assert not (tmp_path / "out").exists()


def test_a_user_label_map_names_the_labels(tmp_path):
    root = tmp_path / "clips"
    audiogen.write(root / "bored" / "b.wav")
    audiogen.write(root / "furious" / "f.wav", pitch=260)
    table = tmp_path / "labels.yaml"
    base = load_yaml("labels")
    base["corpora"]["clips"] = {"bored": "neutral", "furious": "angry"}
    table.write_text(json.dumps(base))  # JSON is YAML
    out = tmp_path / "out"
    assert run_features([f"clips={root}"], out, "--labels_config", str(table)) == 0
    assert sorted(r["label"] for s in ("train", "val", "test") for r in read_split(out, s)) == ["angry", "neutral"]


@pytest.mark.parametrize("text,message", [
    ("file,label\na.wav,angry\n", "missing path"),
    ("path,label,gender\na.wav,angry,x\n", "gender 'x'"),
    ("path,label\na.wav,angry\n./a.wav,happy\n", "listed twice"),
    ("path,label\n", "no rows"),
    ("path,label\na.wav,bored\n", "'bored' map to no emotion"),
])
def test_bad_manifests_are_one_line_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        read_manifest(text, "/data/m.csv", "mydata", load_label_table())


def test_tsv_manifest_paths_are_relative_to_the_manifest():
    utts = read_manifest("path\tlabel\tspeaker\nx/a.wav\tJoy\ts1\n/abs/b.wav\tsad\ts2\n", "gs://b/set/m.tsv",
                         "mydata", load_label_table())
    assert [(u.path, u.label, u.speaker) for u in utts] == [("gs://b/set/x/a.wav", "happy", "s1"),
                                                            ("/abs/b.wav", "sad", "s2")]
