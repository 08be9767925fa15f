"""Evaluation of classifiers: accuracy, loss, per-class accuracy, confusion matrix, and the
metrics.json and plots of a run."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from zoo.cli import dumps_strict
from zoo.plots import confusion_matrix, plot_confusion_matrix, plot_history


def classification_metrics(y_true, probs, class_names, prefix=""):
    """Loss (cross-entropy of `probs`), accuracy and per-class accuracy, as plain floats."""
    y_true = np.asarray(y_true).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64)
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, len(class_names))
    per_class = cm.diagonal() / np.maximum(cm.sum(axis=1), 1)
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y_true)), y_true], 1e-12, None))))
    metrics = {
        f"{prefix}loss": loss,
        f"{prefix}accuracy": float(np.mean(y_pred == y_true)),
        f"{prefix}per_class_accuracy": {name: float(a) for name, a in zip(class_names, per_class)},
        f"{prefix}examples": int(len(y_true)),
    }
    return metrics, cm


def show_progress() -> bool:
    """Whether evaluation draws progress bars: when stdout is a terminal, not in logs or tests."""
    return sys.stdout.isatty()


def predict_probabilities(model, ds, *, progress: bool | None = None):
    """Softmax of a logits classifier's predictions on `ds`, as a float numpy array.

    Args:
        model: a Keras model (or callable with `predict`) mapping a batch to logits.
        ds: the batches to predict.
        progress: draw a Keras progress bar over the batches (default: `show_progress()`).
    """
    import keras

    verbose = int(show_progress() if progress is None else progress)
    return keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(ds, verbose=verbose)))


def evaluate_classifier(model, splits: dict, class_names):
    """Metrics of a logits classifier on labelled datasets.

    Args:
        model: a Keras model (or callable with `predict`) mapping a batch to logits.
        splits: {prefix: (dataset, labels)}, e.g. {"val": ..., "test": ...}; a `None` dataset is
            skipped. Each dataset yields its examples in the order of `labels`.
        class_names: names of the classes, in label order.

    Returns:
        The metrics (`classification_metrics` of each split, keys prefixed `"<prefix>_"`) and
        {prefix: confusion matrix}.
    """
    metrics, matrices = {}, {}
    for prefix, (ds, labels) in splits.items():
        if ds is None:
            continue
        probs = predict_probabilities(model, ds)
        split_metrics, matrices[prefix] = classification_metrics(labels, probs, class_names, prefix=f"{prefix}_")
        metrics.update(split_metrics)
    return metrics, matrices


def write_classification_report(run_dir, metrics: dict, history: dict, cm, class_names, title: str):
    """Writes `metrics.json`, `learning_curves.png` and `confusion_matrix.png` (titled `title`)
    into `run_dir`."""
    run_dir = Path(run_dir)
    # A diverged run has NaN metrics: null keeps the file strict JSON.
    (run_dir / "metrics.json").write_text(dumps_strict(metrics, indent=2) + "\n")
    plot_history(history, run_dir / "learning_curves.png")
    plot_confusion_matrix(cm, class_names, run_dir / "confusion_matrix.png", title=title)
