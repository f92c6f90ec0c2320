"""The fused network: a DenseNet on the log-mel image plus a small CNN on the MFCCs.

    logmel (n_mels, frames, 1) -> normalise (train stats) [-> per window] -> avg-pool -> 3 channels
                                  -> DenseNet -> GAP
    mfcc   (n_mfcc, frames, 1) -> normalise (train stats) [-> per window] -> 3 x [conv-BN-ReLU-pool] -> GAP
    concat -> dropout -> softmax over the label set ("emotion") [+ softmax over gender ("gender")]
    concat [-> gradient reversal -> dense -> softmax over training speakers ("speaker"), training only]

The normalisation statistics are constants inside the model, so a saved model
needs nothing else to turn raw features into probabilities. The optional
per-window normalisation (``window_norm``) is a layer of the model for the same
reason: training, scoring and the app cannot disagree about it.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import keras
import numpy as np

from ser_model.records import GENDER_CLASSES


def _densenet_tiny(include_top, weights, input_shape, pooling, growth_rate: int = 32):
    """A DenseNet with 4 blocks of 2 layers (~0.3 M parameters), for tests and quick runs.

    The layout of Keras's DenseNets (stem, dense blocks of bottleneck layers,
    transitions that halve the channels), built from public layers.
    """
    if include_top or pooling != "avg":
        raise ValueError("densenet_tiny is built without a top and average-pooled only")
    if weights == "imagenet":
        raise ValueError("densenet_tiny has no ImageNet weights; use null or a weights file saved from it")
    layers = keras.layers

    def bn_relu(x, name):
        x = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_bn")(x)
        return layers.Activation("relu", name=f"{name}_relu")(x)

    inputs = keras.Input(input_shape)
    x = layers.ZeroPadding2D(3)(inputs)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = bn_relu(x, "conv1")
    x = layers.ZeroPadding2D(1)(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for block in range(4):
        for i in range(2):
            name = f"conv{block + 2}_block{i + 1}"
            y = bn_relu(x, f"{name}_0")
            y = layers.Conv2D(4 * growth_rate, 1, use_bias=False, name=f"{name}_1_conv")(y)
            y = bn_relu(y, f"{name}_1")
            y = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
            x = layers.Concatenate(name=f"{name}_concat")([x, y])
        if block < 3:
            name = f"pool{block + 2}"
            x = bn_relu(x, name)
            x = layers.Conv2D(x.shape[-1] // 2, 1, use_bias=False, name=f"{name}_conv")(x)
            x = layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)
    x = bn_relu(x, "final")
    model = keras.Model(inputs, layers.GlobalAveragePooling2D(name="avg_pool")(x), name="densenet_tiny")
    if weights:
        model.load_weights(weights)
    return model


BACKBONES = {
    "densenet121": keras.applications.DenseNet121,
    "densenet169": keras.applications.DenseNet169,
    "densenet201": keras.applications.DenseNet201,
    "densenet_tiny": _densenet_tiny,
}


def _normaliser(mean: Sequence[float], std: Sequence[float], name: str) -> keras.layers.Layer:
    """Per-band standardisation of (batch, bands, frames, 1) inputs, fixed at build time."""
    return keras.layers.Normalization(axis=1, mean=np.asarray(mean, np.float32),
                                      variance=np.square(np.asarray(std, np.float32)), name=name)


# ``model.window_norm``: statistics of each input window itself, on top of the
# training-set standardisation. They take away what differs between recordings
# rather than between emotions (level, microphone and room colouring), which a
# model trained on a few dozen voices otherwise learns as a shortcut.
#   none  - only the training-set standardisation
#   level - log-mel: mean and spread over the whole window (gain and dynamic
#           range; the spectral shape stays); MFCC: per coefficient over time
#   band  - log-mel and MFCC: per band / coefficient over time (cepstral mean
#           and variance normalisation; also removes fixed channel colouring)
WINDOW_NORMS = ("none", "level", "band")


def _window_normaliser(mode: str, kind: str, name: str) -> keras.layers.Layer | None:
    """A parameter-free LayerNormalization over the axes ``mode`` names for input ``kind``."""
    if mode not in WINDOW_NORMS:
        raise ValueError(f"model.window_norm must be one of {WINDOW_NORMS}, not {mode!r}")
    if mode == "none":
        return None
    # Inputs are (batch, bands, frames, 1): axes (2, 3) are time (the channel axis has one value),
    # axes (1, 2, 3) the whole image. Trailing axes: PyTorch's layer norm takes no other.
    axes = [1, 2, 3] if (mode == "level" and kind == "logmel") else [2, 3]
    return keras.layers.LayerNormalization(axis=axes, center=False, scale=False, name=name)


def densenet_backbone(name: str, weights: str | None, input_shape: tuple[int, int, int]) -> keras.Model:
    """A Keras DenseNet without its classifier, global-average pooled.

    ``weights``: None (random init), "imagenet" (Keras downloads them) or a path
    to a weights file saved from the same architecture (``model.save_weights``
    or Keras's own ``*_notop.h5``).
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}")
    return BACKBONES[name](include_top=False, weights=weights, input_shape=input_shape, pooling="avg")


@keras.saving.register_keras_serializable(package="ser_model")
class GradientReversal(keras.layers.Layer):
    """Identity on the way forward; the gradient times ``-scale`` on the way back.

    Between the fused embedding and a speaker classifier (Ganin and Lempitsky,
    2015): the classifier learns to tell the training speakers apart while the
    layers below are pushed to make that impossible, i.e. towards features that
    carry the emotion but not the voice.
    """

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, x):
        scale = self.scale

        @keras.ops.custom_gradient
        def reverse(x):
            def grad(*args, upstream=None):
                if upstream is None:
                    (upstream,) = args
                return keras.ops.multiply(upstream, -scale)
            return keras.ops.copy(x), grad

        return reverse(x)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


TRAINING_ONLY_OUTPUTS = ("speaker",)


def inference_model(model: keras.Model) -> keras.Model:
    """``model`` without its training-only heads (the speaker adversary): what a bundle ships."""
    if not any(name in model.output_names for name in TRAINING_ONLY_OUTPUTS):
        return model
    outputs = {name: model.get_layer(name).output for name in model.output_names
               if name not in TRAINING_ONLY_OUTPUTS}
    return keras.Model(model.input, outputs, name=model.name)


def build_model(model_cfg: Mapping, n_classes: int, logmel_shape: tuple[int, int],
                mfcc_shape: tuple[int, int], stats: Mapping, n_speakers: int = 0) -> keras.Model:
    """The two-input model; outputs ``emotion`` (and ``gender`` with ``gender_head``; and, for
    training only, ``speaker`` over ``n_speakers`` behind a gradient reversal when
    ``speaker_adversary`` > 0)."""
    logmel_in = keras.Input((*logmel_shape, 1), name="logmel")
    mfcc_in = keras.Input((*mfcc_shape, 1), name="mfcc")

    window_norm = model_cfg.get("window_norm") or "none"
    x = _normaliser(stats["logmel_mean"], stats["logmel_std"], "logmel_norm")(logmel_in)
    if (norm := _window_normaliser(window_norm, "logmel", "logmel_window_norm")) is not None:
        x = norm(x)
    pool = tuple(model_cfg.get("mel_pool") or (1, 1))
    if pool != (1, 1):
        x = keras.layers.AveragePooling2D(pool, name="mel_pool")(x)
    # ImageNet DenseNets take 3 channels: repeat the spectrogram (keeps imagenet weights usable).
    x = keras.layers.Concatenate(name="to_rgb")([x, x, x])
    backbone = densenet_backbone(model_cfg["backbone"], model_cfg.get("weights"), tuple(x.shape[1:]))
    mel_embedding = backbone(x)

    y = _normaliser(stats["mfcc_mean"], stats["mfcc_std"], "mfcc_norm")(mfcc_in)
    if (norm := _window_normaliser(window_norm, "mfcc", "mfcc_window_norm")) is not None:
        y = norm(y)
    for i, filters in enumerate(model_cfg["mfcc_filters"]):
        y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"mfcc_conv{i}")(y)
        y = keras.layers.BatchNormalization(name=f"mfcc_bn{i}")(y)
        y = keras.layers.Activation("relu", name=f"mfcc_relu{i}")(y)
        y = keras.layers.MaxPooling2D(2, padding="same", name=f"mfcc_pool{i}")(y)
    mfcc_embedding = keras.layers.GlobalAveragePooling2D(name="mfcc_gap")(y)

    fused = keras.layers.Concatenate(name="fuse")([mel_embedding, mfcc_embedding])
    z = keras.layers.Dropout(model_cfg["dropout"], name="dropout")(fused)
    # float32 outputs keep softmax stable under mixed precision.
    outputs = {"emotion": keras.layers.Dense(n_classes, activation="softmax", dtype="float32",
                                             name="emotion")(z)}
    if model_cfg.get("gender_head"):
        outputs["gender"] = keras.layers.Dense(len(GENDER_CLASSES), activation="softmax", dtype="float32",
                                               name="gender")(z)
    adversary = float(model_cfg.get("speaker_adversary") or 0.0)
    if adversary > 0:
        if n_speakers < 2:
            raise ValueError("model.speaker_adversary needs at least two training speakers")
        a = GradientReversal(adversary, name="speaker_reversal")(fused)
        a = keras.layers.Dense(256, activation="relu", name="speaker_hidden")(a)
        outputs["speaker"] = keras.layers.Dense(n_speakers, activation="softmax", dtype="float32",
                                                name="speaker")(a)
    return keras.Model({"logmel": logmel_in, "mfcc": mfcc_in}, outputs, name="ser_fused")
