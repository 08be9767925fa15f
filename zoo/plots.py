"""PNG plots of a run: learning curves and confusion matrices (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


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
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


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
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
