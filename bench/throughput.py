"""CPU training throughput of every registered vision model, and the input pipeline's
throughput as a ratio to the fast model's training rate (the pipeline must not be the
bottleneck: the ratio should be >= 3).

    python bench/throughput.py [--data-dir DIR] [--batch-size 256] [--steps 12]

Images/s are measured with `train_on_batch` on a resident random batch after warm-up steps, in the precisions and
XLA settings given (defaults: float32 and mixed_bfloat16, XLA off and on). The pipeline is
`zoo.pipeline.image_dataset` with the `fast` preset's augmentation over real CIFAR-10 when
`--data-dir`/`ZOO_DATA_DIR` is set, else over random uint8 images of the same shape.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import zoo  # noqa: E402,F401  (before TensorFlow: zoo.cpu picks its kernels, as the zoo's commands do)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tasks.vision.cifar10 import PRESETS  # noqa: E402
from zoo.pipeline import image_dataset  # noqa: E402
from zoo.precision import resolve_precision  # noqa: E402
from zoo.registry import build_model, list_models, model_domain  # noqa: E402


def train_rate(name, policy, jit, batch_size, steps, kwargs=None):
    """Images/s of `train_on_batch` on one resident random batch, after warm-up steps."""
    keras.mixed_precision.set_dtype_policy(policy)
    model = build_model(name, num_classes=10, input_shape=(32, 32, 3), **(kwargs or {}))
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)
    x = tf.constant(np.random.default_rng(0).normal(size=(batch_size, 32, 32, 3)).astype("float32"))
    y = tf.constant(np.random.default_rng(1).integers(0, 10, batch_size))
    for _ in range(3):  # build, trace, warm up
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    rate = steps * batch_size / (time.perf_counter() - start)
    keras.mixed_precision.set_dtype_policy("float32")
    return rate, model.count_params()


def preset_policy(recipe):
    """The dtype policy a preset trains in on this machine (`--precision auto` resolved for its model)."""
    return resolve_precision(recipe.get("precision", "auto"), model_domain(recipe["model"]))


def pipeline_rate(x, y, batch_size, seconds=10.0):
    fast = PRESETS["fast"]
    ds = image_dataset(x, y, batch_size=batch_size, training=True, crop_padding=fast["crop_padding"],
                       flip=fast["flip"], cutout=0, seed=0).repeat()
    it = iter(ds)
    for _ in range(5):
        next(it)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        images, _ = next(it)
        n += int(images.shape[0])
    return n / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("ZOO_DATA_DIR"))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--policies", default="float32,mixed_bfloat16")
    parser.add_argument("--jit", default="false,true")
    args = parser.parse_args(argv)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, TF {tf.__version__}, "
          f"Keras {keras.__version__}, batch {args.batch_size}, {args.steps} timed steps")
    policies = args.policies.split(",")
    jits = [j == "true" for j in args.jit.split(",")]
    rates = {}
    header = " ".join(f"{p + (' xla' if j else ''):>22s}" for p in policies for j in jits)
    print(f"{'model':16s} {'params':>10s} {header}")
    for name in list_models("vision"):
        row = []
        for policy in policies:
            for jit in jits:
                rate, params = train_rate(name, policy, jit, args.batch_size, args.steps)
                rates[(name, policy, jit)] = rate
                row.append(f"{rate:>16,.0f} img/s")
        print(f"{name:16s} {params:>10,d} " + " ".join(row), flush=True)

    # Each preset's own network, precision and batch size, and what that rate means for its run.
    print(f"{'preset':10s} {'model':42s} {'precision':15s} {'img/s':>8s} {'epoch':>9s} {'all epochs':>11s}")
    for preset, recipe in PRESETS.items():
        policy = preset_policy(recipe)
        batch = recipe.get("batch_size", args.batch_size)
        rate, _ = train_rate(recipe["model"], policy, False, batch, args.steps, recipe.get("model_kwargs"))
        n_train = 50000 * (1 - recipe.get("validation_split", 0.2))
        epoch = n_train / rate
        label = recipe["model"] + (f" {recipe['model_kwargs']}" if recipe.get("model_kwargs") else "")
        print(f"{preset:10s} {label:42s} {policy:15s} {rate:8,.0f} {epoch / 60:7.1f} m "
              f"{epoch * recipe.get('epochs', 10) / 3600:9.2f} h", flush=True)

    if args.data_dir:
        from zoo.data.images import load_cifar10

        data = load_cifar10(args.data_dir)
        x, y, source = data.x_train, data.y_train, data.source
    else:
        x = np.random.default_rng(0).integers(0, 256, (50000, 32, 32, 3), dtype=np.uint8)
        y = np.random.default_rng(1).integers(0, 10, 50000)
        source = "random uint8 images"
    pipe = pipeline_rate(x, y, args.batch_size)
    fast = PRESETS["fast"]
    fast_key = (fast["model"], preset_policy(fast), False)
    fast_rate = rates.get(fast_key) or train_rate(fast["model"], preset_policy(fast), False, args.batch_size, args.steps)[0]
    print(f"input pipeline ({source}, fast preset augmentation): {pipe:,.0f} img/s")
    print(f"pipeline / fast-model training ({fast['model']}, {preset_policy(fast)}): "
          f"{pipe:,.0f} / {fast_rate:,.0f} = {pipe / fast_rate:.1f}x")


if __name__ == "__main__":
    main()
