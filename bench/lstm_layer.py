"""One bidirectional LSTM layer's training step on the CPU: the zoo's against Keras', two other
TensorFlow ways to run the recurrence, and PyTorch. Where the sentiment BiLSTM's time goes.

    pip install -e .[bench]                         # PyTorch, for the torch variant
    python bench/lstm_layer.py                      # every variant, 10 rounds
    python bench/lstm_layer.py --variants zoo,torch --rounds 20

The layer is the first of the sentiment `default` preset's (text.sentiment): a batch of 64
reviews of 800 tokens, 128-wide embeddings in, 2 x 64 units out, float32, a mask that is all
true (the benchmark batch of bench/peer_cpu.py has no padding either). A step is the forward
pass, loss = the sum of the squared outputs, and the gradients with respect to the inputs and
every weight. Variants:

- `keras`: `keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True))`.
- `zoo`: the same wrapper around `zoo.models.layers.LSTM` (the input projection taken out of the
  time loop, the recurrence's gradient written out), what the builders use.
- `autodiff`: the zoo's layer with the recurrence differentiated automatically, as Keras' is.
- `block`: TensorFlow's `BlockLSTM` op (one C++ kernel steps through the whole sequence, its
  gradient likewise) on the same weights: a recurrence without a `while_loop`. Not in the zoo.
- `xla`: the `keras` variant's step compiled with XLA (`jit_compile=True`).
- `torch`: `torch.nn.LSTM(128, 64, bidirectional=True)` (oneDNN's LSTM primitive), no mask.

All variants run in one process and step in turn, one step each a round, the order rotating
every round, so a change in the machine's speed hits all alike; the table gives each one's
median step and its speed relative to the first variant.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BATCH, TIME, FEATURES, UNITS = 64, 800, 128, 64
VARIANTS = ("keras", "zoo", "autodiff", "block", "xla", "torch")


def block_lstm(cell, x, go_backwards):
    """`cell`'s LSTM over `x` [batch, time, features] (no mask) as one BlockLSTM op: the outputs,
    in the order Keras' layer returns them (reversed for `go_backwards`)."""
    import tensorflow as tf

    def icfo(tensor):  # Keras' gate order i, f, c, o -> the kernel's i, c, f, o
        i, f, c, o = tf.split(tensor, 4, axis=-1)
        return tf.concat([i, c, f, o], axis=-1)

    x = tf.transpose(x, [1, 0, 2])
    if go_backwards:
        x = tf.reverse(x, [0])
    zeros = tf.zeros([tf.shape(x)[1], cell.units])
    no_peephole = tf.zeros([cell.units])
    *_, h = tf.raw_ops.BlockLSTM(
        seq_len_max=tf.cast(tf.shape(x)[0], "int64"), x=x, cs_prev=zeros, h_prev=zeros,
        w=icfo(tf.concat([cell.kernel, cell.recurrent_kernel], 0)), wci=no_peephole, wcf=no_peephole,
        wco=no_peephole, b=icfo(cell.bias), forget_bias=0.0, cell_clip=-1.0, use_peephole=False)
    return tf.transpose(h, [1, 0, 2])


def keras_step(variant, x, mask):
    import keras
    import tensorflow as tf

    from zoo.models.layers import LSTM

    lstm = keras.layers.LSTM if variant in ("keras", "xla") else LSTM
    layer = keras.layers.Bidirectional(lstm(UNITS, return_sequences=True))
    layer.build(x.shape)
    if variant == "autodiff":
        layer.forward_layer._written_gradient = layer.backward_layer._written_gradient = False
    if variant == "block":
        forward, backward = layer.forward_layer.cell, layer.backward_layer.cell

        def call(inputs):
            return tf.concat([block_lstm(forward, inputs, False),
                              tf.reverse(block_lstm(backward, inputs, True), [1])], axis=-1)
    else:
        def call(inputs):
            return layer(inputs, mask=mask, training=True)

    @tf.function(jit_compile=variant == "xla")
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = call(x)
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, [x] + layer.trainable_weights)

    return lambda: [g.numpy() for g in step()]  # numbers back: the step has finished


def torch_step():
    import torch

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(FEATURES, UNITS, batch_first=True, bidirectional=True)
    x = torch.randn(BATCH, TIME, FEATURES, requires_grad=True)

    def step():
        lstm.zero_grad()
        x.grad = None
        y, _ = lstm(x)
        (y * y).sum().backward()

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"--variants takes {', '.join(VARIANTS)}; not {unknown}")

    import zoo  # noqa: F401  (before TensorFlow: zoo.cpu picks its kernels, as the zoo's commands do)
    import keras
    import numpy as np
    import tensorflow as tf

    from peer_cpu import cpu_flags_summary, step_in_turn
    from zoo.export_lite import cpu_model

    keras.mixed_precision.set_dtype_policy("float32")
    x = tf.constant(np.random.default_rng(0).normal(size=(BATCH, TIME, FEATURES)).astype("float32"))
    mask = tf.ones([BATCH, TIME], "bool")
    versions = f"Keras {keras.__version__}, TensorFlow {tf.__version__}"
    steps = {}
    for variant in variants:
        if variant == "torch":
            import torch

            steps[variant] = torch_step()
            versions += f", PyTorch {torch.__version__}"
        else:
            steps[variant] = keras_step(variant, x, mask)
        for _ in range(args.warmup):
            steps[variant]()
    seconds = step_in_turn(steps, args.rounds)

    print(f"{cpu_model()} ({', '.join(cpu_flags_summary())}), "
          f"{time.strftime('%Y-%m-%d %H:%M')}; {versions}; one BiLSTM layer, batch {BATCH}, {TIME} steps, "
          f"{FEATURES} -> 2 x {UNITS}, float32, forward + gradients; {args.rounds} rounds after {args.warmup} "
          "warm-up steps\n")
    print(f"| variant | median step | fastest step | speed vs {variants[0]} (medians) |\n|---|---:|---:|---:|")
    first = np.median(seconds[variants[0]])
    for variant in variants:
        median = np.median(seconds[variant])
        print(f"| {variant} | {median:.3f} s | {min(seconds[variant]):.3f} s | {first / median:.2f}x |")


if __name__ == "__main__":
    main()
