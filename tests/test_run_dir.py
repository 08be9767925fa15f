"""Run directories lose nothing: a finished run is recognized and left alone (`--overwrite` moves
it aside), `--epochs 0` needs `--weights`, one process at a time holds a directory (a dead
holder's lock does not count), and a resumed run's training time counts every process's epochs."""

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from tasks.vision import cifar10
from tests.test_cifar10_task import FAST, REPO, subprocess_env
from zoo.callbacks import resumed_epoch
from zoo.config import parse_config
from zoo.errors import ZooError
from zoo.train import finish_run, setup_run

# Holds `.lock` in the directory argv[1] names the way a run does, until killed.
HOLD_LOCK = r"""
import fcntl, os, sys, time
f = open(os.path.join(sys.argv[1], ".lock"), "a+")
fcntl.flock(f, fcntl.LOCK_EX)
f.truncate(0); f.write(f"{os.getpid()}\n"); f.flush()
print("locked", flush=True)
time.sleep(600)
"""
# Tries `.lock` in argv[1] without waiting: prints "free", or "held by <what the file says>".
TRY_LOCK = r"""
import fcntl, os, sys
f = open(os.path.join(sys.argv[1], ".lock"), "a+")
try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("free")
except BlockingIOError:
    f.seek(0); print("held by", f.read().strip())
"""


def args_for(run_dir, data, *extra, epochs=1):
    return [*FAST, "--epochs", str(epochs), "--data-dir", str(data.path), "--output-dir", str(run_dir), *extra]


def snapshot(run_dir):
    """Every file under `run_dir` but the lock: its modification time and sha256."""
    return {str(p.relative_to(run_dir)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(Path(run_dir).rglob("*")) if p.is_file() and p.name != ".lock"}


def contents(snap):
    return {name: digest for name, (_, digest) in snap.items()}


@pytest.fixture(scope="module")
def finished_template(tmp_path_factory, make_cifar_bin):
    """One finished 1-epoch toy CIFAR-10 run (seconds); tests work on copies of it."""
    root = tmp_path_factory.mktemp("run_dir")
    data = make_cifar_bin(root / "data")
    run_dir = root / "run"
    metrics = cifar10.main(args_for(run_dir, data))
    keras.mixed_precision.set_dtype_policy("float32")
    return run_dir, data, metrics


@pytest.fixture
def finished(finished_template, tmp_path):
    """A copy of the finished run (its settings hold whatever its directory is called)."""
    template, data, metrics = finished_template
    run_dir = tmp_path / "run"
    shutil.copytree(template, run_dir)
    return run_dir, data, metrics


@pytest.mark.parametrize("extra", [[], ["--no-resume"], ["--verbose", "2"]], ids=["same", "no-resume", "verbose"])
def test_a_finished_run_started_again_is_left_as_it_is(finished, extra, capsys):
    run_dir, data, metrics = finished
    before = snapshot(run_dir)
    assert {"metrics.json", "history.csv", "model.weights.h5", "saved_model/saved_model.pb"} <= set(before)

    assert cifar10.main(args_for(run_dir, data, *extra)) == metrics
    assert snapshot(run_dir) == before  # nothing rewritten, added or removed
    assert f"{run_dir} holds this command's finished run" in capsys.readouterr().out


@pytest.mark.parametrize("epochs, extra, message", [
    pytest.param(2, [], r"holds a finished run with other settings \(epochs: 1, now 2\): .*--overwrite",
                 id="other-settings"),
    pytest.param(0, [], r"^--epochs 0 trains nothing: it evaluates and exports --weights", id="epochs-0"),
    pytest.param(0, ["--overwrite", "--weights", "{run}/model.weights.h5"],
                 r"--weights .*model\.weights\.h5 is among the outputs --overwrite moves aside", id="weights-inside"),
])
def test_what_would_replace_a_finished_run_is_refused(finished, epochs, extra, message):
    run_dir, data, _ = finished
    before = snapshot(run_dir)
    with pytest.raises(ZooError, match=message):
        cifar10.main(args_for(run_dir, data, *(a.format(run=run_dir) for a in extra), epochs=epochs))
    assert snapshot(run_dir) == before and not list(run_dir.glob("previous-*"))


def test_overwrite_moves_the_old_outputs_aside(finished):
    run_dir, data, _ = finished
    before = snapshot(run_dir)
    cfg = parse_config(cifar10.Config, cifar10.PRESETS, args_for(run_dir, data, "--overwrite", "--learning-rate", "0.02"))
    run = setup_run(cfg, cifar10.TASK, [])
    assert run.finished is None  # a run to train

    (previous,) = run_dir.glob("previous-*")
    assert contents(snapshot(previous)) == contents(before)  # every old output, byte for byte
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "config.json", previous.name]
    assert json.loads((run_dir / "config.json").read_text())["config"]["learning_rate"] == 0.02
    finish_run(run, {})


def test_no_resume_moves_an_interrupted_attempt_aside(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "backup").mkdir(parents=True)
    (run_dir / "backup" / "training_metadata.json").write_text('{"epoch": 1}')
    (run_dir / "history.csv").write_text("epoch,loss\n0,1.0\n")
    cfg = parse_config(cifar10.Config, cifar10.PRESETS, ["--no-resume", "--output-dir", str(run_dir)])
    finish_run(setup_run(cfg, cifar10.TASK, []), {})

    (previous,) = run_dir.glob("previous-*")
    assert sorted(p.name for p in previous.iterdir()) == ["backup", "history.csv"]
    assert (previous / "history.csv").read_text() == "epoch,loss\n0,1.0\n"
    assert not (run_dir / "backup").exists() and not (run_dir / "history.csv").exists()


@pytest.fixture
def holder(tmp_path):
    """Another process holding `tmp_path/run`'s lock."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield run_dir, proc
    finally:
        proc.kill()
        proc.wait()


def test_a_run_directory_in_use_is_refused_with_the_holders_pid(holder, cifar_bin):
    run_dir, proc = holder
    with pytest.raises(ZooError, match=rf"^{run_dir} is in use by another run \(pid {proc.pid}\)"):
        cifar10.main(args_for(run_dir, cifar_bin))
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing written


def test_a_dead_holders_lock_does_not_block(holder, cifar_bin):
    run_dir, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cfg = parse_config(cifar10.Config, cifar10.PRESETS, args_for(run_dir, cifar_bin))
    finish_run(setup_run(cfg, cifar10.TASK, []), {})
    assert (run_dir / "config.json").exists() and (run_dir / "finished.json").exists()


def try_lock(run_dir):
    return subprocess.run([sys.executable, "-c", TRY_LOCK, str(run_dir)], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_run_holds_its_directory_until_it_finishes(tmp_path):
    run_dir = tmp_path / "run"
    cfg = parse_config(cifar10.Config, cifar10.PRESETS, ["--output-dir", str(run_dir)])
    run = setup_run(cfg, cifar10.TASK, [])
    assert try_lock(run_dir) == f"held by {os.getpid()}"
    assert setup_run(cfg, cifar10.TASK, []).run_dir == run_dir  # set up again by its own process: no lock-out
    finish_run(run, {})
    assert try_lock(run_dir) == "free"


def test_workers_hold_their_own_directories(holder, monkeypatch):
    import tensorflow as tf

    run_dir, proc = holder  # the chief's directory, held
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    monkeypatch.setattr("zoo.train.get_strategy", lambda name: tf.distribute.get_strategy())
    cfg = parse_config(cifar10.Config, cifar10.PRESETS, ["--output-dir", str(run_dir)])
    run = setup_run(cfg, cifar10.TASK, [])
    assert run.run_dir == run_dir / ".worker-1" and not run.chief
    assert try_lock(run_dir / ".worker-1") == f"held by {os.getpid()}"
    finish_run(run, {})


class Interrupted(Exception):
    pass


class InterruptAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise Interrupted


@pytest.mark.slow
def test_train_time_of_a_resumed_run_counts_the_earlier_epochs(tmp_path, cifar_bin, monkeypatch):
    import zoo.train

    run_dir = tmp_path / "run"
    args = args_for(run_dir, cifar_bin, epochs=3)
    standard = zoo.train.standard_callbacks
    with monkeypatch.context() as m:  # the first process stops after its first epoch is backed up
        m.setattr(zoo.train, "standard_callbacks", lambda *a, **k: [*standard(*a, **k), InterruptAfterFirstEpoch()])
        with pytest.raises(Interrupted):
            cifar10.main(args)
    assert resumed_epoch(run_dir) == 1
    # The first part took 1000 s (as its history says): deterministic, whatever this machine's speed.
    history = run_dir / "history.csv"
    with open(history, newline="") as f:
        rows = list(csv.DictReader(f))
    rows[0]["epoch_time_s"] = "1000.0"
    with open(history, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    metrics = cifar10.main(args)
    with open(history, newline="") as f:
        epoch_times = [float(r["epoch_time_s"]) for r in csv.DictReader(f)]
    assert metrics["epochs"] == 3 and len(epoch_times) == 3 and epoch_times[0] == 1000.0
    assert metrics["train_time_s"] >= sum(epoch_times)


@pytest.mark.slow
def test_the_command_line_says_a_finished_run_is_finished_and_exits_0(finished):
    run_dir, data, _ = finished
    before = snapshot(run_dir)
    result = subprocess.run([sys.executable, "-m", "tasks.vision.cifar10", *args_for(run_dir, data)], cwd=REPO,
                            env=subprocess_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{run_dir} holds this command's finished run" in result.stdout
    assert "metrics.json, saved_model, model.weights.h5, history.csv" in result.stdout
    assert snapshot(run_dir) == before


@pytest.mark.slow
def test_a_search_retrains_its_best_once_and_moves_an_outdated_retrain_aside(tmp_path, cifar_bin):
    from tests.test_tuning import IN_PROCESS, run_search

    d = tmp_path / "search"
    argv = [*IN_PROCESS, "--tuner", "random", "--max-trials", 1, "--max-epochs", 1, "--epochs", 1, "--retrain-best",
            "--data-dir", cifar_bin.path, "--directory", d]
    first, _ = run_search(argv)
    before = snapshot(d / "best")

    # The same search again: its best is the one retrained, which is finished.
    again, _ = run_search(argv)
    assert snapshot(d / "best") == before and again["best"]["retrain"] == first["best"]["retrain"]

    # A retrain of another configuration (as when a resumed search has found a better one) goes aside.
    record = json.loads((d / "best" / "finished.json").read_text())
    record["config"]["learning_rate"] = 123.0
    (d / "best" / "finished.json").write_text(json.dumps(record))
    run_search(argv)
    (previous,) = (d / "best").glob("previous-*")
    assert json.loads((previous / "finished.json").read_text())["config"]["learning_rate"] == 123.0
    assert json.loads((d / "best" / "finished.json").read_text())["config"]["learning_rate"] != 123.0
