"""Image classifiers for small images (CIFAR-10 and alike).

Every builder is pure Keras 3 (`keras.layers`, `keras.ops`) so it runs on any backend, takes
keyword arguments only, expects float images already normalized, and returns an uncompiled
functional model whose output is float32 logits (also under a mixed precision policy).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from zoo.models.layers import GELU, BatchNormalization, gelu  # noqa: F401 (gelu re-exported)
from zoo.registry import register_model

_INITIALIZERS = ("he_normal", "he_uniform", "glorot_normal", "glorot_uniform")


def _check(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}. Received: {name}={value!r}")


def _logits(x, num_classes, **kwargs):
    # float32 so that softmax and the loss stay in full precision under mixed_float16/bfloat16.
    return layers.Dense(num_classes, dtype="float32", name="logits", **kwargs)(x)


@register_model("seed_cnn")
def seed_cnn(*, num_classes=10, input_shape=(32, 32, 3)):
    """The reference network of the article this project grew from, layer for layer.

    Conv 3->32 3x3 same + ReLU + MaxPool 2, Conv 32->64 3x3 same + ReLU + MaxPool 2, Flatten,
    Dense 120 ReLU, Dense 84 ReLU, Dense `num_classes`.
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, activation="relu", name="fc1")(x)
    x = layers.Dense(84, activation="relu", name="fc2")(x)
    return keras.Model(inputs, _logits(x, num_classes), name="seed_cnn")


@register_model("resnet")
def resnet(
    *,
    num_classes=10,
    input_shape=(32, 32, 3),
    depth=20,
    width=16,
    dropout=0.0,
    l2=0.0,
    kernel_initializer="he_normal",
):
    """A CIFAR ResNet (He et al., 2016, section 4.2) with a width multiplier (Zagoruyko, 2016).

    Three stages of `(depth - 2) / 6` basic blocks (two 3x3 convolutions with BatchNorm and a
    residual connection; a 1x1 projection where the shape changes) at `width`, `2 * width` and
    `4 * width` filters, global average pooling, optional dropout, a linear classifier.

    Args:
        depth: 6n + 2 layers: 20, 32, 44, 56, 110...
        width: filters of the first stage (16 is the paper's ResNet; 64 is a wide one).
        dropout: dropout rate before the classifier.
        l2: L2 penalty on convolution and dense kernels.
        kernel_initializer: he_normal, he_uniform, glorot_normal or glorot_uniform.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 with n >= 1 (20, 32, 44, 56...). Received: depth={depth}")
    if width < 1:
        raise ValueError(f"width must be positive. Received: width={width}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout}")
    _check("kernel_initializer", kernel_initializer, _INITIALIZERS)
    reg = keras.regularizers.L2(l2) if l2 else None
    conv_kw = dict(padding="same", use_bias=False, kernel_initializer=kernel_initializer, kernel_regularizer=reg)
    blocks = (depth - 2) // 6

    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(width, 3, name="stem_conv", **conv_kw)(inputs)
    x = BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage in range(3):
        filters = width * 2**stage
        for block in range(blocks):
            name = f"stage{stage + 1}_block{block + 1}"
            strides = 2 if stage > 0 and block == 0 else 1
            shortcut = x
            y = layers.Conv2D(filters, 3, strides=strides, name=f"{name}_conv1", **conv_kw)(x)
            y = BatchNormalization(name=f"{name}_bn1")(y)
            y = layers.ReLU(name=f"{name}_relu1")(y)
            y = layers.Conv2D(filters, 3, name=f"{name}_conv2", **conv_kw)(y)
            y = BatchNormalization(name=f"{name}_bn2")(y)
            if strides != 1 or shortcut.shape[-1] != filters:
                shortcut = layers.Conv2D(filters, 1, strides=strides, name=f"{name}_proj", **conv_kw)(shortcut)
                shortcut = BatchNormalization(name=f"{name}_proj_bn")(shortcut)
            x = layers.Add(name=f"{name}_add")([shortcut, y])
            x = layers.ReLU(name=f"{name}_out")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = _logits(x, num_classes, kernel_initializer=kernel_initializer, kernel_regularizer=reg)
    return keras.Model(inputs, outputs, name=f"resnet{depth}_w{width}")


@keras.saving.register_keras_serializable(package="zoo")
class PartialIdentity(keras.initializers.Initializer):
    """A convolution kernel `[kh, kw, in, out]` whose first min(in, out) filters pass their own
    input channel through unchanged (a centred 1, as `torch.nn.init.dirac_`) and whose others
    are drawn from `base`. Where in == out the convolution starts as the identity."""

    def __init__(self, base="he_normal"):
        self.base = base if isinstance(base, str) else keras.initializers.serialize(base)

    def __call__(self, shape, dtype=None):
        kh, kw, cin, cout = shape
        base = keras.initializers.get(self.base)
        k = min(cin, cout)
        identity = np.zeros(shape, "float32")
        identity[kh // 2, kw // 2, np.arange(k), np.arange(k)] = 1.0
        drawn = np.ones(cout, "float32")
        drawn[:k] = 0.0
        return keras.ops.cast(base(shape, dtype="float32") * drawn + identity, dtype or "float32")

    def get_config(self):
        return {"base": self.base}


@register_model("airbench")
def airbench(
    *,
    num_classes=10,
    input_shape=(32, 32, 3),
    widths=(64, 256, 256),
    stem_width=24,
    dropout=0.0,
    l2=0.0,
    kernel_initializer="he_normal",
    logit_scale=1 / 9,
    bn_scale=True,
    identity_init=False,
):
    """A fast network for time-to-accuracy, after airbench94 (Jordan, 2024) and ResNet-9 (Page, 2018).

    A 2x2 "patch" stem, then three groups of conv-pool-BN-GELU-conv-BN-GELU that halve the
    resolution each (32 -> 15 -> 7 -> 3), a global max pool and a scaled linear classifier.
    Most of its accuracy per FLOP comes from pooling early and training with a high learning
    rate, label smoothing and flip test-time augmentation (set by the task's presets).

    Args:
        widths: filters of the three groups.
        stem_width: filters of the 2x2 stem convolution.
        dropout: dropout rate before the classifier.
        l2: L2 penalty on kernels.
        kernel_initializer: he_normal, he_uniform, glorot_normal or glorot_uniform.
        logit_scale: the logits are multiplied by this (airbench's 1/9 keeps them small at init).
        bn_scale: learn the batch norms' scales (gamma); airbench fixes them at 1 and learns only
            the offsets.
        identity_init: start each group's convolutions as partial identities (`PartialIdentity`),
            an implicit residual connection at initialization, as airbench does.
    """
    widths = tuple(widths)
    if len(widths) != 3 or min(widths) < 1:
        raise ValueError(f"widths must be three positive integers. Received: widths={widths}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout}")
    _check("kernel_initializer", kernel_initializer, _INITIALIZERS)
    reg = keras.regularizers.L2(l2) if l2 else None
    conv_kw = dict(use_bias=False, kernel_initializer=kernel_initializer, kernel_regularizer=reg)

    group_kw = dict(conv_kw, kernel_initializer=PartialIdentity(kernel_initializer)) if identity_init else conv_kw

    def bn(name):
        return BatchNormalization(momentum=0.6, epsilon=1e-5, scale=bn_scale, name=name)

    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(stem_width, 2, padding="valid", name="stem_conv", **conv_kw)(inputs)
    x = GELU(name="stem_gelu")(x)
    for i, filters in enumerate(widths, start=1):
        x = layers.Conv2D(filters, 3, padding="same", name=f"group{i}_conv1", **group_kw)(x)
        x = layers.MaxPooling2D(2, name=f"group{i}_pool")(x)
        x = bn(f"group{i}_bn1")(x)
        x = GELU(name=f"group{i}_gelu1")(x)
        x = layers.Conv2D(filters, 3, padding="same", name=f"group{i}_conv2", **group_kw)(x)
        x = bn(f"group{i}_bn2")(x)
        x = GELU(name=f"group{i}_gelu2")(x)
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(num_classes, use_bias=False, dtype="float32", name="logits",
                     kernel_initializer=kernel_initializer, kernel_regularizer=reg)(x)
    outputs = layers.Rescaling(logit_scale, dtype="float32", name="logit_scale")(x)
    return keras.Model(inputs, outputs, name="airbench")


@keras.saving.register_keras_serializable(package="zoo")
class HorizontalFlip(layers.Layer):
    """Mirrors NHWC images left to right, always (unlike `RandomFlip`, also at inference)."""

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=2)


@keras.saving.register_keras_serializable(package="zoo")
class Shift(layers.Layer):
    """Translates NHWC images by (`dy`, `dx`) pixels, filling the border by reflection (the
    views of airbench's translate test-time augmentation)."""

    def __init__(self, dy, dx, **kwargs):
        super().__init__(**kwargs)
        self.dy, self.dx = int(dy), int(dx)

    def call(self, inputs):
        py, px = abs(self.dy), abs(self.dx)
        padded = keras.ops.pad(inputs, [[0, 0], [py, py], [px, px], [0, 0]], mode="reflect")
        height, width = inputs.shape[1], inputs.shape[2]
        top, left = py - self.dy, px - self.dx
        return padded[:, top:top + height, left:left + width, :]

    def get_config(self):
        return {**super().get_config(), "dy": self.dy, "dx": self.dx}


def with_flip_tta(model, shift=0):
    """Wraps a classifier so that it averages the logits of each image and its mirror image
    (horizontal-flip test-time augmentation); shares the classifier's weights.

    Args:
        shift: if > 0, also the two copies shifted diagonally by `shift` pixels (up-left and
            down-right, reflected borders), each with its mirror image: airbench's level-2 TTA,
            weighting the unshifted pair 1/2 and each shifted pair 1/4. Six forward passes.
    """
    if not 0 <= shift < min(model.input_shape[1:3]):
        raise ValueError(f"shift must be in [0, {min(model.input_shape[1:3])}) pixels. Received: shift={shift}")
    inputs = keras.Input(shape=model.input_shape[1:], name="image")

    def flip_mean(x, name):
        flipped = HorizontalFlip(name=f"{name}hflip")(x)
        return layers.Average(dtype="float32", name=f"{name}tta_mean")([model(x), model(flipped)])

    logits = flip_mean(inputs, "")
    if shift:
        shifted = [flip_mean(Shift(s, s, name=f"shift{i}")(inputs), f"shift{i}_")
                   for i, s in enumerate((-shift, shift))]
        logits = layers.Average(dtype="float32", name="tta_shift_mean")(
            [layers.Average(dtype="float32", name="tta_shifted")(shifted), logits])
    return keras.Model(inputs, logits, name=f"{model.name}_tta")


def init_patch_whitening(model, images, *, layer="stem_conv", eps=5e-4, max_images=5000):
    """Initializes a patch convolution to whiten its input patches, and freezes it (airbench).

    The kernel's filters are the eigenvectors of the (uncentered) covariance of the training
    images' k x k patches, scaled by 1/sqrt(eigenvalue + eps), each with its negation (so the
    layer needs 2 * k * k * channels filters and a following nonlinearity keeps both signs).

    Args:
        model: a model with a bias-free Conv2D named `layer`.
        images: normalized float training images, NHWC (the first `max_images` are used).
    """
    conv = model.get_layer(layer)
    kh, kw, cin, cout = conv.kernel.shape
    if cout != 2 * kh * kw * cin:
        raise ValueError(f"{layer} needs {2 * kh * kw * cin} filters to whiten {kh}x{kw}x{cin} patches. "
                         f"Received: {cout} filters")
    x = np.asarray(images[:max_images], dtype=np.float64)
    patches = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # N, H', W', C, kh, kw
    patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, kh * kw * cin)
    cov = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    filters = eigenvectors[:, ::-1] / np.sqrt(eigenvalues[::-1] + eps)
    kernel = np.concatenate([filters, -filters], axis=1).reshape(kh, kw, cin, cout)
    conv.kernel.assign(kernel.astype("float32"))
    conv.trainable = False
    return model
