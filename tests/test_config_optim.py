"""Configuration (defaults < preset < flags), optimizers, schedules, the smoothed loss, precision."""

import dataclasses
import json
import typing

import keras
import numpy as np
import pytest
import tensorflow as tf

from tasks.vision.cifar10 import PRESETS, Config
from zoo.config import _declared_bounds, option, parse_config, save_config
from zoo.errors import ZooError
from zoo.losses import SparseCategoricalCrossentropyWithSmoothing
from zoo.optim import OPTIMIZERS, SCHEDULES, OneCycle, StepDecay, make_optimizer, make_schedule
from zoo import precision
from zoo.precision import PRECISIONS, resolve_precision, set_precision
from zoo.train import make_training_optimizer

DEFAULTS = Config()

# --- configuration ----------------------------------------------------------------------


def parse(*argv):
    return parse_config(Config, PRESETS, list(argv))


def test_no_flags_is_the_default_preset_over_the_dataclass_defaults():
    cfg = parse()
    assert cfg.preset == "default"
    for key, value in PRESETS["default"].items():
        assert getattr(cfg, key) == value, key
    assert "seed" not in PRESETS["default"]
    assert cfg.seed == DEFAULTS.seed and cfg.subset is None and cfg.resume is True


def test_flags_override_the_preset():
    cfg = parse("--preset", "seed", "--epochs", "2", "--learning-rate", "0.5")
    assert (cfg.preset, cfg.model, cfg.schedule) == ("seed", "seed_cnn", "step")  # from the preset
    assert (cfg.epochs, cfg.learning_rate) == (2, 0.5)  # from the flags
    assert PRESETS["seed"]["epochs"] != 2


def test_a_flag_equal_to_the_dataclass_default_still_beats_the_preset():
    assert PRESETS["seed"]["precision"] != DEFAULTS.precision
    assert parse("--preset", "seed", "--precision", DEFAULTS.precision).precision == DEFAULTS.precision


def test_flag_types():
    cfg = parse("--subset", "100", "--clipnorm", "1.5", "--mean", "0.5", "--std", "(0.2, 0.3, 0.4)",
                "--data-dir", "/some/where", "--verbose", "0")
    assert cfg.subset == 100 and isinstance(cfg.subset, float)  # a count N > 1 or a fraction
    assert cfg.clipnorm == 1.5 and isinstance(cfg.clipnorm, float)
    assert cfg.mean == 0.5 and cfg.std == (0.2, 0.3, 0.4)
    assert cfg.data_dir == "/some/where" and cfg.verbose == "0"


def test_boolean_flags():
    assert parse().flip is True
    assert parse("--no-flip").flip is False
    assert parse("--preset", "seed", "--no-flip", "--flip").flip is True
    assert parse("--no-tta").tta is False and parse("--preset", "seed").tta is False
    assert parse("--no-resume").resume is False


def test_tta_shift_is_a_choice_of_a_few_pixels(capsys):
    assert parse("--preset", "fast").tta_shift == 1 and parse("--preset", "seed").tta_shift == 0
    with pytest.raises(SystemExit):
        parse("--tta-shift", "9")
    assert "invalid choice: 9" in capsys.readouterr().err


def test_unknown_preset_from_the_command_line():
    with pytest.raises(ZooError, match="Unknown preset 'nope'. Known presets: seed, fast, default"):
        parse("--preset", "nope")


def test_unknown_default_preset_is_a_zoo_error():
    with pytest.raises(ZooError, match="Unknown preset 'default'. Known presets: only"):
        parse_config(Config, {"only": {}}, [])


def test_unknown_key_in_a_preset():
    with pytest.raises(ZooError, match="preset 'default': unknown setting.*epochz"):
        parse_config(Config, {"default": {"epochz": 3}}, [])


@pytest.mark.parametrize("argv", [["--optimizer", "foo"], ["--schedule", "linear"], ["--precision", "fp8"],
                                  ["--epochs", "many"], ["--no-such-flag"], ["--model-arg", "depth"]])
def test_bad_flags_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        parse(*argv)
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "0"], "--batch-size must be >= 1. Received: --batch-size 0"),
    (["--epochs", "-1"], "--epochs must be >= 0. Received: --epochs -1"),
    (["--subset", "-5"], "--subset must be > 0. Received: --subset -5.0"),
    (["--learning-rate", "nan"], "--learning-rate must be a finite number > 0. Received: --learning-rate nan"),
    (["--learning-rate=-inf"], "--learning-rate must be a finite number > 0. Received: --learning-rate -inf"),
    (["--learning-rate", "0"], "--learning-rate must be > 0. Received: --learning-rate 0.0"),
    (["--momentum", "1.5"], "--momentum must be in [0, 1]. Received: --momentum 1.5"),
    (["--validation-split", "1"], "--validation-split must be in [0, 1). Received: --validation-split 1.0"),
    (["--pct-start", "0"], "--pct-start must be in (0, 1). Received: --pct-start 0.0"),
    (["--clipnorm", "0"], "--clipnorm must be > 0. Received: --clipnorm 0.0"),
    (["--seed", "-1"], "--seed must be in [0, 4294967296). Received: --seed -1"),
    (["--std", "(0.2, 0, 0.3)"], "--std must be > 0. Received: --std (0.2, 0, 0.3)"),
    (["--std", "abc"], "--std must be a number > 0. Received: --std 'abc'"),
    (["--mean", "2"], "--mean must be in [0, 1]. Received: --mean 2"),
    (["--crop-padding", "-1"], "--crop-padding must be >= 0. Received: --crop-padding -1"),
])
def test_numbers_out_of_range_are_one_line_errors_naming_the_flag(argv, message):
    with pytest.raises(ZooError) as e:
        parse(*argv)
    assert str(e.value) == message


def test_clipnorm_and_clipvalue_are_one_or_the_other():
    with pytest.raises(ZooError, match=r"^Set --clipnorm or --clipvalue, not both\. Received: --clipnorm 1.0 --clipvalue 2.0$"):
        parse("--clipnorm", "1", "--clipvalue", "2")


def test_range_edges_are_accepted():
    cfg = parse("--epochs", "0", "--subset", "1", "--momentum", "0", "--validation-split", "0", "--seed", "4294967295",
                "--weight-decay", "0", "--label-smoothing", "0", "--std", "1e-3")
    assert (cfg.epochs, cfg.subset, cfg.momentum, cfg.validation_split, cfg.std) == (0, 1, 0.0, 0.0, 1e-3)


def task_configs():
    from tasks.speech import commands, digits
    from tasks.text import sentiment, translation
    from tasks.vision import cifar10

    return [(m.__name__, m.Config, m.PRESETS) for m in (cifar10, sentiment, translation, commands, digits)]


def float_flags(cls):
    hints = typing.get_type_hints(cls)
    return [f.name for f in dataclasses.fields(cls) if hints[f.name] in (float, typing.Optional[float])]


@pytest.mark.parametrize("name, cls, presets", task_configs(), ids=[t[0] for t in task_configs()])
def test_every_float_flag_of_every_task_refuses_nan_and_infinity(name, cls, presets):
    flags = float_flags(cls)
    assert "learning_rate" in flags and "validation_split" in flags
    for flag in flags:
        for text in ("nan", "inf", "-inf"):
            option = "--" + flag.replace("_", "-")
            with pytest.raises(ZooError, match=rf"^{option} must be a finite number.*Received: {option} -?(nan|inf)$"):
                parse_config(cls, presets, [f"{option}={text}"])


@pytest.mark.parametrize("name, cls, presets", task_configs(), ids=[t[0] for t in task_configs()])
def test_every_declared_bound_of_every_task_is_checked(name, cls, presets):
    checked = 0
    for f in dataclasses.fields(cls):
        bounds = _declared_bounds(cls, f.name)
        option = "--" + f.name.replace("_", "-")
        for key, outside in (("ge", -1), ("gt", 0), ("le", 1), ("lt", 0)):
            if key in bounds:
                value = bounds[key] + outside if key != "le" else bounds[key] + 1
                with pytest.raises(ZooError, match=rf"^{option} must be .*Received: {option} "):
                    parse_config(cls, presets, [f"{option}={value!r}"])
                checked += 1
    assert checked >= 15


def test_a_new_field_gets_its_range_checked_for_free_and_a_redeclared_one_keeps_it():
    from tasks.speech.commands import Config as CommandsConfig

    @dataclasses.dataclass
    class Extended(Config):
        heads: int = option(4, "attention heads", ge=1)
        batch_size: int = option(32, "another default, the same range")

    assert Extended().heads == 4
    with pytest.raises(ZooError, match=r"^--heads must be >= 1\. Received: --heads 0$"):
        parse_config(Extended, PRESETS, ["--heads", "0"])
    with pytest.raises(ZooError, match=r"^--batch-size must be >= 1"):
        parse_config(Extended, PRESETS, ["--batch-size", "0"])
    # The speech tasks declare sample_rate again with their own default: SpeechConfig's range holds.
    with pytest.raises(ZooError, match=r"^--sample-rate must be >= 1000\. Received: --sample-rate 10$"):
        dataclasses.replace(CommandsConfig(), sample_rate=10)


def test_a_preset_with_a_value_out_of_range_is_an_error():
    with pytest.raises(ZooError, match=r"--epochs must be >= 0"):
        parse_config(Config, {"default": {"epochs": -3}}, [])


def test_model_args_merge_with_the_presets_model_kwargs():
    preset_kwargs = dict(PRESETS["default"]["model_kwargs"])
    cfg = parse("--model-arg", "stem_width=8", "--model-arg", "logit_scale=0.5")
    assert cfg.model == "airbench"
    assert cfg.model_kwargs == {**preset_kwargs, "stem_width": 8, "logit_scale": 0.5}
    assert PRESETS["default"]["model_kwargs"] == preset_kwargs  # the preset is not modified
    cfg = parse("--model-arg", "widths=(8, 16, 32)")
    assert cfg.model_kwargs["widths"] == (8, 16, 32)


def test_model_args_parse_python_literals():
    cfg = parse("--model", "resnet", "--model-arg", "depth=56", "--model-arg", "width=32",
                "--model-arg", "kernel_initializer=he_uniform")
    assert cfg.model_kwargs == {"depth": 56, "width": 32, "kernel_initializer": "he_uniform"}
    assert isinstance(cfg.model_kwargs["depth"], int) and isinstance(cfg.model_kwargs["width"], int)


def test_another_model_does_not_inherit_the_presets_model_kwargs():
    from zoo.registry import build_model

    assert "model_kwargs" in PRESETS["default"]
    cfg = parse("--model", "resnet", "--model-arg", "depth=8")
    assert cfg.model_kwargs == {"depth": 8}
    assert build_model(cfg.model, input_shape=(16, 16, 3), **cfg.model_kwargs).name == "resnet8_w16"
    assert parse("--model", "seed_cnn").model_kwargs == {}
    # naming the preset's own model keeps them
    assert parse("--model", "airbench").model_kwargs == PRESETS["default"]["model_kwargs"]


def test_every_preset_parses_and_builds_its_model():
    from zoo.registry import builder_arguments, list_models

    for name in PRESETS:
        cfg = parse("--preset", name)
        assert cfg.model in list_models("vision")
        assert set(cfg.model_kwargs) <= set(builder_arguments(cfg.model))


def test_save_config_round_trips(tmp_path):
    cfg = parse("--preset", "seed", "--epochs", "3")
    save_config(cfg, tmp_path / "config.json")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["epochs"] == 3 and saved["model"] == "seed_cnn"
    assert set(saved) == {f.name for f in dataclasses.fields(Config)}


def test_training_optimizer_from_a_config():
    cfg = parse("--optimizer", "momentum", "--momentum", "0.8", "--learning-rate", "0.3", "--schedule", "step",
                "--step-epochs", "7", "--step-factor", "0.5", "--epochs", "20")
    opt = make_training_optimizer(cfg, steps_per_epoch=10)
    assert isinstance(opt, keras.optimizers.SGD) and not opt.nesterov and opt.momentum == 0.8
    schedule = opt.get_config()["learning_rate"]
    assert schedule["class_name"] == "StepDecay"
    assert schedule["config"] == dict(initial_learning_rate=0.3, step_size=70, factor=0.5)


# --- optimizers -------------------------------------------------------------------------


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_builds_and_steps(name):
    opt = make_optimizer(name, 0.1, weight_decay=1e-4)
    assert isinstance(opt, keras.optimizers.Optimizer)
    v = keras.Variable(np.ones((2, 2), "float32"))
    opt.apply_gradients([(keras.ops.ones((2, 2)), v)])
    assert np.all(keras.ops.convert_to_numpy(v) < 1.0)


def test_optimizer_details():
    assert make_optimizer("nesterov", 0.1, momentum=0.8).nesterov is True
    assert make_optimizer("nesterov", 0.1, momentum=0.8).momentum == 0.8
    assert make_optimizer("momentum", 0.1).nesterov is False
    assert make_optimizer("sgd", 0.1).momentum == 0.0
    assert make_optimizer("sgd", 0.1, weight_decay=0.0).weight_decay is None
    assert make_optimizer("adamw", 0.1).weight_decay == 0.004
    assert make_optimizer("adam", 0.1, clipnorm=1.0).clipnorm == 1.0


@pytest.mark.parametrize("name, nesterov", [("momentum", False), ("nesterov", True)])
def test_offset_lr_scale_steps_normalization_offsets_that_many_times_faster(name, nesterov):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.BatchNormalization(),
                              keras.layers.LayerNormalization()])
    grads = [np.full(v.shape, 0.5, "float32") for v in model.trainable_variables]
    steps = {}
    for scale in (1.0, 64.0):
        start = [keras.ops.convert_to_numpy(v).copy() for v in model.trainable_variables]
        opt = make_optimizer(name, 0.01, momentum=0.8, weight_decay=0.1, offset_lr_scale=scale)
        assert opt.nesterov is nesterov and opt.momentum == 0.8
        for _ in range(3):
            opt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], model.trainable_variables))
        steps[scale] = {v.path: keras.ops.convert_to_numpy(v) - s for v, s in zip(model.trainable_variables, start)}
        for v, s in zip(model.trainable_variables, start):
            v.assign(s)
    offsets = [path for path in steps[1.0] if path.endswith("/beta")]
    assert len(offsets) == 2
    for path, step in steps[64.0].items():
        if path in offsets:  # beta starts at 0: weight decay adds nothing, the step is 64x
            np.testing.assert_allclose(step, 64 * steps[1.0][path], rtol=1e-5)
        else:
            np.testing.assert_allclose(step, steps[1.0][path], rtol=1e-6)
    assert make_optimizer("nesterov", 0.1, offset_lr_scale=64.0).get_config()["offset_lr_scale"] == 64.0
    assert type(make_optimizer("nesterov", 0.1)) is keras.optimizers.SGD  # the plain optimizer when unscaled


def test_offset_lr_scale_is_for_the_sgd_optimizers():
    with pytest.raises(ValueError, match="offset_lr_scale is for sgd, momentum and nesterov"):
        make_optimizer("adam", 0.1, offset_lr_scale=2.0)
    with pytest.raises(ZooError, match="--offset-lr-scale is for the sgd, momentum and nesterov optimizers"):
        parse("--optimizer", "adamw", "--offset-lr-scale", "64")
    opt = make_training_optimizer(parse("--offset-lr-scale", "64", "--optimizer", "nesterov"), steps_per_epoch=10)
    assert opt.offset_lr_scale == 64.0 and opt.nesterov


def test_clipnorm_and_clipvalue_together():
    with pytest.raises(ValueError, match="clipnorm or clipvalue, not both"):
        make_optimizer("sgd", 0.1, clipnorm=1.0, clipvalue=1.0)


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="optimizer must be one of.*Received: 'lion'"):
        make_optimizer("lion", 0.1)


# --- schedules --------------------------------------------------------------------------


def lr(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_constant_schedule():
    assert make_schedule("constant", 0.1, steps_per_epoch=10, epochs=5) == 0.1


def test_step_schedule():
    s = make_schedule("step", 0.1, steps_per_epoch=10, epochs=30, step_epochs=7, step_factor=0.5)
    assert lr(s, 0) == pytest.approx(0.1)
    assert lr(s, 69) == pytest.approx(0.1)
    assert lr(s, 70) == pytest.approx(0.05)
    assert lr(s, 140) == pytest.approx(0.025)


def test_cosine_schedule_with_warmup():
    s = make_schedule("cosine", 0.1, steps_per_epoch=10, epochs=10, warmup_epochs=2)
    assert lr(s, 0) == pytest.approx(0.0, abs=1e-7)
    assert lr(s, 10) == pytest.approx(0.05, rel=1e-4)
    assert lr(s, 20) == pytest.approx(0.1, rel=1e-4)
    assert lr(s, 60) == pytest.approx(0.05, rel=1e-4)  # half way through the decay
    assert lr(s, 100) == pytest.approx(0.0, abs=1e-6)
    after = [lr(s, t) for t in range(20, 101, 10)]
    assert after == sorted(after, reverse=True)


def test_cosine_schedule_without_warmup():
    s = make_schedule("cosine", 0.1, steps_per_epoch=10, epochs=10)
    assert lr(s, 0) == pytest.approx(0.1)
    assert lr(s, 100) == pytest.approx(0.0, abs=1e-6)


def test_onecycle_schedule():
    s = make_schedule("onecycle", 0.1, steps_per_epoch=10, epochs=10, pct_start=0.25)
    values = [lr(s, t) for t in range(101)]
    assert int(np.argmax(values)) == 25
    assert values[25] == pytest.approx(0.1)
    assert values[0] == pytest.approx(0.1 / 25)
    assert values[100] < 1e-4
    assert values[:26] == sorted(values[:26]) and values[25:] == sorted(values[25:], reverse=True)


@pytest.mark.parametrize("schedule", [StepDecay(0.1, 7, 0.5), OneCycle(0.1, 100, pct_start=0.3)])
def test_schedules_serialize(schedule):
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert type(clone) is type(schedule) and clone.get_config() == schedule.get_config()
    assert lr(clone, 40) == pytest.approx(lr(schedule, 40))


def test_unknown_schedule():
    with pytest.raises(ValueError, match="schedule must be one of"):
        make_schedule("linear", 0.1, steps_per_epoch=10, epochs=10)
    assert "cosine" in SCHEDULES


# --- loss and precision -----------------------------------------------------------------


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("label_shape", [(8,), (8, 1)])
def test_smoothed_sparse_loss_matches_keras_on_one_hot_labels(smoothing, label_shape):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(8, 5)).astype("float32") * 3
    labels = rng.integers(0, 5, size=8)
    ours = SparseCategoricalCrossentropyWithSmoothing(smoothing)(labels.reshape(label_shape), logits)
    reference = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)(
        np.eye(5, dtype="float32")[labels], logits)
    np.testing.assert_allclose(float(ours), float(reference), rtol=1e-6)
    if not smoothing:
        sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
        np.testing.assert_allclose(float(ours), float(sparse), rtol=1e-6)


def test_smoothed_loss_serializes():
    loss = SparseCategoricalCrossentropyWithSmoothing(0.3)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(clone, SparseCategoricalCrossentropyWithSmoothing) and clone.label_smoothing == 0.3


AMX_XEON = "fpu sse2 avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile amx_int8"
ZEN4 = "fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni"
SKYLAKE = "fpu sse2 avx2 avx512f avx512bw avx512_vnni"
HASWELL = "fpu sse2 avx avx2 fma"


@pytest.mark.parametrize("flags, expected", [(AMX_XEON, "mixed_bfloat16"), (ZEN4, "mixed_bfloat16"),
                                             (SKYLAKE, "float32"), (HASWELL, "float32"), ("", "float32")])
def test_auto_precision_on_a_cpu_follows_its_bf16_instructions(monkeypatch, tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("".join(f"processor\t: {i}\nmodel name\t: a CPU\nflags\t\t: {flags}\n\n" for i in range(2)))
    monkeypatch.setattr(precision, "gpu_compute_capabilities", lambda: [])
    read = precision.cpu_flags.__wrapped__  # the reader without its cache
    monkeypatch.setattr(precision, "cpu_flags", lambda: read(str(cpuinfo)))
    assert precision.cpu_has_bf16() == (expected == "mixed_bfloat16")
    assert resolve_precision("auto") == expected
    assert set_precision("auto") == expected and keras.config.dtype_policy().name == expected


@pytest.mark.parametrize("flags", [AMX_XEON, ZEN4, SKYLAKE])
def test_auto_precision_on_a_cpu_is_bfloat16_only_for_the_domains_measured_faster(monkeypatch, flags):
    monkeypatch.setattr(precision, "gpu_compute_capabilities", lambda: [])
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags.split()))
    bf16 = "mixed_bfloat16" if "avx512_bf16" in flags else "float32"
    assert resolve_precision("auto", "vision") == bf16
    for domain in ("speech", "text", "seq2seq"):
        assert resolve_precision("auto", domain) == "float32"
        assert resolve_precision("mixed_bfloat16", domain) == "mixed_bfloat16"  # asked for: given
    monkeypatch.setattr(precision, "gpu_compute_capabilities", lambda: [(8, 0)])
    assert resolve_precision("auto", "speech") == "mixed_float16"  # GPUs: every domain


def test_a_run_resolves_auto_precision_by_its_model(monkeypatch):
    from zoo.registry import list_models, model_domain
    from zoo.train import _domain

    assert precision.CPU_BF16_DOMAINS <= {model_domain(m) for m in list_models()}
    assert _domain("airbench") == "vision" and _domain("ds_cnn") == "speech" and _domain("bilstm") == "text"
    assert _domain("bahdanau_lstm") == "seq2seq" and _domain("no_such_model") is None and _domain(None) is None


def test_cpu_flags_of_an_unreadable_cpuinfo_are_empty(tmp_path):
    assert precision.cpu_flags.__wrapped__(str(tmp_path / "missing")) == frozenset()
    assert not precision.cpu_has_bf16(frozenset())


@pytest.mark.parametrize("caps, expected", [([(8, 0), (9, 0)], "mixed_float16"), ([(6, 1)], "float32")])
def test_auto_precision_on_gpus_ignores_the_cpu(monkeypatch, caps, expected):
    monkeypatch.setattr(precision, "gpu_compute_capabilities", lambda: caps)
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(AMX_XEON.split()))
    assert resolve_precision("auto") == expected


def test_auto_precision_on_this_machine_reads_its_cpu():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible")
    expected = "mixed_bfloat16" if precision.cpu_has_bf16() else "float32"
    assert resolve_precision("auto") == expected


@pytest.mark.parametrize("name", [p for p in PRECISIONS if p != "auto"])
def test_explicit_precisions(name):
    assert resolve_precision(name) == name
    assert set_precision(name) == name
    assert keras.config.dtype_policy().name == name  # the autouse fixture resets it


def test_invalid_precision():
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("float8")


def test_presets_leave_the_precision_to_auto():
    # auto picks what the machine and the model train fastest in; only a preset that reproduces
    # a published float32 recipe names one.
    import importlib

    for module in ("tasks.vision.cifar10", "tasks.vision.classify", "tasks.speech.commands", "tasks.speech.digits",
                   "tasks.speech.classify", "tasks.text.sentiment", "tasks.text.classify", "tasks.text.translation"):
        presets = importlib.import_module(module).PRESETS
        named = {name: p["precision"] for name, p in presets.items() if "precision" in p}
        assert named == ({"seed": "float32"} if "seed" in presets else {}), module
