"""Honest evaluation: UAR first, then accuracy, macro-F1, confusion, per-corpus and per-gender.

Scores are given per file (window probabilities averaged, one vote per
recording, what a user sees) and per window. Everything here is numpy; the
model only supplies probabilities.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ser_model.aggregate import file_probabilities, group_by_file
from ser_model.bundle import named_outputs
from ser_model.records import GENDER_CLASSES


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    m = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(m, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return m


def scores(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> dict:
    """UAR (mean recall over classes present), weighted accuracy, macro-F1, per-class recall."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    m = confusion(y_true, y_pred, len(classes))
    support = m.sum(axis=1)
    predicted = m.sum(axis=0)
    present = support > 0
    recall = np.divide(np.diag(m), support, out=np.zeros(len(classes)), where=present)
    precision = np.divide(np.diag(m), predicted, out=np.zeros(len(classes)), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(len(classes)),
                   where=(precision + recall) > 0)
    return {
        "n": int(len(y_true)),
        "uar": float(recall[present].mean()) if present.any() else float("nan"),
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "recall": {c: round(float(r), 4) for c, r, p in zip(classes, recall, present) if p},
        "support": {c: int(s) for c, s in zip(classes, support) if s},
        "confusion": m.tolist(),
    }


def aggregate_files(probs: np.ndarray, meta: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict]:
    """Window probabilities -> per-file probabilities (:func:`file_probabilities`); metadata of
    each file's first window."""
    first, members = group_by_file(meta["path"])
    file_probs = np.stack([file_probabilities(probs[rows]) for rows in members])
    return file_probs, {k: np.asarray(v)[first] for k, v in meta.items()}


def report(probs: np.ndarray, meta: Mapping[str, np.ndarray], classes: Sequence[str],
           gender_probs: np.ndarray | None = None) -> dict:
    """File-level (headline) and window-level scores with per-corpus and per-gender breakdowns."""
    file_probs, file_meta = aggregate_files(probs, meta)
    out = {"classes": list(classes), "file": _with_breakdowns(file_probs, file_meta, classes),
           "window": _with_breakdowns(probs, meta, classes)}
    if gender_probs is not None:
        g_true = np.asarray(meta["gender"])
        known = np.isin(g_true, GENDER_CLASSES)
        if known.any():
            g_pred = np.asarray(GENDER_CLASSES)[gender_probs[known].argmax(1)]
            out["gender_accuracy_window"] = float((g_pred == g_true[known]).mean())
    return out


def _with_breakdowns(probs, meta, classes) -> dict:
    y_true, y_pred = np.asarray(meta["label_id"], int), probs.argmax(1)
    result = scores(y_true, y_pred, classes)
    for key, name in (("corpus", "per_corpus"), ("gender", "per_gender")):
        values = np.asarray(meta[key])
        result[name] = {}
        for value in sorted(set(values.tolist())):
            sel = values == value
            s = scores(y_true[sel], y_pred[sel], classes)
            result[name][value] = {k: s[k] for k in ("n", "uar", "accuracy", "macro_f1", "recall")}
    return result


def format_report(rep: Mapping, title: str = "test split") -> str:
    f, w = rep["file"], rep["window"]
    lines = [f"{title}: {f['n']} files, {w['n']} windows",
             f"  UAR {f['uar']:.3f}  accuracy {f['accuracy']:.3f}  macro-F1 {f['macro_f1']:.3f}  (per file)",
             f"  UAR {w['uar']:.3f}  accuracy {w['accuracy']:.3f}  macro-F1 {w['macro_f1']:.3f}  (per window)",
             "  recall: " + "  ".join(f"{c} {r:.2f}" for c, r in f["recall"].items())]
    for group in ("per_corpus", "per_gender"):
        for name, s in f[group].items():
            lines.append(f"  {name:8s} n={s['n']:5d}  UAR {s['uar']:.3f}  acc {s['accuracy']:.3f}")
    if "gender_accuracy_window" in rep:
        lines.append(f"  gender head accuracy (windows): {rep['gender_accuracy_window']:.3f}")
    return "\n".join(lines)


def confusion_csv(matrix: Iterable[Iterable[int]], classes: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["true\\predicted", *classes])
    for name, row in zip(classes, matrix):
        writer.writerow([name, *row])
    return buf.getvalue()


def confusion_png(matrix, classes: Sequence[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(matrix, float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5), dpi=110)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(rep: Mapping, out_dir: Path, title: str) -> None:
    """metrics.json, confusion.csv, confusion.png and report.txt into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(rep, indent=1) + "\n")
    matrix, classes = rep["file"]["confusion"], rep["classes"]
    (out_dir / "confusion.csv").write_text(confusion_csv(matrix, classes))
    confusion_png(matrix, classes, out_dir / "confusion.png", f"{title} (per file)")
    (out_dir / "report.txt").write_text(format_report(rep, title) + "\n")


def predict_split(model, fdir, split: str, batch_size: int = 64):
    """Window probabilities (and gender probabilities) of a whole split, with its metadata."""
    from ser_model.train import input_functions

    return predict_dataset(model, input_functions().eval_dataset(fdir, split, batch_size))


def predict_dataset(model, dataset):
    """``(probs, gender probs or None, metadata arrays)`` over batches of ``(inputs, metadata)``."""
    probs, gender, meta = [], [], defaultdict(list)
    for inputs, batch_meta in dataset:
        out = named_outputs(model.predict_on_batch(inputs))
        probs.append(np.asarray(out["emotion"]))
        if "gender" in out:
            gender.append(np.asarray(out["gender"]))
        for key, value in batch_meta.items():
            value = np.asarray(value)   # a tensor (tf.data) or an array (ser_model.arrays)
            meta[key].extend(v.decode() if isinstance(v, bytes) else v for v in value)
    meta = {k: np.asarray(v) for k, v in meta.items()}
    return np.concatenate(probs), (np.concatenate(gender) if gender else None), meta


def evaluate_split(model, fdir, split: str = "test") -> dict:
    probs, gender, meta = predict_split(model, fdir, split)
    rep = report(probs, meta, fdir.label_set.classes, gender)
    rep["split"] = split
    return rep
