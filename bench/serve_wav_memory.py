"""Peak memory of the `serve_wav` signature on a 1-second and a 10-minute WAV file.

    python bench/serve_wav_memory.py            # writes bench/results/serve_wav_memory.txt (about 3 min here)

Two SavedModels: the shipped `saved_models/speech_commands` (exported before `serve_wav` checked
the sample rate: its graph resamples as the earlier code did) and the same network (DS-CNN,
128 filters, 4 blocks, 16 kHz, 16,000 samples; untrained weights: memory does not depend on
them) exported by this checkout's code. Files: tones of 1 s and 10 min at 16 kHz (the models'
rate: decoded, not resampled) and at 44.1 kHz (resampled), 1 s at 384 kHz (the highest rate
`serve_wav` accepts), and a crafted 4 MB file whose header declares 1e9 Hz.

Each row is a fresh process that loads the model with `tf.saved_model.load` alone, calls
`serve_wav` once on a 1 s clip at 16 kHz (warm-up: tracing, thread pools), then once on the
file. `peak` is the process's VmHWM (peak resident set) at the end; `growth` is peak minus the
VmHWM after the warm-up, i.e. what the file itself cost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

CHILD = r"""
import json, sys, time
import numpy as np
import tensorflow as tf

def hwm():
    status = open("/proc/self/status").read()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))

model = tf.saved_model.load(sys.argv[1])
warm = tf.audio.encode_wav(np.zeros((16000, 1), np.float32), 16000)
model.serve_wav(tf.constant([warm.numpy()]))
base = hwm()
contents = open(sys.argv[2], "rb").read()
start = time.perf_counter()
try:
    model.serve_wav(tf.constant([contents]))
    outcome = "served"
except tf.errors.InvalidArgumentError as e:
    message = " ".join(e.message.split())
    outcome = "refused: " + message[max(message.find("assertion failed"), 0):][:120]
seconds = time.perf_counter() - start
print(json.dumps({"base_kib": base, "peak_kib": hwm(), "seconds": seconds, "outcome": outcome}))
"""


def wav_file(path: Path, rate: int, seconds: float, *, declared: int | None = None):
    """A 440 Hz tone, 16-bit mono; `declared` replaces the header's rate (and byte rate)."""
    n = int(round(rate * seconds))
    data = (0.3 * 32767 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype("<i2").tobytes()
    rate = declared or rate
    header = (b"RIFF" + (36 + len(data)).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
              + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + rate.to_bytes(4, "little")
              + (2 * rate).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
              + b"data" + len(data).to_bytes(4, "little"))
    path.write_bytes(header + data)
    return path


def export_current(path: Path) -> Path:
    from zoo.audio import serving_endpoints, serving_metadata
    from zoo.export import export_saved_model
    from zoo.registry import build_model

    model = build_model("ds_cnn", num_classes=12, sample_rate=16000, num_samples=16000, filters=128, blocks=4,
                        window_ms=40.0, hop_ms=20.0)
    return export_saved_model(model, path, **serving_endpoints(model, sample_rate=16000, num_samples=16000),
                              metadata=serving_metadata(sample_rate=16000, num_samples=16000, num_classes=12))


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serve_wav_memory.txt")
    args = parser.parse_args(argv)

    import tensorflow as tf

    started = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="serve_wav_memory-"))
    models = {"shipped speech_commands (earlier graph)": REPO / "saved_models" / "speech_commands",
              "this checkout's export": export_current(tmp / "current")}
    files = {
        "16 kHz, 1 s": wav_file(tmp / "16k_1s.wav", 16000, 1),
        "16 kHz, 10 min": wav_file(tmp / "16k_10min.wav", 16000, 600),
        "44.1 kHz, 1 s": wav_file(tmp / "44k_1s.wav", 44100, 1),
        "44.1 kHz, 10 min": wav_file(tmp / "44k_10min.wav", 44100, 600),
        "384 kHz, 1 s": wav_file(tmp / "384k_1s.wav", 384000, 1),
        "crafted: 1e9 Hz declared, 4 MB": wav_file(tmp / "crafted.wav", 16000, 125, declared=10**9),
    }
    lines = ["# python bench/serve_wav_memory.py",
             f"# {time.strftime('%Y-%m-%d')}, {cpu_model()}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}",
             "# peak: VmHWM of a fresh process after the call; growth: peak minus VmHWM after a 1 s warm-up call",
             ""]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # tf.saved_model.load alone: no zoo
    for model_name, model_path in models.items():
        lines += [f"## {model_name}", f"{'file':34} {'size':>9} {'peak MiB':>9} {'growth MiB':>11} {'call s':>7}  outcome"]
        for file_name, path in files.items():
            result = subprocess.run([sys.executable, "-c", CHILD, str(model_path), str(path)], env=env,
                                    capture_output=True, text=True, timeout=900)
            if result.returncode != 0:
                lines.append(f"{file_name:34} failed: {result.stderr.strip().splitlines()[-1][:200]}")
                continue
            r = json.loads(result.stdout.strip().splitlines()[-1])
            size = f"{path.stat().st_size / 2**20:.1f} MB"
            lines.append(f"{file_name:34} {size:>9} {r['peak_kib'] / 1024:9.0f} {(r['peak_kib'] - r['base_kib']) / 1024:11.0f} "
                         f"{r['seconds']:7.2f}  {r['outcome']}")
            print(lines[-1], flush=True)
        lines.append("")
    lines.insert(1, f"# {time.time() - started:.0f} s")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
