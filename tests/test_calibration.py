"""Temperature scaling lowers the calibration error of a miscalibrated model and never changes its labels."""

import numpy as np
import pytest

from ser_model.calibration import apply_temperature, ece, fit_temperature, reliability


def overconfident(n=4000, classes=7, true_temperature=3.0, seed=0):
    """Labels drawn from calibrated probabilities; the 'model' reports them sharpened (p ** 3)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.2, (n, classes))
    calibrated = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(classes, p=p) for p in calibrated])
    return apply_temperature(calibrated, 1 / true_temperature), labels


def test_temperature_scaling_recovers_the_sharpening_and_lowers_ece():
    probs, labels = overconfident()
    fit, held_out = slice(0, 2000), slice(2000, None)
    t = fit_temperature(probs[fit], labels[fit])
    assert t == pytest.approx(3.0, rel=0.15)
    before, after = ece(probs[held_out], labels[held_out]), ece(apply_temperature(probs[held_out], t), labels[held_out])
    assert before > 0.15 and after < 0.05 and after < before / 3


def test_an_underconfident_model_gets_a_temperature_below_one():
    probs, labels = overconfident(true_temperature=0.5, seed=1)
    assert fit_temperature(probs, labels) < 0.7


def test_scaling_keeps_every_label_and_sums_to_one():
    probs, _ = overconfident(n=200)
    scaled = apply_temperature(probs, 2.5)
    assert np.array_equal(scaled.argmax(1), probs.argmax(1))
    assert np.allclose(scaled.sum(1), 1.0) and np.array_equal(apply_temperature(probs, 1.0), probs)


def test_reliability_table_and_ece_by_hand():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])
    table = reliability(probs, labels, bins=5)
    assert [row["n"] for row in table] == [0, 0, 2, 0, 2]
    assert table[4] == {"lo": 0.8, "hi": 1.0, "n": 2, "confidence": 0.9, "accuracy": 0.5}
    assert ece(probs, labels, bins=5) == pytest.approx((2 * 0.4 + 2 * 0.4) / 4)


def test_a_bundles_temperature_calibrates_the_predictor_and_the_scorer_rows(tiny_bundle, tmp_path):
    import json
    import shutil

    from pipelines.score import join_file, window_row
    from ser_model.predict import Predictor
    from tests.conftest import REPO

    calibrated = tmp_path / "bundle"
    shutil.copytree(tiny_bundle[0], calibrated)
    (calibrated / "calibration.json").write_text(json.dumps({"method": "temperature", "temperature": 3.0}))
    example = str(sorted((REPO / "examples/cremad/AudioWAV").glob("*.opus"))[0])
    raw, scaled = Predictor(str(tiny_bundle[0])).predict_file(example), Predictor(str(calibrated)).predict_file(example)
    assert np.allclose(scaled.probs, apply_temperature(raw.probs, 3.0)) and scaled.label == raw.label
    assert np.allclose(scaled.window_probs, apply_temperature(raw.window_probs, 3.0))
    assert scaled.confidence < raw.confidence   # T > 1 softens

    classes = ("a", "b")
    windows = [(0, np.array([0.9, 0.1]), None, None), (1, np.array([0.7, 0.3]), None, None)]
    (tag, row), = join_file(("x.wav", {"info": [{"duration_s": 4.0}], "windows": windows, "dead": []}),
                            classes, [], "m", 2.0)
    assert tag == "row" and row["n_windows"] == 2
    assert [row["p_a"], row["p_b"]] == pytest.approx(list(apply_temperature([0.8, 0.2], 2.0)))
    window = window_row(("x.wav", 0, 0.0, np.array([0.9, 0.1]), None, None), classes, 3.0, 2.0)
    assert window["confidence"] == pytest.approx(apply_temperature([0.9, 0.1], 2.0)[0])


def test_a_bad_calibration_file_is_refused(tmp_path):
    import json

    from ser_model.bundle import read_temperature

    assert read_temperature(tmp_path) == 1.0   # no file: no rescaling
    (tmp_path / "calibration.json").write_text(json.dumps({"method": "temperature", "temperature": -1}))
    with pytest.raises(ValueError, match="positive temperature"):
        read_temperature(tmp_path)


def test_ser_train_calibration_comes_from_a_crossval_report_into_the_bundle(tmp_path):
    import json

    from ser_cli.commands import calibration_from_crossval
    from ser_model.config import load_yaml
    from ser_model.train import apply_overrides
    from tests.conftest import REPO
    from ser_model.bundle import load_bundle, save_bundle
    from ser_model.features import FeatureConfig
    from ser_model.labels import load_label_table
    from ser_model.model import build_model

    report = tmp_path / "crossval.json"
    recipe = apply_overrides(load_yaml(REPO / "configs/train.yaml"), ["training.epochs=6"])
    finished = {"kind": "speaker_folds", "complete": True, "config": recipe,
                "calibration": {"method": "temperature", "temperature": 1.7, "ece_before": 0.12,
                                "ece_after_cross_fitted": 0.03}}
    for partial in ({**finished, "complete": False}, {k: v for k, v in finished.items() if k != "kind"}):
        report.write_text(json.dumps(partial))
        with pytest.raises(ValueError, match="partial|no kind"):
            calibration_from_crossval(str(report), recipe)
    report.write_text(json.dumps(finished))
    # Only the folds of the recipe being trained may calibrate it (how it is run may differ).
    with pytest.raises(ValueError, match="another recipe .training.epochs 6 there, 30 here"):
        calibration_from_crossval(str(report), apply_overrides(recipe, ["training.epochs=30"]))
    calibration = calibration_from_crossval(str(report), apply_overrides(recipe, ["training.cache=false"]))
    # ... on shards of the same feature settings, where the report records them (older ones do not).
    assert calibration_from_crossval(str(report), recipe, FeatureConfig(fmax=7000.0).to_json())["temperature"] == 1.7
    report.write_text(json.dumps({**finished, "features": FeatureConfig().to_json()}))
    with pytest.raises(ValueError, match="another recipe .features.fmax 8000.0 there, 7000.0 here"):
        calibration_from_crossval(str(report), recipe, FeatureConfig(fmax=7000.0).to_json())
    assert calibration_from_crossval(str(report), recipe, FeatureConfig().to_json()) == calibration
    cfg = FeatureConfig()
    stats = {"logmel_mean": [0.0] * cfg.n_mels, "logmel_std": [1.0] * cfg.n_mels,
             "mfcc_mean": [0.0] * cfg.n_mfcc, "mfcc_std": [1.0] * cfg.n_mfcc}
    model = build_model({"backbone": "densenet_tiny", "weights": None, "mel_pool": [4, 4], "mfcc_filters": [4],
                         "dropout": 0.1, "gender_head": False}, 7, cfg.logmel_shape, cfg.mfcc_shape, stats)
    label_set = load_label_table().label_set()
    save_bundle(tmp_path / "bundle", model, cfg, label_set, stats, {}, "card", calibration)
    assert load_bundle(str(tmp_path / "bundle")).temperature == 1.7
    assert json.loads((tmp_path / "bundle" / "calibration.json").read_text())["source"] == str(report)
