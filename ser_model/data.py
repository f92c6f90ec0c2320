"""The tf.data input pipeline over the feature pipeline's TFRecord shards.

Reads a split's shards (local or gs://) with parallel interleaved reads, parses
whole batches at once, optionally caches the parsed windows, shuffles, applies
SpecAugment-style augmentation (and optional vocal-tract-length and tempo
perturbation, noise, band limiting and mixup) to the training split only, batches
and prefetches. Normalisation is not done here: the model carries the train-split
statistics in its first layers, so every caller feeds raw features.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import numpy as np
import tensorflow as tf

from ser_model.arrays import balanced_class_weights  # noqa: F401  (part of this module's API)
from ser_model.feature_dir import FeatureDir, FeatureMismatch, open_feature_dir
from ser_model.features import mel_band_centres_hz
from ser_model.records import GENDER_CLASSES, GENDERS, parse_examples

AUTOTUNE = tf.data.AUTOTUNE
ALL_SPLITS = ("train", "val", "test")


def fold_stats(fdir: FeatureDir, speakers) -> dict:
    """Per-band mean/std (the ``stats.json`` contract) of the windows of ``speakers`` in any split."""
    from ser_model.stats import FeatureStats

    stats = FeatureStats.empty(fdir.features.n_mels, fdir.features.n_mfcc)
    for ex in read_split(fdir, ALL_SPLITS, speakers=speakers).batch(256):
        for logmel, mfcc in zip(ex["logmel"].numpy(), ex["mfcc"].numpy()):
            stats.add(logmel, mfcc)
    return stats.to_json()


def gender_ids(gender: tf.Tensor) -> tf.Tensor:
    """Index in GENDER_CLASSES (female 0, male 1); anything else -1 (masked out of the gender loss)."""
    return tf.where(gender == GENDER_CLASSES[0], 0, tf.where(gender == GENDER_CLASSES[1], 1, -1))


def _to_model_inputs(parsed: dict) -> dict:
    return {"logmel": parsed["logmel"][..., None], "mfcc": parsed["mfcc"][..., None]}


def speaker_filter(speakers: Iterable[tuple[str, str]]):
    """A ``tf.data`` predicate that keeps parsed examples of the given ``(corpus, speaker)`` pairs."""
    index = speaker_index(sorted(f"{c}/{s}" for c, s in speakers) or [""])
    return lambda ex: index(ex) >= 0


def read_split(fdir: FeatureDir, split: str | tuple[str, ...], *, shuffle_files: bool = False,
               seed: int = 0, cache: bool = False, speakers=None) -> tf.data.Dataset:
    """Unbatched parsed examples of one split or several (all keys of the TFRecord contract).

    ``speakers``: keep only the windows of these ``(corpus, speaker)`` pairs (cross-validation folds).
    """
    splits = (split,) if isinstance(split, str) else tuple(split)
    files = [f for s in splits for f in fdir.shards(s)]
    if not files:
        raise FileNotFoundError(f"no {'+'.join(splits)} shards in {fdir.path}")
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_files:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP", buffer_size=1 << 20),
                       cycle_length=min(8, len(files)), num_parallel_calls=AUTOTUNE,
                       deterministic=not shuffle_files)
    cfg = fdir.features
    ds = ds.batch(256).map(lambda s: parse_examples(s, cfg), num_parallel_calls=AUTOTUNE).unbatch()
    if speakers is not None:
        ds = ds.filter(speaker_filter(speakers))
    return ds.cache() if cache else ds


def class_counts(fdir: FeatureDir, split: str | tuple[str, ...] = "train", speakers=None) -> np.ndarray:
    """Windows per class in a split or several (one pass over the labels only); ``speakers`` as for
    :func:`read_split`."""
    splits = (split,) if isinstance(split, str) else tuple(split)
    counts = np.zeros(len(fdir.label_set.classes), np.int64)
    spec = {k: tf.io.FixedLenFeature([], tf.int64 if k == "label_id" else tf.string)
            for k in ("label_id", "corpus", "speaker")}
    files = [f for s in splits for f in fdir.shards(s)]
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(1024)
    ds = ds.map(lambda s: tf.io.parse_example(s, spec)).unbatch()
    if speakers is not None:
        ds = ds.filter(speaker_filter(speakers))
    for batch in ds.map(lambda ex: ex["label_id"]).batch(4096):
        counts += np.bincount(batch.numpy(), minlength=len(counts))
    return counts


def file_speakers(fdir: FeatureDir) -> dict[str, tuple[str, str]]:
    """``{path: (corpus, speaker)}`` of every file in a feature folder (one pass over the metadata only)."""
    spec = {k: tf.io.FixedLenFeature([], tf.string) for k in ("path", "corpus", "speaker")}
    files = [f for s in ALL_SPLITS for f in fdir.shards(s)]
    out = {}
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(1024).map(
            lambda s: tf.io.parse_example(s, spec)):
        for path, corpus, speaker in zip(*(batch[k].numpy() for k in ("path", "corpus", "speaker"))):
            out[path.decode()] = (corpus.decode(), speaker.decode())
    return out


def mfcc_of(logmel: tf.Tensor, n_mfcc: int) -> tf.Tensor:
    """The pipeline's MFCCs (``features.mfcc_from_logmel``: orthonormal DCT-II over the bands) of
    ``(B, bands, frames, 1)`` log-mels, so that an augmented log-mel gets matching MFCCs."""
    bands_last = tf.transpose(logmel, [0, 3, 2, 1])
    return tf.transpose(tf.signal.dct(bands_last, type=2, norm="ortho")[..., :n_mfcc], [0, 3, 2, 1])


def power_sum_db(a_db: tf.Tensor, b_db: tf.Tensor) -> tf.Tensor:
    """Two sounds mixed (powers add), in dB."""
    return 10.0 * tf.math.log(tf.pow(10.0, a_db / 10.0) + tf.pow(10.0, b_db / 10.0)) / np.log(10.0)


def degrade_batch(logmel: tf.Tensor, aug: Mapping, features, seed_gen: tf.random.Generator) -> tf.Tensor:
    """Recording conditions the corpora lack, on a share of the examples, in the log-mel domain.

    * band limit (``band_limit_p``): the bands above a random cutoff in ``band_limit_hz``
      lose 60 dB, as behind a low-pass codec or a telephone line;
    * noise (``noise_p``): stationary noise with a random spectral tilt, ``noise_snr_db``
      below the example's loudest cell, mixed in the power domain. It buries the quiet
      detail that lossy codecs throw away and every real room adds;
    * reverberation (``reverb_p``): a room's late reverberation, reverberation time drawn
      from ``reverb_rt60_s`` (:func:`reverberate`), as in far-field or hall recordings.
    """
    batch, n_mels = tf.shape(logmel)[0], logmel.shape[1]
    centres = tf.constant(mel_band_centres_hz(features), tf.float32)[None, :, None, None]
    if aug.get("band_limit_p", 0) > 0:
        lo, hi = aug["band_limit_hz"]
        cutoff = seed_gen.uniform([batch, 1, 1, 1], lo, hi)
        hit = seed_gen.uniform([batch, 1, 1, 1]) < aug["band_limit_p"]
        limited = tf.maximum(logmel - 60.0 * tf.cast(centres > cutoff, tf.float32), features.db_floor)
        logmel = tf.where(hit, limited, logmel)
    if aug.get("noise_p", 0) > 0:
        lo, hi = aug["noise_snr_db"]
        peak = tf.reduce_max(logmel, axis=[1, 2], keepdims=True)
        level = peak - seed_gen.uniform([batch, 1, 1, 1], lo, hi)
        tilt = seed_gen.uniform([batch, 1, 1, 1], -12.0, 12.0) * tf.linspace(-0.5, 0.5, n_mels)[None, :, None, None]
        # Noise power in a band fluctuates from frame to frame (about 5 dB for these bandwidths).
        noise = level + tilt + seed_gen.normal(tf.shape(logmel), stddev=5.0)
        hit = seed_gen.uniform([batch, 1, 1, 1]) < aug["noise_p"]
        logmel = tf.where(hit, power_sum_db(logmel, noise), logmel)
    if (aug.get("reverb_p") or 0) > 0:
        lo, hi = aug["reverb_rt60_s"]
        rt60 = seed_gen.uniform([batch], lo, hi)
        drr_db = seed_gen.uniform([batch], *REVERB_DRR_DB)
        hit = seed_gen.uniform([batch, 1, 1, 1]) < aug["reverb_p"]
        logmel = tf.where(hit, reverberate(logmel, rt60, drr_db, features), logmel)
    return logmel


# Direct-to-reverberant energy ratios drawn for reverb_p (dB): from a talker near the microphone
# (10 dB) to one across a room (0 dB, as much energy in the tail as in the direct sound).
REVERB_DRR_DB = (0.0, 10.0)


def reverb_kernels(rt60_s: tf.Tensor, drr_db: tf.Tensor, frames: int, hop_s: float) -> tf.Tensor:
    """``(B, frames, frames)`` matrices that reverberate a power spectrogram along time: output frame
    t is input frame t (the direct sound) plus every earlier frame s, weighted by a room's late
    reverberation, power falling 60 dB in ``rt60_s`` (Sabine's exponential decay), the whole tail
    ``drr_db`` below the direct sound. Causal: nothing before a window's first frame is known."""
    lag = tf.range(frames)[:, None] - tf.range(frames)[None, :]                       # t - s
    seconds = tf.cast(tf.maximum(lag, 0), tf.float32)[None] * hop_s
    decay = tf.pow(10.0, -6.0 * seconds / rt60_s[:, None, None])
    tail = tf.where(lag[None] > 0, decay, 0.0)
    # Scale so that the energy of the full tail (lags 1, 2, ... of one frame) is drr_db below it.
    ratio = tf.pow(10.0, -6.0 * hop_s / rt60_s)
    tail_energy = ratio / (1.0 - ratio)
    scale = tf.pow(10.0, -drr_db / 10.0) / tail_energy
    return tf.where(lag[None] == 0, 1.0, tail * scale[:, None, None])


def reverberate(logmel: tf.Tensor, rt60_s: tf.Tensor, drr_db: tf.Tensor, features) -> tf.Tensor:
    """``(B, bands, frames, 1)`` log-mels as heard in a reverberant room (:func:`reverb_kernels`),
    mixed in the power domain. The features' floor is a clip, not sound: it is taken out before
    and put back after, so silence before a sound stays exactly at the floor."""
    frames = logmel.shape[2]
    kernels = reverb_kernels(rt60_s, drr_db, frames, features.hop_length / features.sample_rate)
    floor = 10.0 ** (features.db_floor / 10.0)
    power = tf.maximum(tf.pow(10.0, logmel[..., 0] / 10.0) - floor, 0.0)               # (B, bands, frames)
    wet = tf.einsum("bts,bfs->bft", kernels, power) + floor
    return tf.maximum(10.0 * tf.math.log(wet) / np.log(10.0), features.db_floor)[..., None]


# Jaitly and Hinton's VTLP keeps frequencies above this share of the top frequency on a line
# that ends at the top, so the warped spectrum neither runs off the band nor leaves it empty.
VTLP_BOUNDARY = 0.6


def vtlp_source_hz(out_hz: tf.Tensor, alpha: tf.Tensor, fmax: float) -> tf.Tensor:
    """The frequency of the original spectrum that each frequency of the warped one reads.

    The inverse of vocal-tract-length perturbation (Jaitly and Hinton 2013): below the boundary
    ``VTLP_BOUNDARY * fmax * min(alpha, 1)`` the warp multiplies frequencies by ``alpha`` (> 1 a
    shorter vocal tract: formants up); above it a straight line joins the boundary to ``fmax``."""
    b_out = VTLP_BOUNDARY * fmax * tf.minimum(alpha, 1.0)
    b_in = b_out / alpha
    upper = fmax - (fmax - out_hz) * (fmax - b_in) / (fmax - b_out)
    return tf.where(out_hz <= b_out, out_hz / alpha, upper)


def warp_bands(logmel: tf.Tensor, alpha: tf.Tensor, features) -> tf.Tensor:
    """``(B, bands, frames, 1)`` log-mels with each example's frequency axis warped by its
    ``alpha`` (``(B,)``, :func:`vtlp_source_hz`): each band reads the original at its source
    frequency, interpolated between the two nearest band centres."""
    centres = tf.constant(mel_band_centres_hz(features), tf.float32)
    n = centres.shape[0]
    source = vtlp_source_hz(centres[None, :], alpha[:, None], features.fmax)        # (B, bands)
    hi = tf.clip_by_value(tf.searchsorted(tf.broadcast_to(centres, tf.shape(source)), source, side="right"),
                          1, n - 1)
    lo = hi - 1
    w = tf.clip_by_value((source - tf.gather(centres, lo)) / (tf.gather(centres, hi) - tf.gather(centres, lo)),
                         0.0, 1.0)[:, :, None, None]
    return (1 - w) * tf.gather(logmel, lo, axis=1, batch_dims=1) + w * tf.gather(logmel, hi, axis=1, batch_dims=1)


def stretch_frames(x: tf.Tensor, rate: tf.Tensor) -> tf.Tensor:
    """``(B, rows, frames, 1)`` features replayed at ``rate`` (``(B,)``; > 1 faster speech): output
    frame t reads frame ``t * rate``, interpolated, wrapping round as the circular time shift does.
    Log-mel and MFCC alike: the DCT runs over bands, this over frames, so the two commute."""
    frames = x.shape[2]
    position = tf.range(frames, dtype=tf.float32)[None, :] * rate[:, None]     # (B, frames)
    floor = tf.floor(position)
    w = (position - floor)[:, None, :, None]
    lo = tf.cast(floor, tf.int32) % frames
    hi = (lo + 1) % frames
    return (1 - w) * tf.gather(x, lo, axis=2, batch_dims=1) + w * tf.gather(x, hi, axis=2, batch_dims=1)


def perturb_voice(logmel: tf.Tensor, mfcc: tf.Tensor, aug: Mapping, features,
                  seed_gen: tf.random.Generator) -> tuple[tf.Tensor, tf.Tensor]:
    """Other voices and speaking rates than the corpora's few speakers have: every example's
    frequency axis warped by a factor drawn from ``aug["vtlp"]`` (``[lo, hi]``, vocal tract
    length) and its frames replayed at a rate drawn from ``aug["tempo"]``; null switches one off
    (and draws nothing, so the other augmentations' random numbers stay as they were)."""
    batch = tf.shape(logmel)[0]
    if aug.get("vtlp"):
        lo, hi = aug["vtlp"]
        logmel = warp_bands(logmel, seed_gen.uniform([batch], lo, hi), features)
        mfcc = mfcc_of(logmel, mfcc.shape[1])
    if aug.get("tempo"):
        lo, hi = aug["tempo"]
        rate = seed_gen.uniform([batch], lo, hi)
        logmel, mfcc = stretch_frames(logmel, rate), stretch_frames(mfcc, rate)
    return logmel, mfcc


def augment_batch(inputs: dict, aug: Mapping, features, seed_gen: tf.random.Generator) -> dict:
    """Per example: vocal tract length and tempo (:func:`perturb_voice`), band limit, noise and
    reverberation (:func:`degrade_batch`), a random circular time shift, a random gain and SpecAugment masks."""
    logmel, mfcc = inputs["logmel"], inputs["mfcc"]          # (B, bands, frames, 1)
    batch = tf.shape(logmel)[0]
    n_mels, frames = logmel.shape[1], logmel.shape[2]
    mel_floor = features.db_floor

    if aug.get("vtlp") or aug.get("tempo"):
        logmel, mfcc = perturb_voice(logmel, mfcc, aug, features, seed_gen)
    if aug.get("band_limit_p", 0) > 0 or aug.get("noise_p", 0) > 0 or (aug.get("reverb_p") or 0) > 0:
        degraded = degrade_batch(logmel, aug, features, seed_gen)
        changed = tf.reduce_any(tf.not_equal(degraded, logmel), axis=[1, 2, 3])[:, None, None, None]
        logmel, mfcc = degraded, tf.where(changed, mfcc_of(degraded, mfcc.shape[1]), mfcc)

    shift = seed_gen.uniform([batch], -aug["max_shift_frames"], aug["max_shift_frames"] + 1, tf.int32)
    roll = lambda x: tf.map_fn(lambda xs: tf.roll(xs[0], xs[1], axis=1), (x, shift),  # noqa: E731
                               fn_output_signature=x.dtype)
    logmel, mfcc = roll(logmel), roll(mfcc)

    gain = seed_gen.uniform([batch, 1, 1, 1], -aug["gain_db"], aug["gain_db"])
    logmel = tf.maximum(logmel + gain, mel_floor)
    # A dB gain shifts only MFCC 0 (the DCT of a constant): scale by sqrt(n_mels) (ortho DCT).
    mfcc = mfcc + tf.pad(gain * float(np.sqrt(n_mels)), [[0, 0], [0, mfcc.shape[1] - 1], [0, 0], [0, 0]])

    def masks(count, width, size, axis):
        keep = tf.ones([batch, size], tf.bool)
        positions = tf.range(size)[None, :]
        for _ in range(count):
            w = seed_gen.uniform([batch, 1], 0, width + 1, tf.int32)
            start = seed_gen.uniform([batch, 1], 0, size, tf.int32)
            keep &= ~((positions >= start) & (positions < start + w))
        return keep

    time_keep = masks(aug["time_masks"], aug["time_mask_max"], frames, 2)[:, None, :, None]
    freq_keep = masks(aug["freq_masks"], aug["freq_mask_max"], n_mels, 1)[:, :, None, None]
    mean = tf.reduce_mean(logmel, axis=[1, 2], keepdims=True)  # masked cells get the example's mean level
    logmel = tf.where(time_keep & freq_keep, logmel, mean)
    mfcc = tf.where(time_keep, mfcc, tf.reduce_mean(mfcc, axis=2, keepdims=True))
    return {"logmel": logmel, "mfcc": mfcc}


def mixup_batch(inputs: dict, targets: dict, weights: dict, alpha: float, seed_gen: tf.random.Generator):
    """Mixup within a batch: each example blended with a random partner of the same batch.

    The weight of the example itself is ``max(l, 1 - l)`` with ``l ~ Beta(alpha, alpha)``, so it
    always dominates and keeps its own gender target (a sparse label cannot be blended). Inputs,
    emotion targets and emotion sample weights are blended with that weight: log-mel and MFCC alike,
    so the blended MFCCs stay the DCT of the blended log-mel. A model that must output "70% angry,
    30% sad" for a blend cannot lean on one voice's quirks as much, and its confidence is gentler.
    """
    batch = tf.shape(inputs["logmel"])[0]
    seeds = seed_gen.make_seeds(2)
    a = tf.random.stateless_gamma([batch], seeds[:, 0], alpha=alpha)
    b = tf.random.stateless_gamma([batch], seeds[:, 1], alpha=alpha)
    lam = tf.maximum(a / (a + b), b / (a + b))
    partner = tf.argsort(seed_gen.uniform([batch]))

    def blend(x):
        w = tf.reshape(tf.cast(lam, x.dtype), [-1] + [1] * (len(x.shape) - 1))
        return w * x + (1 - w) * tf.gather(x, partner)

    inputs = {k: blend(v) for k, v in inputs.items()}
    targets = {**targets, "emotion": blend(targets["emotion"])}
    weights = {**weights, "emotion": blend(weights["emotion"])}
    return inputs, targets, weights


def speaker_index(vocab) -> Callable[[dict], tf.Tensor]:
    """Parsed examples -> index of ``corpus/speaker`` in ``vocab``; -1 for a speaker not in it."""
    keys = tf.constant(list(vocab))
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, tf.range(len(vocab), dtype=tf.int64)), -1)
    return lambda parsed: table.lookup(tf.strings.join([parsed["corpus"], parsed["speaker"]], "/"))


def training_targets(parsed: dict, class_weights: tf.Tensor, gender_head: bool, speaker_of=None):
    """(inputs, targets, sample weights) for Keras: the gender loss is masked where unknown, the
    speaker adversary's (``speaker_of``: :func:`speaker_index`) where the speaker is not known."""
    inputs = _to_model_inputs(parsed)
    label = parsed["label_id"]
    targets = {"emotion": tf.one_hot(label, tf.shape(class_weights)[0])}  # one-hot: label smoothing
    weights = {"emotion": tf.gather(class_weights, label)}
    if gender_head:
        g = gender_ids(parsed["gender"])
        targets["gender"] = tf.maximum(g, 0)
        weights["gender"] = tf.cast(g >= 0, tf.float32)
    if speaker_of is not None:
        s = speaker_of(parsed)
        targets["speaker"] = tf.maximum(s, 0)
        weights["speaker"] = tf.cast(s >= 0, tf.float32)
    return inputs, targets, weights


def train_dataset(fdir: FeatureDir, train_cfg: Mapping, aug: Mapping, class_weights: np.ndarray,
                  gender_head: bool, seed: int, splits: tuple[str, ...] = ("train",),
                  speakers=None, speaker_vocab=None) -> tf.data.Dataset:
    """Shuffled, augmented, batched training data: ``(inputs, targets, sample weights)``;
    with ``speaker_vocab`` (``corpus/speaker`` keys) also speaker targets for the adversary."""
    t = train_cfg
    ds = read_split(fdir, splits, shuffle_files=True, seed=seed, cache=t["cache"], speakers=speakers)
    ds = ds.shuffle(t["shuffle_buffer"], seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(t["batch_size"], drop_remainder=True)
    cw = tf.constant(class_weights)
    gen = tf.random.Generator.from_seed(seed)
    speaker_of = speaker_index(speaker_vocab) if speaker_vocab else None

    def prepare(parsed):
        inputs, targets, weights = training_targets(parsed, cw, gender_head, speaker_of)
        inputs = augment_batch(inputs, aug, fdir.features, gen)
        if (aug.get("mixup_alpha") or 0) > 0:
            return mixup_batch(inputs, targets, weights, aug["mixup_alpha"], gen)
        return inputs, targets, weights

    return ds.map(prepare, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def eval_dataset(fdir: FeatureDir, split: str | tuple[str, ...], batch_size: int, cache: bool = False,
                 speakers=None) -> tf.data.Dataset:
    """Batches of ``(inputs, metadata)`` in a fixed order, for evaluation and prediction."""
    ds = read_split(fdir, split, cache=cache, speakers=speakers)
    return ds.batch(batch_size).map(_split_meta, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


EVAL_META_KEYS = ("label_id", "gender", "corpus", "path", "speaker", "window_index")


def _split_meta(parsed):
    # Module level, not a closure: AutoGraph warns about (and skips) closures it cannot match.
    return _to_model_inputs(parsed), {k: parsed[k] for k in EVAL_META_KEYS}


__all__ = ["FeatureDir", "FeatureMismatch", "open_feature_dir", "train_dataset", "eval_dataset",
           "class_counts", "balanced_class_weights", "GENDER_CLASSES", "GENDERS"]
