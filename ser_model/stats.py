"""Per-band mean/std of the training features, accumulated in mergeable pieces.

The feature pipeline fits these on the train split only (a Beam combiner over
per-shard partials); the trainer and every predictor normalise with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FeatureStats:
    """Running sums over frames: mergeable, so shards can be summed in any order."""

    count: int
    logmel_sum: np.ndarray
    logmel_sumsq: np.ndarray
    mfcc_sum: np.ndarray
    mfcc_sumsq: np.ndarray

    @classmethod
    def empty(cls, n_mels: int, n_mfcc: int) -> "FeatureStats":
        z = lambda n: np.zeros(n, dtype=np.float64)  # noqa: E731
        return cls(0, z(n_mels), z(n_mels), z(n_mfcc), z(n_mfcc))

    def add(self, logmel: np.ndarray, mfcc: np.ndarray) -> None:
        """Add one window: ``(bands, frames)`` arrays; every frame counts once."""
        # One window's sums in float32 (pairwise summation over ~200 frames loses
        # nothing that matters), accumulated over windows in float64.
        self.count += logmel.shape[1]
        self.logmel_sum += logmel.sum(axis=1)
        self.logmel_sumsq += np.einsum("ij,ij->i", logmel, logmel)
        self.mfcc_sum += mfcc.sum(axis=1)
        self.mfcc_sumsq += np.einsum("ij,ij->i", mfcc, mfcc)

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        return FeatureStats(self.count + other.count,
                            self.logmel_sum + other.logmel_sum, self.logmel_sumsq + other.logmel_sumsq,
                            self.mfcc_sum + other.mfcc_sum, self.mfcc_sumsq + other.mfcc_sumsq)

    def to_json(self) -> dict:
        """Means and standard deviations (floored so that no band divides by ~0)."""
        if self.count == 0:
            raise ValueError("no training frames: cannot compute normalisation statistics")

        def moments(total, total_sq):
            mean = total / self.count
            std = np.sqrt(np.maximum(total_sq / self.count - mean ** 2, 0.0))
            return mean.tolist(), np.maximum(std, 1e-3).tolist()

        lm_mean, lm_std = moments(self.logmel_sum, self.logmel_sumsq)
        mf_mean, mf_std = moments(self.mfcc_sum, self.mfcc_sumsq)
        return {"frames": int(self.count), "logmel_mean": lm_mean, "logmel_std": lm_std,
                "mfcc_mean": mf_mean, "mfcc_std": mf_std}
