"""KerasTuner searches over a task's search space.

Runs a Hyperband, random or Bayesian search over the settings a task declares in its
`search_space(hp)`, each trial a short run of the task itself (its data, pipelines, model and
`zoo.train.fit`), and ends with a results table, plots and the best configuration, which
`--retrain-best` trains in full with the task's own `main` and exports.

    python -m tuning.search vision.cifar10 --preset fast --validation-split 0.1 --tuner hyperband --max-epochs 9 --subset 0.2
    python -m tuning.search speech.digits --tuner random --max-trials 20 --max-epochs 10
    python -m tuning.search vision.cifar10 --tuner bayesian --fix model=airbench --retrain-best

The flags below are the search's (`--help`); every other flag is the task's own (`--preset`,
`--data-dir`, `--precision`...) and sets the configuration the trials start from, as on the task's
command line; `--epochs` there is the length of the `--retrain-best` run. Pin a searched setting
with `--fix NAME=VALUE` (a KerasTuner `hp.Fixed`). Without `--fix`, trial 0 trains the configuration
as given (the preset and the task flags, nothing drawn), so the best result a search reports is
never worse than the recipe it started from.

Each trial runs in a process of its own (`--in-process` runs them in this one), which reads the
data this process loaded once. Killing a search and running the same command again resumes it:
finished trials are kept and the trial that was running goes on from its last finished epoch.
Several processes (or machines sharing the directory) can search together with KerasTuner's
chief/worker mode: see docs/tuning.md.

A task module is tunable when it defines, besides `TASK`, `Config` and `PRESETS`:

    search_space(hp) -> dict      config overrides (Config fields; `model_kwargs` a dict) drawn from
                                  KerasTuner hyperparameters, the same values its flags would set
    load_data(cfg)                what all trials share, loaded once per search process: numpy arrays,
                                  str, numbers, lists, dicts and zoo/tasks dataclasses (the trials'
                                  processes read it from a file of data, see tuning/handoff.py)
    train_size(cfg, data) -> int  training examples before `cfg.subset` (the ones `--subset` samples)
    build_trial(cfg, run, data)   -> zoo.train.Experiment: the compiled model, the training and validation
                                  pipelines of `cfg` (`cfg.subset` sampled by `zoo.data.subset_indices`,
                                  as a task run does), and any callbacks that add
                                  the objective to the logs (they run before the tuner's)
    OBJECTIVE = ("val_accuracy", "max")    optional: the metric of the Keras logs to optimize

`search_space` must leave alone what `load_data` reads. tasks/vision/cifar10.py is the example.
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib
import json
import os
import pickle
import pkgutil
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import keras_tuner as kt
from keras_tuner.engine.hyperparameters import Fixed

from tuning import handoff, results
from zoo.config import _parse_value, build_parser, check_number, parse_config, to_argv
from zoo.data import subset_count, validate_subset
from zoo.errors import ZooError
from zoo.train import changed_settings, finished_run, fit, setup_run

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ("search_space", "load_data", "train_size", "build_trial")
DEFAULT_OBJECTIVE = ("val_accuracy", "max")
# Marks the trial that trains the configuration the search was given (the preset and the task
# flags) with no searched setting applied: trial 0, and the Hyperband rounds that continue it
# (they copy its values). So the best result a search reports is never worse than that recipe's.
AS_GIVEN = "as_given"
# Trials write neither TensorBoard logs nor SavedModels unless the task flags ask for them.
TRIAL_DEFAULTS = ["--no-tensorboard", "--no-export"]


# --- tasks ------------------------------------------------------------------------------------


def tunable_tasks() -> list:
    """Names of the task modules (`tasks.<name>`) that define the tuning hooks."""
    import tasks

    names = []
    for info in pkgutil.walk_packages(tasks.__path__, "tasks."):
        if not info.ispkg and all(hasattr(importlib.import_module(info.name), h) for h in HOOKS):
            names.append(info.name.removeprefix("tasks."))
    return sorted(names)


def load_task(name: str):
    """The module `tasks.<name>`; a `ZooError` naming the tunable tasks if it is not one."""
    module_name = f"tasks.{name}"
    module = None
    if re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", name):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if not (e.name == module_name or module_name.startswith(f"{e.name}.")):
                raise
    missing = [h for h in HOOKS if not hasattr(module, h)]
    if module is None or missing:
        why = f"it defines no {', '.join(missing)}" if module is not None else "no such task"
        raise ZooError(f"Can not tune {name!r}: {why}. Tunable tasks: {', '.join(tunable_tasks())}.")
    return module


def parse_objective(text, task) -> kt.Objective:
    name, direction = text.partition(":")[::2] if text else getattr(task, "OBJECTIVE", DEFAULT_OBJECTIVE)
    if not direction:
        direction = "min" if "loss" in name else "max" if "acc" in name else ""
    if not name or direction not in ("min", "max"):
        raise ZooError(f"--objective must be NAME:min or NAME:max (a metric of the Keras logs). Received: {text!r}")
    return kt.Objective(name, direction)


def declared_space(search_space) -> kt.HyperParameters:
    """Every hyperparameter `search_space` declares, those of conditional scopes included
    (found as KerasTuner does: by activating each scope that was never active)."""
    hp = kt.HyperParameters()
    once_active, never_active = [], []
    for _ in range(100):
        search_space(hp)
        once_active += [c for c in hp.active_scopes if c not in once_active]
        never_active = [c for c in [*never_active, *hp.inactive_scopes] if c not in once_active]
        if not never_active:
            return hp
        for condition in never_active[0]:
            hp.values[condition.name] = condition.values[0]
        hp.ensure_active_values()
    raise ZooError("The search space's conditional scopes could not all be activated.")


def fixed_hyperparameters(task, fixes) -> kt.HyperParameters:
    """`--fix NAME=VALUE` flags as `hp.Fixed` values, each checked against the task's space."""
    declared = {p.name: p for p in declared_space(task.search_space).space}
    fixed = kt.HyperParameters()
    for text in fixes:
        name, sep, raw = text.partition("=")
        if not sep:
            raise ZooError(f"--fix expects NAME=VALUE. Received: {text!r}")
        if name not in declared:
            raise ZooError(f"--fix {name}: {task.TASK} has no such hyperparameter. It has: {', '.join(sorted(declared))}.")
        value, p = _parse_value(raw), declared[name]
        config = p.get_config()
        if "values" in config:
            ok, space = value in config["values"], f"one of {config['values']}"
        elif "min_value" in config:
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = number and config["min_value"] <= value <= config["max_value"]
            ok = ok and (isinstance(value, int) or "Int" not in type(p).__name__)
            space = f"a {'whole ' if 'Int' in type(p).__name__ else ''}number in [{config['min_value']}, {config['max_value']}]"
        else:
            ok, space = isinstance(value, bool), "true or false"
        if not ok:
            raise ZooError(f"--fix {name}={raw} is outside the search space: {name} must be {space}.")
        # Under the conditions it is declared with, so that it takes the declared one's place.
        fixed.merge([Fixed(name, value, conditions=p.conditions)])
        fixed.values[name] = value
    return fixed


def default_hyperparameters(task, fixed) -> kt.HyperParameters:
    """The search space's defaults, with the fixed values: the first trial of a random search."""
    hp = fixed.copy()
    hp.values.update(fixed.values)
    task.search_space(hp)
    return hp


# --- trials -----------------------------------------------------------------------------------


class TrialRecord(keras.callbacks.Callback):
    """Keeps `tuning.json` in the trial directory: who ran the trial, its wall time and the logs of
    every epoch, across interruptions (an interrupted trial's record goes on when it resumes)."""

    def __init__(self, path, *, start, continues=None):
        super().__init__()
        self.path, self.start = Path(path), start
        self.record = json.loads(self.path.read_text()) if self.path.exists() else {"wall_time_s": 0.0, "history": []}
        self.spent = self.record["wall_time_s"]
        self.record.update(tuner_id=os.environ.get("KERASTUNER_TUNER_ID", "tuner0"), continues=continues)
        self.first_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            # Epochs from here on are (re)run: forget what an interrupted run logged for them.
            self.first_epoch = epoch
            self.record["history"] = [h for h in self.record["history"] if h["epoch"] < epoch]

    def on_epoch_end(self, epoch, logs=None):
        self.record["history"].append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
        self.record["wall_time_s"] = round(self.spent + time.time() - self.start, 1)
        self.path.write_text(json.dumps(self.record, indent=1) + "\n")


def recorded_history(path) -> keras.callbacks.History:
    """A trial's epochs from its `tuning.json`, as the History KerasTuner scores."""
    epochs = json.loads(Path(path).read_text())["history"] if Path(path).exists() else []
    history = keras.callbacks.History()
    keys = [k for k in (epochs[-1] if epochs else {}) if k != "epoch"]
    history.history = {k: [h.get(k, float("nan")) for h in epochs] for k in keys}
    return history


class TaskHyperModel(kt.HyperModel):
    """A task as KerasTuner sees it. `build` turns a trial's hyperparameters into the task's
    config (as the flags they stand for, on top of the search's task flags), sets up the trial's
    run in its directory and has the task build the model and pipelines; `fit` trains them with
    `zoo.train.fit`, so trials back up every epoch and resume like task runs do."""

    def __init__(self, task, task_argv, *, max_epochs, subset, objective, data=None):
        super().__init__(name=task.TASK)
        self.task, self.task_argv, self.data = task, list(task_argv), data
        self.max_epochs, self.subset, self.objective = max_epochs, subset, objective
        self.trial_dir = None  # set by train_trial for each trial
        self._trial = None

    def overrides(self, hp) -> dict:
        """The config overrides of `hp`: none for the trial of the configuration as given."""
        return {} if hp.values.get(AS_GIVEN) else self.task.search_space(hp)

    def overrides_argv(self, hp) -> list:
        return to_argv(self.overrides(hp))

    def trial_argv(self, hp, trial_dir) -> list:
        """The task command line of a trial: `python -m tasks.<task> ARGV` is the same run."""
        argv = [*TRIAL_DEFAULTS, *self.task_argv, *self.overrides_argv(hp),
                "--epochs", str(hp.values.get("tuner/epochs", self.max_epochs)), "--output-dir", str(trial_dir)]
        return argv + (["--subset", str(self.subset)] if self.subset else [])

    def config(self, argv):
        return parse_config(self.task.Config, self.task.PRESETS, argv, prog=f"python -m tasks.{self.task.TASK}")

    def build(self, hp):
        if self.trial_dir is None:
            # KerasTuner builds once at start-up to find the search space: declaring it is enough.
            self.task.search_space(hp)
            return None
        start = time.time()
        argv = self.trial_argv(hp, self.trial_dir)
        cfg = self.config(argv)
        run = setup_run(cfg, self.task.TASK, argv)
        experiment = self.task.build_trial(cfg, run, self.data)
        model = experiment.model
        with run.strategy.scope():
            # Built now, so that Hyperband's hand-over of a trial's weights to the next round
            # (`load_weights`) brings the optimizer's state too and the schedule goes on.
            model.optimizer.build(model.trainable_variables)
        self._trial = (cfg, run, experiment, start)
        return model

    def fit(self, hp, model, *args, callbacks=(), initial_epoch=0, **kwargs):
        cfg, run, experiment, start = self._trial
        self._trial = None  # the trial's model and pipelines go with it
        record = TrialRecord(run.run_dir / "tuning.json", start=start, continues=hp.values.get("tuner/trial_id"))
        fit(model, experiment.train, experiment.validation, cfg, run, monitor=self.objective.name,
            metric_callbacks=experiment.callbacks, extra_callbacks=[record, *callbacks], initial_epoch=initial_epoch,
            checkpoint=False)
        return recorded_history(record.path)


def train_trial(hypermodel, hp, *, trial_dir, checkpoint, previous=None, initial_epoch=0, callbacks=()):
    """One trial, in whichever process runs it: the task's model and pipelines for `hp`, the
    weights and optimizer state of the trial it continues (`previous`, Hyperband), training, and
    the best epoch's weights kept in `checkpoint` (where a later round finds them)."""
    keras.backend.clear_session()
    gc.collect()
    hypermodel.trial_dir = Path(trial_dir)
    try:
        model = hypermodel.build(hp)
        if previous:
            model.load_weights(previous)
        best = keras.callbacks.ModelCheckpoint(checkpoint, monitor=hypermodel.objective.name, save_best_only=True,
                                               mode=hypermodel.objective.direction, save_weights_only=True)
        return hypermodel.fit(hp, model, callbacks=[*callbacks, best], initial_epoch=initial_epoch)
    finally:
        hypermodel.trial_dir = None


def run_trial_process(hypermodel, hp, data_file, job: dict) -> keras.callbacks.History:
    """Runs `train_trial` in a new Python process and waits for it. TensorFlow keeps part of
    every model it has traced for the life of the process (10-30 MB a trial here, whatever
    `clear_session` does), so a long search runs each trial in a process of its own.

    The process gets its orders through a pipe, never through the search directory: the trial
    as JSON, the data file's sha256 (the data itself is `tuning.handoff`'s pickle-free file),
    and the caller's own callbacks, pickled, only when there are any."""
    callbacks = job.pop("callbacks")
    data_path, data_sha256 = data_file
    spec = dict(task=hypermodel.task.TASK, task_argv=hypermodel.task_argv, max_epochs=hypermodel.max_epochs,
                subset=hypermodel.subset, objective=[hypermodel.objective.name, hypermodel.objective.direction],
                hp=hp.get_config(), data_file=str(data_path), data_sha256=data_sha256, job=job,
                callbacks=bool(callbacks))
    orders = json.dumps(spec).encode() + b"\n" + (pickle.dumps(callbacks) if callbacks else b"")
    code = "import sys; sys.path.insert(0, sys.argv[1]); from tuning.search import _trial_process; _trial_process(*sys.argv[2:])"
    process = subprocess.Popen([sys.executable, "-c", code, str(ROOT), str(os.getpid())], stdin=subprocess.PIPE)
    try:
        try:
            process.stdin.write(orders)
            process.stdin.close()
        except BrokenPipeError:
            pass  # it ended before reading them: its exit code below says so
        exitcode = process.wait()
    finally:
        if process.poll() is None:  # Ctrl-C reached this process first
            process.kill()
            process.wait()
    if exitcode:
        raise RuntimeError(f"The process of trial {Path(job['trial_dir']).name} ended with exit code {exitcode}.")
    return recorded_history(Path(job["trial_dir"]) / "tuning.json")


def _trial_process(parent_pid):
    try:  # Linux: die with the search, so that a killed search leaves no trial running
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != int(parent_pid):
            os._exit(1)
    except (OSError, AttributeError):
        pass
    spec = json.loads(sys.stdin.buffer.readline())
    # The search's own callback objects, from its memory through the pipe: no file can stand in for them.
    callbacks = pickle.loads(sys.stdin.buffer.read()) if spec["callbacks"] else []
    data = handoff.load(spec["data_file"], spec["data_sha256"])
    hypermodel = TaskHyperModel(load_task(spec["task"]), spec["task_argv"], max_epochs=spec["max_epochs"],
                                subset=spec["subset"], objective=kt.Objective(*spec["objective"]), data=data)
    try:
        train_trial(hypermodel, kt.HyperParameters.from_config(spec["hp"]), **spec["job"], callbacks=callbacks)
    except KeyboardInterrupt:
        sys.exit(130)


class TimeLimitReached(Exception):
    pass


class _TaskTrials:
    """What the three tuners add here: trials run by `train_trial`, each in a process of its own
    unless `in_process`; a time limit; a pause when the oracle has no trial to hand out yet; a
    report after every trial."""

    in_process = False
    data_file = None  # (path, sha256) of the data, written once for the trials' processes
    deadline = None  # time.monotonic() after which no trial starts
    report = None  # called with the tuner after each trial
    as_given_first = False  # trial 0 trains the configuration as given (no --fix: see AS_GIVEN)
    _asked = False

    def run_trial(self, trial, *args, callbacks=(), **kwargs):
        hp = trial.hyperparameters
        previous = hp.values.get("tuner/trial_id")
        if self.as_given_first and int(trial.trial_id) == 0 and previous is None:
            hp.values[AS_GIVEN] = True  # saved with the trial; Hyperband's continuations copy it
        job = dict(trial_dir=self.get_trial_dir(trial.trial_id), checkpoint=self._checkpoint(trial.trial_id),
                   previous=self._checkpoint(previous) if previous else None,
                   initial_epoch=hp.values.get("tuner/initial_epoch", 0), callbacks=copy.deepcopy(list(callbacks)))
        if self.in_process:
            return train_trial(self.hypermodel, hp, **job)
        return run_trial_process(self.hypermodel, hp, self.data_file, job)

    def _checkpoint(self, trial_id):
        return os.path.join(self.get_trial_dir(trial_id), "checkpoint.weights.h5")

    def pre_create_trial(self):
        if self._asked:
            time.sleep(1)  # the oracle answered IDLE (other workers' trials must end first)
        self._asked = True
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TimeLimitReached

    def on_trial_begin(self, trial):
        self._asked = False
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        if self.report:
            self.report(self)


class RandomSearch(_TaskTrials, kt.RandomSearch):
    pass


class Hyperband(_TaskTrials, kt.Hyperband):
    pass


class BayesianOptimization(_TaskTrials, kt.BayesianOptimization):
    pass


TUNERS = {"hyperband": Hyperband, "random": RandomSearch, "bayesian": BayesianOptimization}


# --- the search -------------------------------------------------------------------------------


def parse_args(argv):
    tasks = "\n".join(f"  {name}: presets {', '.join(load_task(name).PRESETS)}" for name in tunable_tasks())
    parser = argparse.ArgumentParser(
        prog="python -m tuning.search", description=__doc__.split("\n")[0], allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Any other flag is the task's (python -m tasks.TASK --help) and sets the configuration\n"
               f"trials start from.\n\ntunable tasks:\n{tasks}")
    parser.add_argument("task", help="the task to tune: vision.cifar10, speech.commands, speech.digits...")
    parser.add_argument("--tuner", default="hyperband", help=f"{', '.join(TUNERS)} (default: hyperband)")
    parser.add_argument("--max-epochs", type=int, default=20, help="epochs of a trial; Hyperband's longest (default: 20)")
    parser.add_argument("--max-trials", type=int, default=30, help="trials in all; Hyperband may stop sooner (default: 30)")
    parser.add_argument("--subset", type=float, help="train trials on a count N > 1 or a fraction 0 < F <= 1 of the "
                                                     "training examples, stratified by class, drawn with the task's --seed")
    parser.add_argument("--objective", help="NAME[:min|max], a metric of the Keras logs (default: the task's, val_accuracy)")
    parser.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE", help="pin a hyperparameter, repeatable")
    parser.add_argument("--directory", help="where the search lives (default: runs/tuning/<task>-<tuner>)")
    parser.add_argument("--overwrite", action="store_true", help="start over instead of resuming")
    parser.add_argument("--time-limit", type=float, metavar="MINUTES", help="start no trial after this many minutes")
    parser.add_argument("--in-process", action="store_true",
                        help="run trials in this process: quicker to start, but TensorFlow keeps 10-30 MB of each")
    parser.add_argument("--retrain-best", action="store_true",
                        help="train the best configuration on all the training data (the task's epochs), evaluate and export it")
    args, task_argv = parser.parse_known_args(argv)
    if args.tuner not in TUNERS:
        raise ZooError(f"Unknown tuner {args.tuner!r}. Known: {', '.join(TUNERS)}.")
    for name in ("max_epochs", "max_trials", "time_limit"):
        if getattr(args, name) is not None:
            check_number(f"--{name.replace('_', '-')}", getattr(args, name), gt=0)
    validate_subset(args.subset)
    return args, task_argv


def check_task_flags(task, task_argv, searched):
    """Task flags may not set what the search space sets (or where trials write)."""
    given = set(vars(build_parser(task.Config).parse_args(task_argv)))
    clash = sorted(given & (set(searched) - {"model_kwargs"} | {"output_dir", "subset"}))
    if clash:
        flags = ", ".join("--" + c.replace("_", "-") for c in clash)
        raise ZooError(f"{flags}: set by the search (pin a searched setting with --fix NAME=VALUE; "
                       f"--directory and --subset are the search's own flags).")


def check_search_files(directory: Path):
    """A `ZooError` naming the first JSON file of the search in `directory` that does not parse
    (a search killed while a file was written, a full disk), and how to go on: KerasTuner itself
    fails on it with a bare `Expecting value: line 1 column 501`."""
    files = [directory / "search.json", directory / "oracle.json", *sorted(directory.glob("tuner*.json")),
             *sorted(directory.glob("trial_*/trial.json")), *sorted(directory.glob("trial_*/tuning.json"))]
    for path in files:
        try:
            json.loads(path.read_bytes())
        except FileNotFoundError:
            continue
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError both are
            if path.name == "tuning.json":
                how = (f"delete it (trial {path.parent.name.removeprefix('trial_')} then shows no epochs in the "
                       "results table) or pass --overwrite to start the search over")
            else:
                how = "pass --overwrite to start the search over (KerasTuner resumes only with every trial's file)"
            raise ZooError(f"{path}: corrupt, not JSON ({e}): {how}.") from None


def check_resumable(directory: Path, settings: dict):
    check_search_files(directory)
    path = directory / "search.json"
    if not path.exists():
        return
    before = json.loads(path.read_text())["settings"]
    changed = [f"{k}: {before.get(k)!r}, now {v!r}" for k, v in settings.items() if before.get(k) != v]
    if changed:
        raise ZooError(f"{directory} holds a search with other settings ({'; '.join(changed)}). Run the same "
                       f"command to resume it, or pass --overwrite or another --directory.")


def main(argv=None, *, callbacks=()) -> dict:
    """Runs (or resumes) a search and writes its results; returns them.

    Args:
        argv: the command line (default `sys.argv[1:]`).
        callbacks: extra Keras callbacks for every trial (pickled to the trials' processes
            through a pipe unless `--in-process`).
    """
    from keras_tuner.src.distribute.utils import has_chief_oracle, is_chief_oracle

    args, task_argv = parse_args(argv)
    task = load_task(args.task)
    objective = parse_objective(args.objective, task)
    fixed = fixed_hyperparameters(task, args.fix)
    chief, worker = is_chief_oracle(), has_chief_oracle() and not is_chief_oracle()
    directory = Path(args.directory or Path("runs") / "tuning" / f"{task.TASK}-{args.tuner}")
    overwrite = args.overwrite and not worker  # a worker must not delete the chief's directory
    settings = {"task": task.TASK, "tuner": args.tuner, "task_argv": task_argv, "max_epochs": args.max_epochs,
                "subset": args.subset, "objective": [objective.name, objective.direction], "fix": sorted(args.fix)}
    if not overwrite:
        check_resumable(directory, settings)

    # The configuration trials start from, checked with the search space's defaults.
    base_cfg = parse_config(task.Config, task.PRESETS, [*TRIAL_DEFAULTS, *task_argv], prog=f"python -m tuning.search {task.TASK}")
    if getattr(base_cfg, "init_from", None):
        raise ZooError(f"--init-from {base_cfg.init_from}: a search draws architectures from {task.TASK}'s search space, "
                       "and a fine-tune keeps the entry's. Search from scratch, or fine-tune with the task's command.")
    # Trials get --subset as given and sample it as a task run does; `subset == 1` is all of them.
    hypermodel = TaskHyperModel(task, task_argv, max_epochs=args.max_epochs, subset=args.subset if args.subset != 1 else None,
                                objective=objective)
    default_hp = default_hyperparameters(task, fixed)
    check_task_flags(task, task_argv, task.search_space(default_hp))
    hypermodel.config([*task_argv, *hypermodel.overrides_argv(default_hp)])
    if objective.name.startswith("val_") and not base_cfg.validation_split:
        raise ZooError(f"The objective {objective.name} needs validation data, but --validation-split is 0 "
                       f"(the preset trains on every example): give --validation-split, e.g. 0.1.")

    # Data: once for all the trials this process runs (the chief runs none).
    if not chief:
        hypermodel.data = task.load_data(base_cfg)
        n = task.train_size(base_cfg, hypermodel.data)
        print(f"Data: loaded once for all trials; each trains on {subset_count(args.subset, n)} of {n} training examples.")

    tuner_kwargs = dict(hypermodel=hypermodel, objective=objective, hyperparameters=fixed, overwrite=overwrite,
                        # KerasTuner takes seed 0 for "no seed".
                        seed=base_cfg.seed + 1, directory=str(directory.parent), project_name=directory.name,
                        max_consecutive_failed_trials=5)
    if args.tuner == "hyperband":
        tuner = Hyperband(max_epochs=args.max_epochs, factor=3, **tuner_kwargs)
        tuner.oracle.max_trials = args.max_trials
    else:
        tuner = TUNERS[args.tuner](max_trials=args.max_trials, **tuner_kwargs)
    # Without --fix, trial 0 is the preset and flags as given; with it, the search space's defaults
    # and the fixed values (the preset would not honour the fixes).
    tuner.as_given_first = not args.fix
    command = shlex.join(["python", "-m", "tuning.search", *(sys.argv[1:] if argv is None else argv)])
    if not worker:
        directory.mkdir(parents=True, exist_ok=True)  # KerasTuner's --overwrite removed it
        (directory / "search.json").write_text(json.dumps({"settings": settings, "command": command}, indent=2) + "\n")
    tuner.search_space_summary()

    def report(tuner):
        results.write_table(results.collect(tuner.oracle, directory), directory, objective)

    if not (chief or worker):
        tuner.report = report
    if args.time_limit:
        tuner.deadline = time.monotonic() + 60 * args.time_limit
    tuner.in_process = args.in_process
    if not (chief or args.in_process):
        data_path = directory / f".data-{tuner.tuner_id}.npz"
        tuner.data_file = data_path, handoff.save(hypermodel.data, data_path)
    tuner.save()  # so that a search killed in its first trial resumes it
    try:
        tuner.search(callbacks=list(callbacks), verbose=1)
    except TimeLimitReached:
        print(f"Time limit of {args.time_limit:g} minutes reached: no further trial started. "
              f"Run the same command (with a larger --time-limit) to go on.")
    finally:
        if tuner.data_file:
            tuner.data_file[0].unlink(missing_ok=True)

    if worker:
        mine = results.trials_run_by(directory, tuner.tuner_id)
        print(f"Worker {tuner.tuner_id} is done: it ran trial(s) {', '.join(mine) or 'none'}.")
        return {"directory": str(directory), "tuner_id": tuner.tuner_id, "trials": mine}

    # Results: the table, best.json and plots; the chief holds every worker's results.
    rows = results.collect(tuner.oracle, directory)
    print(results.write_table(rows, directory, objective))
    best = results.best_trial(tuner.oracle)
    summary = {"directory": str(directory), "trials": rows, "best": None}
    if best is not None:
        overrides = hypermodel.overrides(best.hyperparameters)
        summary["best"] = results.write_best(
            directory, best, objective, task=task.TASK, overrides=overrides, search_command=command,
            command=shlex.join(["python", "-m", f"tasks.{task.TASK}", *task_argv, *to_argv(overrides)]))
    results.write_plots(rows, directory, objective)
    print(f"Results in {directory}: results.csv, results.md, best.json, scores.png, hyperparameters.png.")

    if args.retrain_best and best is not None:
        keras.backend.clear_session()
        argv = [*task_argv, *hypermodel.overrides_argv(best.hyperparameters), "--output-dir", str(directory / "best")]
        retrained = finished_run(directory / "best")
        if retrained and changed_settings(retrained, hypermodel.config(argv)):
            argv.append("--overwrite")  # a resumed search found a better configuration: the old one goes aside
        metrics = task.main(argv)
        summary["best"] = results.write_best(directory, best, objective, retrain=metrics, **{
            k: summary["best"][k] for k in ("task", "overrides", "search_command", "command")})
    return summary


if __name__ == "__main__":
    from zoo.cli import run as _run

    _run(main)
