import numpy as np
import pytest

from ser_model.data import balanced_class_weights
from ser_model.evaluate import aggregate_files, confusion_csv, report, scores

CLASSES = ("neutral", "happy", "sad")


def test_uar_is_the_mean_of_per_class_recall():
    y_true = [0, 0, 0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 0, 1, 1, 0, 2, 2]
    s = scores(y_true, y_pred, CLASSES)
    assert s["recall"] == {"neutral": 0.75, "happy": 0.5, "sad": 1.0}
    assert s["uar"] == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    assert s["accuracy"] == pytest.approx(6 / 8)
    assert s["confusion"] == [[3, 1, 0], [1, 1, 0], [0, 0, 2]]
    # F1: neutral p=3/4 r=3/4; happy p=1/2 r=1/2; sad 1.
    assert s["macro_f1"] == pytest.approx((0.75 + 0.5 + 1.0) / 3)


def test_absent_classes_do_not_count_towards_uar():
    s = scores([0, 0], [0, 1], CLASSES)
    assert s["uar"] == 0.5 and set(s["recall"]) == {"neutral"}


def test_files_average_their_windows():
    probs = np.array([[0.9, 0.1, 0], [0.2, 0.8, 0], [0.3, 0.6, 0.1]])
    meta = {"path": np.array(["a", "b", "a"]), "label_id": np.array([0, 1, 0])}
    file_probs, file_meta = aggregate_files(probs, meta)
    assert np.allclose(file_probs, [[0.6, 0.35, 0.05], [0.2, 0.8, 0]])
    assert list(file_meta["path"]) == ["a", "b"]


def test_report_breaks_down_by_corpus_and_gender():
    probs = np.eye(3)[[0, 1, 2, 0]]
    meta = {"path": np.array(["a", "b", "c", "d"]), "label_id": np.array([0, 1, 2, 1]),
            "corpus": np.array(["x", "x", "y", "y"]), "gender": np.array(["male", "female", "male", "female"])}
    rep = report(probs, meta, CLASSES)
    assert rep["file"]["per_corpus"]["x"]["uar"] == 1.0
    assert rep["file"]["per_corpus"]["y"]["accuracy"] == 0.5
    assert rep["file"]["per_gender"]["female"]["n"] == 2


def test_balanced_weights_equalise_class_mass():
    w = balanced_class_weights(np.array([100, 50, 0, 25]))
    assert w[2] == 0
    assert np.allclose(w[[0, 1, 3]] * [100, 50, 25], 175 / 3)


def test_confusion_csv_has_a_header_and_a_row_per_class():
    text = confusion_csv([[1, 0], [2, 3]], ["a", "b"])
    assert text.splitlines() == ["true\\predicted,a,b", "a,1,0", "b,2,3"]
