"""The command line's contract: a user error (`ZooError`) is one line and exit code 2, anything
else is a bug with its traceback and exit code 1; arguments that are not UTF-8, corrupt search
files, builder arguments of the wrong kind and diverged models are user errors; `--json` is
strict JSON."""

import json
import math
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo.export
import zoo.pretrained
from tests.test_cifar10_task import FAST, REPO, subprocess_env
from zoo.cli import dumps_strict, run
from zoo.errors import DataError, ZooError
from zoo.export import export_saved_model
from zoo.registry import build_model


def strict_loads(text):
    """`json.loads` that refuses what is not JSON but Python writes: NaN, Infinity, -Infinity."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def exit_code(main, argv):
    with pytest.raises(SystemExit) as e:
        run(main, argv)
    return e.value.code


# --- user errors and bugs ------------------------------------------------------------------------


@pytest.mark.parametrize("error", [ZooError("--foo must be >= 1. Received: --foo 0"), DataError("x.bin: truncated")])
def test_a_user_error_is_one_line_and_exit_2(error, capsys, monkeypatch):
    monkeypatch.delenv("ZOO_DEBUG", raising=False)

    def main(argv):
        raise error

    assert exit_code(main, []) == 2
    assert capsys.readouterr().err == f"error: {error}\n"


def test_an_internal_value_error_is_a_bug_not_a_user_error(capsys, monkeypatch):
    monkeypatch.delenv("ZOO_DEBUG", raising=False)

    def main(argv):
        raise ValueError("internal")

    with pytest.raises(ValueError, match="internal"):
        run(main, [])
    assert "error: internal" not in capsys.readouterr().err


def test_an_internal_error_prints_its_traceback_and_exits_1():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from zoo.cli import run\n"
            "def main(argv):\n    raise ValueError('internal')\nrun(main, [])")
    result = subprocess.run([sys.executable, "-c", code, str(REPO)], env=subprocess_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr and "ValueError: internal" in result.stderr
    assert "error: internal" not in result.stderr


def test_a_bug_inside_a_task_is_not_reported_as_a_user_error(monkeypatch, capsys, tmp_path):
    from tasks.vision import cifar10
    from zoo.recipes.image import IMAGE

    monkeypatch.delenv("ZOO_DEBUG", raising=False)

    def broken(cfg):
        raise ValueError("internal")

    monkeypatch.setattr(IMAGE, "load_data", broken)
    with pytest.raises(ValueError, match="internal"):
        run(cifar10.main, [*FAST, "--output-dir", str(tmp_path / "run")])
    assert "error:" not in capsys.readouterr().err


def test_user_mistakes_that_were_plain_value_errors_are_zoo_errors(tmp_path, monkeypatch):
    from zoo.distribute import get_strategy
    from zoo.subword import SubwordTokenizer
    from zoo.translate import teacher_forcing_dataset

    vocab = tmp_path / "source_vocab.txt"
    vocab.write_bytes(b"[PAD]\n[UNK]\n\xff\n")
    with pytest.raises(DataError, match=rf"^{vocab}: not a vocabulary file: 'utf-8' codec"):
        SubwordTokenizer.load(vocab)
    vocab.write_text("hello\nworld\n")
    with pytest.raises(DataError, match=rf"^{vocab}: not a vocabulary file: The vocabulary must start with"):
        SubwordTokenizer.load(vocab)
    with pytest.raises(ZooError, match=r"^No sentence pair fits --max-source-tokens 3 and --max-target-tokens 3"):
        teacher_forcing_dataset([np.arange(2, 9)], [np.arange(2, 9)], batch_size=1, max_source_tokens=3,
                                max_target_tokens=3)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ZooError, match="--distribute multiworker needs TF_CONFIG"):
        get_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{cluster")
    with pytest.raises(ZooError, match=r"^TF_CONFIG in the environment is not a JSON object"):
        get_strategy("auto")


# --- arguments that are not UTF-8 ---------------------------------------------------------------


@pytest.mark.parametrize("argv, named", [
    (["--data-dir", "/data/\udcff"], "argument 2 (after --data-dir)"),
    (["--data-dir=/data/\udcff"], "argument 1 (--data-dir=...)"),
    (["model", "photo\udcfe.png"], "argument 2"),
])
def test_an_argument_that_is_not_utf8_is_a_user_error(argv, named, capsys, monkeypatch):
    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    calls = []
    assert exit_code(calls.append, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {named} is not valid UTF-8: b'") and err.count("\n") == 1
    assert "\\xff" in err or "\\xfe" in err
    assert calls == []  # refused before the command starts


def test_a_path_that_is_not_utf8_on_the_real_command_line(tmp_path):
    bad = bytes(tmp_path) + b"/\xff.png"
    result = subprocess.run([sys.executable, "-m", "zoo.predict", "cifar10", bad], cwd=REPO, env=subprocess_env(),
                            capture_output=True, timeout=120)
    err = result.stderr.decode()
    assert result.returncode == 2, err[-2000:]
    assert "Traceback" not in err and "codec" not in err
    assert err.strip().splitlines()[-1].startswith("error: argument 2 is not valid UTF-8: b'")


# --- builder arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    (dict(depth="abc"), r"Model 'resnet': depth must be a number \(default 20\)\. Received: depth='abc'"),
    (dict(dropout="high"), r"Model 'resnet': dropout must be a number .*Received: dropout='high'"),
    (dict(depth=21), r"Model 'resnet' can not be built with .*depth=21.*: .*depth must be 6n"),
    (dict(bogus=1), r"Model 'resnet' does not take bogus"),
])
def test_builder_arguments_of_the_wrong_kind_or_value_are_zoo_errors(kwargs, message):
    with pytest.raises(ZooError, match=message):
        build_model("resnet", input_shape=(16, 16, 3), **kwargs)


def test_a_bool_argument_takes_only_true_or_false():
    with pytest.raises(ZooError, match=r"bidirectional must be True or False .*Received: bidirectional='yes'"):
        build_model("crnn", num_classes=2, bidirectional="yes")


def test_model_arg_of_the_wrong_kind_through_the_task_is_one_line_and_exit_2(cifar_bin, tmp_path, capsys,
                                                                              monkeypatch):
    from tasks.vision import cifar10

    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    argv = [*FAST, "--model", "resnet", "--model-arg", "depth=abc", "--data-dir", str(cifar_bin.path),
            "--output-dir", str(tmp_path / "run")]
    assert exit_code(cifar10.main, argv) == 2
    err = capsys.readouterr().err
    assert err == "error: Model 'resnet': depth must be a number (default 20). Received: depth='abc'\n"


def test_bad_numbers_through_the_task_are_one_line_and_exit_2(capsys, monkeypatch, tmp_path):
    from tasks.vision import cifar10

    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    assert exit_code(cifar10.main, ["--batch-size", "0", "--output-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == "error: --batch-size must be >= 1. Received: --batch-size 0\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, message", [
    (["--time-limit", "nan"], "--time-limit must be a finite number > 0. Received: --time-limit nan"),
    (["--subset", "inf"], "--subset must be a count N > 1 or a fraction 0 < F <= 1 of the training examples. Received: inf"),
    (["--max-trials", "0"], "--max-trials must be > 0. Received: --max-trials 0"),
])
def test_the_search_flags_are_checked_too(argv, message):
    from tuning import search

    with pytest.raises(ZooError) as e:
        search.parse_args(["vision.cifar10", *argv])
    assert str(e.value) == message


def test_publish_max_mb_must_be_a_finite_positive_number(tmp_path):
    from zoo import publish

    with pytest.raises(ZooError, match=r"^--max-mb must be a finite number > 0\. Received: --max-mb nan$"):
        publish.main([str(tmp_path), "entry", "--max-mb", "nan"])


# --- corrupt search files ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_corrupt_trial_file_names_the_file_and_how_to_recover(tmp_path, cifar_bin, capsys, monkeypatch):
    from tests.test_tuning import IN_PROCESS, read_rows, run_search
    from tuning import search

    d = tmp_path / "search"
    argv = [*IN_PROCESS, "--tuner", "random", "--max-trials", 1, "--max-epochs", 1, "--data-dir", cifar_bin.path,
            "--directory", d]
    run_search(argv)
    trial = d / "trial_0" / "trial.json"
    trial.write_text(trial.read_text()[:500])  # a search killed while KerasTuner wrote the file

    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    assert exit_code(search.main, [str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {trial}: corrupt, not JSON (") and err.count("\n") == 1
    assert "pass --overwrite to start the search over" in err

    run_search([*argv, "--overwrite"])
    assert [r["status"] for r in read_rows(d)] == ["COMPLETED"]
    assert json.loads(trial.read_text())["status"] == "COMPLETED"


@pytest.mark.parametrize("name, how", [("search.json", "pass --overwrite"), ("oracle.json", "pass --overwrite"),
                                       ("trial_0/tuning.json", "delete it")])
def test_every_file_a_resumed_search_reads_is_checked(name, how, tmp_path):
    from tuning.search import check_search_files

    d = tmp_path / "search"
    for f in ("search.json", "oracle.json", "tuner0.json", "trial_0/trial.json", "trial_0/tuning.json"):
        (d / f).parent.mkdir(parents=True, exist_ok=True)
        (d / f).write_text("{}")
    check_search_files(d)
    (d / name).write_bytes(b'{"a": \xff')
    with pytest.raises(ZooError, match=rf"{d / name}: corrupt, not JSON \(.*\): {how}"):
        check_search_files(d)


# --- diverged models --------------------------------------------------------------------------


def tiny_classifier():
    model = build_model("seed_cnn", input_shape=(8, 8, 3), num_classes=2)
    spec = [tf.TensorSpec([None, 8, 8, 3], tf.uint8, name="images")]

    def serve(images):
        return keras.ops.softmax(model(keras.ops.cast(images, "float32") / 255.0, training=False))

    return model, dict(input_signature=spec, serve_fn=serve)


def poison(model):
    kernel = model.trainable_variables[0]
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    return kernel.path


def test_export_refuses_non_finite_weights_and_metrics(tmp_path):
    model, args = tiny_classifier()
    with pytest.raises(ZooError, match=r"refused, not finite .*: metrics test_loss, val_per_class_accuracy\.cat\. "
                                       r"Training diverged: lower the learning rate"):
        export_saved_model(model, tmp_path / "saved_model", **args, metadata={
            "metrics": {"test_accuracy": 0.5, "test_loss": math.nan, "val_per_class_accuracy": {"cat": math.inf}}})
    path = poison(model)
    with pytest.raises(ZooError, match=rf"refused, not finite \(NaN or infinite\): weights {path}\. Training diverged"):
        export_saved_model(model, tmp_path / "saved_model", **args, metadata={"metrics": {"test_accuracy": 0.5}})
    assert list(tmp_path.iterdir()) == []


def test_publish_refuses_non_finite_weights_and_metrics(tmp_path, monkeypatch):
    from zoo.publish import publish

    model, args = tiny_classifier()
    card = {"task": "vision.cifar10", "class_names": ["a", "b"], "metrics": {"test_accuracy": 0.5, "test_loss": 0.7}}
    export_saved_model(model, tmp_path / "run" / "saved_model", **args, metadata=card)
    metadata = tmp_path / "run" / "saved_model" / "metadata.json"
    metadata.write_text(json.dumps({**json.loads(metadata.read_text()), "metrics": {"test_accuracy": math.nan}}))
    with pytest.raises(ZooError, match=r"saved_model: refused, not finite .*: metrics test_accuracy\. Training diverged"):
        publish(tmp_path / "run", "diverged", models_dir=tmp_path / "models")

    # A SavedModel with NaN weights, as an exporter without the check wrote them.
    poison(model)
    monkeypatch.setattr(zoo.export, "non_finite_weights", lambda model: [])
    export_saved_model(model, tmp_path / "nan" / "saved_model", **args, metadata=card)
    with pytest.raises(ZooError, match=r"refused, not finite \(NaN or infinite\): weights .*Training diverged"):
        publish(tmp_path / "nan", "diverged", models_dir=tmp_path / "models")
    assert not (tmp_path / "models" / "diverged").exists()


@pytest.mark.slow
def test_a_diverged_run_trains_but_is_not_exported(cifar_bin, tmp_path):
    from tasks.vision import cifar10

    with pytest.raises(ZooError, match=r"saved_model: refused, not finite .*Training diverged: lower the learning"):
        cifar10.main([*FAST, "--epochs", "1", "--learning-rate", "1e30", "--schedule", "constant", "--data-dir",
                      str(cifar_bin.path), "--output-dir", str(tmp_path / "run")])
    assert not (tmp_path / "run" / "saved_model").exists()
    # The diverged run's metrics are still written, as strict JSON: NaN becomes null.
    metrics = strict_loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test_loss"] is None


# --- strict JSON -------------------------------------------------------------------------------------


def test_dumps_strict_writes_null_for_nan_and_infinity():
    value = {"p": math.nan, "q": [math.inf, -math.inf, 0.5], "r": np.float32("nan"), "s": np.float64(0.25), "n": 3}
    assert strict_loads(dumps_strict(value)) == {"p": None, "q": [None, None, 0.5], "r": None, "s": 0.25, "n": 3}
    with pytest.raises(ValueError, match="not JSON: NaN"):
        strict_loads(json.dumps({"p": math.nan}))  # the parser the tests use does refuse it


class NanPredictor:
    name, kind, metadata = "nan", "image_classifier", {"task": "vision.cifar10"}

    def predict(self, inputs, top_k=3):
        top = [{"label": "cat", "probability": math.nan}, {"label": "dog", "probability": math.nan}][:top_k]
        return [{"label": "cat", "probability": math.nan, "top_k": top} for _ in inputs]


def test_predict_json_is_strict_json_when_the_model_outputs_nan(monkeypatch, capsys):
    from zoo import predict

    monkeypatch.setattr(zoo.pretrained, "load", lambda name, trust=False: NanPredictor())
    predict.main(["nan", "a.png", "b.png", "--json", "--top-k", "2"])
    out = strict_loads(capsys.readouterr().out)
    assert [r["probability"] for r in out["results"]] == [None, None]
    assert out["results"][0]["top_k"] == [{"label": "cat", "probability": None}, {"label": "dog", "probability": None}]
