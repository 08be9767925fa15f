"""The README's table of pretrained models, measured from the shipped files in `saved_models/`.

    python bench/zoo_table.py                           # writes bench/results/zoo_table.md
    ZOO_DATA_DIR=~/zoo_data python bench/zoo_table.py   # also re-scores each entry on the test data

For each entry: the size of its files on disk, the parameter count and the recorded metric from
its model card, the CPU latency of one input (`bench/latency.py`'s measurement of the signature
that `python -m zoo.predict` uses: `serve` with one uint8 image, `serve_wav` with the bytes of a
one-second WAV tone, `serve` with one sentence), and, when `ZOO_DATA_DIR` is set, the metric
re-measured on the card's check subset of the test split from the shipped files
(`zoo.pretrained.evaluate`, after `zoo.load`'s manifest and op checks).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.latency import measure  # noqa: E402
from zoo.pretrained import evaluate, list_models, load, models_dir  # noqa: E402

INPUT_KIND = {"image_classifier": "one image", "audio_classifier": "one 1-s WAV", "text_classifier": "one review",
              "translator": "one sentence"}


# The signature each kind's predictor calls for the inputs `python -m zoo.predict` takes.
SIGNATURE = {"image_classifier": "serve", "audio_classifier": "serve_wav", "text_classifier": "serve",
             "translator": "serve"}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def score(metric: str, value: float) -> str:
    """"89.71% accuracy" for accuracies (fractions), "41.03 BLEU" for BLEU (0-100)."""
    if metric.endswith("accuracy"):
        return f"{value:.2%} accuracy"
    return f"{value:.2f} {'BLEU' if metric.endswith('bleu') else metric.removeprefix('test_')}"


def main(argv=None):
    import tensorflow as tf

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="entries (default: all of saved_models/)")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "zoo_table.md"))
    args = parser.parse_args(argv)
    data_dir = os.environ.get("ZOO_DATA_DIR")
    load_average = os.getloadavg()[0]
    rows = []
    # The .tflite entries' cards carry their own LiteRT latency (python -m zoo.export_lite measures it).
    for name in args.names or list_models(tflite=False):
        predictor = load(name)
        card = predictor.metadata
        size = sum(f.stat().st_size for f in (models_dir() / name).rglob("*") if f.is_file())
        _, timings = measure(models_dir() / name, args.calls)
        median, p90 = next((m, p) for sig, _, m, p in timings if sig == SIGNATURE[predictor.kind])
        metric = card["metric"]
        recorded = f"{score(metric['name'], metric['value'])} ({metric['examples']:,} test)"
        check = "not run (ZOO_DATA_DIR unset)"
        if data_dir:
            r = evaluate(predictor, data_dir)
            check = f"{score(metric['name'], r['value'])} ({r['examples']:,} of {r['of']:,})"
        rows.append(f"| `{name}` | {card['task']} | {card['dataset']['short']} | {recorded} | {check} "
                    f"| {size / 1e6:.1f} MB | {card['parameters']:,} | {median:.1f} ms ({p90:.1f}) "
                    f"| {INPUT_KIND[predictor.kind]} | `{card['reproduce']}` |")
        print(rows[-1], flush=True)
    lines = [
        f"Measured by `python bench/zoo_table.py` on {time.strftime('%Y-%m-%d')}: {cpu_name()}, {os.cpu_count()} CPUs, "
        f"TensorFlow {tf.__version__}, load average {load_average:.1f} when it started (other jobs share these "
        f"CPUs: read latencies as upper bounds); latency = median (90th percentile) of {args.calls} single-input "
        "calls after 5 warm-up calls.",
        "",
        "| model | task | dataset | recorded metric | re-measured from the shipped files | size | parameters "
        "| CPU latency, one input | input | reproduce |",
        "|---|---|---|---|---|---:|---:|---:|---|---|",
        *rows,
    ]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
