"""Speaker normalisation of the features, at test time only, against normalising the outputs.

Speaker normalisation (``ser_model.speaker_norm``) works on a model's outputs. The older idea
works on its inputs: standardise each band of a speaker's log-mel and MFCC over that speaker's
windows (cepstral mean, and variance, normalisation per speaker), so every voice reaches the
network with the same average spectrum. A model trained without it sees those inputs only at
test time; this measures what that does, on the fold models a ``ser crossval --keep_models`` run
left (``<run>/folds/<fold>/model``, not committed) and the fold's own test speakers (read from the
feature folder, every split):

- ``plain``: the windows as they are (reproduces the fold's committed predictions);
- ``mean``: each band of each speaker's windows shifted to the training mean (the fold model's
  normalisation statistics, ``features.json``);
- ``mean_std``: shifted and rescaled to the training mean and spread;

each also followed by output normalisation (``+outputs``), per-file UAR per corpus.

    python benchmarks/speaker_feature_norm.py --run benchmarks/crossval/adversary-e12 --features out/features
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.provenance import provenance, write_result  # noqa: E402


def read_windows(fdir, speakers):
    """Every window of ``speakers`` (all splits): log-mel, MFCC and per-window metadata arrays."""
    from ser_model.data import ALL_SPLITS, eval_dataset

    logmel, mfcc, meta = [], [], defaultdict(list)
    for inputs, batch_meta in eval_dataset(fdir, ALL_SPLITS, 256, speakers=speakers):
        logmel.append(inputs["logmel"].numpy())
        mfcc.append(inputs["mfcc"].numpy())
        for key, value in batch_meta.items():
            meta[key].extend(v.decode() if isinstance(v, bytes) else v for v in np.asarray(value))
    return np.concatenate(logmel), np.concatenate(mfcc), {k: np.asarray(v) for k, v in meta.items()}


def per_speaker(x: np.ndarray, speakers: np.ndarray, mean, std, scale: bool) -> np.ndarray:
    """``(windows, bands, frames, 1)`` features with each speaker's per-band mean moved to ``mean`` (and,
    with ``scale``, spread to ``std``)."""
    shape = (1, -1, 1, 1)
    target_mean, target_std = np.reshape(mean, shape).astype(np.float32), np.reshape(std, shape).astype(np.float32)
    out = np.empty_like(x)
    for s in np.unique(speakers):
        rows = speakers == s
        mu = x[rows].mean(axis=(0, 2, 3)).reshape(shape)
        z = x[rows] - mu
        if scale:
            z = z / (x[rows].std(axis=(0, 2, 3)).reshape(shape) + 1e-6) * target_std
        out[rows] = z + target_mean
    return out


def predict(model, logmel, mfcc, batch: int = 128) -> np.ndarray:
    from ser_model.bundle import named_outputs

    return np.concatenate([np.asarray(named_outputs(model.predict_on_batch(
        {"logmel": logmel[i:i + batch], "mfcc": mfcc[i:i + batch]}))["emotion"]) for i in range(0, len(logmel), batch)])


def fold_uar(fold_dir: Path, fdir, classes) -> dict:
    """Per variant and corpus, the fold's per-file UAR."""
    from ser_model.bundle import load_bundle
    from ser_model.crossval import speaker_keys
    from ser_model.evaluate import aggregate_files, scores
    from ser_model.speaker_norm import normalise_by_group

    predictions = json.loads((fold_dir / "predictions.json").read_text())
    bundle = load_bundle(fold_dir / "model")
    logmel, mfcc, meta = read_windows(fdir, [tuple(s.split("/", 1)) for s in predictions["test_speakers"]])
    speakers = np.char.add(np.char.add(meta["corpus"].astype(str), "/"), meta["speaker"].astype(str))
    st = bundle.stats
    variants = {"plain": (logmel, mfcc)}
    for name, scale in (("mean", False), ("mean_std", True)):
        variants[name] = (per_speaker(logmel, speakers, st["logmel_mean"], st["logmel_std"], scale),
                          per_speaker(mfcc, speakers, st["mfcc_mean"], st["mfcc_std"], scale))
    out = {}
    for name, (lm, mf) in variants.items():
        probs, file_meta = aggregate_files(predict(bundle.model, lm, mf), meta)
        normalised = normalise_by_group(probs, speaker_keys(file_meta))
        for label, p in ((name, probs), (f"{name}+outputs", np.where(np.isnan(normalised), probs, normalised))):
            out[label] = {c: round(scores(file_meta["label_id"][file_meta["corpus"] == c],
                                          p[file_meta["corpus"] == c].argmax(1), classes)["uar"], 4)
                          for c in sorted(set(file_meta["corpus"].tolist()))}
        print(fold_dir.name, name, out[name], "+outputs", out[f"{name}+outputs"], flush=True)
    return out


def main(argv=None) -> int:
    from ser_model.feature_dir import open_feature_dir

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="a ser crossval output folder run with --keep_models")
    p.add_argument("--features", required=True, help="the feature folder the run was trained on")
    p.add_argument("--name", default="speaker_feature_norm", help="result name: benchmarks/results/NAME.json")
    args = p.parse_args(argv)
    folds = sorted(d.parent.name for d in args.run.glob("folds/*/model"))
    if not folds:
        p.error(f"{args.run}: no fold model (run ser crossval with --keep_models)")
    fdir = open_feature_dir(args.features)
    per_fold = {f: fold_uar(args.run / "folds" / f, fdir, fdir.label_set.classes) for f in folds}
    variants = next(iter(per_fold.values())).keys()
    mean = {v: {c: round(float(np.mean([r[v][c] for r in per_fold.values() if c in r[v]])), 4)
                for c in sorted({c for r in per_fold.values() for c in r[v]})} for v in variants}
    for v, m in mean.items():
        print(f"{v:18s}", " ".join(f"{c}={u:.3f}" for c, u in m.items()))
    result = {"benchmark": args.name, **provenance(), "run": str(args.run), "folds": per_fold,
              "mean_over_folds": mean}
    print(f"wrote {write_result(args.name, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
