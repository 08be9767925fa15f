"""CPU latency of exported SavedModels for one input: median and 90th percentile per signature.

    python bench/latency.py RUN_DIR/saved_model [MORE ...] [--calls 50]

Loads each SavedModel with `tf.saved_model.load` only (no `zoo` import), builds one input per
signature from the signature itself (random uint8 images, random float waveforms, the bytes of a
one-second WAV tone for `wav_bytes`, one sentence for other strings), warms up, and times
single-input calls.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def example_input(spec, metadata):
    shape = [1 if d is None else d for d in spec.shape]
    rng = np.random.default_rng(0)
    if spec.dtype == tf.uint8:
        return tf.constant(rng.integers(0, 256, shape, dtype=np.uint8))
    if spec.dtype == tf.float32:
        return tf.constant((0.1 * rng.normal(size=shape)).astype(np.float32))
    if spec.dtype == tf.string and spec.name != "wav_bytes":  # texts, sentences
        return tf.constant([metadata.get("example_input") or "A wonderful film: the actors are great and the story "
                            "moved me."] * shape[0])
    if spec.dtype == tf.string:
        rate = int(metadata.get("sample_rate", 16000))
        t = np.arange(rate) / rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None]
        return tf.stack([tf.audio.encode_wav(tone, rate)])
    raise ValueError(f"No example input for {spec}")


def measure(path, calls):
    path = Path(path)
    metadata = json.loads((path / "metadata.json").read_text()) if (path / "metadata.json").exists() else {}
    if "tensorflow_text" in metadata.get("requires", ()):
        importlib.import_module("tensorflow_text")  # registers the text ops
    model = tf.saved_model.load(str(path))
    rows = []
    for name, fn in model.signatures.items():
        if name == "serving_default":
            continue
        (spec,) = fn.structured_input_signature[1].values()
        x = example_input(spec, metadata)
        for _ in range(5):
            fn(x)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - start)
        times = np.array(times) * 1000
        rows.append((name, spec, np.median(times), np.percentile(times, 90)))
    return metadata, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("saved_models", nargs="+")
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args(argv)
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, one input a call, {args.calls} calls after 5 warm-up")
    print(f"{'saved model':48s} {'task':16s} {'signature':10s} {'input':28s} {'median':>9s} {'p90':>9s}")
    for path in args.saved_models:
        metadata, rows = measure(path, args.calls)
        for name, spec, median, p90 in rows:
            shape = "x".join("1" if d is None else str(d) for d in spec.shape)
            print(f"{str(path):48s} {metadata.get('task', '?'):16s} {name:10s} {spec.dtype.name + '[' + shape + ']':28s} "
                  f"{median:7.2f} ms {p90:7.2f} ms", flush=True)


if __name__ == "__main__":
    main()
