"""Training throughput (images/s) of every registered vision builder on a GPU, Keras JAX backend,
under float32, mixed_float16 and mixed_bfloat16. Finishes in a few minutes on one H100/H200.

    KERAS_BACKEND=jax python bench/gpu_throughput.py [--batch-size 512] [--steps 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from zoo.registry import build_model, list_models  # noqa: E402

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def throughput(name, policy, batch_size, steps, kwargs):
    keras.mixed_precision.set_dtype_policy(policy)
    model = build_model(name, num_classes=10, input_shape=(32, 32, 3), **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    x = np.random.default_rng(0).normal(size=(batch_size, 32, 32, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 10, batch_size)
    for _ in range(3):  # compile and warm up
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)
    float(np.asarray(loss))  # wait for the device
    return steps * batch_size / (time.perf_counter() - start), model.count_params()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    configs = [(name, {}) for name in list_models("vision")] + [("airbench", {"widths": (128, 384, 384)})]
    print(f"backend {keras.backend.backend()}, batch {args.batch_size}, {args.steps} timed steps")
    print(f"{'model':34s} {'params':>10s} " + " ".join(f"{p:>15s}" for p in POLICIES))
    for name, kwargs in configs:
        rates = []
        for policy in POLICIES:
            rate, params = throughput(name, policy, args.batch_size, args.steps, kwargs)
            rates.append(rate)
        label = name + (f" {kwargs}" if kwargs else "")
        print(f"{label:34s} {params:>10,d} " + " ".join(f"{r:>11,.0f} i/s" for r in rates), flush=True)
    keras.mixed_precision.set_dtype_policy("float32")


if __name__ == "__main__":
    main()
