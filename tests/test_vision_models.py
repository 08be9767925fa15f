"""Patch whitening, the airbench stem initialization, and the zoo's GELU."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.models import vision
from zoo.models.layers import GELU
from zoo.models.vision import init_patch_whitening
from zoo.registry import build_model


def test_patch_whitening_whitens_training_patches():
    rng = np.random.default_rng(0)
    # Correlated channels and neighbouring pixels, as in natural images.
    base = rng.normal(size=(64, 17, 17, 1))
    noise = lambda: rng.normal(size=base.shape)  # noqa: E731
    images = np.concatenate([base, 0.8 * base + 0.2 * noise(), 0.3 * noise() - base], axis=-1)
    images = images[:, :16, :16] + 0.5 * images[:, 1:, 1:]
    model = build_model("airbench", input_shape=(16, 16, 3), num_classes=3, widths=(8, 8, 8), stem_width=24)
    init_patch_whitening(model, images, eps=1e-6)
    stem = model.get_layer("stem_conv")
    assert not stem.trainable
    out = keras.ops.convert_to_numpy(stem(images.astype("float32"))).reshape(-1, 24)
    cov = out[:, :12].T @ out[:, :12] / len(out)
    # The 12 non-negated filters decorrelate the patches and scale them to unit variance.
    np.testing.assert_allclose(cov, np.eye(12), atol=0.05)
    np.testing.assert_allclose(out[:, 12:], -out[:, :12], atol=1e-5)


def test_patch_whitening_needs_two_filters_per_patch_dimension():
    model = build_model("airbench", input_shape=(16, 16, 3), num_classes=3, widths=(8, 8, 8), stem_width=4)
    with pytest.raises(ValueError, match="needs 24 filters"):
        init_patch_whitening(model, np.zeros((2, 16, 16, 3)))




def test_gelu_is_keras_exact_gelu():
    x = np.linspace(-10, 10, 20001).astype("float32")
    expected = keras.ops.convert_to_numpy(keras.activations.gelu(x, approximate=False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(vision.gelu(x)), expected, atol=2e-6)
    # and not the tanh approximation (which differs by up to ~5e-4)
    approx = keras.ops.convert_to_numpy(keras.activations.gelu(x, approximate=True))
    assert np.max(np.abs(approx - expected)) > 1e-4
    # bfloat16, as mixed_bfloat16 computes it: within bfloat16's resolution
    xb = keras.ops.cast(x, "bfloat16")
    got = keras.ops.convert_to_numpy(keras.ops.cast(vision.gelu(xb), "float32"))
    np.testing.assert_allclose(got, expected, atol=0.05, rtol=2 ** -7)


def test_gelu_gradient_is_the_exact_gelus():
    x = tf.constant(np.linspace(-8, 8, 1601).astype("float32"))
    grads = []
    for fn in (vision.gelu, lambda t: keras.activations.gelu(t, approximate=False)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        grads.append(tape.gradient(y, x, output_gradients=tf.fill(x.shape, 3.0)).numpy())
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-5)
    assert grads[0][0] == pytest.approx(0.0, abs=1e-5) and grads[0][-1] == pytest.approx(3.0, abs=1e-5)
    # bfloat16 (mixed_bfloat16's compute dtype): within bfloat16's resolution
    with tf.GradientTape() as tape:
        xb = tf.cast(x, "bfloat16")
        tape.watch(xb)
        yb = vision.gelu(xb)
    gb = tape.gradient(yb, xb)
    assert gb.dtype == "bfloat16"
    np.testing.assert_allclose(tf.cast(gb, "float32").numpy() * 3.0, grads[1], atol=0.05)


def test_airbench_gelu_survives_serialization():
    model = vision.airbench(widths=(4, 4, 4), stem_width=4)
    clone = keras.Model.from_config(model.get_config())
    assert type(clone.get_layer("group1_gelu1")) is GELU


def test_partial_identity_passes_the_first_channels_through():
    model = build_model("airbench", input_shape=(16, 16, 3), num_classes=3, widths=(8, 16, 16), identity_init=True)
    square = keras.ops.convert_to_numpy(model.get_layer("group3_conv2").kernel)  # 16 -> 16: the identity
    expected = np.zeros_like(square)
    expected[1, 1] = np.eye(16)
    np.testing.assert_array_equal(square, expected)
    wider = keras.ops.convert_to_numpy(model.get_layer("group2_conv1").kernel)  # 8 -> 16
    np.testing.assert_array_equal(wider[..., :8], expected[..., :8, :8])
    assert np.count_nonzero(wider[..., 8:]) == wider[..., 8:].size  # the other filters drawn (he_normal)
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 8)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.get_layer("group2_conv1")(x))[..., :8], x, atol=1e-6)
    rebuilt = keras.Model.from_config(model.get_config())  # the initializer serializes
    assert isinstance(rebuilt.get_layer("group1_conv1").kernel_initializer, vision.PartialIdentity)


def test_airbench_without_batch_norm_scales_learns_only_offsets():
    model = build_model("airbench", input_shape=(16, 16, 3), num_classes=3, widths=(8, 8, 8), bn_scale=False)
    norms = [w.path for w in model.trainable_weights if "_bn" in w.path]
    assert norms and all(path.endswith("/beta") for path in norms)
    default = build_model("airbench", input_shape=(16, 16, 3), num_classes=3, widths=(8, 8, 8))
    assert len(default.trainable_weights) == len(model.trainable_weights) + len(norms)
