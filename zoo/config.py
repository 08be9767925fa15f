"""Configuration flows one way: dataclass defaults -> preset -> command-line flags -> builder.

A task declares a dataclass (fields with defaults and, in `metadata`, help and choices) and a
dict of presets. `parse_config` builds the argparse parser from the dataclass, applies the
preset, then only the flags the user actually gave. Unknown keys are errors at every stage.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import math
import numbers
import typing
from dataclasses import dataclass, field
from pathlib import Path

from zoo.distribute import DISTRIBUTIONS
from zoo.errors import ZooError
from zoo.finetune import FREEZE, FREEZE_HELP
from zoo.optim import OPTIMIZERS, SCHEDULES
from zoo.precision import PRECISIONS


BOUNDS = ("ge", "gt", "le", "lt")


def option(default, help, choices=None, *, ge=None, gt=None, le=None, lt=None, **kwargs):
    """A dataclass field with its command-line help, choices and range.

    Args:
        default: the field's default (a dict or list is copied for each instance).
        help: the flag's help text.
        choices: the values the flag takes, if only a few.
        ge, gt, le, lt: bounds of a numeric field (>=, >, <=, <), which `check_config` checks
            for every config built; a float is also refused NaN and infinities, bounds or not.
    """
    metadata = dict(help=help, choices=choices, ge=ge, gt=gt, le=le, lt=lt)
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata, **kwargs)


def describe_range(ge=None, gt=None, le=None, lt=None) -> str:
    """The range of the bounds in words: ">= 1", "< 1", "in [0, 1)"; "a number" if there are none."""
    def num(x):
        return str(x) if isinstance(x, int) else f"{x:g}"

    low = ("[", ge) if ge is not None else ("(", gt) if gt is not None else None
    high = ("]", le) if le is not None else (")", lt) if lt is not None else None
    if low and high:
        return f"in {low[0]}{num(low[1])}, {num(high[1])}{high[0]}"
    if low:
        return f"{'>=' if low[0] == '[' else '>'} {num(low[1])}"
    if high:
        return f"{'<=' if high[0] == ']' else '<'} {num(high[1])}"
    return "a number"


def check_number(flag: str, value, *, ge=None, gt=None, le=None, lt=None) -> None:
    """A one-line `ZooError` naming `flag` unless `value` is a finite number within the bounds
    (one bound or none may be given on each side; `value` may also be a tuple or list of numbers,
    each checked), e.g. `--batch-size must be >= 1. Received: --batch-size 0`."""
    expected = describe_range(ge=ge, gt=gt, le=le, lt=lt)
    within = "" if expected == "a number" else " " + expected
    values = value if isinstance(value, (tuple, list)) else [value]
    if not all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in values):
        raise ZooError(f"{flag} must be a number{within}. Received: {flag} {value!r}")
    for x in values:
        if not math.isfinite(x):
            raise ZooError(f"{flag} must be a finite number{within}. Received: {flag} {value}")
        if (ge is not None and x < ge) or (gt is not None and x <= gt) or (le is not None and x > le) \
                or (lt is not None and x >= lt):
            raise ZooError(f"{flag} must be {expected}. Received: {flag} {value}")


def _declared_bounds(cls, name) -> dict:
    """The bounds of field `name`, from the nearest class in `cls`'s MRO that declares any."""
    for c in cls.__mro__:
        f = getattr(c, "__dataclass_fields__", {}).get(name)
        bounds = {k: f.metadata[k] for k in BOUNDS if f is not None and f.metadata.get(k) is not None}
        if bounds:
            return bounds
    return {}


def check_config(cfg) -> None:
    """A `ZooError` naming the flag of the first field of `cfg` whose value is out of the range
    its `option` declares, or a float that is not finite. Fields that are None (unset) pass. A
    subclass that declares a field again (another default) keeps the range of its base class."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        bounds = _declared_bounds(type(cfg), f.name)
        if value is None or isinstance(value, bool):
            continue
        if bounds or isinstance(value, float) or (isinstance(value, (tuple, list))
                                                  and any(isinstance(x, float) for x in value)):
            check_number(_flag(f.name), value, **bounds)


@dataclass
class TrainConfig:
    """What every task's training run takes. Tasks subclass it with their data and model fields."""

    preset: str = option("default", "named recipe; flags given on the command line override it")
    epochs: int = option(10, "training epochs", ge=0)
    batch_size: int = option(128, "global batch size", ge=1)
    optimizer: str = option("nesterov", "optimizer", OPTIMIZERS)
    learning_rate: float = option(0.01, "base (peak) learning rate", gt=0)
    momentum: float = option(0.9, "momentum of momentum/nesterov", ge=0, le=1)
    weight_decay: float = option(0.0, "decoupled weight decay (0 turns it off)", ge=0)
    clipnorm: typing.Optional[float] = option(None, "clip each gradient to this norm", gt=0)
    clipvalue: typing.Optional[float] = option(None, "clip gradients to [-v, v]", gt=0)
    schedule: str = option("cosine", "learning-rate schedule", SCHEDULES)
    warmup_epochs: float = option(0.0, "cosine: epochs of linear warm-up", ge=0)
    step_epochs: float = option(7.0, "step: decay every this many epochs", gt=0)
    step_factor: float = option(0.7, "step: multiply the learning rate by this", gt=0)
    pct_start: float = option(0.25, "onecycle: fraction of the run spent warming up", gt=0, lt=1)
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy loss", ge=0, lt=1)
    offset_lr_scale: float = option(1.0, "learning-rate multiplier for normalization offsets (beta); sgd, momentum "
                                         "and nesterov (airbench: 64)", gt=0)
    lookahead: int = option(0, "every this many steps, average the weights with their slow copy, more strongly as "
                               "the run goes on (airbench's Lookahead: 5; 0 turns it off)", ge=0)
    early_stopping_patience: typing.Optional[int] = option(None, "stop after this many epochs without val improvement",
                                                                ge=0)
    precision: str = option("auto", "dtype policy (auto: mixed_float16 on GPUs with cc >= 7.0; image models "
                                    "in mixed_bfloat16 on CPUs with AMX or AVX-512 BF16; else float32)", PRECISIONS)
    distribute: str = option("auto", "distribution strategy", DISTRIBUTIONS)
    jit_compile: str = option("auto", "XLA (auto: on for GPUs; off on CPUs, where oneDNN measured faster)", ("auto", "true", "false"))
    seed: int = option(0, "seeds Python, NumPy, TensorFlow and Keras", ge=0, lt=2**32)
    deterministic: bool = option(False, "deterministic tf.data and TF ops (slower)")
    data_dir: typing.Optional[str] = option(None, "local dataset directory (default: $ZOO_DATA_DIR, else TFDS)")
    output_dir: typing.Optional[str] = option(None, "run directory (default: runs/<task>-<preset>)")
    validation_split: float = option(0.2, "fraction of the training set held out for validation", ge=0, lt=1)
    subset: typing.Optional[float] = option(None, "a count N > 1 or a fraction 0 < F <= 1 of the training examples, "
                                                  "stratified by class, drawn with --seed", gt=0)
    resume: bool = option(True, "resume an interrupted run from its last finished epoch (--no-resume starts over, "
                                "moving backup/, history.csv and best.weights.h5 to previous-<time>/)")
    overwrite: bool = option(False, "train anew in a run directory that holds a run, finished or not (a finished "
                                    "one is otherwise left as it is), moving its outputs to previous-<time>/")
    tensorboard: bool = option(True, "write TensorBoard logs")
    export: bool = option(True, "export a SavedModel at the end")
    export_weights: str = option("float32", "dtype the SavedModel stores the weights in (float16: half the size; "
                                            "int8: Embedding and Dense layers quantized by Keras' Model.quantize, "
                                            "a quarter; evaluation then uses the stored weights)",
                                 ("float32", "float16", "int8"))
    verbose: str = option("auto", "Keras fit verbosity: auto, 0, 1 or 2", ("auto", "0", "1", "2"))
    weights: typing.Optional[str] = option(None, "start from these .weights.h5 (with --epochs 0: evaluate and export only)")

    def __post_init__(self):
        from zoo.data import validate_subset

        check_config(self)
        validate_subset(self.subset)
        if self.offset_lr_scale != 1.0 and self.optimizer not in ("sgd", "momentum", "nesterov"):
            raise ZooError(f"--offset-lr-scale is for the sgd, momentum and nesterov optimizers. Received: "
                           f"--optimizer {self.optimizer} --offset-lr-scale {self.offset_lr_scale}")
        if self.clipnorm is not None and self.clipvalue is not None:
            raise ZooError(f"Set --clipnorm or --clipvalue, not both. Received: --clipnorm {self.clipnorm} "
                           f"--clipvalue {self.clipvalue}")


def _flag(name):
    return "--" + name.replace("_", "-")


def _parse_value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _model_arg(text):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), _parse_value(value)


def describe_default(value) -> str:
    """A field's default as its help shows it: None (unset) and empty containers as ''."""
    if value is None or value == {} or value == [] or value == ():
        return ""
    return value if isinstance(value, str) else repr(value)


def describe_presets(presets: dict, default: str = "default", width: int = 100) -> str:
    """What each preset sets, one entry per preset, for a parser's epilog (`default`: the preset
    a command without --preset uses)."""
    import textwrap

    lines = [f"presets (--preset NAME sets these; flags override them; the defaults above are {default!r}'s):"]
    for name, settings in presets.items():
        text = ", ".join(f"{k}={v if isinstance(v, str) else repr(v)}" for k, v in settings.items())
        lines.append(textwrap.fill(text, width, initial_indent=f"  {name}: ", subsequent_indent="      "))
    return "\n".join(lines)


def build_parser(cls, prog=None, description=None, presets=None):
    """An argparse parser with one flag per dataclass field; defaults are left unset so that
    only flags the user typed override the preset. The help shows each flag's default (what a
    command without flags uses: the dataclass default, or the default preset's setting) and,
    given `presets`, the preset names as the choices of `--preset` and what each one sets."""
    parser = argparse.ArgumentParser(prog=prog, description=description, argument_default=argparse.SUPPRESS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    hints = typing.get_type_hints(cls)
    # What to train on first, then the preset: the flags a newcomer needs before all the others.
    first = ("data", "preset", "init_from")  # what a newcomer reads --help for
    fields = sorted(dataclasses.fields(cls), key=lambda f: first.index(f.name) if f.name in first else len(first))
    defaults = {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                for f in fields}
    if presets:
        parser.epilog = describe_presets(presets, defaults.get("preset"))
    defaults.update((presets or {}).get(defaults.get("preset"), {}))
    for f in fields:
        meta = f.metadata
        kind = hints[f.name]
        choices = meta.get("choices")
        # The presets show as --preset's choices; parse_config refuses an unknown one in one line.
        metavar = "{" + ",".join(presets) + "}" if f.name == "preset" and presets else None
        help_text = meta.get("help", "")
        default = describe_default(defaults[f.name])
        if default != "" and "default" not in help_text:
            # argparse formats help with %-substitution: a literal % must be doubled.
            help_text += f" (default: {default})".replace("%", "%%")
        if kind is bool:
            parser.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, help=help_text)
        elif f.name == "model_kwargs":
            parser.add_argument("--model-arg", dest="model_kwargs", action="append", type=_model_arg,
                                metavar="KEY=VALUE", help=help_text)
        else:
            base = typing.get_args(kind)[0] if typing.get_origin(kind) is typing.Union else kind
            parser.add_argument(_flag(f.name), type=base if base in (int, float, str) else _parse_value,
                                choices=choices, metavar=metavar, help=help_text)
    return parser


def apply_overrides(cfg, overrides: dict, source: str):
    """Returns `cfg` with `overrides` applied; an unknown key names its source."""
    names = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ZooError(f"{source}: unknown setting(s) {', '.join(unknown)}. Known: {', '.join(sorted(names))}.")
    overrides = dict(overrides)
    if "model_kwargs" in overrides and isinstance(overrides["model_kwargs"], list):
        overrides["model_kwargs"] = {**cfg.model_kwargs, **dict(overrides["model_kwargs"])}
    return dataclasses.replace(cfg, **overrides)


def parse_config(cls, presets: dict, argv=None, prog=None, description=None):
    """Dataclass defaults -> preset -> command-line flags. Returns the resolved config."""
    parser = build_parser(cls, prog=prog, description=description, presets=presets)
    flags = vars(parser.parse_args(argv))
    preset = flags.get("preset", cls.preset if hasattr(cls, "preset") else "default")
    if preset not in presets:
        raise ZooError(f"Unknown preset {preset!r}. Known presets: {', '.join(presets)}.")
    cfg = apply_overrides(cls(), {**presets[preset], "preset": preset}, f"preset {preset!r}")
    if "model" in flags and hasattr(cfg, "model_kwargs") and flags["model"] != getattr(cfg, "model", None):
        # The preset's builder arguments are for the preset's model; another model starts from its defaults.
        cfg = dataclasses.replace(cfg, model_kwargs=cls().model_kwargs)
    return apply_overrides(cfg, flags, "command line")


def to_argv(overrides: dict) -> list:
    """The command-line flags that set `overrides` (config field -> value): what `parse_config`
    reads back into the same values. `model_kwargs` become `--model-arg KEY=VALUE` flags, which
    add to the preset's builder arguments as typed ones do; builder arguments that are None are
    left out (the builder's default holds)."""
    argv = []
    for name, value in overrides.items():
        if name == "model_kwargs":
            argv += [a for k, v in value.items() if v is not None for a in ("--model-arg", f"{k}={v!r}")]
        elif isinstance(value, bool):
            argv.append(_flag(name) if value else "--no-" + _flag(name)[2:])
        elif value is None:
            raise ZooError(f"{name}=None: a setting can not be unset from the command line.")
        else:
            argv += [_flag(name), value if isinstance(value, str) else repr(value)]
    return argv


@dataclass
class FineTuneOptions:
    """What the recipes' tasks add for fine-tuning: the entry to start from, what stays frozen and
    an optional first stage that trains the head alone (`zoo.finetune`)."""

    init_from: typing.Optional[str] = option(None, "start from a pretrained entry (a name from python -m zoo.models, "
                                                   "or an entry's path): its architecture, weights and preprocessing; "
                                                   "the head (logits) is replaced when the labels differ")
    freeze: str = option("none", FREEZE_HELP, FREEZE)
    head_epochs: int = option(0, "with --init-from: first train the head alone for this many epochs, then what --freeze "
                                 "leaves trainable for --epochs at --learning-rate x --fine-tune-lr-scale", ge=0)
    fine_tune_lr_scale: float = option(0.1, "with --head-epochs: the second stage's learning rate, as a fraction of "
                                            "--learning-rate", gt=0, le=1)

    def check_fine_tuning(self):
        if not self.init_from and (self.freeze != "none" or self.head_epochs):
            raise ZooError("--freeze and --head-epochs need --init-from ENTRY: without it every weight is new.")


def save_config(cfg, path):
    Path(path).write_text(json.dumps(dataclasses.asdict(cfg), indent=2, sort_keys=True) + "\n")


@dataclass
class SpeechConfig(TrainConfig):
    """What the speech tasks add: the model, the clip format and waveform augmentation.

    SpecAugment is part of the model (its builder arguments: time_masks, time_mask_width,
    freq_masks, freq_mask_width), as is the spectrogram (num_mel_bins, window_ms, hop_ms).
    """

    model: str = option("ds_cnn", "registered speech model (see zoo.list_models('speech'))")
    model_kwargs: dict = option({}, "builder argument, repeatable: --model-arg filters=128 --model-arg time_masks=0")
    sample_rate: int = option(16000, "the model's sample rate in Hz; clips at other rates are resampled", ge=1000)
    clip_seconds: float = option(1.0, "clips are padded or trimmed (centred) to this length", gt=0)
    validation_split: float = option(0.1, "fraction held out for validation (by speaker where the corpus has them)",
                                     ge=0, lt=1)
    test_split: float = option(0.1, "fraction of speakers held out for testing (corpora without an official test split)",
                               ge=0, lt=1)
    time_shift_ms: float = option(100.0, "shift training clips by up to +-this many ms (0 turns it off)", ge=0)
    noise_prob: float = option(0.8, "probability of mixing a _silence_ (background noise) clip into a training clip",
                              ge=0, le=1)
    noise_volume: float = option(0.1, "the noise clip is scaled by a uniform gain in [0, this]", ge=0)

    @property
    def num_samples(self) -> int | None:
        """Samples a clip: `sample_rate * clip_seconds`; None when the data decides the length."""
        return None if self.clip_seconds is None else int(round(self.sample_rate * self.clip_seconds))
