"""Evaluation of classifiers: accuracy, loss, per-class accuracy, confusion matrix."""

from __future__ import annotations

import numpy as np

from zoo.plots import confusion_matrix


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
