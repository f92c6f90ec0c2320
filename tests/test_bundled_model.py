"""The committed default model: loads from the package, scores the bundled examples sanely."""

import json

import numpy as np
import pytest

from ser_model.bundle import DEFAULT_BUNDLE, load_bundle
from ser_model.predict import Predictor
from tests.conftest import REPO

EXAMPLES = sorted((REPO / "examples/cremad/AudioWAV").glob("*.opus"))


@pytest.fixture(scope="module")
def predictor():
    return Predictor(load_bundle())  # no path: the bundled default


def test_bundle_is_complete_and_small():
    names = {p.name for p in DEFAULT_BUNDLE.iterdir()}
    assert {"model.keras", "labels.json", "features.json", "metrics.json", "MODEL_CARD.md"} <= names
    assert sum(p.stat().st_size for p in DEFAULT_BUNDLE.iterdir()) <= 32 * 2**20
    metrics = json.loads((DEFAULT_BUNDLE / "metrics.json").read_text())
    assert set(metrics["file"]["per_corpus"]) == {"ravdess", "cremad", "tess", "savee"}
    assert "UAR" in (DEFAULT_BUNDLE / "MODEL_CARD.md").read_text()


def test_bundled_model_scores_the_examples(predictor):
    classes = predictor.bundle.classes
    assert len(classes) == 7 and predictor.bundle.has_gender
    confidences = []
    for path in EXAMPLES:
        pred = predictor.predict_file(str(path))
        assert pred.window_probs.shape == (len(pred.starts_s), 7)
        assert np.isclose(pred.probs.sum(), 1.0, atol=1e-5)
        assert pred.label in classes
        confidences.append(pred.confidence)
    # Sane: better than a uniform guess on average, never a degenerate certainty everywhere.
    assert np.mean(confidences) > 1.5 / 7
    assert len({predictor.predict_file(str(p)).label for p in EXAMPLES}) >= 2
