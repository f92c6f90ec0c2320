"""Training-time augmentation (noise, band limit, vocal tract length, tempo, mixup): what it changes,
what it keeps, and matching MFCCs."""

import numpy as np
import pytest
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


def tone_features(hz=None, am_hz=None, harmonics_of=None):
    """The real feature code's (logmel, mfcc) ``(1, bands, frames, 1)`` of a sine at ``hz`` or a
    harmonic tone on ``harmonics_of`` Hz, switched on and off ``am_hz`` times a second if given."""
    t = np.arange(CFG.window_samples) / CFG.sample_rate
    wave = (np.sin(2 * np.pi * hz * t) if hz else
            sum(np.sin(2 * np.pi * k * harmonics_of * t) / k for k in range(1, 20)))
    if am_hz:
        wave = wave * (np.sin(2 * np.pi * am_hz * t) > 0)
    logmel, mfcc = compute_features((0.3 * wave).astype(np.float32), CFG)
    return tf.constant(logmel[None, ..., None]), tf.constant(mfcc[None, ..., None])


def peak_band(logmel) -> int:
    return int(np.median(np.argmax(logmel.numpy()[0, :, :, 0], axis=0)))


def test_vtlp_moves_a_tone_where_a_shorter_or_longer_vocal_tract_would():
    logmel, _ = tone_features(hz=1000)
    for alpha in (0.9, 1.0, 1.1):
        warped = D.warp_bands(logmel, tf.constant([alpha]), CFG)
        assert abs(peak_band(warped) - peak_band(tone_features(hz=1000 * alpha)[0])) <= 1
    assert peak_band(D.warp_bands(logmel, tf.constant([1.1]), CFG)) > peak_band(logmel) + 2
    assert np.allclose(D.warp_bands(logmel, tf.constant([1.0]), CFG).numpy(), logmel.numpy(), atol=1e-3)


def test_vtlp_warp_is_continuous_and_keeps_the_band_edges():
    hz = tf.constant(np.linspace(0, CFG.fmax, 2001), tf.float32)
    for alpha in (0.85, 1.0, 1.15):
        source = D.vtlp_source_hz(hz, tf.constant(alpha), CFG.fmax).numpy()
        assert np.all(np.diff(source) > 0)                          # monotonic: no band read twice
        assert np.max(np.abs(np.diff(source))) < 2 * CFG.fmax / 2000  # no jump at the boundary
        assert np.isclose(source[-1], CFG.fmax) and source[0] == 0
        assert np.isclose(source[100], float(hz[100]) / alpha)    # the low range scales by alpha


def test_tempo_replays_frames_faster_or_slower():
    frames = CFG.n_frames
    ramp = tf.constant(np.broadcast_to(np.arange(frames, dtype=np.float32), (2, 3, frames))[..., None])
    out = D.stretch_frames(ramp, tf.constant([1.1, 0.8])).numpy()[..., 0]
    inside = np.arange(frames) * 1.1 < frames - 1
    assert np.allclose(out[0, :, inside].T, np.arange(frames)[inside] * 1.1, atol=1e-3)
    assert np.allclose(out[1], np.arange(frames) * 0.8, atol=1e-3)
    # A tone switched on and off 2 times a second, replayed 1.25x faster, is one switched 2.5 times.
    fast = D.stretch_frames(tone_features(harmonics_of=150, am_hz=2)[0], tf.constant([1.25])).numpy()
    target = tone_features(harmonics_of=150, am_hz=2.5)[0].numpy()
    unwrapped = int(frames / 1.25) - 1
    envelope = lambda x: x[0, :, :unwrapped, 0].mean(axis=0)  # noqa: E731
    assert np.corrcoef(envelope(fast), envelope(target))[0, 1] > 0.95


def test_voice_perturbation_keeps_mfccs_those_of_the_log_mel():
    logmel, mfcc = speechlike_windows()
    out = D.augment_batch({"logmel": logmel, "mfcc": mfcc}, {**OFF, "vtlp": [0.9, 1.1], "tempo": [0.9, 1.1]},
                          CFG, tf.random.Generator.from_seed(6))
    assert not np.allclose(out["logmel"].numpy(), logmel.numpy(), atol=0.5)
    assert np.allclose(out["mfcc"].numpy(), D.mfcc_of(out["logmel"], CFG.n_mfcc).numpy(), atol=2e-3)


def test_perturbation_factor_ranges_are_checked():
    from ser_model.config import ConfigError
    from ser_model.model_card import augmentation_summary
    from ser_model.train import apply_overrides

    cfg = {"augment": {"vtlp": None, "tempo": None}}
    on = apply_overrides(cfg, ["augment.vtlp=[0.9, 1.1]", "augment.tempo=[0.85, 1.15]"])
    assert on["augment"] == {"vtlp": [0.9, 1.1], "tempo": [0.85, 1.15]}
    assert "vocal-tract-length warp (factor 0.9-1.1)" in augmentation_summary(on["augment"])
    assert "tempo change (rate 0.85-1.15)" in augmentation_summary(on["augment"])
    for bad in ("augment.vtlp=1.1", "augment.tempo=[1.1, 0.9]", "augment.vtlp=[0, 1]", "augment.tempo=[a, b]"):
        with pytest.raises(ConfigError, match=r"augment\.(vtlp|tempo): expected null or \[lo, hi\]"):
            apply_overrides(cfg, [bad])


def click(at=40, frames=188, level=-10.0):
    """A (1, 1 band, frames, 1) log-mel of one short loud click in silence (the features' floor)."""
    x = np.full((1, 1, frames, 1), CFG.db_floor, np.float32)
    x[0, 0, at, 0] = level
    return tf.constant(x)


@pytest.mark.parametrize("rt60", [0.3, 0.9])
def test_reverb_tail_decays_60_db_in_the_reverberation_time_after_the_sound_never_before(rt60):
    x = click(at=40)
    drr = 5.0
    wet = D.reverberate(x, tf.constant([rt60]), tf.constant([drr]), CFG).numpy()[0, 0, :, 0]
    hop = CFG.hop_length / CFG.sample_rate
    assert np.array_equal(wet[:40], x.numpy()[0, 0, :40, 0])           # causal: nothing before the click
    assert abs(wet[40] - (-10.0)) < 0.01                                 # the direct sound itself
    tail = wet[41:]
    assert (np.diff(tail) <= 0).all() and (np.diff(tail[tail > CFG.db_floor + 1]) < 0).all()  # falls to the floor
    # Level falls 60 dB per rt60 seconds: the slope of the tail in dB per frame.
    k = 10
    assert np.isclose(tail[0] - tail[k], 60.0 * k * hop / rt60, atol=0.05)
    # The tail's energy together is drr dB below the direct sound (until it reaches the floor).
    energy = (10 ** (tail / 10) - 10 ** (CFG.db_floor / 10)).sum()
    assert abs(10 * np.log10(10 ** (-10.0 / 10) / energy) - drr) < 0.3
    longer = D.reverberate(x, tf.constant([2 * rt60]), tf.constant([drr]), CFG).numpy()[0, 0, :, 0]
    rings = lambda y: (y > CFG.db_floor + 1).sum()                      # noqa: E731
    assert rings(longer) > rings(wet) + 10                               # a longer reverberation time rings longer


def test_reverb_is_switched_on_by_its_share_and_keeps_mfccs_those_of_the_log_mel():
    logmel, mfcc = speechlike_windows(n=8)
    off = D.degrade_batch(logmel, {"reverb_p": None}, CFG, tf.random.Generator.from_seed(4)).numpy()
    assert np.array_equal(off, logmel.numpy())
    aug = {**OFF, "reverb_p": 0.5, "reverb_rt60_s": [0.3, 0.8]}
    out = D.augment_batch({"logmel": logmel, "mfcc": mfcc}, aug, CFG, tf.random.Generator.from_seed(5))
    changed = np.abs(out["logmel"].numpy() - logmel.numpy()).max(axis=(1, 2, 3)) > 0.1
    assert 0 < changed.sum() < len(changed)
    assert np.allclose(out["mfcc"].numpy(), D.mfcc_of(out["logmel"], CFG.n_mfcc).numpy(), atol=2e-3)
    # Reverberation fills the pauses between the syllables: the quietest frames get louder.
    x, y = logmel.numpy()[changed], out["logmel"].numpy()[changed]
    assert (y >= x - 1e-3).all() and np.median((y - x)[x <= CFG.db_floor + 1]) > 10


def test_reverb_settings_are_checked_and_named_on_the_card():
    from ser_model.config import ConfigError
    from ser_model.model_card import augmentation_summary
    from ser_model.train import apply_overrides

    cfg = {"augment": {"reverb_p": None, "reverb_rt60_s": None}}
    on = apply_overrides(cfg, ["augment.reverb_p=0.3", "augment.reverb_rt60_s=[0.2, 0.8]"])
    assert "reverberation (RT60 0.2-0.8 s) on 30% of windows" in augmentation_summary(on["augment"])
    with pytest.raises(ConfigError, match=r"augment\.reverb_p: set augment\.reverb_rt60_s too"):
        apply_overrides(cfg, ["augment.reverb_p=0.3"])
    for bad in ("augment.reverb_p=1.5", "augment.reverb_p=yes"):
        with pytest.raises(ConfigError, match=r"augment\.reverb_p: expected null or a share"):
            apply_overrides(cfg, [bad])
    with pytest.raises(ConfigError, match=r"augment\.reverb_rt60_s: expected null or \[lo, hi\]"):
        apply_overrides(cfg, ["augment.reverb_p=0.3", "augment.reverb_rt60_s=[0.8, 0.2]"])
