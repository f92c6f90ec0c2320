"""Speaker normalisation at scoring time (ser_model.speaker_norm) and its report in `ser crossval`."""

import numpy as np
import pytest

from ser_model.calibration import apply_temperature
from ser_model.crossval import summarise
from ser_model.speaker_norm import GroupRuleError, group_rule, normalise_by_group


def speaker_files(truth, pull, rng, sharpness=2.0):
    """Probabilities of files whose true classes are ``truth``, from a model that leans towards
    ``pull`` (log-probability added per class): the voice's offset."""
    n_classes = len(pull)
    logits = sharpness * np.eye(n_classes)[truth] + np.asarray(pull) + rng.normal(0, 0.3, (len(truth), n_classes))
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def test_each_speakers_pull_is_taken_off():
    rng = np.random.default_rng(0)
    truth = np.tile(np.arange(3), 10)   # every speaker acts each class equally often
    a, b = speaker_files(truth, [3.0, 0, 0], rng), speaker_files(truth, [0, 0, 3.0], rng)
    probs, labels = np.vstack([a, b]), np.concatenate([truth, truth])
    groups = ["a"] * len(truth) + ["b"] * len(truth)
    plain = (probs.argmax(1) == labels).mean()
    normalised = normalise_by_group(probs, groups)
    assert plain < 0.5 and (normalised.argmax(1) == labels).mean() > 0.9
    assert np.allclose(normalised.sum(1), 1.0)


def test_the_runs_overall_lean_is_kept():
    """What every speaker shares (an archive that is mostly one class, or a model that leans the same
    way for everyone) stays: only the differences between groups are taken off."""
    rng = np.random.default_rng(1)
    truth = np.tile(np.arange(3), 8)
    probs = np.vstack([speaker_files(truth, [1.0, 0, 0], rng) for _ in range(3)])
    groups = [g for g in "xyz" for _ in truth]
    normalised = normalise_by_group(probs, groups)
    # Not equal file by file (each group's own noise is taken off too), but the run's lean stays.
    assert np.isclose(np.log(normalised).mean(0) - np.log(normalised).mean(),
                      np.log(probs).mean(0) - np.log(probs).mean(), atol=1e-9).all()


def test_small_groups_and_files_without_a_group_get_nothing():
    rng = np.random.default_rng(2)
    probs = speaker_files(np.arange(3).repeat(4), [0, 0, 0], rng)
    groups = ["big"] * 10 + ["small", None]
    out = normalise_by_group(probs, groups, min_files=10)
    assert not np.isnan(out[:10]).any() and np.isnan(out[10:]).all()
    # One group alone has nothing to be compared with: it only gets the temperature.
    assert np.allclose(out[:10], probs[:10])
    assert np.allclose(normalise_by_group(probs[:10], ["big"] * 10, temperature=0.5), apply_temperature(probs[:10], 0.5))
    assert np.isnan(normalise_by_group(probs, [None] * 12)).all()


@pytest.mark.parametrize("kwargs, message", [({"min_files": 0}, "min_files"), ({"temperature": 0.0}, "temperature")])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        normalise_by_group(np.full((2, 2), 0.5), ["a", "a"], **kwargs)
    with pytest.raises(ValueError, match="one group per row"):
        normalise_by_group(np.full((2, 2), 0.5), ["a"])


def test_group_rules():
    assert group_rule("folder")("/archive/spk7/call1.wav") == "/archive/spk7"
    assert group_rule("folder")("gs://bucket/a/b.flac") == "gs://bucket/a"
    assert group_rule(r"Actor_(\d+)")("/c/ravdess/Actor_07/03-01.wav") == "07"
    assert group_rule(r"Actor_\d+")("/c/ravdess/Actor_07/03-01.wav") == "Actor_07"
    assert group_rule(r"Actor_(\d+)")("/c/cremad/1001_DFA.wav") is None
    with pytest.raises(GroupRuleError, match="regular expression"):
        group_rule("Actor_(")
    with pytest.raises(GroupRuleError, match="2 capture groups"):
        group_rule(r"(\w+)_(\d+)")


def test_crossval_reports_normalised_scores_and_their_own_calibration():
    rng = np.random.default_rng(3)
    classes = ("a", "b", "c")
    truth = np.tile(np.arange(3), 6)

    def fold(name, pulls):
        probs = np.vstack([speaker_files(truth, pull, rng) for pull in pulls])
        n = len(pulls) * len(truth)
        return {"fold": name, "files": {"probs": probs.tolist(), "label_id": np.tile(truth, len(pulls)).tolist(),
                                        "corpus": ["tess"] * n, "gender": ["female"] * n,
                                        "speaker": [f"{name}{k}" for k in range(len(pulls)) for _ in truth]}}

    report = summarise([fold("f1", [[3, 0, 0], [0, 3, 0]]), fold("f2", [[0, 0, 3], [3, 0, 0]])], classes)
    plain, normalised = report["summary"]["corpus:tess"]["uar"], report["speaker_normalised"]["corpus:tess"]["uar"]
    assert normalised["mean"] > plain["mean"] + 0.2
    c = report["calibration"]["speaker_norm"]
    assert c["files"] == 72 and c["temperature"] > 0 and c["ece_after_cross_fitted"] is not None
    # A bundle trained with --calibration on such a report stores the group temperature; its card shows
    # the normalised scores and their calibration.
    from ser_model.crossval import calibration_of, evidence
    from ser_model.model_card import crossval_sections

    report.update(kind="speaker_folds", title="Speaker cross-validation", complete=True, config={})
    assert calibration_of(report, "cv.json")["group_temperature"] == c["temperature"]
    card = "\n".join(crossval_sections([evidence(report, "cv.json")], "all", calibrated=True))
    assert "With speaker normalisation" in card and f"{normalised['mean']:.3f}" in card
    assert f"this bundle applies the one fitted on all folds, {c['temperature']:.3f}" in card
    # Without speakers (older predictions) there is nothing to group by.
    for r in (older := [fold("f1", [[0, 0, 0]]), fold("f2", [[0, 0, 0]])]):
        del r["files"]["speaker"]
    assert "speaker_normalised" not in summarise(older, classes)
