"""Mixed precision: choose and apply a Keras dtype policy."""

from __future__ import annotations

import keras

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


def gpu_compute_capabilities():
    """(major, minor) of each visible GPU, through TensorFlow when it is the backend."""
    try:
        import tensorflow as tf

        caps = []
        for gpu in tf.config.list_physical_devices("GPU"):
            cc = tf.config.experimental.get_device_details(gpu).get("compute_capability")
            if cc:
                caps.append(tuple(cc))
        return caps
    except ImportError:
        return []


def resolve_precision(precision: str = "auto") -> str:
    """`auto` is mixed_float16 when every GPU has compute capability >= 7.0, float32 otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}. Received: {precision!r}")
    if precision != "auto":
        return precision
    caps = gpu_compute_capabilities()
    return "mixed_float16" if caps and min(caps) >= (7, 0) else "float32"


def set_precision(precision: str = "auto") -> str:
    """Sets the global Keras dtype policy; returns the resolved policy name.

    Builders keep logits in float32, and `Model.compile` wraps the optimizer in a
    `LossScaleOptimizer` under mixed_float16, so the loss is scaled there.
    """
    policy = resolve_precision(precision)
    keras.mixed_precision.set_dtype_policy(policy)
    return policy
