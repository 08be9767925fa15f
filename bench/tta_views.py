"""Accuracy of a trained CIFAR-10 run under each test-time augmentation, on its validation and test splits.

    python bench/tta_views.py RUN [RUN ...] [--data-dir DIR] [--shifts 1 2]

RUN is a run directory of `python -m tasks.vision.cifar10`: its config.json, and model.weights.h5
or the `--weights` file it was evaluated from.
The splits are rebuilt from the run's own configuration (validation split and seed), so the
validation images are the ones the run held out. Views: none, horizontal flip, and flip plus the
views shifted diagonally by each of `--shifts` pixels (`zoo.models.vision.with_flip_tta`).
Choose a TTA on the validation column; the test column is for the record.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tasks.vision.cifar10 import Config, load_data, make_datasets  # noqa: E402
from zoo.config import apply_overrides  # noqa: E402
from zoo.models.vision import with_flip_tta  # noqa: E402
from zoo.registry import build_model  # noqa: E402


def accuracy(model, ds, labels):
    return float(np.mean(model.predict(ds, verbose=0).argmax(-1) == labels))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data-dir", default=None, help="the data (default: ZOO_DATA_DIR)")
    parser.add_argument("--shifts", type=int, nargs="*", default=[1, 2])
    args = parser.parse_args(argv)

    print(f"{'run':<28} {'views':<14} {'validation':>10} {'test':>8}")
    for run in args.runs:
        record = json.loads((run / "config.json").read_text())
        saved = record["config"]
        cfg = apply_overrides(Config(), {**saved, "data_dir": args.data_dir or saved.get("data_dir"), "tta": False},
                              f"{run}/config.json")
        keras.mixed_precision.set_dtype_policy(record.get("resolved", {}).get("dtype_policy", cfg.precision))
        data = load_data(cfg)
        _, val_ds, test_ds, (_, y_val) = make_datasets(cfg, data)
        model = build_model(cfg.model, num_classes=len(data.class_names), input_shape=data.x_train.shape[1:],
                            **cfg.model_kwargs)
        # A run trained elsewhere and evaluated with --weights W --epochs 0 has no weights of its own.
        model.load_weights(run / "model.weights.h5" if (run / "model.weights.h5").exists() else cfg.weights)
        views = [("none", model), ("flip", with_flip_tta(model))]
        views += [(f"flip+shift{s}", with_flip_tta(model, s)) for s in args.shifts]
        for name, classifier in views:
            val = f"{accuracy(classifier, val_ds, y_val):.2%}" if val_ds is not None else "-"
            print(f"{run.name:<28} {name:<14} {val:>10} {accuracy(classifier, test_ds, data.y_test):>8.2%}", flush=True)


if __name__ == "__main__":
    main()
