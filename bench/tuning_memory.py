"""Resident memory of a search over 20 toy tuner trials (issue 6: growth < 50 MB).

    python bench/tuning_memory.py                 # writes bench/results/tuning_memory.txt
    python bench/tuning_memory.py --trials 5      # a quicker look

Runs a random search of vision.cifar10 (`tuning.search.main`, in this process) on fake CIFAR-10
data (random images in the binary layout: 500 training images), the airbench network at its
narrowest width with the rest of the search space drawn at random, one epoch a trial, twice: with
each trial in a process of its own (the default) and with `--in-process`. A thread reads the
resident set size of this process, and of the trial's process, every 0.2 s; each row is taken as a
trial completes. Growth is the search process's RSS after the last trial minus after the first:
the first trial pays for imports, graph tracing and caches once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

MIB = 2**20


def write_fake_cifar(root: Path, train=500, test=100):
    """cifar-10-batches-bin/ with random images: five training batches and a test batch."""
    d = root / "cifar-10-batches-bin"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [*[(f"data_batch_{i}.bin", train // 5) for i in range(1, 6)], ("test_batch.bin", test)]:
        records = rng.integers(0, 256, size=(n, 1 + 32 * 32 * 3), dtype=np.uint8)
        records[:, 0] = np.arange(n) % 10
        records.tofile(d / name)


def completed_trials(directory: Path) -> int:
    n = 0
    for path in directory.glob("trial_*/trial.json"):
        try:
            n += json.loads(path.read_text())["status"] == "COMPLETED"
        except (OSError, ValueError, KeyError):
            pass  # being written
    return n


def watch(directory: Path, stop: threading.Event, rows: list):
    """Appends (search process RSS, peak RSS of the trial's processes) as each trial completes."""
    me, done, child_peak = psutil.Process(), 0, 0.0
    while not stop.wait(0.2):
        child = 0
        for kid in me.children(recursive=True):
            try:
                child += kid.memory_info().rss
            except psutil.Error:
                pass
        child_peak = max(child_peak, child / MIB)
        n = completed_trials(directory)
        if n > done:
            rows.append((me.memory_info().rss / MIB, child_peak))
            done, child_peak = n, 0.0


def measure(args, tmp: Path, in_process: bool) -> list:
    from tuning.search import main as search

    directory = tmp / ("in-process" if in_process else "processes")
    rows, stop = [], threading.Event()
    watcher = threading.Thread(target=watch, args=(directory, stop, rows), daemon=True)
    watcher.start()
    try:
        search(["vision.cifar10", "--tuner", "random", "--max-trials", str(args.trials), "--max-epochs", str(args.epochs),
                "--fix", "model=airbench", "--fix", "width=32", "--precision", "float32", "--jit-compile", "false",
                "--verbose", "0", "--data-dir", str(tmp / "data"), "--directory", str(directory),
                *(["--in-process"] if in_process else [])])
        time.sleep(0.5)
    finally:
        stop.set()
        watcher.join()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--output", default=str(REPO / "bench" / "results" / "tuning_memory.txt"))
    args = parser.parse_args()

    import keras
    import keras_tuner
    import tensorflow as tf

    start = time.time()
    lines = [f"# python bench/tuning_memory.py --trials {args.trials} --epochs {args.epochs}",
             f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}, "
             f"Keras {keras.__version__}, keras-tuner {keras_tuner.__version__}"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_fake_cifar(tmp / "data")
        os.environ["ZOO_CACHE_DIR"] = str(tmp / "cache")
        # The default first, in a process that has built no model yet.
        for in_process in (False, True):
            rows = measure(args, tmp, in_process)
            mode = "--in-process (trials in the search process)" if in_process else "default (a process per trial)"
            lines += ["", f"## {mode}: resident memory (MiB) as each trial completes",
                      "trial  search process  trial process (peak)"]
            lines += [f"{i:5d}  {parent:14.1f}  {child:20.1f}" for i, (parent, child) in enumerate(rows)]
            growth = rows[-1][0] - rows[0][0]
            lines.append(f"growth of the search process over {len(rows)} trials: {growth:+.1f} MiB "
                         f"(target < 50 MB: {'met' if growth * MIB < 50e6 else 'missed'})")
            if not in_process:
                lines.append(f"trial processes: peak {min(r[1] for r in rows):.1f} to {max(r[1] for r in rows):.1f} MiB")
    lines.insert(2, f"# {time.time() - start:.0f} s")
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
