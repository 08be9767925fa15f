"""PNG plots of a run: learning curves, confusion matrices, spectrograms and tuner trials (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path, dpi=110):
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return Path(path)


def plot_history(history: dict, path, metrics=("loss", "accuracy")):
    """Train and validation curves of `metrics`, plus the learning rate, one panel each."""
    plt = _pyplot()
    panels = [m for m in metrics if m in history] + (["learning_rate"] if "learning_rate" in history else [])
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
    for ax, name in zip(axes[0], panels):
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], label="train" if name != "learning_rate" else None)
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], label="validation")
            ax.legend()
        ax.set_xlabel("epoch")
        ax.set_title(name.replace("_", " "))
        ax.grid(alpha=0.3)
    return _save(fig, path)


def confusion_matrix(y_true, y_pred, num_classes):
    return np.bincount(np.asarray(y_true) * num_classes + np.asarray(y_pred), minlength=num_classes**2).reshape(
        num_classes, num_classes)


def plot_confusion_matrix(cm, class_names, path, title="Confusion matrix"):
    """Row-normalized confusion matrix with counts in each cell."""
    plt = _pyplot()
    n = len(class_names)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.6 * n))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    return _save(fig, path)


def plot_spectrograms(spectrograms, titles, path, *, frame_seconds=None, title=None, columns=4):
    """A grid of spectrograms `[n, frames, bins]` (time across, mel bins up), one per title."""
    plt = _pyplot()
    spectrograms = np.asarray(spectrograms)
    n = len(spectrograms)
    rows = max(1, -(-n // columns))
    cols = min(columns, max(n, 1))
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.3 * rows + (0.4 if title else 0)), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, spec, name in zip(axes.flat, spectrograms, titles):
        frames = spec.shape[0]
        extent = [0, frames * frame_seconds if frame_seconds else frames, 0, spec.shape[1]]
        ax.imshow(spec.T, origin="lower", aspect="auto", cmap="magma", extent=extent)
        ax.set_title(str(name), fontsize=9)
        ax.set_xlabel("seconds" if frame_seconds else "frame", fontsize=8)
        ax.set_ylabel("mel bin", fontsize=8)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi=100)


def plot_trial_scores(trial_ids, scores, path, *, epochs=None, label="score", maximize=True):
    """The score of each trial in trial order (coloured by epochs trained when they differ) and
    the best score so far."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.25 * len(scores) + 2), 3.5))
    x = np.arange(len(scores))
    if len(scores):
        best = np.maximum.accumulate(scores) if maximize else np.minimum.accumulate(scores)
        ax.plot(x, best, color="gray", lw=1, label="best so far")
        several = epochs is not None and len(set(epochs)) > 1
        points = ax.scatter(x, scores, zorder=3, **({"c": epochs, "cmap": "viridis"} if several else {}))
        if several:
            fig.colorbar(points, ax=ax, label="epochs")
        ax.set_xticks(x, trial_ids, rotation=90 if len(x) > 15 else 0, fontsize=7)
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("trial")
    ax.set_ylabel(label)
    ax.set_title(f"{label} per trial")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_scatter_panels(panels, path, *, ylabel, title=None):
    """One panel per `(name, xs, ys)`: numbers as a scatter (log axis when they are positive and
    span two decades), anything else as one column per distinct value. `None` xs are left out."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(3.6 * max(1, len(panels)), 3.3), squeeze=False)
    for ax, (name, xs, ys) in zip(axes[0], panels):
        pairs = [(x, y) for x, y in zip(xs, ys) if x is not None]
        xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs):
            ax.scatter(xs, ys)
            if xs and min(xs) > 0 and max(xs) >= 100 * min(xs):
                ax.set_xscale("log")
        else:
            names = sorted({str(x) for x in xs})
            ax.scatter([names.index(str(x)) for x in xs], ys)
            ax.set_xticks(range(len(names)), names)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    if not panels:
        axes[0][0].axis("off")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_attention(weights, source_tokens, output_tokens, path, *, title=None):
    """A translation's attention as a heatmap: output tokens down, source tokens across; each row
    is where the decoder looked while writing that token (rows sum to 1)."""
    plt = _pyplot()
    weights = np.asarray(weights)
    rows, cols = weights.shape
    fig, ax = plt.subplots(figsize=(1.5 + 0.38 * cols, 1.2 + 0.34 * rows))
    ax.imshow(weights, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(cols), source_tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(rows), output_tokens, fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path, dpi=100)
