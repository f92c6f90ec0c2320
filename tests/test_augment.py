"""Training-time degradation (noise, band limit): what it changes, what it keeps, and matching MFCCs."""

import numpy as np
import tensorflow as tf

from ser_model import data as D
from ser_model.features import FeatureConfig, compute_features, mel_band_centres_hz

CFG = FeatureConfig()
OFF = {"time_masks": 0, "time_mask_max": 0, "freq_masks": 0, "freq_mask_max": 0, "max_shift_frames": 0,
       "gain_db": 0.0}


def speechlike_windows(n=4, seed=0):
    """(logmel, mfcc) batches of the real feature code on harmonic tones with pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(CFG.window_samples) / CFG.sample_rate
    logmels, mfccs = [], []
    for _ in range(n):
        f0 = rng.uniform(100, 250)
        wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 20)) * (np.sin(2 * np.pi * 2 * t) > 0)
        logmel, mfcc = compute_features((0.3 * wave).astype(np.float32), CFG)
        logmels.append(logmel), mfccs.append(mfcc)
    return tf.constant(np.stack(logmels)[..., None]), tf.constant(np.stack(mfccs)[..., None])


def test_mfcc_of_matches_the_feature_pipeline():
    logmel, mfcc = speechlike_windows()
    assert np.allclose(D.mfcc_of(logmel, CFG.n_mfcc).numpy(), mfcc.numpy(), atol=2e-3)


def test_noise_buries_quiet_cells_and_keeps_loud_ones():
    logmel, _ = speechlike_windows()
    aug = {"noise_p": 1.0, "noise_snr_db": [40, 50]}
    noisy = D.degrade_batch(logmel, aug, CFG, tf.random.Generator.from_seed(1)).numpy()
    x = logmel.numpy()
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    loud, silent = x >= peak - 10, x <= CFG.db_floor
    assert loud.any() and silent.any()
    assert np.abs(noisy - x)[loud].max() < 0.5
    assert np.median((noisy - x)[silent]) > 10
    assert (noisy >= x - 1e-4).all()  # mixing adds power, never removes it


def test_band_limit_cuts_the_bands_above_the_cutoff_only():
    logmel, _ = speechlike_windows()
    aug = {"band_limit_p": 1.0, "band_limit_hz": [4000, 4000]}
    limited = D.degrade_batch(logmel, aug, CFG, tf.random.Generator.from_seed(2)).numpy()
    above = mel_band_centres_hz(CFG) > 4000
    x = logmel.numpy()
    assert np.array_equal(limited[:, ~above], x[:, ~above])
    assert np.allclose(limited[:, above], np.maximum(x[:, above] - 60, CFG.db_floor))


def test_augmented_examples_get_the_mfccs_of_their_log_mel():
    logmel, mfcc = speechlike_windows()
    out = D.augment_batch({"logmel": logmel, "mfcc": mfcc}, {**OFF, "noise_p": 0.5, "noise_snr_db": [10, 20]},
                          CFG, tf.random.Generator.from_seed(3))
    changed = [not np.array_equal(a, b) for a, b in zip(out["logmel"].numpy(), logmel.numpy())]
    assert any(changed) and not all(changed)  # p = 0.5 over four examples with this seed
    assert np.allclose(out["mfcc"].numpy(), D.mfcc_of(out["logmel"], CFG.n_mfcc).numpy(), atol=2e-3)
    for i, c in enumerate(changed):
        if not c:
            assert np.array_equal(out["mfcc"].numpy()[i], mfcc.numpy()[i])


def test_mixup_blends_inputs_targets_and_weights_alike_and_keeps_gender():
    logmel, mfcc = speechlike_windows(n=6, seed=4)
    labels = np.arange(6)
    targets = {"emotion": tf.one_hot(labels, 7), "gender": tf.constant([0, 1, 0, 1, 1, 0])}
    weights = {"emotion": tf.constant([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), "gender": tf.ones([6])}
    out_in, out_t, out_w = D.mixup_batch({"logmel": logmel, "mfcc": mfcc}, targets, weights, 0.4,
                                         tf.random.Generator.from_seed(5))
    y = out_t["emotion"].numpy()
    x, m = logmel.numpy(), mfcc.numpy()
    blended = 0
    for i in range(6):
        lam = y[i, i]
        assert 0.5 <= lam <= 1.0 + 1e-6  # the example itself always dominates
        others = [j for j in range(6) if j != i and y[i, j] > 1e-6]
        partner = others[0] if others else i
        assert len(others) <= 1 and np.isclose(y[i].sum(), 1.0)
        blended += bool(others)
        assert np.allclose(out_in["logmel"].numpy()[i], lam * x[i] + (1 - lam) * x[partner], atol=1e-4)
        assert np.allclose(out_in["mfcc"].numpy()[i], lam * m[i] + (1 - lam) * m[partner], atol=1e-4)
        assert np.isclose(out_w["emotion"].numpy()[i], lam * (i + 1) + (1 - lam) * (partner + 1), atol=1e-4)
    assert blended >= 3
    assert np.array_equal(out_t["gender"].numpy(), targets["gender"].numpy())
    # The DCT is linear: the blended MFCCs are still those of the blended log-mel.
    assert np.allclose(out_in["mfcc"].numpy(), D.mfcc_of(out_in["logmel"], CFG.n_mfcc).numpy(), atol=2e-3)
