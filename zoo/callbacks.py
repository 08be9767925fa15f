"""The standard callbacks of a zoo run, and resume bookkeeping."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import keras


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to the epoch logs (CSV and TensorBoard see it)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            lr = self.model.optimizer.learning_rate
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))


class EpochTimer(keras.callbacks.Callback):
    """Adds each epoch's wall time in seconds (`epoch_time_s`, training and validation) to the logs."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_time_s"] = round(time.perf_counter() - self._start, 1)


def backup_dir(run_dir) -> Path:
    return Path(run_dir) / "backup"


def resumed_epoch(run_dir) -> int:
    """The number of finished epochs a BackupAndRestore backup in `run_dir` holds (0 if none)."""
    meta = backup_dir(run_dir) / "training_metadata.json"
    try:
        return int(json.loads(meta.read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def trim_history(csv_path, epochs: int) -> None:
    """Keeps the first `epochs` rows of a CSVLogger file, so a resumed run appends no duplicates."""
    csv_path = Path(csv_path)
    if not csv_path.exists():
        return
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) > epochs + 1:
        with open(csv_path, "w", newline="") as f:
            csv.writer(f).writerows(rows[: epochs + 1])


def standard_callbacks(run_dir, *, monitor="val_loss", mode="auto", early_stopping_patience=None,
                       tensorboard=True, backup=True, checkpoint=True):
    """Callbacks for a run writing into `run_dir`.

    Args:
        monitor, mode: the metric the best checkpoint and early stopping follow.
        early_stopping_patience: epochs without improvement before stopping and restoring the
            best weights; None turns early stopping off.
        tensorboard: write TensorBoard logs to `run_dir/logs`.
        backup: BackupAndRestore into `run_dir/backup`, so an interrupted run resumes from its
            last finished epoch when started again.
        checkpoint: keep the best weights in `run_dir/best.weights.h5`.
    """
    run_dir = Path(run_dir)
    callbacks = [keras.callbacks.TerminateOnNaN(), LearningRateLogger(), EpochTimer()]
    if backup:
        callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir(run_dir))))
    if checkpoint:
        callbacks.append(keras.callbacks.ModelCheckpoint(
            str(run_dir / "best.weights.h5"), monitor=monitor, mode=mode, save_best_only=True, save_weights_only=True))
    if early_stopping_patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=early_stopping_patience, restore_best_weights=True))
    callbacks.append(keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True))
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs")))
    return callbacks
