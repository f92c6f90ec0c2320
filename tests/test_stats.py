"""FeatureStats: mergeable per-band sums give the same mean/std as numpy in float64."""

import numpy as np

from ser_model.stats import FeatureStats


def test_float32_window_sums_match_float64_statistics_of_log_mel_ranges():
    rng = np.random.default_rng(0)
    # dB-like values: large means, modest spread (the case where sum-of-squares loses precision)
    windows = [(rng.normal(-40, 15, (128, 188)).astype(np.float32), rng.normal(0, 20, (40, 188)).astype(np.float32))
               for _ in range(60)]
    parts = [FeatureStats.empty(128, 40) for _ in range(3)]
    for i, (logmel, mfcc) in enumerate(windows):
        parts[i % 3].add(logmel, mfcc)
    stats = parts[0].merge(parts[1]).merge(parts[2]).to_json()

    logmel = np.concatenate([w[0] for w in windows], axis=1).astype(np.float64)
    mfcc = np.concatenate([w[1] for w in windows], axis=1).astype(np.float64)
    assert stats["frames"] == logmel.shape[1]
    np.testing.assert_allclose(stats["logmel_mean"], logmel.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(stats["logmel_std"], logmel.std(axis=1), rtol=1e-5)
    np.testing.assert_allclose(stats["mfcc_mean"], mfcc.mean(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["mfcc_std"], mfcc.std(axis=1), rtol=1e-5)
