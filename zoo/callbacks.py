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


class Lookahead(keras.callbacks.Callback):
    """Lookahead (Zhang et al., 2019) the way airbench (Jordan, 2024) schedules it.

    Every `every` optimizer steps the model's weights (batch-norm statistics included) move to
    `decay * slow + (1 - decay) * weights`, and that becomes the new slow copy; `decay` rises
    over the run as `base ** every * progress ** power` (`progress`: the steps done over all of
    `fit`'s steps), so training moves freely at first and averages strongly at the end. At each
    epoch's end the weights are set to the slow copy, so what is evaluated, checkpointed and
    backed up (and resumed from) is the average.

    Args:
        every: steps between two syncs.
        base: the per-step decay the schedule rises to.
        power: how late in the run the averaging sets in.
    """

    def __init__(self, every=5, base=0.95, power=3.0):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be >= 1. Received: every={every}")
        self.every, self.base, self.power = int(every), float(base), float(power)

    def _weights(self):
        return [w for w in self.model.weights if "float" in str(w.dtype)]

    def on_train_begin(self, logs=None):
        self._slow = [keras.ops.convert_to_numpy(w) for w in self._weights()]
        self._synced = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self._steps, self._epochs = self.params.get("steps"), max(1, self.params.get("epochs") or 1)

    def on_epoch_begin(self, epoch, logs=None):
        # The optimizer's step count is read once an epoch; within it, batches count the steps
        # (`batch` is the last step a call ran, with steps_per_execution too).
        self._epoch, self._averaged = epoch, False
        self._epoch_start = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def _sync(self, decay):
        for w, slow in zip(self._weights(), self._slow):
            slow += (1.0 - decay) * (keras.ops.convert_to_numpy(w) - slow)
            w.assign(slow)
        self._averaged = decay == 1.0

    def on_train_batch_end(self, batch, logs=None):
        step = self._epoch_start + batch + 1
        self._averaged = False
        if step - self._synced >= self.every:
            self._synced = step
            # Without a known epoch length (a dataset of unknown size), progress goes by epochs.
            progress = step / (self._steps * self._epochs) if self._steps else self._epoch / self._epochs
            self._sync(self.base ** self.every * min(1.0, progress) ** self.power)
        if self._steps and batch + 1 == self._steps:
            self._sync(1.0)  # before validation, which Keras runs ahead of on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        if not self._averaged:  # a dataset of unknown size: no batch was known to be the last
            self._sync(1.0)


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
