"""The zoo's networks against line-for-line PyTorch equivalents, training on the CPU.

    pip install -e .[bench]                       # PyTorch (CPU), for this script only
    python bench/peer_cpu.py                      # airbench (the `fast` preset's network), both precisions
    python bench/peer_cpu.py --nets airbench,ds_cnn,bilstm,seq2seq --reps 3
    python bench/peer_cpu.py --nets airbench --keras-variants fit,train_on_batch

Each measurement is a separate process (a fresh TensorFlow or PyTorch, nothing shared), the
stacks alternating within each repetition so that a slower or busier stretch of the machine
falls on both. A process builds the network, makes one resident random batch, runs
`--warmup` training steps, then times `--steps` steps; it reports examples per second.
The table gives the min and median over repetitions of each stack and the ratio of medians
(zoo / PyTorch, above 1 when the zoo is faster). Every measurement is appended to
`bench/results/peer_cpu.jsonl` with the machine's CPU model and flags, and the table is
written to `bench/results/peer_cpu.md`.

The Keras side is the zoo's own training path: the registered builder with the task preset's
arguments, `zoo.optim.make_optimizer` and `zoo.losses`, compiled as `zoo.train` compiles it,
stepped by `model.fit` over the resident batch (`fit`, the task's path, `steps_per_execution`
1) or by `train_on_batch`. The PyTorch side is the same layers in the same order with the
same sizes, initial weights not copied (the speed does not depend on them), `torch.optim.SGD`/
`AdamW` and the same loss; bfloat16 is `torch.autocast("cpu", torch.bfloat16)` with
channels-last tensors for convolutions, as PyTorch's CPU performance guide recommends.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PRECISIONS = ("float32", "bfloat16")


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags_summary():
    from zoo.precision import cpu_flags

    flags = cpu_flags()
    return [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]


# --- networks ---------------------------------------------------------------------------------
# Each network: the batch size, the Keras side (model, optimizer, loss, a batch) and the PyTorch
# side (module, optimizer, loss function, a batch).

NETS = {}


def net(name, batch_size, unit="img"):
    def register(cls):
        NETS[name] = cls(batch_size, unit)
        return cls
    return register


class Net:
    def __init__(self, batch_size, unit):
        self.batch_size, self.unit = batch_size, unit


@net("airbench", batch_size=256)
class Airbench(Net):
    """The `fast` preset: airbench at widths 64/256/256, whitened (frozen) 2x2 stem, Nesterov SGD
    with decoupled weight decay under a one-cycle schedule, label smoothing 0.2."""

    def keras(self):
        import keras
        import numpy as np

        from tasks.vision.cifar10 import PRESETS
        from zoo.losses import SparseCategoricalCrossentropyWithSmoothing
        from zoo.optim import make_optimizer, make_schedule
        from zoo.registry import build_model

        p = PRESETS["fast"]
        model = build_model("airbench", num_classes=10, input_shape=(32, 32, 3), **p.get("model_kwargs", {}))
        model.get_layer("stem_conv").trainable = False  # whitened and frozen, as zoo.models.vision does
        schedule = make_schedule("onecycle", p["learning_rate"], steps_per_epoch=196, epochs=p["epochs"],
                                 pct_start=p["pct_start"])
        optimizer = make_optimizer("nesterov", schedule, momentum=p["momentum"], weight_decay=p["weight_decay"])
        loss = SparseCategoricalCrossentropyWithSmoothing(p["label_smoothing"])
        rng = np.random.default_rng(0)
        x = rng.normal(size=(self.batch_size, 32, 32, 3)).astype("float32")
        y = rng.integers(0, 10, self.batch_size).astype("int32")
        return model, optimizer, loss, (x, y)

    def torch(self, bf16):
        import torch
        from torch import nn

        def group(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2),
                    nn.BatchNorm2d(cout, momentum=0.4, eps=1e-5), nn.GELU(),
                    nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout, momentum=0.4, eps=1e-5),
                    nn.GELU()]

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.stem = nn.Conv2d(3, 24, 2, bias=False)
                self.stem.weight.requires_grad_(False)
                self.body = nn.Sequential(nn.GELU(), *group(24, 64), *group(64, 256), *group(256, 256))
                self.logits = nn.Linear(256, 10, bias=False)

            def forward(self, x):
                x = self.body(self.stem(x))
                x = torch.amax(x, dim=(2, 3))
                return self.logits(x.float()) / 9

        model = Model().to(memory_format=torch.channels_last)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-3)
        loss = nn.CrossEntropyLoss(label_smoothing=0.2)
        x = torch.randn(self.batch_size, 3, 32, 32).to(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (self.batch_size,))
        return model, optimizer, loss, (x, y)


# --- one measurement (a child process) --------------------------------------------------------

def run_keras(spec, precision, steps, warmup, variant, jit):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    keras.mixed_precision.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    model, optimizer, loss, (x, y) = spec.keras()
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=jit)
    if variant == "train_on_batch":
        for _ in range(warmup):
            model.train_on_batch(x, y)
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        seconds = time.perf_counter() - start
    else:  # fit: Keras' own loop, one step a call, over the resident batch
        data = tf.data.Dataset.from_tensors((x, y)).repeat()

        class Clock(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if batch == warmup - 1:
                    self.start = time.perf_counter()

            def on_train_end(self, logs=None):
                self.seconds = time.perf_counter() - self.start

        clock = Clock()
        model.fit(data, steps_per_epoch=warmup + steps, epochs=1, verbose=0, callbacks=[clock])
        seconds = clock.seconds
    return {"versions": f"Keras {keras.__version__}, "
            f"TensorFlow {tf.__version__}", "seconds": seconds}


def run_torch(spec, precision, steps, warmup):
    import torch

    bf16 = precision == "bfloat16"
    model, optimizer, loss_fn, (x, y) = spec.torch(bf16)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        loss = loss_fn(out.float(), y)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return {"versions": f"PyTorch {torch.__version__}", "seconds": time.perf_counter() - start}


def child(args):
    sys.path.insert(0, str(ROOT))
    spec = NETS[args.net]
    if args.stack == "torch":
        result = run_torch(spec, args.precision, args.steps, args.warmup)
    else:
        variant, _, xla = args.stack.partition("-")
        result = run_keras(spec, args.precision, args.steps, args.warmup, variant, xla == "xla")
    result.update(stack=args.stack, net=args.net, precision=args.precision, batch_size=spec.batch_size, steps=args.steps,
                  rate=args.steps * spec.batch_size / result["seconds"], unit=spec.unit)
    print("RESULT " + json.dumps(result), flush=True)


# --- the comparison (the parent process) ------------------------------------------------------

def measure(net_name, stack, precision, args):
    cmd = [sys.executable, __file__, "--child", "--net", net_name, "--stack", stack, "--precision", precision,
           "--steps", str(args.steps), "--warmup", str(args.warmup)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")


def table(rows, keras_stacks):
    lines = []
    for (net_name, precision), runs in rows.items():
        torch_rates = [r["rate"] for r in runs if r["stack"] == "torch"]
        for stack in keras_stacks:
            rates = [r["rate"] for r in runs if r["stack"] == stack]
            if not rates or not torch_rates:
                continue
            unit = runs[0]["unit"]
            lines.append(f"| {net_name} | {precision} | {stack} | {min(rates):.0f} / {statistics.median(rates):.0f} | "
                         f"{min(torch_rates):.0f} / {statistics.median(torch_rates):.0f} | "
                         f"{statistics.median(rates) / statistics.median(torch_rates):.2f}x | {unit}/s |")
    head = ("| network | precision | zoo stack | zoo min / median | PyTorch min / median | ratio (medians) | unit |\n"
            "|---|---|---|---:|---:|---:|---|")
    return head + "\n" + "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--nets", default="airbench", help=f"comma-separated, of: {', '.join(NETS)}")
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--keras-variants", default="fit",
                        help="fit, train_on_batch, and either with -xla (jit_compile=True), comma-separated")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--tag", default="", help="a label stored with each measurement")
    parser.add_argument("--no-save", action="store_true", help="print only; write nothing to bench/results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--net", help=argparse.SUPPRESS)
    parser.add_argument("--stack", help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    sys.path.insert(0, str(ROOT))
    nets = args.nets.split(",")
    unknown = sorted(set(nets) - set(NETS))
    if unknown:
        parser.error(f"unknown --nets {', '.join(unknown)}; known: {', '.join(NETS)}")
    keras_stacks = args.keras_variants.split(",")
    machine = {"cpu": cpu_model(), "flags": cpu_flags_summary(), "cpus": os.cpu_count()}
    print(f"{machine['cpu']} ({', '.join(machine['flags'])}), {machine['cpus']} CPUs; {args.reps} repetitions, "
          f"{args.warmup} warm-up + {args.steps} timed steps", flush=True)
    rows = {}
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    for rep in range(args.reps):
        for net_name in nets:
            for precision in args.precisions.split(","):
                # Alternate which stack goes first from one repetition to the next.
                stacks = ["torch", *keras_stacks]
                for stack in (stacks if rep % 2 else stacks[::-1]):
                    r = measure(net_name, stack, precision, args)
                    r.update(machine=machine, rep=rep, time=stamp, tag=args.tag)
                    rows.setdefault((net_name, precision), []).append(r)
                    print(f"  rep {rep} {net_name:9s} {precision:9s} {stack:22s} {r['rate']:8.1f} {r['unit']}/s",
                          flush=True)
                    if not args.no_save:
                        RESULTS.mkdir(parents=True, exist_ok=True)
                        with open(RESULTS / "peer_cpu.jsonl", "a") as f:
                            f.write(json.dumps(r) + "\n")
    versions = sorted({r["versions"] for runs in rows.values() for r in runs})
    text = (f"{machine['cpu']} ({', '.join(machine['flags'])}), {machine['cpus']} CPUs, {stamp}; "
            f"{'; '.join(versions)}; {args.reps} repetitions of {args.warmup} warm-up + {args.steps} timed steps\n\n"
            + table(rows, keras_stacks) + "\n")
    print("\n" + text)
    if not args.no_save:
        (RESULTS / "peer_cpu.md").write_text(f"`python bench/peer_cpu.py {' '.join(argv or sys.argv[1:])}`\n\n" + text)
    return rows


if __name__ == "__main__":
    main()
