"""Cross-validation folds: speaker-disjoint in every corpus, from a plan, a fold file or by corpus."""

import json
import os
import re
from collections import Counter

import numpy as np
import pytest

from ser_model.crossval import summarise
from ser_model.folds import FoldError, check_plan, corpus_folds, fold_members, read_fold_file, speaker_folds
from tests.conftest import REPO, TINY, ser

RAVDESS = {("ravdess", f"{i:02d}"): ("male" if i % 2 else "female") for i in range(1, 21)}
SMALL = {("tess", "OAF"): "female", ("tess", "YAF"): "female",
         ("savee", "DC"): "male", ("savee", "JE"): "male", ("savee", "JK"): "male"}


def test_speaker_folds_cover_every_speaker_once_and_balance_genders():
    plan = speaker_folds({**RAVDESS, **SMALL}, 5)
    assert set(plan) == set(RAVDESS) | set(SMALL)
    assert check_plan(plan, plan) == [f"fold-{i}" for i in range(1, 6)]
    for fold in check_plan(plan, plan):
        train, test = fold_members(plan, fold)
        assert not train & test and train | test == set(plan)
        genders = Counter(RAVDESS[s] for s in test if s[0] == "ravdess")
        assert genders == {"male": 2, "female": 2}
    # small corpora: each speaker in a fold of its own, not all piled into the first folds
    assert len({plan[s] for s in SMALL if s[0] == "savee"}) == 3
    assert plan[("tess", "OAF")] != plan[("tess", "YAF")]
    assert speaker_folds({**RAVDESS, **SMALL}, 5) == plan   # stable


def test_leave_one_corpus_out():
    plan = corpus_folds([*RAVDESS, *SMALL])
    assert check_plan(plan, plan) == ["ravdess", "savee", "tess"]
    train, test = fold_members(plan, "tess")
    assert {c for c, _ in test} == {"tess"} and "tess" not in {c for c, _ in train}


def test_fold_file_by_speaker_and_by_path():
    by_speaker = read_fold_file("corpus,speaker,fold\ntess,OAF,a\ntess,YAF,b\n", {})
    assert by_speaker == {("tess", "OAF"): "a", ("tess", "YAF"): "b"}
    files = {"/data/tess/OAF_Fear/OAF_back_fear.wav": ("tess", "OAF"),
             "/data/tess/YAF_fear/YAF_back_fear.wav": ("tess", "YAF")}
    by_path = read_fold_file("path,fold\nOAF_Fear/OAF_back_fear.wav,1\nYAF_fear/YAF_back_fear.wav,2\n", files)
    assert by_path == {("tess", "OAF"): "1", ("tess", "YAF"): "2"}


@pytest.mark.parametrize("text,files,message", [
    ("path,fold\na.wav,1\nb.wav,2\n", {"/x/a.wav": ("tess", "OAF"), "/x/b.wav": ("tess", "OAF")},
     "must be speaker-disjoint"),
    ("path,fold\nmissing.wav,1\n", {"/x/a.wav": ("tess", "OAF")}, "no file in the features folder matches"),
    ("file,split\na.wav,1\n", {}, "needs the columns"),
])
def test_bad_fold_files_are_refused(text, files, message):
    with pytest.raises(FoldError, match=message):
        read_fold_file(text, files)


def test_a_plan_that_forgets_a_speaker_is_refused():
    with pytest.raises(FoldError, match="1 speaker"):
        check_plan({("tess", "OAF"): "a", ("tess", "YAF"): "b"}, [("tess", "OAF"), ("tess", "YAF"), ("savee", "DC")])


def test_summary_gives_mean_and_spread_per_corpus_over_the_folds_that_tested_it():
    classes = ("a", "b")

    def fold(name, corpus, truth, predicted):
        probs = np.eye(2)[predicted].tolist()
        return {"fold": name, "files": {"probs": probs, "label_id": truth, "corpus": [corpus] * len(truth),
                                        "gender": ["female"] * len(truth)}}

    results = [fold("f1", "tess", [0, 1], [0, 1]),       # UAR 1.0
               fold("f2", "tess", [0, 1], [0, 0]),       # UAR 0.5
               fold("f3", "savee", [0, 1, 1], [1, 1, 1])]  # UAR 0.5
    report = summarise(results, classes)
    assert report["summary"]["corpus:tess"]["uar"] == {"mean": 0.75, "std": 0.25, "min": 0.5, "max": 1.0}
    assert report["summary"]["corpus:tess"]["folds"] == 2
    assert report["summary"]["corpus:savee"]["folds"] == 1 and report["summary"]["corpus:savee"]["files"] == 3
    assert report["pooled"]["n"] == 7
    calibration = report["calibration"]
    assert set(calibration["temperature_per_fold"]) == {"f1", "f2", "f3"} and calibration["temperature"] > 0
    assert sum(row["n"] for row in calibration["reliability_before"]) == 7


def test_crossval_runs_end_to_end_scores_every_file_once_and_resumes(feature_dir, tmp_path):
    """The real `ser crossval` on the generated corpora, two folds, a tiny network: first one fold
    alone (a partial summary), then the rest (the first read back, not retrained)."""
    out = tmp_path / "cv"
    args = ["crossval", "--features", feature_dir, "--output", out, "--folds", "2", *TINY, "--max_steps", "2"]
    first = ser(*args, "--only", "fold-1")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    partial = json.loads((out / "crossval.json").read_text())
    assert partial["folds"] == ["fold-1"] and partial["complete"] is False
    assert "(partial: 1 of 2 folds)" in (out / "crossval.md").read_text()
    proc = ser(*args, "--keep_models")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "fold fold-1 (1/2): done earlier, read back" in proc.stdout and "fold fold-2 (2/2)" in proc.stdout
    # --keep_models: the fold trained now left its model, the one that made its predictions (fold-1,
    # read back, has none); keeping models is not a setting, so the folders still match.
    assert not (out / "folds/fold-1/model").exists()
    check_fold_model(out / "folds/fold-2", feature_dir)
    manifest = json.loads((feature_dir / "manifest.json").read_text())
    report = json.loads((out / "crossval.json").read_text())
    assert report["complete"] is True
    assert report["pooled"]["n"] == manifest["written"]   # every written file, scored once
    assert report["features"] == json.loads((feature_dir / "features.json").read_text())["features"]
    plan = json.loads((out / "plan.json").read_text())["speakers"]
    for fold in report["folds"]:
        predictions = json.loads((out / "folds" / fold / "predictions.json").read_text())
        tested = {f"{c}/{s}" for c, s in zip(predictions["files"]["corpus"], predictions["files"]["speaker"])}
        assert tested == set(predictions["test_speakers"]) and {plan[s] for s in tested} == {fold}
    assert {"corpus:ravdess", "corpus:cremad", "corpus:tess", "corpus:savee"} <= set(report["summary"])
    assert "| corpus:tess |" in (out / "crossval.md").read_text()
    from ser_model.calibration import ece

    folds = [json.loads((out / "folds" / f / "predictions.json").read_text())["files"] for f in report["folds"]]
    raw_ece = ece(np.concatenate([f["probs"] for f in folds]), np.concatenate([f["label_id"] for f in folds]))
    assert report["calibration"]["ece_before"] == pytest.approx(raw_ece, abs=1e-4)
    assert "Calibration" in (out / "crossval.md").read_text()
    # Run again (in this process: nothing is trained, so no TensorFlow start-up to pay): both folds are
    # read back, not retrained, and give the same summary.
    from ser_model.crossval import SettingsMismatch, run_crossval
    from ser_model.feature_dir import open_feature_dir

    (out / "crossval.json").unlink()
    stored = json.loads((out / "plan.json").read_text())["speakers"]
    plan = {tuple(key.split("/", 1)): fold for key, fold in stored.items()}
    cfg = json.loads((out / "settings.json").read_text())["config"]
    cfg.pop("max_steps")
    fdir = open_feature_dir(str(feature_dir))
    again = run_crossval(fdir, cfg, plan, out, max_steps=2)
    assert again["pooled"] == report["pooled"]
    # Other settings must not be mixed into these folds.
    cfg["training"]["epochs"] += 1
    with pytest.raises(SettingsMismatch, match="training.epochs"):
        run_crossval(fdir, cfg, plan, out, max_steps=2)
    # A bundle of the recipe leads its model card, and the app its sidebar, with these figures.
    from ser_model.crossval import evidence

    with pytest.raises(ValueError, match="partial"):
        evidence(partial, "cv-partial")
    # Leave one corpus out: each corpus is a fold of its own, tested by a model that never heard it.
    loco = tmp_path / "loco"
    by_corpus = ser("crossval", "--features", feature_dir, "--output", loco, "--by_corpus", *TINY, "--max_steps", "2")
    assert by_corpus.returncode == 0, by_corpus.stdout[-2000:] + by_corpus.stderr[-3000:]
    corpora = json.loads((loco / "crossval.json").read_text())
    assert corpora["kind"] == "by_corpus" and sorted(corpora["folds"]) == ["cremad", "ravdess", "savee", "tess"]
    assert corpora["pooled"]["n"] == manifest["written"]
    for fold in corpora["folds"]:
        tested = json.loads((loco / "folds" / fold / "predictions.json").read_text())["files"]["corpus"]
        assert set(tested) == {fold}
    bundle = tmp_path / "bundle"
    trained = ser("train", "--features", feature_dir, "--output", bundle, *TINY, "--max_steps", "2",
                  "--crossval", out / "crossval.json", "--crossval", loco / "crossval.json",
                  "--calibration", out / "crossval.json")
    assert trained.returncode == 0, trained.stderr[-3000:]
    card = (bundle / "MODEL_CARD.md").read_text()
    order = ["## On voices it never heard", "| tess |", "## On a corpus it never heard", "## Calibration",
             "## Intended use", "## Also measured: the feature run's test split"]
    assert [card.index(h) for h in order] == sorted(card.index(h) for h in order)
    assert "measured on held-out corpora." in card[card.index("## On a corpus it never heard"):]
    kept = json.loads((bundle / "metrics.json").read_text())["crossval"]
    assert [k["kind"] for k in kept] == ["speaker_folds", "by_corpus"]
    assert kept[0]["pooled"]["n"] == manifest["written"]
    # The predictions name speakers: the report and the card also give the speaker-normalised scores.
    assert set(kept[0]["speaker_normalised"]) == {g for g in kept[0]["summary"] if g.startswith("corpus:")}
    assert "With speaker normalisation (`ser score --group_by`" in card
    from streamlit.testing.v1 import AppTest

    os.environ["SER_MODEL"] = str(bundle)
    try:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
        at.run()
    finally:
        del os.environ["SER_MODEL"]
    sidebar = " ".join(m.value for m in at.sidebar.markdown)
    assert "On speakers it never heard (2-fold speaker cross-validation" in sidebar
    assert f"({manifest['written']} files)" in sidebar
    tess_alone = corpora["summary"]["corpus:tess"]["uar"]["mean"]
    assert "On a corpus it never heard (trained on the others), UAR: " in sidebar
    assert f"tess {tess_alone:.2f}" in sidebar
    # A refit on every split has no test split of its own: only the folds speak for it.
    refused = ser("train", "--features", feature_dir, "--output", tmp_path / "no", *TINY, "--train_on", "all")
    assert refused.returncode == 2 and "--train_on all needs --crossval" in refused.stderr
    assert not (tmp_path / "no").exists()
    everything = tmp_path / "bundle-all"
    trained = ser("train", "--features", feature_dir, "--output", everything, *TINY, "--max_steps", "2",
                  "--train_on", "all", "--crossval", out / "crossval.json")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "test split:" not in trained.stdout
    windows = int(re.search(r"(\d+) training windows", trained.stdout).group(1))
    assert windows == sum(manifest["windows"].values())   # train, val and test
    card = (everything / "MODEL_CARD.md").read_text()
    assert "refit on every development speaker" in card and "## On voices it never heard" in card
    assert "test split (" not in card
    assert "file" not in json.loads((everything / "metrics.json").read_text())


def check_fold_model(fold_dir, feature_dir):
    """The kept fold model names its test speakers and gives the fold's predictions again."""
    from ser_model.bundle import load_bundle
    from ser_model.crossval import file_predictions
    from ser_model.feature_dir import open_feature_dir

    predictions = json.loads((fold_dir / "predictions.json").read_text())
    bundle = load_bundle(fold_dir / "model")
    assert bundle.metrics["test_speakers"] == predictions["test_speakers"]
    assert "fold-2" in (fold_dir / "model" / "MODEL_CARD.md").read_text()
    speakers = [tuple(s.split("/", 1)) for s in predictions["test_speakers"]]
    again = file_predictions(bundle.model, open_feature_dir(str(feature_dir)), speakers)
    assert again["path"] == predictions["files"]["path"]
    np.testing.assert_allclose(again["probs"], predictions["files"]["probs"], atol=1e-5)


def test_the_speaker_filter_lets_no_test_speaker_into_training(feature_dir):
    """On the real shards: the windows read for a fold's training hold none of its test speakers."""
    from ser_model.crossval import speakers_of
    from ser_model.data import ALL_SPLITS, read_split
    from ser_model.feature_dir import open_feature_dir

    fdir = open_feature_dir(str(feature_dir))
    plan = speaker_folds(speakers_of(fdir), 2)
    train, test = fold_members(plan, "fold-1")
    seen = {(ex["corpus"].decode(), ex["speaker"].decode())
            for ex in read_split(fdir, ALL_SPLITS, speakers=train).as_numpy_iterator()}
    assert seen and seen <= train and not seen & test


def test_file_speakers_map_every_written_file_to_its_manifest_speaker(feature_dir):
    from ser_model.crossval import speakers_of
    from ser_model.data import file_speakers
    from ser_model.feature_dir import open_feature_dir

    fdir = open_feature_dir(str(feature_dir))
    files = file_speakers(fdir)
    assert len(files) == fdir.manifest["written"]
    assert set(files.values()) == set(speakers_of(fdir))
    some_path, speaker = next(iter(files.items()))
    relative = "/".join(some_path.split("/")[-2:])
    assert read_fold_file(f"path,fold\n{relative},a\n", files) == {speaker: "a"}


def test_a_folder_recorded_before_an_option_existed_resumes_while_the_option_is_off(tmp_path):
    """Options added to the training config default to null, which is what an older folder's
    missing key reads as: earlier folds stay usable, and turning the option on is still refused.
    (The speaker adversary, on by default since it was chosen, is the deliberate exception.)"""
    import copy

    import yaml

    from ser_model.crossval import SettingsMismatch, check_same_settings

    cfg = yaml.safe_load((REPO / "configs" / "train.yaml").read_text())
    plan = {"folds": ["fold-1"], "speakers": {"cremad/1001": "fold-1"}}
    older = copy.deepcopy(cfg)
    for section, key in (("augment", "mixup_alpha"), ("augment", "vtlp"), ("augment", "tempo"),
                         ("augment", "reverb_p"), ("augment", "reverb_rt60_s"), ("training", "ema_momentum")):
        del older[section][key]
    check_same_settings(tmp_path, older, plan)     # the first run records its settings
    check_same_settings(tmp_path, cfg, plan)       # today's defaults: the same recipe
    switched_on = copy.deepcopy(cfg)
    switched_on["augment"]["mixup_alpha"] = 0.4
    with pytest.raises(SettingsMismatch, match="augment.mixup_alpha"):
        check_same_settings(tmp_path, switched_on, plan)


def test_a_folder_keeps_the_feature_settings_of_its_shards(tmp_path):
    """Folds trained on shards of other feature settings (say a lower fmax) must not be mixed in;
    a folder recorded before the feature settings were resumes, their features unknown."""
    import yaml

    from ser_model.crossval import SettingsMismatch, check_same_settings
    from ser_model.features import FeatureConfig

    cfg = yaml.safe_load((REPO / "configs" / "train.yaml").read_text())
    plan = {"folds": ["fold-1"], "speakers": {"cremad/1001": "fold-1"}}
    full, lowpassed = FeatureConfig().to_json(), FeatureConfig(fmax=7000.0).to_json()
    (tmp_path / "new").mkdir()
    (tmp_path / "old").mkdir()
    assert check_same_settings(tmp_path / "new", cfg, plan, full) == full
    assert check_same_settings(tmp_path / "new", cfg, plan, full) == full
    with pytest.raises(SettingsMismatch, match="features.fmax"):
        check_same_settings(tmp_path / "new", cfg, plan, lowpassed)
    check_same_settings(tmp_path / "old", cfg, plan)        # as an older version recorded it
    assert check_same_settings(tmp_path / "old", cfg, plan, lowpassed) is None
