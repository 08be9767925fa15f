"""The CIFAR-10 task end to end on a tiny fake dataset: outputs, the exported SavedModel in a fresh
process, command-line errors, resuming a killed run, and atomic export."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from tasks.vision.cifar10 import main
from zoo import cpu
from zoo.callbacks import resumed_epoch
from zoo.data.images import CIFAR10_CLASSES
from zoo.export import export_saved_model
from zoo.registry import build_model

REPO = Path(__file__).resolve().parents[1]
FAST = ["--model", "seed_cnn", "--batch-size", "16", "--no-tensorboard", "--verbose", "0", "--precision", "float32",
        "--jit-compile", "false"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def subprocess_env():
    env = {k: v for k, v in os.environ.items() if k != "ZOO_DEBUG"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def run_cli(args, timeout=180, **kwargs):
    return subprocess.run([sys.executable, "-m", "tasks.vision.cifar10", *args], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def history_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, make_cifar_bin):
    """One finished 1-epoch run of seed_cnn on 100 training and 20 test fake images."""
    root = tmp_path_factory.mktemp("cifar10")
    fake = make_cifar_bin(root / "data")
    run_dir = root / "run"
    metrics = main([*FAST, "--epochs", "1", "--validation-split", "0.2", "--data-dir", str(fake.path), "--output-dir", str(run_dir)])
    keras.mixed_precision.set_dtype_policy("float32")
    return SimpleNamespace(metrics=metrics, run_dir=run_dir, data=fake)


def test_main_returns_metrics(trained):
    m = trained.metrics
    assert (m["task"], m["model"], m["preset"], m["epochs"]) == ("vision.cifar10", "seed_cnn", "default", 1)
    assert 0.0 <= m["test_accuracy"] <= 1.0 and np.isfinite(m["test_loss"])
    assert m["test_examples"] == 20 and m["val_examples"] == 20  # 20% of 100 held out
    assert set(m["test_per_class_accuracy"]) == set(CIFAR10_CLASSES)
    assert m["parameters"] > 0 and m["dataset"].endswith("cifar-10-batches-bin")


def test_run_directory(trained):
    d = trained.run_dir
    config = json.loads((d / "config.json").read_text())
    assert config["task"] == "vision.cifar10"
    assert config["config"]["model"] == "seed_cnn" and config["config"]["epochs"] == 1
    assert config["config"]["model_kwargs"] == {}  # not the default preset's airbench widths
    assert config["resolved"]["dtype_policy"] == "float32" and config["resolved"]["jit_compile"] is False
    if cpu.onednn_wanted() and os.environ.get(cpu.ONEDNN_VARIABLE, "1").lower() in ("1", "true"):
        assert config["resolved"]["onednn"] is True  # TensorFlow's oneDNN kernels, on CPUs it leaves them off too
    # The command that reproduces the run is the one that made it, whoever called main().
    assert config["command"].startswith("python -m tasks.vision.cifar10 --model seed_cnn --batch-size 16")
    assert f"--output-dir {d}" in config["command"]

    rows = history_rows(d / "history.csv")
    assert [r["epoch"] for r in rows] == ["0"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(rows[0])

    assert json.loads((d / "metrics.json").read_text()) == trained.metrics
    for png in ("learning_curves.png", "confusion_matrix.png"):
        assert (d / png).read_bytes()[:8] == PNG_MAGIC, png
    assert (d / "best.weights.h5").stat().st_size > 0
    assert not (d / "backup").exists()  # a finished run leaves nothing to resume
    assert not (d / "logs").exists()  # --no-tensorboard

    meta = json.loads((d / "saved_model" / "metadata.json").read_text())
    assert meta["labels"] == list(CIFAR10_CLASSES) and (meta["kind"], meta["recipe"]) == ("image_classifier", "image")
    assert meta["signatures"]["serve"]["inputs"]["images"]["shape"] == [None, 32, 32, 3]
    assert meta["preprocessing"]["image_size"] == [32, 32] and meta["data"]["spec"] == "cifar10"
    assert meta["metrics"]["test_accuracy"] == trained.metrics["test_accuracy"]
    assert meta["model"] == "seed_cnn" and meta["parameters"] == trained.metrics["parameters"]
    # No export leftovers; `.lock` is the run directory's lock (released, the file stays).
    assert [p.name for p in d.iterdir() if p.name.startswith(".")] == [".lock"]


SERVE_SCRIPT = r"""
import sys
import numpy as np
import tensorflow as tf

path, images, out = sys.argv[1:4]
model = tf.saved_model.load(path)
x = tf.constant(np.load(images))
probs = model.serve(x)["probabilities"].numpy()
default = model.signatures["serving_default"](images=x)["probabilities"]
np.testing.assert_allclose(default.numpy(), probs, atol=1e-6)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("zoo", "tasks"))
assert not leaked, leaked
np.save(out, probs)
"""


@pytest.mark.slow
def test_saved_model_serves_in_a_fresh_process(trained, tmp_path):
    x = trained.data.x_test
    np.save(tmp_path / "images.npy", x)
    result = subprocess.run(
        [sys.executable, "-c", SERVE_SCRIPT, str(trained.run_dir / "saved_model"), str(tmp_path / "images.npy"),
         str(tmp_path / "probs.npy")],
        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    probs = np.load(tmp_path / "probs.npy")
    assert probs.shape == (len(x), 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs >= 0).all()

    loaded = tf.saved_model.load(str(trained.run_dir / "saved_model"))  # keep a reference: it owns the variables
    in_process = loaded.serve(tf.constant(x))["probabilities"].numpy()
    np.testing.assert_allclose(probs, in_process, atol=1e-5)
    # The exported graph (normalization inside) scores the test set as the evaluation did.
    y = trained.data.y_test
    assert np.mean(probs.argmax(axis=1) == y) == pytest.approx(trained.metrics["test_accuracy"])
    assert -np.mean(np.log(probs[np.arange(len(y)), y])) == pytest.approx(trained.metrics["test_loss"], rel=1e-4)


@pytest.fixture(scope="module")
def truncated_data(tmp_path_factory, make_cifar_bin):
    fake = make_cifar_bin(tmp_path_factory.mktemp("truncated"))
    f = fake.layout_dir / "data_batch_1.bin"
    f.write_bytes(f.read_bytes()[:-100])
    return fake


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    pytest.param(["--model", "nope"], r"error: Unknown vision model 'nope'\. Known: .*seed_cnn", id="unknown-model"),
    pytest.param(["--preset", "nope"], r"error: Unknown preset 'nope'\. Known presets: seed, fast, default",
                 id="unknown-preset"),
    # argparse reports invalid choices itself, prefixed by the program name.
    pytest.param(["--optimizer", "nope"], r"python -m tasks\.vision\.cifar10: error: .*invalid choice: 'nope'",
                 id="unknown-optimizer"),
    pytest.param(["--data-dir", "{tmp}/no-such-dir"], r"error: Data directory .*no-such-dir does not exist",
                 id="missing-data-dir"),
    pytest.param(["--data-dir", "{truncated}"], r"error: .*data_batch_1\.bin: .*truncated", id="truncated-file"),
    pytest.param(["--subset", "1.5"], r"error: .*--subset .*1\.5", id="subset-fraction-over-one"),
])
def test_bad_input_is_one_error_line(args, message, tmp_path, truncated_data, make_cifar_bin):
    args = [a.format(tmp=tmp_path, truncated=truncated_data.path) for a in args]
    data = [] if "--data-dir" in args else ["--data-dir", str(make_cifar_bin(tmp_path / "data").path)]
    result = run_cli([*FAST, "--epochs", "1", "--output-dir", str(tmp_path / "run"), *data, *args])
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert re.match(message, last), last
    assert not (tmp_path / "run" / "saved_model").exists()


def training_labels(monkeypatch, make_datasets, *args):
    """The labels of the examples `make_datasets(*args)` gives its training pipeline."""
    import zoo.pipeline

    seen = []
    real = zoo.pipeline.image_dataset
    monkeypatch.setattr(zoo.pipeline, "image_dataset", lambda x, y, training, **kw: (
        seen.append(np.asarray(y)) if training else None) or real(x, y, training=training, **kw))
    make_datasets(*args)
    return seen[0]


@pytest.mark.parametrize("subset, per_class", [("6", 2), ("0.5", 2), ("30", 4), ("0.25", 1)])
def test_subset_of_a_class_sorted_image_folder_keeps_every_class(tmp_path, make_image_folder, monkeypatch, subset,
                                                                 per_class):
    from tasks.vision import cifar10
    from zoo.config import parse_config

    fake = make_image_folder(tmp_path, train_per_class=4)  # 12 images sorted by class: cat, dog, frog
    argv = ["--data-dir", str(fake.path), "--validation-split", "0", "--subset", subset]
    cfg = parse_config(cifar10.Config, cifar10.PRESETS, argv)
    data = cifar10.load_data(cfg)
    labels = training_labels(monkeypatch, cifar10.make_datasets, cfg, data)
    assert np.bincount(labels, minlength=3).tolist() == [per_class] * 3
    # The same seed draws the same sample; another seed another one.
    x0, again, x1 = (cifar10.make_datasets(parse_config(cifar10.Config, cifar10.PRESETS, [*argv, "--seed", seed]),
                                           data)[0]["train_images"] for seed in ("0", "0", "1"))
    np.testing.assert_array_equal(x0, again)
    assert per_class == 4 or not np.array_equal(x0, x1)


@pytest.mark.slow
def test_a_killed_run_resumes(tmp_path, make_cifar_bin):
    fake = make_cifar_bin(tmp_path / "data", records_per_file=100)  # slow enough epochs to kill in between
    run_dir = tmp_path / "run"
    args = [*FAST, "--epochs", "3", "--data-dir", str(fake.path), "--output-dir", str(run_dir)]
    history = run_dir / "history.csv"

    proc = subprocess.Popen([sys.executable, "-m", "tasks.vision.cifar10", *args], cwd=REPO, env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (history.exists() and len(history.read_text().splitlines()) >= 2):
            assert proc.poll() is None, f"the run ended before its first epoch did:\n{proc.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    done = resumed_epoch(run_dir)
    assert 1 <= done < 3, f"killed after {done} epochs: not in the middle of the run"
    assert not (run_dir / "metrics.json").exists()

    result = run_cli(args, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resuming from {run_dir / 'backup'}: {done} of 3 epochs done." in result.stdout
    assert [r["epoch"] for r in history_rows(history)] == ["0", "1", "2"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 3
    assert not (run_dir / "backup").exists()


def test_export_is_atomic(tmp_path):
    model = build_model("seed_cnn", input_shape=(16, 16, 3), num_classes=3)
    spec = [tf.TensorSpec([None, 16, 16, 3], tf.uint8, name="images")]

    def broken(images):
        raise RuntimeError("serve_fn failed")

    def serve(images):
        return keras.ops.softmax(model(keras.ops.cast(images, "float32") / 255.0, training=False))

    target = tmp_path / "saved_model"
    with pytest.raises(RuntimeError, match="serve_fn failed"):
        export_saved_model(model, target, input_signature=spec, serve_fn=broken, metadata={})
    assert list(tmp_path.iterdir()) == []  # neither the model nor a temporary directory

    export_saved_model(model, target, input_signature=spec, serve_fn=serve, metadata={"version": 1})
    with pytest.raises(RuntimeError, match="serve_fn failed"):
        export_saved_model(model, target, input_signature=spec, serve_fn=broken, metadata={"version": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["saved_model"]
    assert json.loads((target / "metadata.json").read_text())["version"] == 1  # the old model is intact

    export_saved_model(model, target, input_signature=spec, serve_fn=serve, metadata={"version": 3})
    assert [p.name for p in tmp_path.iterdir()] == ["saved_model"]  # replaced, the old one removed
    assert json.loads((target / "metadata.json").read_text())["version"] == 3
    x = np.random.default_rng(0).integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
    loaded = tf.saved_model.load(str(target))
    np.testing.assert_allclose(loaded.serve(tf.constant(x)).numpy(), keras.ops.convert_to_numpy(serve(x)), atol=1e-5)
