"""Mixed precision: choose and apply a Keras dtype policy."""

from __future__ import annotations

import keras

from zoo.cpu import cpu_flags  # noqa: F401 (zoo.precision.cpu_flags, which cpu_has_bf16 reads)

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


# CPU features with bfloat16 matrix instructions that oneDNN uses for bfloat16 convolutions and
# matrix products: Intel AMX tiles (Sapphire Rapids and later) and AVX-512 BF16 (Cooper Lake,
# AMD Zen 4 and later). Without them bfloat16 is emulated and slower than float32.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")

# The model domains (zoo.registry) that train faster in bfloat16 than in float32 on such a CPU,
# measured by bench/peer_cpu.py: the image convnets. The speech DS-CNN (depthwise convolutions
# and a float32 spectrogram front end), the LSTM classifiers and the seq2seq LSTMs trained slower
# in bfloat16 with TensorFlow 2.21 (bench/README.md), so `auto` keeps them in float32 on a CPU.
CPU_BF16_DOMAINS = frozenset({"vision"})


def cpu_has_bf16(flags=None) -> bool:
    """Whether the CPU has bfloat16 matrix instructions (AMX or AVX-512 BF16)."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in BF16_CPU_FLAGS)


def resolve_precision(precision: str = "auto", domain: str | None = None) -> str:
    """The dtype policy of `precision`, which `auto` resolves on this machine.

    `auto` is mixed_float16 when every GPU has compute capability >= 7.0; with no GPU,
    mixed_bfloat16 when the CPU has AMX or AVX-512 BF16 instructions and the model's `domain`
    is one that trains faster so (`CPU_BF16_DOMAINS`; None: any model); float32 otherwise.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}. Received: {precision!r}")
    if precision != "auto":
        return precision
    caps = gpu_compute_capabilities()
    if caps:
        return "mixed_float16" if min(caps) >= (7, 0) else "float32"
    faster = domain is None or domain in CPU_BF16_DOMAINS
    return "mixed_bfloat16" if faster and cpu_has_bf16() else "float32"


def set_precision(precision: str = "auto", domain: str | None = None) -> str:
    """Sets the global Keras dtype policy; returns the resolved policy name.

    Builders keep logits in float32, and `Model.compile` wraps the optimizer in a
    `LossScaleOptimizer` under mixed_float16, so the loss is scaled there.
    """
    policy = resolve_precision(precision, domain)
    keras.mixed_precision.set_dtype_policy(policy)
    return policy
