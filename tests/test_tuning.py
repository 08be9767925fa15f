"""KerasTuner searches (tuning/search.py): each task's search space, its defaults and hp.Fixed
overrides; searches end to end on tiny fake data; resuming after an interruption between and
within trials; a chief and two workers; bad input; the pickle-free data file of the trials' processes."""

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np
import pytest

from tests.test_cifar10_task import PNG_MAGIC, REPO, subprocess_env
from tests.test_distribute import free_ports
from tests.test_speech_tasks import write_fake_fsdd
from tests.test_translation import toy_pairs
from tuning import handoff, search
from tuning.results import importance
from zoo.config import parse_config, to_argv
from zoo.errors import ZooError

TASKS = ("vision.cifar10", "vision.classify", "speech.commands", "speech.digits", "speech.classify", "text.sentiment",
         "text.classify", "text.translation")
TASK_FLAGS = ["--precision", "float32", "--jit-compile", "false", "--verbose", "0"]
CIFAR = ["vision.cifar10", "--fix", "model=seed_cnn", "--fix", "batch_size=128", *TASK_FLAGS]
IN_PROCESS = [*CIFAR, "--in-process"]  # quicker; the slow tests run trials in their own processes


def run_search(argv, callbacks=()):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = search.main([str(a) for a in argv], callbacks=callbacks)
    keras.mixed_precision.set_dtype_policy("float32")
    return result, out.getvalue()


def read_rows(directory):
    with open(directory / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def trial_config(task, hp):
    return parse_config(task.Config, task.PRESETS, to_argv(task.search_space(hp)))


# --- search spaces ---------------------------------------------------------------------------


def test_every_task_with_a_search_space_is_tunable():
    assert set(TASKS) <= set(search.tunable_tasks())


@pytest.mark.parametrize("name", TASKS)
def test_search_space_defaults_are_a_valid_config(name):
    task = search.load_task(name)
    hp = kt.HyperParameters()
    overrides = task.search_space(hp)
    cfg = trial_config(task, hp)  # the flags they stand for parse back into the same values
    for key, value in overrides.items():
        if key == "model_kwargs":
            assert value.items() <= cfg.model_kwargs.items()
        else:
            assert getattr(cfg, key) == value, key
    # Conditional scopes included, every hyperparameter is declared with a default that is in range.
    space = search.declared_space(task.search_space).space
    assert len(space) >= 8
    for p in space:
        config = p.get_config()
        if "values" in config:
            assert config["default"] in config["values"], p.name
        elif "min_value" in config:
            assert config["min_value"] <= config["default"] <= config["max_value"], p.name


def test_cifar10_defaults_are_the_fast_recipe():
    from tasks.vision import cifar10

    overrides = cifar10.search_space(kt.HyperParameters())
    fast = parse_config(cifar10.Config, cifar10.PRESETS, ["--preset", "fast"])
    # The builder's default widths and dropout, and the preset's own builder arguments.
    assert overrides["model_kwargs"] == {"widths": (64, 256, 256), "dropout": 0.0, **fast.model_kwargs}
    for key, value in overrides.items():
        if key != "model_kwargs":
            assert value == getattr(fast, key), key


@pytest.mark.parametrize("name", ["text.sentiment", "text.translation"])
def test_text_defaults_are_the_default_preset(name):
    task = search.load_task(name)
    overrides = task.search_space(kt.HyperParameters())
    default = parse_config(task.Config, task.PRESETS, [])
    assert overrides == {key: getattr(default, key) for key in overrides}
    assert set(overrides["model_kwargs"]) == set(default.model_kwargs)  # every builder argument the preset sets


@pytest.mark.parametrize("name, fixes, expected", [
    ("vision.cifar10", {"learning_rate": 0.1, "width": 32, "cutout": 16},
     {"learning_rate": 0.1, "cutout": 16, "offset_lr_scale": 64.0,
      "model_kwargs": {"widths": (32, 128, 128), "dropout": 0.0, "bn_scale": False, "identity_init": True}}),
    ("vision.cifar10", {"model": "resnet", "optimizer": "adamw", "adam_learning_rate": 0.001},
     {"model": "resnet", "whiten": False, "learning_rate": 0.001, "offset_lr_scale": 1.0,  # an SGD option
      "model_kwargs": {"depth": 20, "width": 16, "dropout": 0.0}}),
    ("speech.commands", {"model": "crnn", "rnn_units": 64, "noise_prob": 0.0},
     {"model": "crnn", "noise_prob": 0.0, "model_kwargs": {"rnn_units": (64, 64), "dropout": 0.2, "time_masks": 2}}),
    ("speech.digits", {"model": "ds_cnn", "filters": 96, "batch_size": 32},
     {"model": "ds_cnn", "batch_size": 32, "model_kwargs": {"filters": 96, "blocks": 4, "dropout": 0.2, "time_masks": 2}}),
    ("text.sentiment", {"model": "lstm", "units": 32, "layers": 1, "pooling": "attention"},
     {"model": "lstm", "model_kwargs": {"embedding_dim": 128, "units": (32,), "pooling": "attention", "dropout": 0.4,
                                        "embedding_dropout": 0.3}}),
    ("text.translation", {"model": "luong_lstm", "units": 128, "label_smoothing": 0.0, "batch_size": 32},
     {"model": "luong_lstm", "label_smoothing": 0.0, "batch_size": 32,
      "model_kwargs": {"embedding_dim": 256, "encoder_units": 256, "units": 128, "dropout": 0.3}}),
])
def test_fixed_values_override_the_search_space(name, fixes, expected):
    task = search.load_task(name)
    fixed = search.fixed_hyperparameters(task, [f"{k}={v}" for k, v in fixes.items()])
    overrides = task.search_space(search.default_hyperparameters(task, fixed))
    assert {k: overrides[k] for k in expected} == expected
    trial_config(task, search.default_hyperparameters(task, fixed))  # still a valid config
    # The plain KerasTuner idiom, for a hyperparameter outside any conditional scope.
    hp = kt.HyperParameters()
    hp.Fixed("learning_rate", 0.005)
    assert task.search_space(hp)["learning_rate"] == 0.005


def test_to_argv_round_trips_through_the_parser():
    from tasks.speech import commands

    overrides = {"model": "crnn", "model_kwargs": {"rnn_units": (64, 64), "rnn": "gru", "fmax": None},
                 "learning_rate": 0.00123, "noise_prob": 0.0, "batch_size": 32, "tensorboard": False, "optimizer": "adamw"}
    argv = to_argv(overrides)
    assert "--no-tensorboard" in argv and "fmax=None" not in " ".join(argv)
    cfg = parse_config(commands.Config, commands.PRESETS, argv)
    assert cfg.model_kwargs == {"rnn_units": (64, 64), "rnn": "gru"}  # another model: the preset's kwargs reset
    assert (cfg.learning_rate, cfg.noise_prob, cfg.batch_size, cfg.tensorboard) == (0.00123, 0.0, 32, False)


@pytest.mark.parametrize("subset", ["0", "-5", "nan", "1.5"])
def test_subset_that_is_neither_a_count_nor_a_fraction_is_refused_before_any_data(subset):
    with pytest.raises(ZooError, match=rf"^--subset must be a count N > 1 or a fraction 0 < F <= 1 .*{subset}"):
        search.parse_args(["vision.cifar10", "--subset", subset])


def test_subset_search_on_a_class_sorted_image_folder_trains_on_every_class(tmp_path, make_image_folder, monkeypatch):
    import zoo.pipeline

    seen = []
    real = zoo.pipeline.image_dataset
    monkeypatch.setattr(zoo.pipeline, "image_dataset", lambda x, y, training, **kw: (
        seen.append(np.asarray(y)) if training else None) or real(x, y, training=training, **kw))
    fake = make_image_folder(tmp_path / "data", train_per_class=10)  # sorted by class: cat, dog, frog
    _, stdout = run_search([*IN_PROCESS, "--tuner", "random", "--max-trials", 1, "--max-epochs", 1, "--subset", 0.5,
                            "--validation-split", 0.4, "--data-dir", fake.path, "--directory", tmp_path / "search"])
    assert "each trains on 9 of 18 training examples" in stdout
    assert [np.bincount(y, minlength=3).tolist() for y in seen] == [[3, 3, 3]]


def test_importance_ranks_what_explains_the_score():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        lr, opt = float(10 ** rng.uniform(-3, 0)), ["sgd", "adam"][i % 2]
        score = 0.5 + 0.1 * np.log10(lr) + 0.001 * rng.normal()
        rows.append({"status": "COMPLETED", "score": score, "epochs": 3,
                     "hyperparameters": {"lr": lr, "optimizer": opt, "noise": float(rng.normal())}})
    ranked = importance(rows)
    assert list(ranked)[0] == "lr" and ranked["lr"] > 0.99 and ranked["optimizer"] < 0.3


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    pytest.param(["vision.nope"], r"Can not tune 'vision.nope': no such task\. Tunable tasks: .*vision\.cifar10",
                 id="unknown-task"),
    pytest.param(["zoo.train"], r"Can not tune 'zoo.train'", id="not-a-task"),
    pytest.param(["vision.cifar10", "--tuner", "grid"], r"Unknown tuner 'grid'\. Known: hyperband, random, bayesian",
                 id="unknown-tuner"),
    pytest.param(["vision.cifar10", "--fix", "dropout=0.9"],
                 r"--fix dropout=0.9 is outside the search space: dropout must be a number in \[0.0, 0.3\]",
                 id="out-of-range"),
    pytest.param(["vision.cifar10", "--fix", "width=40"], r"--fix width=40 is outside .* one of \[32, 48, 64, 96\]",
                 id="not-a-choice"),
    pytest.param(["speech.commands", "--fix", "blocks=3.5"], r"blocks must be a whole number in \[3, 5\]", id="not-an-int"),
    pytest.param(["vision.cifar10", "--fix", "depht=20"], r"--fix depht: vision.cifar10 has no such hyperparameter",
                 id="unknown-hyperparameter"),
    pytest.param(["vision.cifar10", "--objective", "val_f1"], r"--objective must be NAME:min or NAME:max", id="objective"),
    pytest.param(["vision.cifar10", "--learning-rate", "0.1"], r"--learning-rate: set by the search", id="searched-flag"),
    pytest.param(["vision.cifar10", "--max-epochs", "0"], r"--max-epochs must be > 0\. Received: --max-epochs 0", id="max-epochs"),
    pytest.param(["vision.cifar10", "--preset", "fast"],
                 r"val_accuracy needs validation data, but --validation-split is 0 .* give --validation-split",
                 id="no-validation-data"),
])
def test_bad_input_is_a_zoo_error(argv, message, tmp_path):
    with pytest.raises(ZooError, match=message):
        search.main([*argv, "--directory", str(tmp_path / "search")])
    assert not (tmp_path / "search").exists()


@pytest.mark.slow
def test_bad_input_exits_2_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tuning.search", "vision.cifar10", "--tuner", "grid"], cwd=REPO,
                            env=subprocess_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "error: Unknown tuner 'grid'. Known: hyperband, random, bayesian."


# --- searches ----------------------------------------------------------------------------------


def test_random_search_end_to_end(tmp_path, cifar_bin, monkeypatch):
    from tasks.vision import cifar10

    loads = []
    real = cifar10.load_data
    monkeypatch.setattr(cifar10, "load_data", lambda cfg: loads.append(1) or real(cfg))
    d = tmp_path / "search"
    argv = [*IN_PROCESS, "--tuner", "random", "--max-trials", 2, "--max-epochs", 1, "--subset", 0.5,
            "--data-dir", cifar_bin.path, "--directory", d]
    result, stdout = run_search(argv)
    assert loads == [1]  # once for the whole search
    assert "each trains on 45 of 90 training examples" in stdout

    rows = read_rows(d)
    assert [(r["trial_id"], r["status"], r["epochs"], r["tuner_id"]) for r in rows] == \
        [("0", "COMPLETED", "1", "tuner0"), ("1", "COMPLETED", "1", "tuner0")]
    assert all(0 <= float(r["score"]) <= 1 and float(r["wall_time_s"]) > 0 for r in rows)
    assert {"model", "optimizer", "weight_decay", "batch_size"} <= set(rows[0])
    table = (d / "results.md").read_text()
    assert "| trial | val_accuracy | epochs | wall time | worker | status | hyperparameters |" in table
    assert table in stdout
    for png in ("scores.png", "hyperparameters.png"):
        assert (d / png).read_bytes()[:8] == PNG_MAGIC, png

    best = json.loads((d / "best.json").read_text())
    assert best == json.loads(json.dumps(result["best"]))
    assert best["trial_id"] in ("0", "1") and best["hyperparameters"]["model"] == "seed_cnn"
    command = best["command"].split()
    assert command[:3] == ["python", "-m", "tasks.vision.cifar10"] and "--model" in command
    cfg = parse_config(cifar10.Config, cifar10.PRESETS, command[3:])
    assert cfg.learning_rate == best["overrides"]["learning_rate"] and cfg.subset is None  # the full retrain

    # Each trial is a task run in its own directory: its command, history and record.
    for trial_id in ("0", "1"):
        t = d / f"trial_{trial_id}"
        config = json.loads((t / "config.json").read_text())
        assert config["command"].startswith("python -m tasks.vision.cifar10 --no-tensorboard --no-export")
        assert config["config"]["subset"] == 0.5 and config["config"]["epochs"] == 1  # of the 90
        assert (t / "history.csv").read_text().startswith("epoch,")
        record = json.loads((t / "tuning.json").read_text())
        assert [h["epoch"] for h in record["history"]] == [0] and "val_accuracy" in record["history"][0]
        assert not (t / "backup").exists() and not (t / "best.weights.h5").exists()

    # The same command again: the search is finished, nothing reruns.
    before = {p: p.stat().st_mtime_ns for p in d.glob("trial_*/history.csv")}
    _, stdout = run_search(argv)
    assert "Reloading Tuner" in stdout and "Running Trial" not in stdout
    assert {p: p.stat().st_mtime_ns for p in d.glob("trial_*/history.csv")} == before
    assert len(read_rows(d)) == 2

    # Another search in the same directory is refused, unless it overwrites it.
    with pytest.raises(ZooError, match=r"holds a search with other settings \(max_epochs: 1, now 2\)"):
        run_search([*argv, "--max-epochs", 2])
    run_search([*argv, "--max-trials", 1, "--overwrite"])
    assert [r["trial_id"] for r in read_rows(d)] == ["0"] and not (d / "trial_1").exists()


@pytest.mark.slow
def test_retrain_best_trains_evaluates_and_exports(tmp_path, cifar_bin):
    d = tmp_path / "search"
    result, stdout = run_search([*IN_PROCESS, "--tuner", "random", "--max-trials", 1, "--max-epochs", 1, "--epochs", 2,
                                 "--retrain-best", "--data-dir", cifar_bin.path, "--directory", d])
    best = json.loads((d / "best.json").read_text())
    assert best["retrain"]["epochs"] == 2 and best["retrain"]["test_examples"] == 20  # the task's --epochs, all the data
    assert best["retrain"]["test_accuracy"] == result["best"]["retrain"]["test_accuracy"]
    assert best["retrain_dir"] == str(d / "best")
    assert (d / "best" / "saved_model" / "saved_model.pb").exists()
    config = json.loads((d / "best" / "config.json").read_text())
    assert config["config"]["subset"] is None and config["command"] == f"{best['command']} --output-dir {d / 'best'}"


class Interrupt(keras.callbacks.Callback):
    """Ctrl-C at the start of the `trial`-th trial (counting from 1) or at the end of its epoch
    `epoch`. The count lives on the class: KerasTuner deep-copies callbacks for every trial."""

    trials = 0

    def __init__(self, trial, epoch=None):
        super().__init__()
        self.trial, self.epoch = trial, epoch

    def on_train_begin(self, logs=None):
        Interrupt.trials += 1
        if Interrupt.trials == self.trial and self.epoch is None:
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch, logs=None):
        if Interrupt.trials == self.trial and epoch == self.epoch:
            raise KeyboardInterrupt


def interrupted_search(d, data, *, max_trials, max_epochs, interrupt):
    """Runs a random search until `interrupt` presses Ctrl-C; returns the command that resumes it."""
    Interrupt.trials = 0
    argv = [*IN_PROCESS, "--tuner", "random", "--max-trials", max_trials, "--max-epochs", max_epochs,
            "--data-dir", data.path, "--directory", d]
    with pytest.raises(KeyboardInterrupt):
        run_search(argv, callbacks=[interrupt])
    return argv


def test_resume_after_an_interrupt_between_trials(tmp_path, cifar_bin):
    d = tmp_path / "search"
    argv = interrupted_search(d, cifar_bin, max_trials=2, max_epochs=1, interrupt=Interrupt(trial=2))
    first = (d / "trial_0" / "tuning.json").read_text()
    assert json.loads((d / "trial_1" / "trial.json").read_text())["status"] == "RUNNING"

    _, stdout = run_search(argv)
    assert stdout.count("Running Trial") == 1  # trial 1 only: trial 0 is not rerun
    assert (d / "trial_0" / "tuning.json").read_text() == first
    assert [(r["trial_id"], r["status"]) for r in read_rows(d)] == [("0", "COMPLETED"), ("1", "COMPLETED")]


def test_resume_after_an_interrupt_within_a_trial(tmp_path, cifar_bin):
    d = tmp_path / "search"
    argv = interrupted_search(d, cifar_bin, max_trials=1, max_epochs=3, interrupt=Interrupt(trial=1, epoch=1))
    record = json.loads((d / "trial_0" / "tuning.json").read_text())
    assert [h["epoch"] for h in record["history"]] == [0, 1]

    _, stdout = run_search(argv)
    assert f"Resuming from {d / 'trial_0' / 'backup'}: 2 of 3 epochs done." in stdout
    resumed = json.loads((d / "trial_0" / "tuning.json").read_text())
    assert [h["epoch"] for h in resumed["history"]] == [0, 1, 2]
    assert resumed["history"][:2] == record["history"]
    assert resumed["wall_time_s"] > record["wall_time_s"]
    assert [r["epoch"] for r in csv.DictReader(open(d / "trial_0" / "history.csv"))] == ["0", "1", "2"]
    rows = read_rows(d)
    assert [(r["status"], r["epochs"]) for r in rows] == [("COMPLETED", "3")]


@pytest.mark.slow
def test_a_killed_search_resumes(tmp_path, make_cifar_bin, capfd):
    """SIGKILL to the search in the middle of a trial (no chance to clean up; its trial's process
    dies with it), then the same command."""
    import psutil

    fake = make_cifar_bin(tmp_path / "data", records_per_file=200)  # slow enough epochs to kill in between
    d = tmp_path / "search"
    argv = [*CIFAR, "--tuner", "random", "--max-trials", 2, "--max-epochs", 3, "--data-dir", fake.path, "--directory", d]
    proc = subprocess.Popen([sys.executable, "-m", "tuning.search", *map(str, argv)], cwd=REPO, env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    history = d / "trial_1" / "history.csv"
    try:
        deadline = time.monotonic() + 300
        while not (history.exists() and len(history.read_text().splitlines()) >= 2):
            assert proc.poll() is None, f"the search ended too soon:\n{proc.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "no epoch of the second trial finished in time"
            time.sleep(0.02)
        trial_processes = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert trial_processes and not psutil.wait_procs(trial_processes, timeout=30)[1]  # none left running
    done = json.loads((d / "trial_1" / "backup" / "training_metadata.json").read_text())["epoch"]
    assert 1 <= done < 3
    first = (d / "trial_0" / "tuning.json").read_text()

    _, stdout = run_search(argv)
    stdout += capfd.readouterr().out  # the trial's process writes to the file descriptor
    assert stdout.count("Running Trial") == 1
    assert f"Resuming from {d / 'trial_1' / 'backup'}: {done} of 3 epochs done." in stdout
    assert (d / "trial_0" / "tuning.json").read_text() == first
    assert [(r["status"], r["epochs"]) for r in read_rows(d)] == [("COMPLETED", "3"), ("COMPLETED", "3")]
    assert not list(d.glob(".data-*")) and not list(d.glob("trial_*/process.pickle"))  # nothing left behind


@pytest.mark.slow
def test_without_fixes_trial_0_is_the_configuration_as_given(tmp_path, cifar_bin):
    d = tmp_path / "search"
    argv = ["vision.cifar10", "--preset", "seed", "--momentum", "0.8", *TASK_FLAGS, "--in-process",
            "--tuner", "random", "--max-trials", 2, "--max-epochs", 1, "--data-dir", cifar_bin.path, "--directory", d]
    result, _ = run_search(argv)
    config = json.loads((d / "trial_0" / "config.json").read_text())
    # The preset and flags, nothing drawn: seed_cnn (the search space's default is airbench), its learning rate.
    assert (config["config"]["model"], config["config"]["learning_rate"], config["config"]["momentum"]) == \
        ("seed_cnn", 0.001, 0.8)
    assert "--model" not in config["command"].split()
    assert json.loads((d / "trial_1" / "config.json").read_text())["command"].count("--model ") == 1
    assert "| 0 |" in (d / "results.md").read_text().split("configuration as given")[0].splitlines()[-1]
    assert result["trials"][0]["as_given"] and not result["trials"][1]["as_given"]
    if result["best"]["trial_id"] == "0":
        assert result["best"]["overrides"] == {} and result["best"]["as_given"]


def test_hyperband_continues_the_best_trials(tmp_path, cifar_bin):
    d = tmp_path / "search"
    # max-epochs 3: a bracket of three 1-epoch trials whose best goes on to 3 epochs, then one of 3-epoch trials.
    run_search([*CIFAR, "--tuner", "hyperband", "--max-trials", 5, "--max-epochs", 3, "--data-dir", cifar_bin.path,
                "--directory", d])
    rows = read_rows(d)
    assert [(r["epochs"], r["continues"]) for r in rows[:3]] == [("1", ""), ("1", ""), ("1", "")]
    assert rows[3]["epochs"] == "3" and rows[3]["continues"] in ("0", "1", "2")
    # The continuation trains epochs 1 and 2 on the weights and optimizer state of the one it continues.
    record = json.loads((d / "trial_3" / "tuning.json").read_text())
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    assert json.loads((d / "trial_3" / "config.json").read_text())["config"]["epochs"] == 3


@pytest.mark.slow
def test_speech_search_end_to_end(tmp_path):
    data = write_fake_fsdd(tmp_path / "data")
    d = tmp_path / "search"
    result, _ = run_search(["speech.digits", "--tuner", "bayesian", "--max-trials", 1, "--max-epochs", 1,
                            "--fix", "model=ds_cnn", "--fix", "filters=64", "--fix", "blocks=3", "--clip-seconds", 0.25,
                            *TASK_FLAGS, "--data-dir", data, "--directory", d])
    assert [r["status"] for r in result["trials"]] == ["COMPLETED"]
    assert result["best"]["command"].startswith("python -m tasks.speech.digits --clip-seconds 0.25 --precision float32")
    config = json.loads((d / "trial_0" / "config.json").read_text())["config"]
    assert config["model"] == "ds_cnn" and config["model_kwargs"]["filters"] == 64 and config["clip_seconds"] == 0.25


@pytest.mark.slow
def test_a_chief_and_two_workers_share_the_trials(tmp_path, make_cifar_bin):
    fake = make_cifar_bin(tmp_path / "data", records_per_file=60)
    d = tmp_path / "search"
    port = free_ports(1)[0]
    argv = [sys.executable, "-m", "tuning.search", *map(str, [*CIFAR, "--tuner", "random", "--max-trials", 6,
            "--max-epochs", 2, "--data-dir", fake.path, "--directory", d])]

    def start(tuner_id):
        env = {**subprocess_env(), "KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": "127.0.0.1",
               "KERASTUNER_ORACLE_PORT": str(port)}
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    chief = start("chief")
    procs = [chief]
    try:
        deadline = time.monotonic() + 180
        while not (d / "chief.json").exists():  # the chief saves its state, then serves the oracle
            assert chief.poll() is None, chief.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the chief did not start in time"
            time.sleep(0.1)
        procs += [start("tuner0"), start("tuner1")]
        outputs = [p.communicate(timeout=400)[0] for p in procs[1:] + [chief]]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(o[-2000:] for o in outputs)
    ran = {}
    for worker, output in zip(("tuner0", "tuner1"), outputs):
        found = re.search(rf"Worker {worker} is done: it ran trial\(s\) (.*)\.", output)
        assert found, output[-2000:]
        ran[worker] = found.group(1).split(", ")
    assert all(ran.values()), ran  # both took trials
    assert sorted(ran["tuner0"] + ran["tuner1"]) == [str(i) for i in range(6)]
    rows = read_rows(d)  # written by the chief, which holds every result
    assert [r["status"] for r in rows] == ["COMPLETED"] * 6
    assert {r["trial_id"]: r["tuner_id"] for r in rows} == {t: w for w, ts in ran.items() for t in ts}
    assert json.loads((d / "best.json").read_text())["trial_id"] in ran["tuner0"] + ran["tuner1"]
    assert "Results in" in outputs[-1]


# Text tasks: toy corpora, tiny models (the sizes a search can not reach are task flags).
SENTIMENT = ["text.sentiment", "--fix", "embedding_dim=64", "--fix", "units=32", "--fix", "layers=1", "--vocab-size", 64,
             "--bigrams", 0, "--max-length", 16, "--bucket-width", 4, *TASK_FLAGS, "--in-process"]
TRANSLATION = ["text.translation", "--fix", "embedding_dim=64", "--fix", "encoder_units=64", "--fix", "units=64",
               "--source-vocab-size", 40, "--target-vocab-size", 40, "--max-output-length", 12, "--bleu-sentences", 20,
               "--validation-split", 0.15, "--test-split", 0.05, *TASK_FLAGS, "--in-process"]


def test_sentiment_search_end_to_end(tmp_path, make_text_folder, monkeypatch):
    import zoo.recipes.text

    corpus = make_text_folder(tmp_path / "data")
    vocabularies = []
    real = zoo.recipes.text.vocabularies
    monkeypatch.setattr(zoo.recipes.text, "vocabularies", lambda cfg, x: vocabularies.append(len(x)) or real(cfg, x))
    d = tmp_path / "search"
    result, stdout = run_search([*SENTIMENT, "--tuner", "random", "--max-trials", 2, "--max-epochs", 1,
                                 "--subset", 0.5, "--data-dir", corpus.parent, "--directory", d])
    # Learned once for the search, on the training reviews only: 90% of 96, not the 32 test ones.
    assert vocabularies == [86]
    assert "each trains on 43 of 86 training examples" in stdout
    assert [(r["trial_id"], r["status"], r["epochs"]) for r in read_rows(d)] == [("0", "COMPLETED", "1"),
                                                                                   ("1", "COMPLETED", "1")]
    assert all(0 <= r["score"] <= 1 for r in result["trials"])
    assert "| trial | val_accuracy |" in (d / "results.md").read_text()
    config = json.loads((d / "trial_0" / "config.json").read_text())["config"]
    assert config["model_kwargs"]["units"] == [32] and config["vocab_size"] == 64 and config["subset"] == 0.5
    assert result["best"]["command"].startswith("python -m tasks.text.sentiment --vocab-size 64")


def write_toy_tsv(path, n=200):
    src, tgt = toy_pairs(n, seed=4)
    path.write_text("".join(f"{s}\t{t}\n" for s, t in zip(src, tgt)), encoding="utf-8")
    return path


def test_translation_search_maximizes_validation_bleu(tmp_path):
    tsv = write_toy_tsv(tmp_path / "toy.tsv")
    d = tmp_path / "search"
    result, _ = run_search([*TRANSLATION, "--tuner", "random", "--max-trials", 2, "--max-epochs", 1, "--tsv", tsv,
                            "--directory", d])
    best = json.loads((d / "best.json").read_text())
    assert best["objective"] == {"name": "val_bleu", "direction": "max"}
    assert "objective val_bleu (max)" in (d / "results.md").read_text()
    rows = read_rows(d)
    assert [(r["trial_id"], r["status"]) for r in rows] == [("0", "COMPLETED"), ("1", "COMPLETED")]
    for row in rows:
        # The score of each trial is the BLEU its callback wrote into the logs after the epoch.
        history = json.loads((d / f"trial_{row['trial_id']}" / "tuning.json").read_text())["history"]
        assert float(row["score"]) == history[-1]["val_bleu"] and 0 <= history[-1]["val_bleu"] <= 100
        assert "val_accuracy" in history[-1]
        # It runs before the CSV log, so the trial's history.csv has it too.
        header = (d / f"trial_{row['trial_id']}" / "history.csv").read_text().splitlines()[0].split(",")
        assert "val_bleu" in header


# --- the data file of the trials' processes -------------------------------------------------


def same(a, b) -> bool:
    """Equal values of the same types, all the way down (arrays: dtype, shape and elements)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        return all(same(x, y) for x, y in zip(a.ravel(), b.ravel())) if a.dtype == object else np.array_equal(a, b)
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


TASK_DATA_FLAGS = {  # toy data and the smallest settings that load it
    "vision.cifar10": lambda root: ["--data-dir", root / "cifar"],
    "speech.digits": lambda root: ["--data-dir", root / "speech", "--clip-seconds", 0.25],
    "text.sentiment": lambda root: ["--data-dir", root / "text" / "aclImdb", "--vocab-size", 64, "--bigrams", 0],
    "text.translation": lambda root: ["--tsv", root / "toy.tsv", "--source-vocab-size", 40, "--target-vocab-size", 40,
                                      "--validation-split", 0.15, "--test-split", 0.05],
}


@pytest.fixture(scope="module")
def toy_data_root(tmp_path_factory, make_cifar_bin, make_text_folder):
    root = tmp_path_factory.mktemp("toy_data")
    make_cifar_bin(root / "cifar")
    write_fake_fsdd(root / "speech")
    make_text_folder(root / "text")
    write_toy_tsv(root / "toy.tsv")
    return root


@pytest.mark.parametrize("name", sorted(TASK_DATA_FLAGS))
def test_every_tasks_data_goes_to_the_trials_without_pickle(name, toy_data_root, tmp_path):
    task = search.load_task(name)
    cfg = parse_config(task.Config, task.PRESETS, [str(a) for a in TASK_DATA_FLAGS[name](toy_data_root)])
    data = task.load_data(cfg)
    digest = handoff.save(data, tmp_path / "data.npz")
    assert digest == hashlib.sha256((tmp_path / "data.npz").read_bytes()).hexdigest()
    with np.load(tmp_path / "data.npz", allow_pickle=False) as npz:  # arrays only: no object can hide in it
        assert all(npz[f].dtype != object for f in npz.files)
    assert same(handoff.load(tmp_path / "data.npz", digest), data)


class Marker:
    """Unpickling one of these runs code: it creates `path`."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_tampered_or_pickled_data_file_is_refused(tmp_path):
    from zoo.data.images import ImageData

    data = ImageData(np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1]), np.zeros((1, 4, 4, 3), np.uint8),
                     np.array([1]), ("cat", "dog"), "toy")
    path = tmp_path / ".data-tuner0.npz"
    digest = handoff.save(data, path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(ZooError, match=r"\.data-tuner0\.npz: not the data file this search wrote"):
        handoff.load(path, digest)
    # Even a file whose hash matched (one the search did not write) is read as data, never run.
    marker = tmp_path / "ran"
    np.savez(path, structure=np.frombuffer(b'{"array": 0}', np.uint8), **{"0": np.array([Marker(marker)], object)})
    with pytest.raises(ZooError, match=r"not a data file of a search \(Object arrays cannot be loaded"):
        handoff.load(path, hashlib.sha256(path.read_bytes()).hexdigest())
    np.savez(path, structure=np.frombuffer(b'{"dataclass": "os:system", "fields": {}}', np.uint8))
    with pytest.raises(ZooError, match=r"outside the zoo and tasks packages"):
        handoff.load(path, hashlib.sha256(path.read_bytes()).hexdigest())
    assert not marker.exists()
    with pytest.raises(TypeError, match=r"data\.class_names\[0\]: a .*Marker, which trial processes can not"):
        handoff.save(dataclasses.replace(data, class_names=(Marker(marker), "dog")), path)


class RecordFiles(keras.callbacks.Callback):
    """Writes the names of the search directory's files into the trial's directory (from the
    trial's own process: it proves the callback got there)."""

    def __init__(self, directory):
        super().__init__()
        self.directory = str(directory)

    def on_train_begin(self, logs=None):
        files = sorted(p.name for p in Path(self.directory).rglob("*") if p.is_file())
        (Path(self.directory) / "seen.json").write_text(json.dumps({"pid": os.getpid(), "files": files}))


@pytest.mark.slow
def test_trial_processes_get_data_and_callbacks_without_a_pickle_file(tmp_path, cifar_bin):
    from tests.test_tuning import RecordFiles as Importable  # by a name the trial's process can import

    d = tmp_path / "search"
    run_search([*CIFAR, "--tuner", "random", "--max-trials", 1, "--max-epochs", 1, "--data-dir", cifar_bin.path,
                "--directory", d], callbacks=[Importable(d)])
    seen = json.loads((d / "seen.json").read_text())
    assert seen["pid"] != os.getpid() and ".data-tuner0.npz" in seen["files"]
    assert not [f for f in seen["files"] if f.endswith(".pickle")]
    assert [r["status"] for r in read_rows(d)] == ["COMPLETED"] and not list(d.glob(".data-*"))
