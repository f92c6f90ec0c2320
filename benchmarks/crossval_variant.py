"""One recipe variant's speaker-fold figures next to the baseline's on the same folds.

Reads the finished folds of a ``ser crossval`` output folder (its ``settings.json``
and ``folds/<fold>/predictions.json``), scores each fold per corpus and gender
(``ser_model.crossval.fold_scores``) and writes them, with the baseline's scores of
the same folds and the differences, to ``benchmarks/results/<name>.json``.

    python benchmarks/crossval_variant.py --run benchmarks/crossval/degrade-e6 \\
        --name crossval_degrade_e6 --recipe "noise on half the windows, low-pass on 30%" \\
        --verdict "dropped: ..."

The crossval command that made the folder is in the folder's ``settings.json``;
``--command`` records it as it was typed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.provenance import REPO, provenance, write_result  # noqa: E402
from ser_model.calibration import ece  # noqa: E402
from ser_model.crossval import fold_scores  # noqa: E402
from ser_model.labels import load_label_table  # noqa: E402

# The adopted recipe's folds (a variant is judged against what ships; the pre-adversary baseline is
# crossval_baseline_e6_partial.json).
BASELINE = REPO / "benchmarks/results/crossval_adversary_e6.json"


def variant_report(run: Path, baseline: dict, classes) -> dict:
    """Per finished fold: the variant's scores, the baseline's, the UAR difference per group."""
    import numpy as np

    out = {}
    for pred in sorted(run.glob("folds/*/predictions.json")):
        result = json.loads(pred.read_text())
        fold = result["fold"]
        scores = fold_scores(result, classes)
        base = baseline["folds"].get(fold, {}).get("scores", {})
        probs = np.asarray(result["files"]["probs"])
        out[fold] = {
            "test_speakers": result["test_speakers"],
            "training": result["training"],
            "ece_uncalibrated": round(ece(probs, np.asarray(result["files"]["label_id"], int)), 4),
            "scores": scores,
            "baseline_scores": base,
            "uar_minus_baseline": {g: round(s["uar"] - base[g]["uar"], 4) for g, s in scores.items() if g in base},
        }
    return out


def mean_differences(folds: dict) -> dict:
    """Per group: the mean UAR difference to the baseline over the folds that test it, how many
    folds that is, and on how many the variant was better."""
    per_group: dict[str, list[float]] = {}
    for r in folds.values():
        for group, d in r["uar_minus_baseline"].items():
            per_group.setdefault(group, []).append(d)
    return {g: {"mean": round(sum(ds) / len(ds), 4), "folds": len(ds), "better": sum(d > 0 for d in ds)}
            for g, ds in sorted(per_group.items())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="a ser crossval output folder")
    p.add_argument("--name", required=True, help="result name: benchmarks/results/NAME.json")
    p.add_argument("--recipe", required=True, help="what the variant changes, in words")
    p.add_argument("--verdict", default="", help="kept or dropped, and why")
    p.add_argument("--command", default="", help="the ser crossval command that made --run")
    p.add_argument("--baseline", type=Path, default=BASELINE,
                   help="the baseline's result JSON (default: the adopted recipe's, crossval_adversary_e6.json)")
    p.add_argument("--label_set", default=None, help="the feature run's label set (default: the table's default)")
    args = p.parse_args(argv)

    settings = json.loads((args.run / "settings.json").read_text())
    classes = load_label_table().label_set(args.label_set).classes
    folds = variant_report(args.run, json.loads(args.baseline.read_text()), classes)
    if not folds:
        p.error(f"{args.run} has no finished fold (folds/*/predictions.json)")
    result = {"benchmark": args.name, **provenance(), "crossval_command": args.command,
              "run_folder": str(args.run.resolve().relative_to(REPO)) if args.run.resolve().is_relative_to(REPO)
              else str(args.run),
              "recipe": args.recipe, "verdict": args.verdict, "baseline": str(args.baseline.name),
              "settings": settings, "folds": folds}
    result["mean_uar_minus_baseline"] = mean_differences(folds)
    out = write_result(args.name, result)
    for fold, r in folds.items():
        print(fold, {g: f"{r['scores'][g]['uar']:.3f} ({d:+.3f})" for g, d in r["uar_minus_baseline"].items()})
    print("mean over folds", {g: f"{m['mean']:+.3f} ({m['folds']} folds, {m['better']} better)"
                              for g, m in result["mean_uar_minus_baseline"].items()})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
