"""Calibrated confidence: temperature scaling, expected calibration error, reliability table.

A model's probabilities ``p`` become ``softmax(log(p) / T)`` (equivalently
``p ** (1/T)``, renormalised): the ranking of classes never changes, only how
sure the model claims to be. ``T`` is fitted by minimising the negative
log-likelihood of held-out labels (predictions on speakers the model never
heard), so that "0.8 confidence" reads as "right about 80% of the time".
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12


def apply_temperature(probs, temperature: float) -> np.ndarray:
    """``(…, classes)`` probabilities rescaled by ``temperature`` (1.0: unchanged)."""
    probs = np.asarray(probs, np.float64)
    if temperature == 1.0:
        return probs
    logits = np.log(np.maximum(probs, EPS)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=-1, keepdims=True)


def nll(probs, labels) -> float:
    probs = np.asarray(probs, np.float64)
    return float(-np.mean(np.log(np.maximum(probs[np.arange(len(labels)), np.asarray(labels, int)], EPS))))


def fit_temperature(probs, labels, low: float = 0.05, high: float = 20.0) -> float:
    """The temperature in ``[low, high]`` with the lowest negative log-likelihood on ``labels``."""
    from scipy.optimize import minimize_scalar

    if len(labels) == 0:
        raise ValueError("no predictions to fit a temperature on")
    result = minimize_scalar(lambda log_t: nll(apply_temperature(probs, float(np.exp(log_t))), labels),
                             bounds=(np.log(low), np.log(high)), method="bounded")
    return float(np.exp(result.x))


def reliability(probs, labels, bins: int = 10) -> list[dict]:
    """Per confidence bin: ``{lo, hi, n, confidence, accuracy}`` (the reliability diagram as a table)."""
    probs = np.asarray(probs, np.float64)
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == np.asarray(labels, int)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    table = []
    for b in range(bins):
        sel = which == b
        table.append({"lo": round(float(edges[b]), 3), "hi": round(float(edges[b + 1]), 3), "n": int(sel.sum()),
                      "confidence": round(float(confidence[sel].mean()), 4) if sel.any() else None,
                      "accuracy": round(float(correct[sel].mean()), 4) if sel.any() else None})
    return table


def ece(probs, labels, bins: int = 10) -> float:
    """Expected calibration error: the count-weighted gap between confidence and accuracy per bin."""
    table = reliability(probs, labels, bins)
    n = sum(row["n"] for row in table)
    return float(sum(row["n"] * abs(row["confidence"] - row["accuracy"]) for row in table if row["n"]) / max(n, 1))
