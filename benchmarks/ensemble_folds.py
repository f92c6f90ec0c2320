"""What averaging several models' probabilities would gain on unseen speakers, from committed folds.

No training: reads the per-file probabilities that ``ser crossval`` committed for each run
(``<run>/folds/<fold>/predictions.json``), and for every fold that at least two of the given
runs finished scores each of those runs alone, every pair of runs averaged, and all of them averaged,
per corpus (per-file UAR, ``ser_model.crossval.fold_scores``). Files are matched by path,
so runs on different feature settings (say ``fmax`` 7000 against 8000) can be combined.

    python benchmarks/ensemble_folds.py --run benchmarks/crossval/adversary-e6 \\
        --run benchmarks/crossval/adversary-e6-rerun --run benchmarks/crossval/codec-e6 \\
        --name ensemble_folds

An ensemble of n models costs n times the size and the scoring time of one; this says
whether that would be worth it before any such model is built.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.provenance import provenance, write_result  # noqa: E402
from ser_model.crossval import fold_scores  # noqa: E402
from ser_model.labels import load_label_table  # noqa: E402


def averaged(results: list[dict]) -> dict:
    """The first result with its probabilities replaced by the mean over all results, file by
    file (matched by path). Refuses results that do not score the same files."""
    first = results[0]["files"]
    rows = []
    for r in results:
        index = {p: i for i, p in enumerate(r["files"]["path"])}
        if set(index) != set(first["path"]):
            raise ValueError(f"fold {r['fold']}: the runs scored different files")
        probs = np.asarray(r["files"]["probs"])
        rows.append(probs[[index[p] for p in first["path"]]])
    return {**results[0], "files": {**first, "probs": np.mean(rows, axis=0).tolist()}}


def corpus_uar(result: dict, classes) -> dict:
    scores = fold_scores(result, classes)
    return {g.split(":", 1)[1]: round(s["uar"], 4) for g, s in scores.items() if g.startswith("corpus:")}


def fold_report(results: dict[str, dict], classes) -> dict:
    """Each run alone, each pair averaged, all averaged; per corpus UAR."""
    alone = {name: corpus_uar(r, classes) for name, r in results.items()}
    out = {"alone": alone, "pairs": {}, "pair_gain_over_members_mean": {}}
    for a, b in itertools.combinations(results, 2):
        pair = corpus_uar(averaged([results[a], results[b]]), classes)
        out["pairs"][f"{a}+{b}"] = pair
        # What averaging gains: each pair against the mean of its two members.
        out["pair_gain_over_members_mean"][f"{a}+{b}"] = {
            c: round(u - (alone[a][c] + alone[b][c]) / 2, 4) for c, u in pair.items()}
    if len(results) > 2:
        out["all"] = corpus_uar(averaged(list(results.values())), classes)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, action="append", required=True,
                   help="a ser crossval output folder (repeat; at least two)")
    p.add_argument("--name", default="ensemble_folds", help="result name: benchmarks/results/NAME.json")
    p.add_argument("--label_set", default=None, help="the feature run's label set (default: the table's default)")
    args = p.parse_args(argv)
    if len(args.run) < 2:
        p.error("give at least two --run folders")
    classes = load_label_table().label_set(args.label_set).classes
    names = [r.name for r in args.run]
    if len(set(names)) != len(names):
        p.error("two --run folders have the same name")
    finished = {n: {d.parent.name for d in run.glob("folds/*/predictions.json")} for n, run in zip(names, args.run)}
    folds = sorted(f for f in set().union(*finished.values()) if sum(f in d for d in finished.values()) >= 2)
    if not folds:
        p.error("no fold is finished in two of the --run folders")
    report = {}
    for fold in folds:
        results = {n: json.loads((run / "folds" / fold / "predictions.json").read_text())
                   for n, run in zip(names, args.run) if fold in finished[n]}
        report[fold] = fold_report(results, classes)
        print(fold)
        for kind in ("alone", "pairs"):
            for name, s in report[fold][kind].items():
                print(f"  {name:45s}", " ".join(f"{c}={u:.3f}" for c, u in s.items()))
        if "all" in report[fold]:
            print(f"  {'all averaged':45s}", " ".join(f"{c}={u:.3f}" for c, u in report[fold]["all"].items()))
    result = {"benchmark": args.name, **provenance(), "runs": [str(r) for r in args.run], "folds": report}
    print(f"wrote {write_result(args.name, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
