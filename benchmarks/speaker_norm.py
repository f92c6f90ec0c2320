"""What speaker normalisation at scoring time (ser_model.speaker_norm) gains on unseen speakers, from
committed folds, and what it costs when its assumption (every speaker a similar mix of emotions) fails.

No training: reads the per-file probabilities that ``ser crossval`` committed for each fold
(``<run>/folds/<fold>/predictions.json``), applies the run's cross-fitted temperature (as a bundle's
scoring does), groups each fold's test files by speaker (the fold's test files stand for one
archive) and compares per-file UAR per corpus, plain against normalised, and the expected calibration
error (plain; normalised before, and on the normalised files after, a group temperature fitted on the
other folds, as ``ser crossval`` fits the one a bundle ships), on:

- ``as_recorded``: every test file (acted corpora: each speaker acts every emotion about equally);
- ``shared_skew``: each speaker keeps every neutral file and a random quarter of the rest (an archive
  that is mostly neutral, the same for everyone);
- ``own_mix``: each speaker keeps each emotion at a rate of its own (drawn from a flat Dirichlet):
  speakers whose mixes differ, where the assumption fails;
- ``files_per_speaker_N``: N random files per speaker (``min_files`` 1): how small a group may be.

A file whose group is too small keeps its plain prediction, as a user reading ``label`` where
``group_label`` is empty would. Draws are seeded; each scenario reports the mean over folds and draws.

    python benchmarks/speaker_norm.py --run benchmarks/crossval/adversary-e12 --name speaker_norm_adversary_e12
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.provenance import provenance, write_result  # noqa: E402
from ser_model.calibration import apply_temperature, ece, fit_temperature  # noqa: E402
from ser_model.crossval import fold_scores, speaker_keys  # noqa: E402
from ser_model.labels import load_label_table  # noqa: E402
from ser_model.speaker_norm import MIN_GROUP_FILES, normalise_by_group  # noqa: E402

FILES_PER_SPEAKER = (5, 10, 20, 40)


def keep_shared_skew(labels, groups, rng, neutral: int = 0) -> np.ndarray:
    return (labels == neutral) | (rng.random(len(labels)) < 0.25)


def keep_own_mix(labels, groups, rng, n_classes: int) -> np.ndarray:
    keep = np.zeros(len(labels), bool)
    for g in sorted(set(groups)):
        rows = groups == g
        rate = rng.dirichlet(np.ones(n_classes))
        keep[rows] = rng.random(rows.sum()) < (rate / rate.max())[labels[rows]]
    return keep


def keep_n_per_group(groups, rng, n: int) -> np.ndarray:
    keep = np.zeros(len(groups), bool)
    for g in sorted(set(groups)):
        keep[rng.permutation(np.flatnonzero(groups == g))[:n]] = True
    return keep


def subset(result: dict, keep: np.ndarray, probs: np.ndarray) -> dict:
    files = {k: np.asarray(v)[keep].tolist() for k, v in result["files"].items() if k != "probs"}
    return {**result, "files": {**files, "probs": probs[keep]}}


def compare(result: dict, groups: np.ndarray, keep: np.ndarray, temperature: float, classes, min_files: int) -> dict:
    """Per-corpus UAR plain and normalised, and ECE of both, on the kept files of one fold (``groups``: its
    files' speakers)."""
    files = result["files"]
    probs = apply_temperature(np.asarray(files["probs"], np.float64), temperature)
    labels = np.asarray(files["label_id"], int)
    normalised = probs.copy()
    q = normalise_by_group(probs[keep], groups[keep].tolist(), min_files)
    grouped = ~np.isnan(q).any(axis=1)
    normalised[np.flatnonzero(keep)[grouped]] = q[grouped]
    out = {"labels": labels[keep], "grouped_probs": q[grouped], "grouped_labels": labels[keep][grouped]}
    for name, p in (("plain", probs), ("normalised", normalised)):
        scores = fold_scores(subset(result, keep, p), classes)
        out[name] = {g.split(":", 1)[1]: s["uar"] for g, s in scores.items() if g.startswith("corpus:")}
        out[f"probs_{name}"] = p[keep]
    return out


def pooled_ece(folds: list[dict], name: str) -> float:
    """ECE over the files of all folds of one draw (as ``ser crossval`` reports it)."""
    return ece(np.concatenate([f[f"probs_{name}"] for f in folds]), np.concatenate([f["labels"] for f in folds]))


def rescaled_ece(folds: list[dict]) -> float | None:
    """ECE of the normalised files of one draw, each fold rescaled with a group temperature fitted on the
    other folds' (as ``ser crossval`` fits ``group_temperature``); None with fewer than two such folds."""
    have = [f for f in folds if len(f["grouped_labels"])]
    if len(have) < 2:
        return None
    scaled = []
    for i, f in enumerate(have):
        others = [g for j, g in enumerate(have) if j != i]
        t = fit_temperature(np.concatenate([g["grouped_probs"] for g in others]),
                            np.concatenate([g["grouped_labels"] for g in others]))
        scaled.append(apply_temperature(f["grouped_probs"], t))
    return ece(np.concatenate(scaled), np.concatenate([f["grouped_labels"] for f in have]))


def summarise(draws: list[list[dict]]) -> dict:
    """Per corpus: mean UAR over every fold of every draw, plain and normalised; ECE pooled per draw."""
    folds = [f for draw in draws for f in draw]
    out = {}
    for c in sorted({c for f in folds for c in f["plain"]}):
        plain = np.array([f["plain"][c] for f in folds if c in f["plain"]])
        norm = np.array([f["normalised"][c] for f in folds if c in f["normalised"]])
        out[c] = {"plain_uar": round(float(plain.mean()), 4), "normalised_uar": round(float(norm.mean()), 4),
                  "gain": round(float((norm - plain).mean()), 4),
                  "better_in": f"{int((norm > plain).sum())} of {len(plain)}"}
    out["ece"] = {name: round(float(np.mean([pooled_ece(draw, name) for draw in draws])), 4)
                  for name in ("plain", "normalised")}
    rescaled = [e for e in (rescaled_ece(draw) for draw in draws) if e is not None]
    # The normalised files only, after their own temperature: what group_confidence means.
    out["ece"]["normalised_files_after_group_temperature"] = round(float(np.mean(rescaled)), 4) if rescaled else None
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="a finished ser crossval output folder (speaker folds)")
    p.add_argument("--name", default="speaker_norm", help="result name: benchmarks/results/NAME.json")
    p.add_argument("--draws", type=int, default=5, help="random draws per subsampled scenario")
    p.add_argument("--min_files", type=int, default=MIN_GROUP_FILES,
                   help="smallest group normalised in the first three scenarios")
    args = p.parse_args(argv)
    report = json.loads((args.run / "crossval.json").read_text())
    if not report.get("complete"):
        p.error(f"{args.run}: the crossval run is not finished")
    classes = load_label_table().label_set(report.get("features", {}).get("label_set")).classes
    temperatures = report["calibration"].get("temperature_per_fold", {})
    results = [json.loads((args.run / "folds" / f / "predictions.json").read_text()) for f in report["folds"]]
    neutral = classes.index("neutral")

    def run(keep_of, draws: int, min_files: int) -> dict:
        per_draw = []
        for seed in range(draws):
            rng = np.random.default_rng(seed)
            per_draw.append([])
            for r in results:
                files = r["files"]
                labels = np.asarray(files["label_id"], int)
                groups = np.asarray(speaker_keys(files))
                per_draw[-1].append(compare(r, groups, keep_of(labels, groups, rng),
                                            temperatures.get(r["fold"], 1.0), classes, min_files))
        return summarise(per_draw)

    scenarios = {
        "as_recorded": run(lambda y, g, rng: np.ones(len(y), bool), 1, args.min_files),
        "shared_skew": run(lambda y, g, rng: keep_shared_skew(y, g, rng, neutral), args.draws, args.min_files),
        "own_mix": run(lambda y, g, rng: keep_own_mix(y, g, rng, len(classes)), args.draws, args.min_files),
    }
    for n in FILES_PER_SPEAKER:
        scenarios[f"files_per_speaker_{n}"] = run(lambda y, g, rng, n=n: keep_n_per_group(g, rng, n), args.draws, 1)
    for name, s in scenarios.items():
        print(name, " ".join(f"{c}={v['plain_uar']:.3f}->{v['normalised_uar']:.3f}" for c, v in s.items()
                             if c != "ece"), f"ece={s['ece']['plain']:.3f}->{s['ece']['normalised']:.3f}",
              f"(after group temperature {s['ece']['normalised_files_after_group_temperature']})")
    result = {"benchmark": args.name, **provenance(), "run": str(args.run), "folds": report["folds"],
              "min_files": args.min_files, "draws": args.draws, "scenarios": scenarios}
    print(f"wrote {write_result(args.name, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
