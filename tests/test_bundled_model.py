"""The committed default model: loads from the package, scores the bundled examples as recorded."""

import json
import os

import numpy as np
import pytest

from ser_model.bundle import DEFAULT_BUNDLE, load_bundle
from ser_model.predict import Predictor
from tests.conftest import REPO

EXAMPLES = sorted((REPO / "examples/cremad/AudioWAV").glob("*.opus"))
EMOTION = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
# What the bundled model predicts for the bundled examples. A new bundled model must come with a
# new table (SER_UPDATE_EXPECTED=1 python -m pytest tests/test_bundled_model.py rewrites it), so a
# model swap is a visible change in review.
EXPECTED = REPO / "tests" / "data" / "bundled_model_expected.json"
# The committed cross-validation reports of its recipe (`make bundled-model`): its figures come from them.
SPEAKER_FOLDS = REPO / "benchmarks/crossval/adversary-e12/crossval.json"
CORPUS_FOLDS = REPO / "benchmarks/crossval/loco-adversary-e12/crossval.json"
CORPORA = ("cremad", "ravdess", "savee", "tess")


@pytest.fixture(scope="module")
def predictor():
    return Predictor(load_bundle())  # no path: the bundled default


@pytest.fixture(scope="module")
def predictions(predictor):
    return {path.name: predictor.predict_file(str(path)) for path in EXAMPLES}


def test_bundle_is_complete_and_small():
    names = {p.name for p in DEFAULT_BUNDLE.iterdir()}
    assert {"model.keras", "labels.json", "features.json", "metrics.json", "calibration.json",
            "MODEL_CARD.md"} <= names
    assert sum(p.stat().st_size for p in DEFAULT_BUNDLE.iterdir()) <= 32 * 2**20


def test_bundle_carries_its_recipes_cross_validation(predictor):
    """Refit on every development speaker, the bundle has no held-out split of its own: its figures
    and its temperature are those of the committed folds of its recipe, speakers first, then corpora."""
    from ser_model.crossval import check_same_recipe

    metrics = json.loads((DEFAULT_BUNDLE / "metrics.json").read_text())
    assert metrics["training"]["train_on"] == "all" and "file" not in metrics
    kept = metrics["crossval"]
    assert [k["kind"] for k in kept] == ["speaker_folds", "by_corpus"]
    for ev, path in zip(kept, (SPEAKER_FOLDS, CORPUS_FOLDS)):
        report = json.loads(path.read_text())
        check_same_recipe(report, metrics["training"]["config"])
        assert ev["source"] == path.relative_to(REPO).as_posix()
        assert ev["summary"] == report["summary"]
        assert {f"corpus:{c}" for c in CORPORA} <= set(report["summary"])
    speakers = json.loads(SPEAKER_FOLDS.read_text())
    calibration = json.loads((DEFAULT_BUNDLE / "calibration.json").read_text())
    assert calibration["temperature"] == speakers["calibration"]["temperature"] == predictor.bundle.temperature
    card = (DEFAULT_BUNDLE / "MODEL_CARD.md").read_text()
    order = ["## On voices it never heard", "| savee |", "## On a corpus it never heard", "## Calibration",
             "## Intended use"]
    assert [card.index(h) for h in order] == sorted(card.index(h) for h in order)
    uar = speakers["summary"]["corpus:savee"]["uar"]["mean"]
    assert f"{uar:.3f}" in card[:card.index("## On a corpus it never heard")]


def test_bundled_model_scores_the_examples(predictor, predictions):
    classes = predictor.bundle.classes
    assert len(classes) == 7 and predictor.bundle.has_gender
    for pred in predictions.values():
        assert pred.window_probs.shape == (len(pred.starts_s), 7)
        assert np.isclose(pred.probs.sum(), 1.0, atol=1e-5)
    # A trained model, not a barely trained one: at least half the examples' own emotions, three
    # times chance (six classes). Their actors are among the speakers it was refit on, but a short,
    # regularised schedule does not learn its training clips by heart: a check, not an evaluation.
    correct = sum(pred.label == EMOTION[name.split("_")[2]] for name, pred in predictions.items())
    assert correct >= 6, f"{correct}/12 examples right"


def test_predictions_match_the_recorded_table(predictor, predictions):
    table = {name: {"label": p.label, "probs": [round(float(x), 4) for x in p.probs]}
             for name, p in predictions.items()}
    if os.environ.get("SER_UPDATE_EXPECTED"):
        EXPECTED.write_text(json.dumps({"model_id": predictor.bundle.model_id,
                                        "classes": list(predictor.bundle.classes), "files": table}, indent=1) + "\n")
        pytest.skip(f"rewrote {EXPECTED}")
    expected = json.loads(EXPECTED.read_text())
    assert expected["model_id"] == predictor.bundle.model_id, "a new bundled model needs a new expected table"
    assert expected["classes"] == list(predictor.bundle.classes)
    assert {n: r["label"] for n, r in table.items()} == {n: r["label"] for n, r in expected["files"].items()}
    for name, row in table.items():
        assert np.allclose(row["probs"], expected["files"][name]["probs"], atol=2e-3), name
