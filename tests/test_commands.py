"""The command-line front door: `--help` of every entry point shows defaults and presets,
`python -m zoo.models` lists what the zoo holds, the console scripts dispatch through
`zoo.cli.run`, start-up is quiet without hiding warnings, evaluation shows progress on a
terminal only, and the package builds into a wheel that works without the repository."""

import configparser
import importlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest

import zoo.cli
from tests.test_cifar10_task import REPO
from zoo.catalog import task_names
from zoo.config import parse_config
from zoo.errors import ZooError
from zoo.logs import filtered_stderr, startup_lines_to_keep
from zoo.registry import builder_arguments, list_models, model_domain


def help_text(main, argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines: compare with one space


def one_line_error(call, capsys):
    with pytest.raises(SystemExit) as e:
        call()
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1, err
    return err


# --- --help --------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", task_names())
def test_a_task_help_shows_defaults_and_what_each_preset_sets(task, capsys):
    module = importlib.import_module(f"tasks.{task}")
    text = help_text(module.main, ["--help"], capsys)
    assert f"--preset {{{','.join(module.PRESETS)}}}" in text
    assert "(default: default)" in text  # the preset a command without --preset uses
    # One entry per preset, with what it sets.
    parts = re.split(r" (\w+): (?=\w+=)", text.split("presets (--preset NAME")[1])[1:]
    entries = dict(zip(parts[::2], parts[1::2]))
    assert list(entries) == list(module.PRESETS)
    for name, settings in module.PRESETS.items():
        assert all(f"{k}=" in entries[name] for k in settings), (name, entries[name])
    # A flag no preset sets shows the dataclass default.
    seed = next(f for f in module.Config.__dataclass_fields__.values() if f.name == "seed")
    assert f"seeds Python, NumPy, TensorFlow and Keras (default: {seed.default})" in text


def test_the_defaults_in_the_help_are_what_a_command_without_flags_uses(capsys):
    from tasks.vision import cifar10

    text = help_text(cifar10.main, ["--help"], capsys)
    cfg = parse_config(cifar10.Config, cifar10.PRESETS, [])
    assert f"global batch size (default: {cfg.batch_size})" in text and cfg.batch_size == 256
    assert f"training epochs (default: {cfg.epochs})" in text
    assert "seed: model=seed_cnn, optimizer=momentum, learning_rate=0.001" in text


def test_help_leaves_unset_flags_to_the_preset():
    from tasks.vision import cifar10

    # Only typed flags override the preset: the help's defaults are text, not argparse defaults.
    cfg = parse_config(cifar10.Config, cifar10.PRESETS, ["--preset", "seed", "--epochs", "2"])
    assert (cfg.model, cfg.epochs, cfg.batch_size, cfg.learning_rate) == ("seed_cnn", 2, 128, 0.001)


@pytest.mark.parametrize("module, argv, expected", [
    ("tuning.search", ["--help"], ["(default: hyperband)", "(default: 20)", "vision.cifar10: presets seed, fast, default",
                                   "speech.commands: presets default, small, crnn"]),
    ("zoo.predict", ["--help"], ["(default: 3)", "--json"]),
    ("zoo.publish", ["--help"], ["(default: 20)", "--max-mb"]),
    ("zoo.safety", ["--help"], ["usage: python -m zoo.safety"]),
    ("zoo.catalog", ["--help"], ["usage: python -m zoo.models", "--json"]),
])
def test_the_other_entry_points_help_shows_defaults_and_presets(module, argv, expected, capsys):
    text = help_text(importlib.import_module(module).main, argv, capsys)
    for part in expected:
        assert part in text


# --- python -m zoo.models -------------------------------------------------------------------------


def test_the_catalog_lists_builders_tasks_and_pretrained_entries(capsys):
    from zoo.catalog import main
    from zoo.pretrained import list_models as pretrained_models

    catalog = main([])
    text = capsys.readouterr().out
    assert set(catalog["builders"]) == {model_domain(n) for n in list_models()}
    for name in list_models():
        arguments = builder_arguments(name)
        assert catalog["builders"][model_domain(name)][name] == arguments
        assert f"    {name}(" + ", ".join(f"{k}={v!r}" for k, v in arguments.items()) + ")" in text
    assert "resnet(num_classes=10, input_shape=(32, 32, 3), depth=20, width=16," in text
    assert set(catalog["tasks"]) == set(task_names()) >= {"vision.cifar10", "text.translation", "speech.digits"}
    assert "  vision.cifar10: presets seed, fast, default" in text
    for info in catalog["tasks"].values():
        assert "ZOO_DATA_DIR" in info["data"] and "Killing" not in info["data"]
    assert catalog["tasks"]["vision.cifar10"]["data"].startswith("--data cifar10: a registered image dataset")
    assert catalog["tasks"]["vision.classify"]["recipe"] == "image" and "(required)" in catalog["tasks"]["vision.classify"]["data"]
    assert "  imdb (text): IMDB Large Movie Review Dataset" in text and "--data PATH for audio tasks:" in text
    assert set(catalog["pretrained"]) == set(pretrained_models())
    card = json.loads((REPO / "saved_models" / "cifar10" / "metadata.json").read_text())
    assert catalog["pretrained"]["cifar10"]["value"] == card["metric"]["value"]
    assert f"  cifar10: vision.cifar10, image_classifier, test_accuracy {card['metric']['value']:.4g}" in text


def test_the_catalog_as_json_and_without_entries(capsys, monkeypatch, tmp_path):
    from zoo.catalog import main

    monkeypatch.setenv("ZOO_MODELS_DIR", str(tmp_path / "none"))
    main(["--json"])
    catalog = json.loads(capsys.readouterr().out)
    assert catalog["pretrained"] == {} and "resnet" in catalog["builders"]["vision"]
    main([])
    assert f"none in {tmp_path / 'none'} (set ZOO_MODELS_DIR" in capsys.readouterr().out


# --- console scripts ------------------------------------------------------------------------------


def console_scripts() -> dict:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    lines = parser["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split("=")) for line in lines)


def test_setup_cfg_declares_the_console_scripts_and_each_resolves():
    from setuptools.config.setupcfg import read_configuration

    scripts = console_scripts()
    assert set(scripts) == {"zoo-train", "zoo-predict", "zoo-tune", "zoo-publish", "zoo-models"}
    assert read_configuration(REPO / "setup.cfg")["options"]["entry_points"]["console_scripts"]
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target


def test_zoo_train_runs_the_named_task_with_the_rest_of_the_command_line(monkeypatch):
    from tasks.vision import cifar10

    calls = []
    monkeypatch.setattr(cifar10, "main", calls.append)
    zoo.cli.train(["vision.cifar10", "--preset", "fast"])
    assert calls == [["--preset", "fast"]]


def test_zoo_train_lists_the_tasks_and_refuses_an_unknown_one(capsys, monkeypatch):
    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    zoo.cli.train(["--help"])
    assert f"tasks: {', '.join(task_names())}" in capsys.readouterr().out
    err = one_line_error(lambda: zoo.cli.train(["vision.nope", "--epochs", "1"]), capsys)
    assert err.startswith("error: Unknown task 'vision.nope': zoo-train TASK [FLAGS]. Known tasks: ")
    assert "vision.cifar10" in err
    assert one_line_error(lambda: zoo.cli.train([]), capsys).startswith("error: No task given")


def test_zoo_train_passes_a_bad_flag_to_the_task_parser(capsys):
    with pytest.raises(SystemExit) as e:
        zoo.cli.train(["vision.cifar10", "--epochs", "abc"])
    assert e.value.code == 2 and "--epochs: invalid int value: 'abc'" in capsys.readouterr().err


@pytest.mark.parametrize("script, argv, expected", [
    ("predict", ["--help"], "python -m zoo.predict"),
    ("tune", ["--help"], "tunable tasks:"),
    ("publish", ["--help"], "[RUN_DIR] [NAME]"),
    ("models", ["--help"], "python -m zoo.models"),
    ("train", ["text.sentiment", "--help"], "--preset {default,words}"),
])
def test_each_console_script_runs_its_command(script, argv, expected, capsys):
    assert expected in help_text(getattr(zoo.cli, script), argv, capsys)


def test_a_console_script_user_error_is_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    err = one_line_error(lambda: zoo.cli.predict(["nope", str(tmp_path / "x.png")]), capsys)
    assert err.startswith("error: Unknown model 'nope'")
    err = one_line_error(lambda: zoo.cli.tune(["vision.cifar10", "--tuner", "grid"]), capsys)
    assert err.startswith("error: Unknown tuner 'grid'")


# --- quiet start-up -------------------------------------------------------------------------------


STARTUP = (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
           b"I0000 00:00:1795981824.340489     667 port.cc:153] oneDNN custom operations are on.\n"
           b"I0000 00:00:1795981824.340810     667 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
           b"GPU will not be used.\n"
           b"W0000 00:00:1795981824.5     667 some.cc:1] a real warning\n"
           b"/x/y.py:3: UserWarning: a Python warning\n"
           b"E0000 00:00:1795981829.159169     667 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n"
           b"E0000 00:00:1795981829.2     667 other.cc:9] a real error\n")


def test_startup_filter_drops_info_and_keeps_warnings_and_errors():
    kept = startup_lines_to_keep(STARTUP, 1).decode()
    assert kept.splitlines() == ["W0000 00:00:1795981824.5     667 some.cc:1] a real warning",
                                 "/x/y.py:3: UserWarning: a Python warning",
                                 "E0000 00:00:1795981829.2     667 other.cc:9] a real error"]
    assert startup_lines_to_keep(STARTUP, 0) == STARTUP  # TF_CPP_MIN_LOG_LEVEL=0 shows everything
    assert "a real warning" not in startup_lines_to_keep(STARTUP, 2).decode()
    # oneDNN's note that Eigen runs bfloat16 ops on a CPU without AVX-512: information at ERROR level.
    note = (b"E0000 00:00:1796072004.38   4045 util.cc:131] oneDNN supports DT_BFLOAT16 only on platforms with "
            b"AVX-512. Falling back to the default Eigen-based implementation if present.\n")
    assert startup_lines_to_keep(note + STARTUP, 1) == startup_lines_to_keep(STARTUP, 1)
    assert startup_lines_to_keep(note, 0) == note
    # The same note for another type: a masked LSTM transposes its boolean mask.
    assert startup_lines_to_keep(note.replace(b"DT_BFLOAT16", b"DT_BOOL"), 1) == b""
    # With a driver, a cuInit failure is news: kept.
    with_driver = b"E0000 00:00:1.0   1 cuda_platform.cc:52] failed call to cuInit: CUDA_ERROR_NO_DEVICE\n"
    assert startup_lines_to_keep(with_driver, 1) == with_driver


def test_filtered_stderr_filters_what_cpp_code_writes_to_fd_2(capfd):
    with filtered_stderr(1):
        os.write(2, STARTUP)
    err = capfd.readouterr().err
    assert "I0000" not in err and "InitializeLog" not in err and "a real warning" in err and "a real error" in err


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["-m", "tasks.vision.cifar10", "--help"], ["-m", "zoo.models"]])
def test_a_command_starts_without_tensorflow_info_lines(argv):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ZOO_DEBUG")}
    result = subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(("usage:", "Builders"))
    assert not re.search(r"^[IE]\d{4} |absl::InitializeLog", result.stderr, re.M), result.stderr


# --- progress -------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_evaluation_shows_progress_on_a_terminal_only(capsys, monkeypatch):
    import zoo.evaluate
    from zoo.evaluate import predict_probabilities, show_progress

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    x = np.zeros((10, 4), "float32")
    probs = predict_probabilities(model, x)
    assert probs.shape == (10, 3) and capsys.readouterr().out == ""  # not a terminal: silent
    monkeypatch.setattr(sys, "stdout", Terminal())
    assert show_progress()
    monkeypatch.setattr(zoo.evaluate, "show_progress", lambda: True)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    predict_probabilities(model, x)
    assert "1/1" in sys.stdout.getvalue()


# --- packaging ------------------------------------------------------------------------------------


def test_the_license_is_the_apache_2_text_setup_cfg_names():
    text = (REPO / "LICENSE").read_text()
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    assert parser["metadata"]["license"] == "Apache-2.0"
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) == 202


def test_an_install_without_entries_names_zoo_models_dir(monkeypatch, tmp_path):
    from zoo.pretrained import load

    monkeypatch.setenv("ZOO_MODELS_DIR", str(tmp_path / "missing"))
    with pytest.raises(ZooError, match=r"^Unknown model 'cifar10'.* No entries in .*missing: set ZOO_MODELS_DIR to a "
                                       r"directory of entries, e.g. the saved_models/ of a clone"):
        load("cifar10")


@pytest.mark.slow
def test_the_wheel_installs_and_runs_without_the_repository(tmp_path, make_cifar_bin):
    """`python -m build` makes an sdist and a wheel; the wheel carries the packages, the console
    scripts and the license, not saved_models/; installed in a fresh venv, its commands run from
    anywhere, and the pretrained entries load from ZOO_MODELS_DIR.

    The fresh venv reads the dependencies (TensorFlow...) from this interpreter's site-packages
    through a .pth file: installing them offline is not possible."""
    pytest.importorskip("build")
    source = tmp_path / "source"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if not name.startswith("saved_models/") and (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(source)], capture_output=True,
                           text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheel, = dist.glob("keras_zoo-*.whl")
    sdist, = dist.glob("keras_zoo-*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"zoo", "tasks", "tuning", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "zoo/models/__main__.py" in names and "tasks/vision/cifar10.py" in names
    assert not any("saved_models" in n or n.startswith("tests/") for n in names)
    info = wheel.name.split("-py3")[0] + ".dist-info"
    assert f"{info}/licenses/LICENSE" in names
    scripts = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    for name, target in console_scripts().items():
        assert f"{name} = {target}" in scripts

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    installed = subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                                str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    site, = (venv / "lib").glob("python*/site-packages")
    deps = [p for p in sys.path if p.endswith("site-packages")]
    (site / "zz_dependencies.pth").write_text("\n".join(deps) + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ZOO_MODELS_DIR", "ZOO_DEBUG")}
    work = tmp_path / "elsewhere"
    work.mkdir()

    def command(*argv, **extra):
        return subprocess.run([venv / "bin" / argv[0], *argv[1:]], cwd=work, env={**env, **extra},
                              capture_output=True, text=True, timeout=300)

    where = command("python", "-c", "import zoo; print(zoo.__file__)")
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    listing = command("zoo-models")
    assert listing.returncode == 0 and "resnet(" in listing.stdout and "vision.cifar10: presets" in listing.stdout
    assert "(set ZOO_MODELS_DIR" in listing.stdout
    image = work / "cat.png"
    keras.utils.save_img(image, np.full((32, 32, 3), 128, "uint8"))
    missing = command("zoo-predict", "cifar10", str(image))
    assert missing.returncode == 2 and "ZOO_MODELS_DIR" in missing.stderr.strip().splitlines()[-1]
    predicted = command("zoo-predict", "cifar10", str(image), "--json", ZOO_MODELS_DIR=str(REPO / "saved_models"))
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert json.loads(predicted.stdout)["results"][0]["label"]
    assert command("zoo-train", "--help").stdout.startswith("usage: zoo-train TASK")
    assert sdist.stat().st_size > 0

    # The README's smoke run, on a toy CIFAR-10 (the real one needs the mirror or a network), and the
    # generic command on a folder of class folders.
    toy = make_cifar_bin(tmp_path / "toy", records_per_file=20)
    smoke = command("zoo-train", "vision.cifar10", "--preset", "seed", "--epochs", "1", "--subset", "0.1",
                    "--output-dir", "runs/smoke", "--data-dir", str(toy.path), ZOO_PARTIAL_DATA="1")
    assert smoke.returncode == 0, smoke.stderr[-3000:]
    assert (work / "runs" / "smoke" / "saved_model" / "saved_model.pb").is_file()
    photos = work / "photos"
    for label, colour in enumerate(("red", "blue")):
        (photos / colour).mkdir(parents=True)
        for i in range(6):
            pixels = np.full((20 + i, 30, 3), 40, "uint8")
            pixels[..., 2 * label] = 220
            keras.utils.save_img(photos / colour / f"{i}.jpg", pixels)
    own = command("zoo-train", "vision.classify", "--data", str(photos), "--model", "seed_cnn", "--epochs", "1",
                  "--image-size", "16", "--test-split", "0.34", "--validation-split", "0", "--output-dir", "runs/own")
    assert own.returncode == 0, own.stderr[-3000:]
    assert json.loads((work / "runs" / "own" / "saved_model" / "metadata.json").read_text())["labels"] == ["blue", "red"]
