"""Speaker-level cross-validation: every speaker scored by a model that never heard them.

For each fold of a plan (``ser_model.folds``), a model is trained from scratch
on the windows of every speaker outside the fold, whatever split the feature
pipeline gave them, with normalisation statistics from those speakers only,
for the configured number of epochs (no selection on held-out data), and is
then scored on the fold's speakers. Each fold's report is written to
``OUTPUT/folds/<fold>/metrics.json`` as soon as it is done, so a rerun of the
same command skips finished folds (and resumes an interrupted one from its
saved state). The summary, ``crossval.json`` and ``crossval.md``, gives per
corpus (and per gender) the mean and spread over the folds that tested that
corpus, and the pooled figures over all files, each scored once. With
``keep_models`` each fold trained in the run also leaves its model as a bundle
(``OUTPUT/folds/<fold>/model``, its test speakers in ``metrics.json``), so that
questions the predictions cannot answer (how it copes with other codecs, say)
can be put to a model on voices it never heard.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ser_model.evaluate import scores
from ser_model.folds import Speaker, check_plan, fold_members

HEADLINE = ("uar", "accuracy", "macro_f1")


def speakers_of(fdir) -> dict[Speaker, str]:
    """``{(corpus, speaker): gender}`` of every written file, from the feature folder's manifest."""
    return {(corpus, speaker): next(iter(genders))
            for corpus, by_speaker in fdir.manifest["speakers"].items()
            for speaker, genders in by_speaker.items()}


def file_predictions(model, fdir, speakers) -> dict:
    """Per-file probabilities and metadata of ``speakers``' files (all splits)."""
    from ser_model.data import ALL_SPLITS, eval_dataset
    from ser_model.evaluate import aggregate_files, predict_dataset

    probs, _, meta = predict_dataset(model, eval_dataset(fdir, ALL_SPLITS, 64, speakers=speakers))
    file_probs, file_meta = aggregate_files(probs, meta)
    return {"probs": file_probs.tolist(), **{k: np.asarray(v).tolist() for k, v in file_meta.items()}}


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


FOLD_MODEL_CARD = """# Fold model {fold} of a `ser crossval` run

Trained without the speakers of fold {fold} ({n} speakers: `metrics.json`,
`test_speakers`), for {epochs} epochs, with the normalisation statistics of its
training speakers. It exists to be questioned on voices it never heard (for
example `benchmarks/codec_agreement.py --unseen_speakers` on this folder); the
run's `crossval.md` has its figures. Not a model to use: it has heard fewer
speakers than a refit on all of them.
"""


def save_fold_model(model, fdir, stats: Mapping, fold: str, test_speakers: Sequence[str], facts: Mapping,
                    out: Path) -> None:
    """A fold's model as a bundle, naming the speakers it was kept from."""
    from ser_model.bundle import save_bundle

    metrics = {"fold": fold, "test_speakers": list(test_speakers), "training": dict(facts)}
    card = FOLD_MODEL_CARD.format(fold=fold, n=len(test_speakers), epochs=facts.get("epochs_run", "?"))
    save_bundle(out, model, fdir.features, fdir.label_set, stats, metrics, card)


def run_fold(fdir, cfg: Mapping, plan: Mapping[Speaker, str], fold: str, fold_dir: Path,
             max_steps: int | None, keep_model: bool = False) -> dict:
    """Train without the fold's speakers, score them; the fold's predictions (also written to disk).
    ``keep_model``: the model is also saved as a bundle in ``fold_dir/model``."""
    from ser_model.data import ALL_SPLITS, fold_stats
    from ser_model.train import clear_state, fit

    train_speakers, test_speakers = fold_members(plan, fold)
    fold_dir.mkdir(parents=True, exist_ok=True)
    print(f"fold {fold}: training on {len(train_speakers)} speakers, testing {len(test_speakers)}", flush=True)
    stats = fold_stats(fdir, train_speakers)
    model, facts = fit(fdir, cfg, fold_dir / "work", max_steps, splits=ALL_SPLITS, speakers=train_speakers,
                       stats=stats)
    result = {"fold": fold, "test_speakers": sorted(f"{c}/{s}" for c, s in test_speakers),
              "training": {k: v for k, v in facts.items() if k != "config"},
              "files": file_predictions(model, fdir, test_speakers)}
    if keep_model:   # before the predictions: a fold with predictions is finished and never rerun
        save_fold_model(model, fdir, stats, fold, result["test_speakers"], result["training"], fold_dir / "model")
    _write_json(fold_dir / "predictions.json", result)
    clear_state(fold_dir / "work")
    return result


def fold_scores(result: Mapping, classes) -> dict:
    """Per-corpus and per-gender scores of one fold's files."""
    probs = np.asarray(result["files"]["probs"])
    y_true = np.asarray(result["files"]["label_id"], int)
    y_pred = probs.argmax(1)
    out = {}
    for key in ("corpus", "gender"):
        values = np.asarray(result["files"][key])
        for value in sorted(set(values.tolist())):
            sel = values == value
            s = scores(y_true[sel], y_pred[sel], classes)
            out[f"{key}:{value}"] = {k: s[k] for k in (*HEADLINE, "n")}
    return out


def summarise(results: list[Mapping], classes) -> dict:
    """Mean and spread over folds per corpus and gender; pooled scores over all files; the same per
    corpus for speaker-normalised outputs (:func:`speaker_normalised`) where the files name speakers."""
    per_fold = {r["fold"]: fold_scores(r, classes) for r in results}
    y_true = np.concatenate([np.asarray(r["files"]["label_id"], int) for r in results])
    y_pred = np.concatenate([np.asarray(r["files"]["probs"]).argmax(1) for r in results])
    pooled = scores(y_true, y_pred, classes)
    report = {"folds": sorted(per_fold), "per_fold": per_fold, "summary": spread_over_folds(per_fold),
              "pooled": {k: pooled[k] for k in (*HEADLINE, "n", "recall", "confusion")},
              "calibration": cross_fitted_calibration(results)}
    if all("speaker" in r["files"] for r in results):
        normalised = {r["fold"]: fold_scores(speaker_normalised(r), classes) for r in results}
        report["speaker_normalised"] = {g: s for g, s in spread_over_folds(normalised).items()
                                        if g.startswith("corpus:")}
    return report


def speaker_keys(files: Mapping) -> list[str]:
    """``corpus/speaker`` of each file of a fold's ``files`` (the groups speaker normalisation uses)."""
    return [f"{c}/{s}" for c, s in zip(files["corpus"], files["speaker"])]


def speaker_normalised(result: Mapping) -> dict:
    """A fold's result with each file's probabilities normalised within its speaker's files
    (``ser_model.speaker_norm``; as ``ser score --group_by`` would, the fold's test files standing for one
    archive); a file of a speaker too small to normalise keeps its own."""
    from ser_model.speaker_norm import normalise_by_group

    files = result["files"]
    probs = np.asarray(files["probs"], np.float64)
    q = normalise_by_group(probs, speaker_keys(files))
    return {**result, "files": {**files, "probs": np.where(np.isnan(q), probs, q)}}


def spread_over_folds(per_fold: Mapping[str, Mapping]) -> dict:
    """Per group: folds, files, mean/std/min/max over folds of the headline metrics."""
    groups = sorted({g for s in per_fold.values() for g in s})
    summary = {}
    for group in groups:
        values = {f: s[group] for f, s in per_fold.items() if group in s}
        summary[group] = {"folds": len(values), "files": int(sum(v["n"] for v in values.values()))}
        for metric in HEADLINE:
            xs = np.array([v[metric] for v in values.values()])
            summary[group][metric] = {"mean": round(float(xs.mean()), 4), "std": round(float(xs.std()), 4),
                                      "min": round(float(xs.min()), 4), "max": round(float(xs.max()), 4)}
    return summary


def cross_fitted_calibration(results: list[Mapping]) -> dict:
    """Temperature scaling judged honestly: each fold's files rescaled with a temperature fitted on
    the other folds' files; ECE and reliability before and after, over all files. ``temperature``
    (fitted on every fold) is the one to ship with a model trained on all speakers."""
    from ser_model.calibration import apply_temperature, ece, fit_temperature, reliability

    probs = [np.asarray(r["files"]["probs"], np.float64) for r in results]
    labels = [np.asarray(r["files"]["label_id"], int) for r in results]
    all_probs, all_labels = np.concatenate(probs), np.concatenate(labels)
    if len(results) < 2:  # nothing to fit on but the files themselves: no honest "after"
        return {"method": "temperature", "temperature": round(fit_temperature(all_probs, all_labels), 4),
                "ece_before": round(ece(all_probs, all_labels), 4), "ece_after_cross_fitted": None,
                "reliability_before": reliability(all_probs, all_labels)}
    scaled, per_fold = [], {}
    for i, r in enumerate(results):
        others = [j for j in range(len(results)) if j != i]
        t = fit_temperature(np.concatenate([probs[j] for j in others]), np.concatenate([labels[j] for j in others]))
        per_fold[r["fold"]] = round(t, 4)
        scaled.append(apply_temperature(probs[i], t))
    all_scaled = np.concatenate(scaled)
    temperature = fit_temperature(all_probs, all_labels)
    out = {"method": "temperature", "temperature": round(temperature, 4),
           "temperature_per_fold": per_fold,
           "ece_before": round(ece(all_probs, all_labels), 4),
           "ece_after_cross_fitted": round(ece(all_scaled, all_labels), 4),
           "reliability_before": reliability(all_probs, all_labels),
           "reliability_after_cross_fitted": reliability(all_scaled, all_labels)}
    speaker_norm = speaker_norm_calibration(results, scaled, labels, [apply_temperature(p, temperature) for p in probs])
    return {**out, "speaker_norm": speaker_norm} if speaker_norm else out


def speaker_norm_calibration(results: list[Mapping], scaled: list[np.ndarray], labels: list[np.ndarray],
                             shipped: list[np.ndarray]) -> dict | None:
    """The calibration of speaker-normalised outputs (``ser_model.speaker_norm``, each fold's test files
    grouped by speaker), judged as :func:`cross_fitted_calibration` judges the plain one: each fold's
    files normalised from their cross-fitted ``scaled`` probabilities, then rescaled with a temperature
    fitted on the other folds' normalised files. ``temperature``: fitted on every fold's files normalised
    from the ``shipped`` (final temperature) probabilities, as a bundle's scoring makes them. None for
    results without speakers or with fewer than two folds holding a large enough speaker."""
    from ser_model.calibration import apply_temperature, ece, fit_temperature, reliability
    from ser_model.speaker_norm import MIN_GROUP_FILES, normalise_by_group

    if not all("speaker" in r["files"] for r in results):
        return None

    def normalised(probs: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        kept_probs, kept_labels = [], []
        for r, p, y in zip(results, probs, labels):
            q = normalise_by_group(p, speaker_keys(r["files"]))
            grouped = ~np.isnan(q).any(axis=1)
            kept_probs.append(q[grouped])
            kept_labels.append(y[grouped])
        return kept_probs, kept_labels

    probs, kept = normalised(scaled)
    folds = [i for i, p in enumerate(probs) if len(p)]
    if len(folds) < 2:
        return None
    after = []
    for i in folds:
        others = [j for j in folds if j != i]
        t = fit_temperature(np.concatenate([probs[j] for j in others]), np.concatenate([kept[j] for j in others]))
        after.append(apply_temperature(probs[i], t))
    all_probs, all_labels = np.concatenate([probs[i] for i in folds]), np.concatenate([kept[i] for i in folds])
    all_after = np.concatenate(after)
    final, final_labels = (np.concatenate(x) for x in normalised(shipped))
    return {"min_files": MIN_GROUP_FILES, "files": int(len(all_labels)),
            "temperature": round(fit_temperature(final, final_labels), 4),
            "ece_before": round(ece(all_probs, all_labels), 4),
            "ece_after_cross_fitted": round(ece(all_after, all_labels), 4),
            "reliability_after_cross_fitted": reliability(all_after, all_labels)}


def score_table(summary: Mapping, prefix: str = "", label: str = "group") -> list[str]:
    """Markdown rows of the summary groups starting with ``prefix`` (shown without it): folds, files,
    UAR mean ± sd (min-max), accuracy and macro-F1 means. Used by crossval.md and the model card."""
    lines = [f"| {label} | folds | files | UAR mean ± sd (min-max) | accuracy mean | macro-F1 mean |",
             "|---|---|---|---|---|---|"]
    for group, s in summary.items():
        if not group.startswith(prefix):
            continue
        u = s["uar"]
        lines.append(f"| {group[len(prefix):]} | {s['folds']} | {s['files']} | **{u['mean']:.3f}** ± {u['std']:.3f} "
                     f"({u['min']:.3f}-{u['max']:.3f}) | {s['accuracy']['mean']:.3f} | "
                     f"{s['macro_f1']['mean']:.3f} |")
    return lines


def reliability_table(c: Mapping) -> list[str]:
    """Markdown rows of a calibration section's reliability before and after (crossval.md, model card)."""
    def cell(x):
        return "-" if x is None else f"{x:.2f}"

    lines = ["| confidence | files | mean confidence before | accuracy | files after | mean confidence after | "
             "accuracy after |", "|---|---|---|---|---|---|---|"]
    for before, after in zip(c["reliability_before"], c["reliability_after_cross_fitted"]):
        lines.append(f"| {before['lo']:.1f}-{before['hi']:.1f} | {before['n']} | {cell(before['confidence'])} | "
                     f"{cell(before['accuracy'])} | {after['n']} | {cell(after['confidence'])} | "
                     f"{cell(after['accuracy'])} |")
    return lines


def speaker_norm_lines(report: Mapping) -> list[str]:
    """crossval.md's section on speaker-normalised outputs (``ser score --group_by``), if it has them."""
    normalised, c = report.get("speaker_normalised"), report["calibration"].get("speaker_norm")
    if not normalised:
        return []
    lines = ["", "## Speaker-normalised (`ser score --group_by`)", "",
             "Each fold's files normalised within their speaker's files (`ser_model.speaker_norm`): this "
             "assumes every speaker of an archive acts a similar mix of emotions, as the corpora's do.", "",
             *score_table(normalised, "corpus:", "corpus")]
    if c:
        lines += ["", f"Calibration of the normalised outputs ({c['files']} files in speakers of at least "
                      f"{c['min_files']}): expected calibration error {c['ece_before']:.3f} before their own "
                      f"temperature, {c['ece_after_cross_fitted']:.3f} after (fitted on the other folds); "
                      f"temperature on all folds {c['temperature']:.3f}."]
    return lines


def speaker_evidence(evidence: list[Mapping]) -> Mapping | None:
    """The speaker-fold report among a bundle's cross-validation evidence (not leave-one-corpus-out)."""
    return next((ev for ev in evidence if ev["kind"] != "by_corpus"), None)


def corpus_evidence(evidence: list[Mapping]) -> Mapping | None:
    """The leave-one-corpus-out report among a bundle's cross-validation evidence, if it has one."""
    return next((ev for ev in evidence if ev["kind"] == "by_corpus"), None)


def markdown(report: Mapping, title: str) -> str:
    lines = [f"# {title}", "",
             f"{len(report['folds'])} folds; each file scored once, by a model that never heard its speaker.", "",
             *score_table(report["summary"])]
    p, c = report["pooled"], report["calibration"]
    lines += ["", f"Pooled over all {p['n']} files: UAR {p['uar']:.3f}, accuracy {p['accuracy']:.3f}, "
                  f"macro-F1 {p['macro_f1']:.3f}.", ""]
    if c["ece_after_cross_fitted"] is None:
        lines.append(f"Calibration: expected calibration error {c['ece_before']:.3f} (temperature scaling is "
                     "judged on other folds: it needs at least two).")
        return "\n".join(lines) + "\n"
    lines += [f"Calibration (temperature scaling, each fold rescaled with a temperature fitted on the other "
              f"folds): expected calibration error {c['ece_before']:.3f} before, "
              f"{c['ece_after_cross_fitted']:.3f} after; temperature on all folds {c['temperature']:.3f}.", "",
              *reliability_table(c)]
    lines += speaker_norm_lines(report)
    return "\n".join(lines) + "\n"


class SettingsMismatch(ValueError):
    """The output folder holds folds of a run with other settings or another plan."""


def _flat(d: Mapping, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_same_settings(output: Path, cfg: Mapping, plan_json: Mapping,
                        features: Mapping | None = None) -> Mapping | None:
    """Refuse to mix folds of different settings (training config, fold plan, the shards' feature
    settings) in one output; record them on the first run. Returns the feature settings the
    folder's folds are known to have used (None for a folder recorded before they were)."""
    path = output / "settings.json"
    current = json.loads(json.dumps({"config": cfg, "plan": plan_json,
                                     **({"features": features} if features is not None else {})}))
    if not path.exists():
        _write_json(path, current)
        return current.get("features")
    earlier = json.loads(path.read_text())
    if "features" not in earlier:
        # Recorded before the feature settings were: its folds' features are unknown, not refused.
        current.pop("features", None)
    differ = _differing(earlier, current)
    if differ:
        raise SettingsMismatch(f"{output} holds folds trained with other settings ({_listed(differ)} differ); "
                               "give another --output, or delete that folder to start again")
    return earlier.get("features")


def _differing(a: Mapping, b: Mapping, ignore: Sequence[str] = ()) -> list[str]:
    """The dotted keys whose values differ between two nested settings."""
    fa, fb = _flat(a), _flat(b)
    return sorted(k for k in fa.keys() | fb.keys() if k not in ignore and fa.get(k) != fb.get(k))


def _listed(keys: Sequence[str]) -> str:
    return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


# How a run is carried out, not what it trains: a bundle may differ from its folds in these.
OPERATIONAL = ("training.checkpoint_every_steps", "training.cache")


def check_same_recipe(report: Mapping, cfg: Mapping, features: Mapping | None = None) -> None:
    """Raise ValueError unless ``report``'s folds trained the recipe ``cfg`` describes, on shards
    of the feature settings ``features`` (where both the report and the caller know them): a
    bundle may only carry the figures (and the temperature) of its own recipe."""
    theirs, ours = _flat(report.get("config", {})), _flat(json.loads(json.dumps(cfg)))
    if features is not None and report.get("features") is not None:
        theirs.update(_flat(report["features"], "features."))
        ours.update(_flat(json.loads(json.dumps(dict(features))), "features."))
    differ = _differing(theirs, ours, OPERATIONAL)
    if differ:
        shown = _listed([f"{k} {theirs.get(k)} there, {ours.get(k)} here" for k in differ])
        raise ValueError(f"its folds trained another recipe ({shown}): train with the settings the report "
                         "records, or give a report of this recipe")


KINDS = ("speaker_folds", "by_corpus", "fold_file")


def check_finished(report: Mapping) -> None:
    """Raise ValueError unless ``report`` is a finished `ser crossval` summary of this version:
    what a bundle may take figures or a calibration from."""
    if report.get("kind") not in KINDS:
        raise ValueError("not a `ser crossval` report of this version (no kind): run the same "
                         "`ser crossval` command again to rewrite its summary")
    if not report.get("complete") or report.get("calibration", {}).get("ece_after_cross_fitted") is None:
        raise ValueError("a partial cross-validation (not every fold finished): finish it first")


def evidence(report: Mapping, source: str) -> dict:
    """What a model bundle keeps of a finished cross-validation report (for its card and the app)."""
    check_finished(report)
    c = report["calibration"]
    out = {"kind": report["kind"], "title": report.get("title", ""), "source": source,
           "folds": len(report["folds"]), "summary": report["summary"],
           "pooled": {k: report["pooled"][k] for k in (*HEADLINE, "n")},
           "calibration": {k: c.get(k) for k in ("temperature", "ece_before", "ece_after_cross_fitted",
                                                 "reliability_before", "reliability_after_cross_fitted")},
           "epochs": report.get("config", {}).get("training", {}).get("epochs")}
    if report.get("speaker_normalised"):   # reports written before speaker normalisation have none
        out["speaker_normalised"] = report["speaker_normalised"]
        if c.get("speaker_norm"):
            out["calibration"]["speaker_norm"] = {k: c["speaker_norm"][k] for k in (
                "min_files", "temperature", "ece_before", "ece_after_cross_fitted")}
    return out


def calibration_of(report: Mapping, source: str) -> dict:
    """The calibration a bundle stores (``calibration.json``), from a finished report."""
    check_finished(report)
    c = report["calibration"]
    if c.get("method") != "temperature" or not c["temperature"] > 0:
        raise ValueError("no positive temperature in its calibration section")
    out = {"method": "temperature", "temperature": c["temperature"], "source": source,
           "ece_before": c["ece_before"], "ece_after_cross_fitted": c["ece_after_cross_fitted"]}
    if c.get("speaker_norm"):   # reports written before speaker normalisation have none
        norm = c["speaker_norm"]
        out["group_temperature"] = norm["temperature"]
        out["group_ece_after_cross_fitted"] = norm["ece_after_cross_fitted"]
    return out


def run_crossval(fdir, cfg: Mapping, plan: Mapping[Speaker, str], output: Path, max_steps: int | None = None,
                 title: str = "Speaker cross-validation", only: Sequence[str] | None = None,
                 kind: str = "speaker_folds", keep_models: bool = False) -> dict:
    """Every fold (finished ones are read back), then the summary; returns the summary.

    ``only``: train just these folds now (e.g. one fold on a long schedule); the
    summary then covers the folds finished so far and says it is partial.
    ``keep_models``: each fold trained now also saves its model (``folds/<fold>/model``).
    """
    folds = check_plan(plan, speakers_of(fdir))
    unknown = sorted(set(only or ()) - set(folds))
    if unknown:
        raise ValueError(f"unknown fold(s) {', '.join(unknown)}; this plan has {', '.join(folds)}")
    output.mkdir(parents=True, exist_ok=True)
    plan_json = {"folds": folds, "speakers": {f"{c}/{s}": f for (c, s), f in sorted(plan.items())}}
    features = check_same_settings(output, {**cfg, "max_steps": max_steps}, plan_json, fdir.features.to_json())
    _write_json(output / "plan.json", plan_json)
    results = []
    for i, fold in enumerate(folds, 1):
        done = output / "folds" / fold / "predictions.json"
        if done.exists():
            print(f"fold {fold} ({i}/{len(folds)}): done earlier, read back", flush=True)
            results.append(json.loads(done.read_text()))
            continue
        if only and fold not in only:
            continue
        print(f"fold {fold} ({i}/{len(folds)})", flush=True)
        results.append(run_fold(fdir, cfg, plan, fold, output / "folds" / fold, max_steps, keep_models))
    report = summarise(results, fdir.label_set.classes)
    report.update(kind=kind, title=title, complete=len(results) == len(folds), config=dict(cfg))
    if features is not None:
        report["features"] = features
    _write_json(output / "crossval.json", report)
    if not report["complete"]:
        title += f" (partial: {len(results)} of {len(folds)} folds)"
    (output / "crossval.md").write_text(markdown(report, title))
    return report
