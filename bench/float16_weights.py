"""Does storing a pretrained entry's weights in float16 keep its accuracy? Measured, not assumed.

    ZOO_DATA_DIR=~/zoo_data python bench/float16_weights.py        # writes bench/results/float16_weights.md

For each entry of `saved_models/`: the accuracy of the shipped float32 weights on the whole test
split, then the accuracy after rounding every float32 variable of the loaded SavedModel to
float16 and back (what float16 storage would load), and the size the weights would take.
Computation stays float32 either way; only the stored values change.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zoo.pretrained import evaluate, list_models, load, models_dir  # noqa: E402

ALL = 10**9  # more test examples than any split has: score all of them


def float32_variables(model):
    seen = {}
    for fn in model.signatures.values():
        for v in fn.variables:
            if v.dtype.name == "float32":
                seen[id(v.handle)] = v
    return list(seen.values())


def main(argv=None):
    import tensorflow as tf

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="entries (default: all of saved_models/)")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "float16_weights.md"))
    args = parser.parse_args(argv)
    data_dir = os.environ.get("ZOO_DATA_DIR")
    if not data_dir:
        sys.exit("Set ZOO_DATA_DIR to the dataset mirror: the accuracies are measured on the test splits.")
    rows = []
    for name in args.names or list_models(tflite=False):  # the .tflite entries are int8 already
        predictor = load(name)
        full = evaluate(predictor, data_dir, examples=ALL)
        variables = float32_variables(predictor.model)
        weights = sum(int(v.shape.num_elements()) for v in variables)
        for v in variables:
            v.assign(tf.cast(tf.cast(v, tf.float16), tf.float32))
        half = evaluate(predictor, data_dir, examples=ALL)
        stored = (models_dir() / name / "variables").glob("variables.data-*")
        rows.append(f"| `{name}` | {full['of']:,} | {full['value']:.2%} | {half['value']:.2%} "
                    f"| {100 * (half['value'] - full['value']):+.2f} | {weights:,} "
                    f"| {sum(f.stat().st_size for f in stored) / 1e6:.1f} MB | {2 * weights / 1e6:.1f} MB |")
        print(rows[-1], flush=True)
    lines = [f"Measured by `python bench/float16_weights.py` on {time.strftime('%Y-%m-%d')} (TensorFlow {tf.__version__}), "
             "whole test splits of the mirror.", "",
             "| entry | test examples | accuracy, float32 weights | accuracy, weights rounded to float16 "
             "| change (points) | float32 weights | variables file now | in float16 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|", *rows]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
