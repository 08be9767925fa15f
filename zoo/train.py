"""Run setup, compile and fit shared by every task."""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import keras

from zoo.callbacks import Lookahead, backup_dir, resumed_epoch, standard_callbacks, trim_history
from zoo.cli import dumps_strict
from zoo.cpu import onednn_note, tensorflow_onednn
from zoo.distribute import get_strategy, is_chief, patch_keras_for_multiworker, strategy_name, worker_index
from zoo.errors import ZooError
from zoo.logs import absorb_onednn_type_note
from zoo.optim import make_optimizer, make_schedule
from zoo.precision import set_precision

# Written last, when a task has written all its outputs: a run directory holding it is finished.
FINISHED = "finished.json"
# Settings that may differ when a finished run's command is run again: where the run lives and
# how it starts and reports, not what it trains.
RERUN_SETTINGS = ("output_dir", "resume", "overwrite", "verbose")
# What `--no-resume` moves aside: an interrupted attempt's training state.
TRAINING_STATE = ("backup", "history.csv", "best.weights.h5")
# The run directories this process holds, and the open `.lock` files it holds them by: a process
# may set up the same run again (an in-process tuner retrying a trial, a test) without locking
# itself out.
_LOCKS: dict = {}


@dataclass
class Run:
    """What `setup_run` resolved: where outputs go and how training runs."""

    run_dir: Path
    strategy: object
    policy: str
    jit_compile: bool
    chief: bool
    command: str | None = None
    config: dict | None = None  # the resolved settings, as in config.json
    finished: dict | None = None  # the metrics of the finished run found there; nothing else is set up then


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


def lock_run_dir(run_dir) -> None:
    """Takes `run_dir` (created if need be) for this process: an exclusive `flock` on
    `run_dir/.lock`, which holds the pid. The kernel releases it when the process ends, however
    it ends, so a lock left by a dead process never blocks; a live holder is a `ZooError` that
    names the directory and the holder's pid. Taking a directory this process holds is a no-op.

    Args:
        run_dir: the directory this process writes.
    """
    run_dir = Path(run_dir)
    key = str(run_dir.resolve())
    if key in _LOCKS:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = open(run_dir / ".lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise ZooError(f"{run_dir} is in use by another run (pid {holder}): wait for it to end, or pass another "
                       "--output-dir.") from None
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    _LOCKS[key] = lock


def release_run_dir(run_dir) -> None:
    """Releases `run_dir` if this process holds it (`lock_run_dir`)."""
    lock = _LOCKS.pop(str(Path(run_dir).resolve()), None)
    if lock is not None:
        lock.close()


def finished_run(run_dir) -> dict | None:
    """What a finished run left in `run_dir/finished.json` (`finish_run`): its settings
    (`config`), `metrics`, `command` and `finished` time; None if the run is not finished.

    Args:
        run_dir: the run directory (the chief's, in a multi-worker run).
    """
    path = Path(run_dir) / FINISHED
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError as e:
        record, why = None, str(e)
    else:
        why = "no config and metrics"
    if not (isinstance(record, dict) and isinstance(record.get("config"), dict) and "metrics" in record):
        raise ZooError(f"{path}: not a finished-run record ({why}); --overwrite moves the run aside and starts over.")
    return record


def changed_settings(record: dict, cfg) -> list:
    """The settings of `cfg` that differ from those of the finished run `record`, as
    "name: before, now after" (settings unknown to either side, and `RERUN_SETTINGS`, aside)."""
    before, now = record["config"], _as_json(dataclasses.asdict(cfg))
    return [f"{k}: {before[k]!r}, now {now[k]!r}" for k in sorted(set(before) & set(now))
            if k not in RERUN_SETTINGS and before[k] != now[k]]


def _as_json(value):
    return json.loads(json.dumps(value, default=str))


def move_aside(run_dir, paths, *, weights=None, flag="--overwrite") -> Path | None:
    """Moves those of `paths` that exist into a new `run_dir/previous-<time>/`, so that starting
    over loses nothing. Returns that directory (None if nothing was there).

    Args:
        run_dir: the run directory.
        paths: files and directories in it.
        weights: `--weights`; a `ZooError` if it is among `paths` (the run would not find it).
        flag: the flag that moves them, for that error.
    """
    run_dir, paths = Path(run_dir), [Path(p) for p in paths if os.path.lexists(p)]
    if weights and any(Path(weights).resolve().is_relative_to(p.resolve()) for p in paths):
        raise ZooError(f"--weights {weights} is among the outputs {flag} moves aside: pass another --output-dir "
                       "to start from it.")
    if not paths:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest, n = run_dir / f"previous-{stamp}", 1
    while dest.exists():
        dest, n = run_dir / f"previous-{stamp}-{n}", n + 1
    dest.mkdir()
    for p in paths:
        p.rename(dest / p.name)
    print(f"Moved {', '.join(sorted(p.name for p in paths))} to {dest}.")
    return dest


def _domain(model):
    """The registry domain of `model` (what `--precision auto` asks on a CPU), None if unknown."""
    from zoo.registry import list_models, model_domain

    return model_domain(model) if model in list_models() else None


def setup_run(cfg, task: str, argv=None) -> Run:
    """Takes the run directory, seeds everything, sets precision and the strategy, and writes
    the resolved config to `run_dir/config.json`.

    A run directory is one process's at a time (`lock_run_dir`; the workers of a multi-worker
    run other than the chief each write, and hold, `run_dir/.worker-N`). One that holds a
    finished run (`finish_run`) is left untouched: with the same settings the returned run has
    `finished` set to that run's metrics and nothing else set up (the task returns them), with
    others it is a `ZooError`. `cfg.overwrite` starts over whatever the directory holds, moving
    its outputs to `run_dir/previous-<time>/`; `--no-resume` starts an interrupted run over,
    moving its training state (`TRAINING_STATE`) there.

    Args:
        cfg: the resolved config dataclass.
        task: the task's name; `python -m tasks.<task>` runs it.
        argv: the command-line arguments the config came from (default `sys.argv[1:]`), recorded
            as the command that reproduces the run.
    """
    import tensorflow as tf

    if cfg.epochs == 0 and not cfg.weights and not getattr(cfg, "init_from", None):
        raise ZooError("--epochs 0 trains nothing: it evaluates and exports --weights FILE.weights.h5 (or the entry "
                       "of --init-from), and neither was given.")
    run_dir = Path(cfg.output_dir or Path("runs") / f"{task}-{cfg.preset}")
    chief = is_chief()
    # Other workers of a multi-worker run write their copies (backups, logs) aside.
    own_dir = run_dir if chief else run_dir / f".worker-{worker_index()}"
    command = shlex.join(["python", "-m", f"tasks.{task}", *(sys.argv[1:] if argv is None else argv)])
    lock_run_dir(own_dir)
    try:
        record = None if cfg.overwrite else finished_run(run_dir)
        if record is not None:
            changed = changed_settings(record, cfg)
            if changed:
                raise ZooError(f"{run_dir} holds a finished run with other settings ({'; '.join(changed)}): pass "
                               f"another --output-dir, or --overwrite to move its outputs aside and train anew.")
            outputs = [n for n in ("metrics.json", "saved_model", "model.weights.h5", "history.csv")
                       if (run_dir / n).exists()]
            print(f"{run_dir} holds this command's finished run ({record.get('finished', 'finished')}): its outputs "
                  f"({', '.join(outputs) or 'none'}) are there, untouched. --overwrite trains it anew, moving them to "
                  f"{run_dir}/previous-<time>/.")
            release_run_dir(own_dir)
            return Run(own_dir, None, None, False, chief, command, finished=record["metrics"])
        if cfg.overwrite:
            move_aside(own_dir, [p for p in own_dir.iterdir()
                                 if p.name != ".lock" and not p.name.startswith((".worker-", "previous-"))],
                       weights=cfg.weights)
        elif not cfg.resume:
            move_aside(own_dir, [own_dir / name for name in TRAINING_STATE], weights=cfg.weights, flag="--no-resume")
    except BaseException:
        release_run_dir(own_dir)
        raise
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    policy = set_precision(cfg.precision, _domain(getattr(cfg, "model", None)))
    strategy = get_strategy(cfg.distribute)
    absorb_onednn_type_note()  # TensorFlow's oneDNN news, at ERROR level: not amid the run's output
    run = Run(own_dir, strategy, policy, resolve_jit(cfg.jit_compile), chief, command, _as_json(dataclasses.asdict(cfg)))
    resolved = {
        "config": dataclasses.asdict(cfg),
        "task": task,
        "resolved": {"dtype_policy": policy, "strategy": strategy_name(strategy),
                     "replicas": strategy.num_replicas_in_sync, "jit_compile": run.jit_compile,
                     "onednn": tensorflow_onednn()},
        "command": command,
        "versions": package_versions(),
    }
    if run.chief:
        (own_dir / "config.json").write_text(json.dumps(resolved, indent=2, default=str) + "\n")
    return run


def finish_run(run: Run, metrics: dict) -> dict:
    """Marks the run finished, after all its outputs: writes `finished.json` (its settings,
    metrics, command and time; on the chief), which a later start of the same command finds
    (`setup_run`), and releases the run directory. Returns `metrics`.

    Args:
        run: what `setup_run` returned.
        metrics: what the task's `main` returns (and wrote to `metrics.json`).
    """
    if run.chief:
        record = {"finished": time.strftime("%Y-%m-%d %H:%M:%S"), "command": run.command, "config": run.config,
                  "metrics": metrics}
        tmp = run.run_dir / f".{FINISHED}.tmp"
        tmp.write_text(dumps_strict(record, indent=2, default=str) + "\n")
        tmp.replace(run.run_dir / FINISHED)  # whole or not at all
    release_run_dir(run.run_dir)
    return metrics


def make_training_optimizer(cfg, steps_per_epoch: int):
    schedule = make_schedule(
        cfg.schedule, cfg.learning_rate, steps_per_epoch=steps_per_epoch, epochs=cfg.epochs,
        step_epochs=cfg.step_epochs, step_factor=cfg.step_factor, warmup_epochs=cfg.warmup_epochs,
        pct_start=cfg.pct_start)
    return make_optimizer(cfg.optimizer, schedule, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          clipnorm=cfg.clipnorm, clipvalue=cfg.clipvalue,
                          offset_lr_scale=cfg.offset_lr_scale)


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


def fit_verbosity(cfg) -> int:
    """Keras `fit`'s verbose of `cfg.verbose`: auto is a progress bar on a terminal, a line an epoch else."""
    return (1 if sys.stdout.isatty() else 2) if cfg.verbose == "auto" else int(cfg.verbose)


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
    # Lookahead first: the epoch's metrics, checkpoints and backups are of its averaged weights.
    lookahead = [Lookahead(every=cfg.lookahead)] if cfg.lookahead else []
    model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, initial_epoch=initial_epoch,
              callbacks=[*lookahead, *metric_callbacks, *callbacks, *extra_callbacks], shuffle=False,
              verbose=fit_verbosity(cfg))
    return read_history(run.run_dir / "history.csv")


def train(model, train_ds, val_ds, cfg, run: Run, *, task: str, dataset: str):
    """The Train step every task shares.

    Loads `cfg.weights` if given, prints the model's size and how it runs, fits it (not at all
    with `--epochs 0`) and saves `model.weights.h5` in the run directory; with
    `--export-weights float16` it then rounds the weights to float16, as the export stores them.

    Returns:
        The history (a dict of lists) and the start of the metrics dict that evaluation completes:
        task, model, preset, epochs, training time, parameters and dataset. The training time of a
        resumed run adds, to this process's, the epoch times (`history.csv`'s `epoch_time_s`) of the
        epochs earlier processes trained.
    """
    from zoo.distribute import strategy_name

    if cfg.weights:
        model.load_weights(cfg.weights)
    print(f"Model: {cfg.model} {cfg.model_kwargs or ''}, {model.count_params():,} parameters, "
          f"{run.policy}, {strategy_name(run.strategy)}, XLA {'on' if run.jit_compile else 'off'}.")
    if note := onednn_note():
        print(note)
    start = time.time()
    done = resumed_epoch(run.run_dir) if cfg.resume and cfg.epochs > 0 else 0
    history = fit(model, train_ds, val_ds, cfg, run) if cfg.epochs > 0 else {}
    # A resumed run's first `done` epochs were trained by earlier processes: their times count too.
    train_time = time.time() - start + sum(history.get("epoch_time_s", [])[:done])
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
