"""Where a training step of a zoo network goes on the CPU: a TensorFlow profiler trace of a few
`fit` steps, summed by op type and by layer, forward and backward apart.

    pip install -e .[bench]                  # tensorboard-plugin-profile reads the trace; PyTorch
    python bench/profile_step.py             # the `fast` network, mixed_bfloat16, 4 traced steps
    python bench/profile_step.py --precision float32 --logdir /tmp/trace   # keep the trace for TensorBoard
    python bench/profile_step.py --torch     # the PyTorch peer of bench/peer_cpu.py, torch.profiler
    python bench/profile_step.py --net bilstm --precision float32 --steps 2   # any of peer_cpu's networks

Self time of every op the trace saw (idle time left out), as shares of the total; the layer is
read from the op's name (`group2_bn1/...` is a BatchNormalization, `gradient_tape/...` marks the
backward pass): for airbench by kind (every convolution together), for the other networks by the
layer's own name. The same trace opens in TensorBoard's Profile tab (`tensorboard --logdir`).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def op_stats(logdir):
    """Rows of the trace's framework op stats: dicts with type, operation and total_self_time (us)."""
    from xprof.convert import raw_to_tool_data

    path = sorted(Path(logdir).rglob("*.xplane.pb"))[-1]
    data, _ = raw_to_tool_data.xspace_to_tool_data([str(path)], "framework_op_stats", {})
    table = json.loads(data)[0]
    cols = [c["id"] for c in table["cols"]]
    rows = [dict(zip(cols, [cell.get("v") if cell else None for cell in row["c"]])) for row in table["rows"]]
    return [r for r in rows if r["type"] != "IDLE"]


LAYER_KINDS = (("conv", "convolution"), ("bn", "batch norm"), ("gelu", "GELU"), ("pool", "max pool"),
               ("logit", "classifier"))


def layer_kind(operation):
    """airbench's layer kinds: every convolution together, every batch norm together, ..."""
    if re.search(r"\b(SGD|sgd|Assign\w*|optimizer)\b", operation) or "/SGD/" in operation:
        return "optimizer"
    match = re.search(r"(stem|group\d)_(conv|bn|gelu|pool)|(logits|logit_scale|pool)/", operation)
    if not match:
        return "other (loss, metrics, casts of variables, control)"
    key = match.group(2) or match.group(3)
    return next(name for prefix, name in LAYER_KINDS if key.startswith(prefix))


def layer_name(operation):
    """Any network's layer: the first scope of the op's name below the gradient tape and the model's
    own scope (`gradient_tape/bilstm/lstm_1/...` -> `lstm_1`); the optimizer's ops apart."""
    if re.search(r"\b(SGD|sgd|Adam\w*|adam\w*|Assign\w*|optimizer)\b", operation):
        return "optimizer"
    parts = [p for p in operation.split("/") if p and p != "gradient_tape"]
    if len(parts) > 2 and parts[0] not in ("compile_loss",):
        return parts[1]  # below the functional model's scope
    return parts[0] if parts else operation


def profile_torch(args):
    import torch
    from torch.profiler import ProfilerActivity, profile

    from peer_cpu import NETS, cpu_flags_summary, torch_step
    from zoo.export_lite import cpu_model

    step = torch_step(NETS[args.net], args.precision)
    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    print(f"{cpu_model()} ({', '.join(cpu_flags_summary())}), PyTorch {torch.__version__}; {args.net}, batch "
          f"{NETS[args.net].batch_size}, {args.precision}, {args.steps} profiled steps: "
          f"{total / 1e6 / args.steps:.3f} s of op time a step\n")
    print("| op | share |\n|---|---:|")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:args.top]:
        print(f"| {e.key} | {100 * e.self_cpu_time_total / total:.1f}% |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--net", default="airbench", help="one of bench/peer_cpu.py's networks "
                        "(airbench, ds_cnn, bilstm, seq2seq)")
    parser.add_argument("--precision", default="bfloat16", choices=("float32", "bfloat16"))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--logdir", help="where the trace goes (default: a temporary directory)")
    parser.add_argument("--top", type=int, default=15, help="op types to list")
    parser.add_argument("--torch", action="store_true", help="profile the PyTorch peer instead (torch.profiler)")
    args = parser.parse_args(argv)
    if args.torch:
        return profile_torch(args)

    import zoo  # noqa: F401  (before TensorFlow: zoo.cpu picks its kernels, as the zoo's commands do)
    import keras
    import tensorflow as tf

    from peer_cpu import NETS, cpu_flags_summary
    from zoo.export_lite import cpu_model

    keras.mixed_precision.set_dtype_policy("mixed_bfloat16" if args.precision == "bfloat16" else "float32")
    model, optimizer, loss, (x, y) = NETS[args.net].keras()
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(data, steps_per_epoch=3, verbose=0)  # trace, build, warm up
    logdir = args.logdir or tempfile.mkdtemp(prefix="zoo-trace-")
    tf.profiler.experimental.start(logdir)
    model.fit(data, steps_per_epoch=args.steps, verbose=0)
    tf.profiler.experimental.stop()

    rows = op_stats(logdir)
    total = sum(r["total_self_time"] for r in rows)
    by_type, by_layer = collections.Counter(), collections.Counter()
    for r in rows:
        by_type[r["type"]] += r["total_self_time"]
        layer = layer_kind(r["operation"]) if args.net == "airbench" else layer_name(r["operation"])
        by_layer[(layer, "backward" if "gradient_tape" in r["operation"] else "forward")] += \
            r["total_self_time"]
    print(f"{cpu_model()} ({', '.join(cpu_flags_summary())}), TF {tf.__version__}, Keras {keras.__version__}; "
          f"{args.net}, batch {NETS[args.net].batch_size}, {args.precision}, {args.steps} traced fit steps: "
          f"{total / 1e6 / args.steps:.3f} s of op time a step; trace in {logdir}\n")
    print("| op type | share |\n|---|---:|")
    for name, t in by_type.most_common(args.top):
        print(f"| {name} | {100 * t / total:.1f}% |")
    print("\n| layers | pass | share |\n|---|---|---:|")
    for (kind, direction), t in by_layer.most_common():
        print(f"| {kind} | {direction} | {100 * t / total:.1f}% |")


if __name__ == "__main__":
    main()
