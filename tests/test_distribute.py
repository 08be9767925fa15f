"""Distribution: strategy choice, and a real two-worker MultiWorkerMirroredStrategy run on 127.0.0.1."""

import csv
import json
import socket
import subprocess
import sys

import pytest

from tests.test_cifar10_task import FAST, REPO, subprocess_env
from zoo.distribute import get_strategy, is_chief


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_strategy_names(monkeypatch):
    import tensorflow as tf

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert get_strategy("none") is tf.distribute.get_strategy()
    assert get_strategy("auto") is tf.distribute.get_strategy()  # one CPU, no cluster
    with pytest.raises(ValueError, match="TF_CONFIG"):
        get_strategy("multiworker")
    with pytest.raises(ValueError, match="distribute must be one of"):
        get_strategy("ring")


@pytest.mark.parametrize("tf_config, chief", [
    (None, True),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, False),
    ({"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "worker", "index": 0}}, False),
    ({"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "chief", "index": 0}}, True),
])
def test_is_chief(monkeypatch, tf_config, chief):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert is_chief() is chief


@pytest.mark.slow
def test_two_workers_train_together(tmp_path, make_cifar_bin):
    fake = make_cifar_bin(tmp_path / "data", records_per_file=32)
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    run_dir = tmp_path / "run"
    procs = []
    for index in range(2):
        env = subprocess_env()
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tasks.vision.cifar10", *FAST, "--epochs", "2", "--distribute", "multiworker",
             "--data-dir", str(fake.path), "--output-dir", str(run_dir), "--no-export"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=240)[0])
        finally:
            proc.kill()
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-3000:]
        assert "MultiWorkerMirroredStrategy" in out, out[-3000:]
    # The chief (worker 0) writes the run directory; worker 1 keeps its copies aside.
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2
    config = json.loads((run_dir / "config.json").read_text())
    assert config["resolved"]["strategy"] == "MultiWorkerMirroredStrategy"
    assert config["resolved"]["replicas"] == 2
    assert (run_dir / ".worker-1" / "history.csv").exists()
    # Synchronous training: both workers see the same all-reduced loss every epoch.
    losses = []
    for path in (run_dir / "history.csv", run_dir / ".worker-1" / "history.csv"):
        with open(path, newline="") as f:
            losses.append([float(row["loss"]) for row in csv.DictReader(f)])
    assert len(losses[0]) == 2
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
