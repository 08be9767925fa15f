"""Run setup, compile and fit shared by every task."""

from __future__ import annotations

import csv
import dataclasses
import json
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import keras

from zoo.callbacks import backup_dir, resumed_epoch, standard_callbacks, trim_history
from zoo.distribute import get_strategy, is_chief, patch_keras_for_multiworker, strategy_name, worker_index
from zoo.optim import make_optimizer, make_schedule
from zoo.precision import set_precision


@dataclass
class Run:
    """What `setup_run` resolved: where outputs go and how training runs."""

    run_dir: Path
    strategy: object
    policy: str
    jit_compile: bool
    chief: bool
    command: str | None = None


class Experiment(NamedTuple):
    """One training run as a task builds it: a compiled model, its training and validation
    pipelines, and callbacks its objective needs (one that adds `val_bleu` to the logs, say).
    A task's `build_trial` returns it to the tuner (tuning/search.py)."""

    model: object
    train: object
    validation: object
    callbacks: tuple = ()


def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in ("tensorflow", "keras", "numpy", "tensorflow-datasets", "tensorflow-text"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def resolve_jit(jit_compile: str) -> bool:
    if jit_compile in ("true", "false"):
        return jit_compile == "true"
    import tensorflow as tf

    # Measured on the 2-core Xeon (bench/throughput.py): TF's oneDNN kernels beat XLA for
    # convolutions on the CPU, XLA wins on GPUs.
    return bool(tf.config.list_physical_devices("GPU"))


def setup_run(cfg, task: str, argv=None) -> Run:
    """Creates the run directory, seeds everything, sets precision and the strategy, and writes
    the resolved config to `run_dir/config.json`.

    Args:
        cfg: the resolved config dataclass.
        task: the task's name; `python -m tasks.<task>` runs it.
        argv: the command-line arguments the config came from (default `sys.argv[1:]`), recorded
            as the command that reproduces the run.
    """
    import tensorflow as tf

    run_dir = Path(cfg.output_dir or Path("runs") / f"{task}-{cfg.preset}")
    if not cfg.resume:
        shutil.rmtree(backup_dir(run_dir), ignore_errors=True)
        (run_dir / "history.csv").unlink(missing_ok=True)
    if not is_chief():
        # Other workers of a multi-worker run write their copies (backups, logs) aside.
        run_dir = run_dir / f".worker-{worker_index()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    policy = set_precision(cfg.precision)
    strategy = get_strategy(cfg.distribute)
    command = shlex.join(["python", "-m", f"tasks.{task}", *(sys.argv[1:] if argv is None else argv)])
    run = Run(run_dir, strategy, policy, resolve_jit(cfg.jit_compile), is_chief(), command)
    resolved = {
        "config": dataclasses.asdict(cfg),
        "task": task,
        "resolved": {"dtype_policy": policy, "strategy": strategy_name(strategy),
                     "replicas": strategy.num_replicas_in_sync, "jit_compile": run.jit_compile},
        "command": command,
        "versions": package_versions(),
    }
    if run.chief:
        (run_dir / "config.json").write_text(json.dumps(resolved, indent=2, default=str) + "\n")
    return run


def make_training_optimizer(cfg, steps_per_epoch: int):
    schedule = make_schedule(
        cfg.schedule, cfg.learning_rate, steps_per_epoch=steps_per_epoch, epochs=cfg.epochs,
        step_epochs=cfg.step_epochs, step_factor=cfg.step_factor, warmup_epochs=cfg.warmup_epochs,
        pct_start=cfg.pct_start)
    return make_optimizer(cfg.optimizer, schedule, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          clipnorm=cfg.clipnorm, clipvalue=cfg.clipvalue)


def compile_classifier(model, cfg, run: Run, *, steps_per_epoch: int):
    """Compiles a logits classifier the zoo way: the optimizer and schedule of `cfg`,
    cross-entropy with `cfg.label_smoothing`, accuracy, XLA as `run` resolved it.
    Call it inside `run.strategy.scope()`."""
    from zoo.losses import SparseCategoricalCrossentropyWithSmoothing

    model.compile(optimizer=make_training_optimizer(cfg, steps_per_epoch=steps_per_epoch),
                  loss=SparseCategoricalCrossentropyWithSmoothing(cfg.label_smoothing),
                  metrics=["accuracy"], jit_compile=run.jit_compile)
    return model


def export_metadata(run: Run, metrics: dict, **fields) -> dict:
    """The model card fields every export shares: `fields`, the validation and test metrics, the
    command that made the run and the package versions."""
    return {**fields, "metrics": {k: v for k, v in metrics.items() if k.startswith(("val_", "test_"))},
            "command": run.command, "versions": package_versions()}


def fit(model, train_ds, val_ds, cfg, run: Run, *, monitor="val_accuracy", extra_callbacks=(), metric_callbacks=(),
        initial_epoch=0, checkpoint=True):
    """`model.fit` with the standard callbacks; resumes from `run_dir/backup` if it exists.

    Args:
        monitor: the metric the best checkpoint and early stopping follow.
        extra_callbacks: run after the standard ones (so an epoch is backed up before they see it).
        metric_callbacks: callbacks that add metrics to an epoch's logs (`val_bleu`, say): they run
            first, so that the CSV log, the checkpoint and early stopping see those metrics.
        initial_epoch: epochs the model has already been trained (a tuner trial that continues
            another one); it trains up to `cfg.epochs` in all.
        checkpoint: keep the best weights in `run_dir/best.weights.h5` (on the chief).

    Returns the whole history of this run (earlier, resumed epochs included) as a dict of lists.
    """
    patch_keras_for_multiworker(model, run.strategy)
    done = resumed_epoch(run.run_dir) if cfg.resume else 0
    trim_history(run.run_dir / "history.csv", max(done - initial_epoch, 0))
    if done:
        print(f"Resuming from {backup_dir(run.run_dir)}: {done} of {cfg.epochs} epochs done.")
    callbacks = standard_callbacks(
        run.run_dir, monitor=monitor if val_ds is not None else "loss",
        early_stopping_patience=cfg.early_stopping_patience, tensorboard=cfg.tensorboard and run.chief,
        checkpoint=checkpoint and run.chief)
    verbose = {"auto": 1 if sys.stdout.isatty() else 2}.get(cfg.verbose, None)
    verbose = int(cfg.verbose) if verbose is None else verbose
    model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, initial_epoch=initial_epoch,
              callbacks=[*metric_callbacks, *callbacks, *extra_callbacks], shuffle=False, verbose=verbose)
    return read_history(run.run_dir / "history.csv")


def train(model, train_ds, val_ds, cfg, run: Run, *, task: str, dataset: str):
    """The Train step every task shares.

    Loads `cfg.weights` if given, prints the model's size and how it runs, fits it (not at all
    with `--epochs 0`) and saves `model.weights.h5` in the run directory; with
    `--export-weights float16` it then rounds the weights to float16, as the export stores them.

    Returns:
        The history (a dict of lists) and the start of the metrics dict that evaluation completes:
        task, model, preset, epochs, training time, parameters and dataset.
    """
    from zoo.distribute import strategy_name

    if cfg.weights:
        model.load_weights(cfg.weights)
    print(f"Model: {cfg.model} {cfg.model_kwargs or ''}, {model.count_params():,} parameters, "
          f"{run.policy}, {strategy_name(run.strategy)}, XLA {'on' if run.jit_compile else 'off'}.")
    start = time.time()
    history = fit(model, train_ds, val_ds, cfg, run) if cfg.epochs > 0 else {}
    train_time = time.time() - start
    if run.chief and cfg.epochs > 0:
        model.save_weights(run.run_dir / "model.weights.h5")
    if cfg.export_weights != "float32":
        from zoo.export import reduce_precision

        # Evaluate what the SavedModel will store (model.weights.h5 above keeps full precision).
        reduce_precision(model, cfg.export_weights)
        print(f"Weights {'quantized' if cfg.export_weights == 'int8' else 'rounded'} to {cfg.export_weights} for "
              "evaluation and export.")
    metrics = {"task": task, "model": cfg.model, "preset": cfg.preset, "epochs": len(history.get("loss", [])),
               "train_time_s": round(train_time, 1), "parameters": int(model.count_params()), "dataset": dataset}
    return history, metrics


def read_history(path) -> dict:
    path = Path(path)
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    # CSVLogger writes "NA" for the val_ columns of a run without validation data.
    history = {k: [float(r[k]) for r in rows if r.get(k) not in (None, "", "NA")] for k in (rows[0] if rows else {})}
    return {k: v for k, v in history.items() if v}
