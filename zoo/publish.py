"""Publishing a trained run as a pretrained entry of `saved_models/`.

    python -m zoo.publish RUN_DIR NAME              # e.g. python -m zoo.publish runs/speech.digits-default spoken_digits
    python -m zoo.publish RUN_DIR NAME --force      # replace an entry

Copies the run's SavedModel (`RUN_DIR/saved_model/`, or RUN_DIR itself) into
`saved_models/NAME/`, replaces its `metadata.json` by the model card (task, dataset and split,
the metric and how it was measured, the check the real-data tests repeat, preprocessing, input
and output spec, parameters, size, the command that reproduces it, package versions, what
loading needs), writes the `SHA256SUMS` manifest, and loads the entry back with `zoo.load` to
run one example through it. An entry over 20 MB, or whose graph `zoo.load` would refuse, is an
error. Commit the entry with git: its files are plain files (no LFS).

Every card follows `zoo/model_card.schema.json` and is checked against it before it is written
(`validate_card`): `signatures` is a dict of name -> inputs and outputs (dtype, shape, meaning),
and no field records a path of the machine that built it (`portable_path`): the data as
`$ZOO_DATA_DIR/...` (relative to ZOO_DATA_DIR or the run's --data-dir) or `tfds:NAME`, run
directories by their name, and the path arguments of `command` the same way.

    python -m zoo.publish --refresh-card NAME [NAME ...]   # rewrite existing cards to the schema

rewrites the card of an entry already published (the model files are left as they are, the
manifest is written again; `--data-dir DIR` names the data directory its run read from, if
that was not ZOO_DATA_DIR).

TF Serving: `python -m zoo.publish RUN_DIR NAME --serving-layout DIR` also writes the entry as
TF Serving loads models, `DIR/NAME/1/` (saved_model.pb, variables/, assets/ when the model has
any, and the card and manifest beside them), and `python -m zoo.publish NAME --serving-layout
DIR` does it for an entry already published. Serve it with `tensorflow_model_server
--model_name=NAME --model_base_path=$PWD/DIR/NAME` (or the tensorflow/serving image with DIR
mounted at /models and MODEL_NAME=NAME); text models and translators need a server built with
the TensorFlow Text ops (`requires` in the card says so). `--serving-version N` writes
`DIR/NAME/N/`: TF Serving serves the highest version.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import re
import shlex
import shutil
from pathlib import Path

from zoo.errors import ZooError
from zoo.jsonutil import dumps_strict, schema_errors

MAX_MB = 20
SCHEMA = Path(__file__).with_name("model_card.schema.json")
DATA_DIR_VARIABLE = "$ZOO_DATA_DIR"




# --- the card's schema, signatures and paths --------------------------------------------------

# What an input or output holds, by its key, where the run's metadata does not say.
MEANINGS = {
    "images": "RGB images, 0-255; normalization inside the graph",
    "image_bytes": "contents of image files, decoded and resized in the graph",
    "texts": "raw UTF-8 texts; normalized and tokenized in the graph",
    "sentences": "raw UTF-8 sentences in the source language; normalized and tokenized in the graph",
    "waveforms": "mono waveforms in [-1, 1] at the model's sample rate",
    "wav_bytes": "contents of WAV files; decoded, downmixed, resampled and padded or trimmed in the graph",
    "probabilities": "class probabilities, in the order of labels",
    "probability": "the probability of the last of the two labels",
    "label": "the most probable label",
    "translation": "the translations, detokenized",
    "score": "the length-penalized log-probability the beam search ranks by",
    "log_prob": "the log-probability of the translation's subwords",
    "source_tokens": "the source's subwords the model read, [START] and [END] included",
    "truncated": "whether the source was cut to max_source_tokens",
}
UNNAMED = {"translator": "the translations, detokenized", None: "class probabilities, in the order of labels"}


@functools.lru_cache(maxsize=1)
def card_schema() -> dict:
    """The JSON Schema every model card follows (`zoo/model_card.schema.json`)."""
    return json.loads(SCHEMA.read_text())


def validate_card(card: dict, where="the model card") -> dict:
    """Returns `card` if it follows `zoo/model_card.schema.json`.

    Raises:
        ZooError: naming the fields that do not (the first five).
    """
    errors = schema_errors(card, card_schema())
    if errors:
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ZooError(f"{where} does not follow {SCHEMA.name}: {'; '.join(errors[:5])}{more}.")
    return card


def _described(run: dict, signature: str, direction: str, key: str, seen=()):
    # The meaning the run's metadata gives, in the card formats the zoo has written: signatures as
    # {name: {inputs: {key: tensor}}}, as {name: {input: {name, meaning}}} or "the same as NAME",
    # and top-level `input`/`output` ({name, meaning or range}, or {key: "dtype[shape], meaning"}).
    one = direction[:-1]
    entry = run.get("signatures").get(signature) if isinstance(run.get("signatures"), dict) else None
    if isinstance(entry, str) and entry.startswith("the same as ") and entry not in seen:
        return _described(run, entry[len("the same as "):], direction, key, (*seen, entry))
    if isinstance(entry, dict):
        tensor = (entry.get(direction) or {}).get(key)
        if isinstance(tensor, dict) and tensor.get("meaning"):
            return tensor["meaning"]
        old = entry.get(one)
        if isinstance(old, dict) and old.get("name", key) == key and old.get("meaning"):
            return old["meaning"]
    old = run.get(one)
    if isinstance(old, dict):
        if isinstance(old.get(key), str) and ", " in old[key]:
            return old[key].split(", ", 1)[1]
        if old.get("name", key) == key and (old.get("meaning") or old.get("range")):
            return old.get("meaning") or old.get("range")
    return None


def card_signatures(specs: dict, run: dict, kind: str | None) -> dict:
    """The card's `signatures`: every signature of `specs` (`zoo.pretrained.signature_specs`, or
    a LiteRT model's), its inputs and outputs with their dtype, shape and meaning. The meanings
    are those `run` (the run's metadata, or an older card) gives, else the zoo's for that key."""
    def described(name, direction, key, spec):
        meaning = (_described(run, name, direction, key) or MEANINGS.get(key)
                   or (UNNAMED.get(kind, UNNAMED[None]) if direction == "outputs" else f"the `{key}` input"))
        return {"dtype": spec["dtype"], "shape": None if spec["shape"] is None else list(spec["shape"]),
                "meaning": meaning}

    return {name: {direction: {key: described(name, direction, key, spec) for key, spec in sig[direction].items()}
                   for direction in ("inputs", "outputs")}
            for name, sig in specs.items()}


def _inside(path: Path, root) -> str | None:
    # `path` relative to `root` (POSIX), or None when it is not inside; symlinks resolved or not.
    for p, r in ((path, Path(os.path.abspath(root))), (path.resolve(), Path(root).resolve())):
        try:
            return p.relative_to(r).as_posix()
        except ValueError:
            continue
    return None


def portable_path(path, *, data_dirs=(), run_dirs=()) -> str | None:
    """`path` as a card records it, without the directories of the machine that wrote it.

    A relative path (as the user gave it) or a spec such as `tfds:NAME` stays as it is. An
    absolute one becomes `$ZOO_DATA_DIR/...` inside one of `data_dirs`, else relative to the
    current directory inside it, else `RUN/...` inside one of `run_dirs` (RUN: its name), else
    `.../NAME` (its last component).

    Args:
        path: a path, a dataset spec or None.
        data_dirs: the data directories the run read from (ZOO_DATA_DIR, its --data-dir).
        run_dirs: run directories, named by their name.
    """
    if path is None:
        return None
    text = str(path)
    p = Path(text).expanduser()
    if not p.is_absolute():
        return text
    p = Path(os.path.normpath(p))
    for root in data_dirs:
        rel = _inside(p, root) if root else None
        if rel is not None:
            return DATA_DIR_VARIABLE if rel == "." else f"{DATA_DIR_VARIABLE}/{rel}"
    rel = _inside(p, Path.cwd())
    if rel is not None:
        return rel
    for root in run_dirs:
        rel = _inside(p, root) if root else None
        if rel is not None:
            name = Path(os.path.normpath(os.path.abspath(root))).name
            return name if rel == "." else f"{name}/{rel}"
    return f".../{p.name}"


def portable_command(command: str | None, *, data_dirs=()) -> str | None:
    """`command` with its absolute path arguments made portable (`portable_path`): the run
    directory of `--output-dir` and the one `--weights` is in are named by their name, paths
    under `data_dirs` become `$ZOO_DATA_DIR/...` (left for the shell to expand). Several
    commands joined by ", then " are each converted."""
    if not command:
        return command
    parts = []
    for part in command.split(", then "):
        words = shlex.split(part)
        runs = [v for flag, v in zip(words, words[1:]) if flag == "--output-dir"]
        runs += [str(Path(v).parent) for flag, v in zip(words, words[1:]) if flag == "--weights"]
        runs += [w.split("=", 1)[1] for w in words if w.startswith("--output-dir=")]

        def quote(word):
            prefix, sep, value = word.partition("=") if word.startswith("--") else ("", "", word)
            new = portable_path(value, data_dirs=data_dirs, run_dirs=runs) if value.startswith(("/", "~")) else value
            if new.startswith(DATA_DIR_VARIABLE):  # unquoted, so that a shell expands it
                rest = new[len(DATA_DIR_VARIABLE):]
                return shlex.quote(prefix + sep) * bool(sep) + DATA_DIR_VARIABLE + (shlex.quote(rest) if rest else "")
            return shlex.quote(prefix + sep + new)

        parts.append(" ".join(quote(w) for w in words))
    return ", then ".join(parts)


def data_dirs_of(training: dict, data_dir=None) -> list:
    """The data directories a run may have read from: `data_dir`, its --data-dir, ZOO_DATA_DIR."""
    return [d for d in (data_dir, (training.get("config") or {}).get("data_dir"), os.environ.get("ZOO_DATA_DIR"))
            if d]


def portable_training(training: dict, data_dirs) -> dict:
    """The run's config with its paths made portable (`portable_path`): --output-dir by its
    name, --weights by its run's name, --data-dir and --data under the data directory."""
    config = dict(training.get("config") or {})
    runs = [config.get("output_dir"), config.get("weights") and str(Path(config["weights"]).parent)]
    for key in ("output_dir", "weights", "data_dir", "data"):
        if isinstance(config.get(key), str):
            config[key] = portable_path(config[key], data_dirs=data_dirs, run_dirs=[r for r in runs if r])
    return {**training, "config": config} if "config" in training else training


def pinned_precision(training: dict) -> str | None:
    """The dtype policy a run trained in (its config.json's `resolved`), for its command to name:
    `--precision auto` depends on the machine (a GPU, a CPU's bfloat16 instructions) and a
    preset's precision may change."""
    return (training.get("resolved") or {}).get("dtype_policy")


def _reproduce(command: str | None, precision: str | None = None) -> str | None:
    """The run's command without `--output-dir` (where the run wrote is not part of the recipe),
    with `--precision precision` added when given and the command sets none."""
    if not command:
        return None
    words, out = shlex.split(command), []
    skip = False
    for w in words:
        if skip:
            skip = False
        elif w == "--output-dir":
            skip = True
        elif not w.startswith("--output-dir="):
            out.append(w)
    return _with_precision(shlex.join(out), precision)


def _with_precision(command: str, precision: str | None) -> str:
    words = shlex.split(command)
    if precision and not any(w == "--precision" or w.startswith("--precision=") for w in words):
        words += ["--precision", precision]
    return shlex.join(words)


# Where and how a run ran, not what it learned: a card's command need not pin these. The
# precision is pinned by the policy the run resolved (`pinned_precision`).
RUN_SETTINGS = frozenset({"preset", "output_dir", "data_dir", "resume", "overwrite", "tensorboard", "verbose", "export",
                          "jit_compile", "distribute", "precision", "weights"})


def _plain(value):
    return json.loads(json.dumps(value))  # tuples -> lists, as config.json holds them


def _builder_args(model, kwargs) -> dict:
    from zoo.registry import builder_arguments

    try:
        defaults = builder_arguments(model)
    except ZooError:
        defaults = {}
    return _plain({**defaults, **(kwargs or {})})


def command_config(command: str):
    """The task config (its dataclass) that one `python -m tasks.X ...` line parses into with
    today's presets, as the task's `main` would build it."""
    import importlib

    from zoo.config import parse_config

    words = shlex.split(command)
    task = importlib.import_module(words[words.index("-m") + 1])
    return parse_config(task.Config, task.PRESETS, words[words.index("-m") + 2:])


def recipe_differences(command: str, trained: dict) -> dict:
    """The settings in which `command` (one `python -m tasks.X ...` line), parsed with today's
    presets, would train otherwise than the run whose config is `trained` (its config.json's
    `config`): `{field: trained value}`, with `model_kwargs` as the builder arguments that
    differ. A field the run's config lacks (added since) counts as its default."""
    import dataclasses

    cfg = command_config(command)
    differences = {}
    for f in dataclasses.fields(cfg):
        if f.name in RUN_SETTINGS or f.name == "model_kwargs":
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        then = _plain(trained.get(f.name, default))
        if _plain(getattr(cfg, f.name)) != then:
            differences[f.name] = then
    if hasattr(cfg, "model_kwargs") and "model" not in differences:
        model = getattr(cfg, "model", None)
        now, then = _builder_args(model, cfg.model_kwargs), _builder_args(model, trained.get("model_kwargs"))
        changed = {k: v for k, v in then.items() if now.get(k) != v}
        if changed:
            differences["model_kwargs"] = changed
    return differences


def pin_recipe(command: str, trained: dict) -> str:
    """`command` with the flags that make it train as the run of config `trained` did, today's
    presets notwithstanding (a preset that moved on: more epochs, another trick); a new model
    pinned first, its builder arguments after. A setting the run left unset (None) where the
    preset now sets it has no flag to unset it, and is left as it is."""
    from zoo.config import to_argv

    pinned = set()
    for _ in range(3):  # a pinned --model resets the preset's builder arguments: look again
        differences = {k: v for k, v in recipe_differences(command, trained).items()
                       if v is not None and k not in pinned}
        if not differences:
            return command
        pinned |= set(differences) - {"model_kwargs"}
        command = shlex.join(shlex.split(command) + [str(a) for a in to_argv(differences)])
    return command


def _pinned(command: str | None, training: dict) -> str | None:
    """A card's `reproduce`: the precision the run resolved, and for a single command the recipe
    settings today's presets no longer give."""
    if not command:
        return command
    parts = [_with_precision(part, pinned_precision(training)) for part in command.split(", then ")]
    if len(parts) == 1 and training.get("config"):
        parts = [pin_recipe(parts[0], training["config"])]
    return ", then ".join(parts)


def _checkpoint(source: Path):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(source / "variables" / "variables"))
    dtypes = reader.get_variable_to_dtype_map()
    return reader, {k: v for k, v in dtypes.items() if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def _weights(source: Path) -> dict:
    """How many weights of each dtype the SavedModel's checkpoint stores."""
    import numpy as np

    reader, dtypes = _checkpoint(source)
    counts = {}
    for key, shape in reader.get_variable_to_shape_map().items():
        if key in dtypes:
            counts[dtypes[key].name] = counts.get(dtypes[key].name, 0) + int(np.prod(shape))
    return counts


def _non_finite_weights(source: Path) -> list:
    """The checkpoint keys of the SavedModel's floating-point weights that hold NaN or infinity."""
    import numpy as np

    reader, dtypes = _checkpoint(source)
    return sorted(k for k, dtype in dtypes.items()
                  if dtype.is_floating and not np.isfinite(reader.get_tensor(k)).all())


def model_card(source: Path, run_dir: Path, name: str, *, metric: str | None = None, data_dir=None) -> dict:
    """The `metadata.json` of an entry made from the SavedModel at `source` (and the run's
    `config.json` beside it, if any), validated against the schema.

    Args:
        source: the run's SavedModel directory.
        run_dir: the run directory (`source` itself for a bare SavedModel).
        name: the entry's name.
        metric: the test metric to record (default: the task's).
        data_dir: the data directory the run read from, if neither its --data-dir nor
            ZOO_DATA_DIR (paths under it are recorded as `$ZOO_DATA_DIR/...`).
    """
    from zoo.pretrained import PREDICTORS, check_subset, check_tolerance, detect_kind, needs_tensorflow_text, \
        signature_specs, task_info
    from zoo.train import package_versions

    run = json.loads((source / "metadata.json").read_text()) if (source / "metadata.json").is_file() else {}
    config_file = run_dir / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    specs = signature_specs(source)
    kind = run.get("kind") or detect_kind(specs)
    training = {k: config[k] for k in ("config", "resolved") if k in config}
    data_dirs = data_dirs_of(training, data_dir)
    task = task_info({"task": run.get("task"), "training": training})
    metrics = run.get("metrics", {})
    metric = metric or (task.metric if task else next((m for m in ("test_accuracy", "test_bleu") if m in metrics), None))
    if metric not in metrics:
        raise ZooError(f"{source}/metadata.json has no test metric{f' {metric!r}' if metric else ''} to record "
                       f"(it has: {', '.join(sorted(metrics)) or 'none'}).")
    examples = metrics.get("test_examples") or metrics.get("test_sentences")
    measured = "by the training command's evaluation of the trained model on the whole test split"
    if (run.get("preprocessing") or {}).get("tta"):
        measured += f", with {run['preprocessing']['tta']} test-time augmentation (inside the SavedModel too)"
    if run.get("weights_dtype") == "int8":
        measured += (", with the Embedding and Dense layers quantized to int8 (Keras Model.quantize) as the "
                     "SavedModel stores them")
    elif run.get("weights_dtype", "float32") != "float32":
        measured += f", with the weights rounded to {run['weights_dtype']} as the SavedModel stores them"
    if metrics.get("test_decoding"):
        measured += f", {metrics['test_decoding']} decoding (the SavedModel's `serve`), sacreBLEU defaults"
    if task and task.test_data and metric == task.metric and examples:
        k = len(check_subset(examples, task.check_examples))
        check = {"metric": metric, "examples": k, "of": examples,
                 "selection": "all of the test split, in the loader's order" if k == examples else
                 f"numpy.random.default_rng(0).permutation({examples})[:{k}], sorted: indices into the test split "
                 "in the loader's order",
                 "tolerance": check_tolerance(metric, metrics[metric], k, examples),
                 "how": "zoo.pretrained.evaluate on the mirror (ZOO_DATA_DIR) in a fresh process; "
                        "tests/test_pretrained.py, real_data marker"}
    else:
        check = {"metric": metric, "examples": None,
                 "how": f"no evaluation recipe for task {run.get('task')!r}: register its dataset (zoo.datasets)"}
    requires = sorted({"tensorflow", *run.get("requires", ())} | ({"tensorflow_text"} if needs_tensorflow_text(source)
                                                                    else set()))
    imports = "import tensorflow as tf" + ("; import tensorflow_text" if "tensorflow_text" in requires else "")
    card = {
        "name": name,
        "kind": kind,
        "task": run.get("task"),
        "dataset": {"short": task.short if task else run.get("dataset"),
                    "name": task.dataset if task else run.get("dataset"),
                    "test_split": task.test_split if task else None,
                    "license": task.license if task else None,
                    "read_from": portable_path(run.get("dataset"), data_dirs=data_dirs),
                    **({"splits": run["split"]} if "split" in run else {})},
        "metric": {"name": metric, "value": metrics[metric], "examples": examples, "measured": measured},
        "check": check,
        "labels": run.get("labels") or run.get("class_names"),
        "inputs": PREDICTORS[kind].reads,
        "signatures": card_signatures(specs, run, kind),
        "signature_specs": specs,
        **{k: run[k] for k in ("recipe", "data", "sample_rate", "num_samples", "pair", "decoding", "max_source_tokens",
                               "truncation", "empty_input", "parent") if k in run},
        "preprocessing": run.get("preprocessing"),
        "model": run.get("model"),
        "model_kwargs": run.get("model_kwargs"),
        "parameters": run.get("parameters"),
        "weights": _weights(source),
        "saved_model_bytes": sum(f.stat().st_size for f in source.rglob("*")
                                 if f.is_file() and f.name not in ("metadata.json", "SHA256SUMS")),
        "requires": requires,
        "load": {"zoo": f"zoo.load({name!r})",
                 "tensorflow": f"{imports}; model = tf.saved_model.load('saved_models/{name}')",
                 "check_files": f"cd saved_models/{name} && sha256sum -c SHA256SUMS"},
        "command": portable_command(run.get("command"), data_dirs=data_dirs),
        "reproduce": _pinned(_reproduce(run.get("command")), training),
        "metrics": metrics,
        "training": portable_training(training, data_dirs),
        "versions": run.get("versions"),
        "published": {"from": portable_path(run_dir.absolute(), run_dirs=[run_dir]),
                      "date": datetime.date.today().isoformat(), "versions": package_versions()},
    }
    if isinstance(card.get("data"), dict) and isinstance(card["data"].get("spec"), str):
        card["data"] = {**card["data"], "spec": portable_path(card["data"]["spec"], data_dirs=data_dirs)}
    weights = training.get("config", {}).get("weights")
    source_run = Path(weights).parent if weights else None
    if source_run and (source_run / "config.json").is_file():
        # A re-export (--weights W --epochs 0): the weights, and the recipe, come from W's run.
        source_config = json.loads((source_run / "config.json").read_text())
        trained_by = source_config.get("command")
        card["weights_from"] = {"run": portable_path(source_run.absolute(), run_dirs=[source_run]),
                                "command": portable_command(trained_by, data_dirs=data_dirs)}
        # The weights' path is this machine's: name it by its place in the first command's run directory.
        # The second command writes beside the first: a run directory that holds a finished run
        # of other settings is refused, so the two cannot share one.
        card["reproduce"] = (f"{_pinned(_reproduce(trained_by), source_config)}, then "
                             f"{card['reproduce'].replace(shlex.quote(weights), 'RUN/' + Path(weights).name)}"
                             " --output-dir RUN-export")
        card["reproduce_note"] = ("RUN: the run directory of the first command (its --output-dir, by default "
                                  "runs/<task>-<preset>); the second command writes to RUN-export")
    example = run.get("example_input") or (task.example if task else None)
    if example:
        card["example_input"] = example
    card["reproduce"] = portable_command(card["reproduce"], data_dirs=data_dirs)
    _add_fine_tune(card, name)
    return validate_card(card, f"The card of {name}")


def _add_fine_tune(card: dict, name: str) -> dict:
    from zoo.finetune import fine_tune_card

    card.pop("fine_tune", None)
    fine_tune = fine_tune_card(card, name)
    if fine_tune:
        card["fine_tune"] = fine_tune
    return card


def publish(run_dir, name: str, *, models_dir=None, force: bool = False, metric: str | None = None,
            max_mb: float = MAX_MB, data_dir=None) -> Path:
    """Makes `saved_models/NAME/` (or `models_dir/NAME/`) from a run; returns its path.

    Args:
        run_dir: a run directory holding `saved_model/`, or a SavedModel directory.
        name: the entry's name (lowercase letters, digits and `_`).
        models_dir: where entries live (default `zoo.pretrained.models_dir()`).
        force: replace an existing entry of that name.
        metric: the test metric the card records (default: test_accuracy, else test_bleu).
        max_mb: the largest entry allowed, in MB (10^6 bytes).
        data_dir: the data directory the run read from, if neither its --data-dir nor ZOO_DATA_DIR.

    Raises:
        ZooError: no SavedModel, a bad name, an existing entry without `force`, ops `zoo.load`
            refuses, weights or metrics that are NaN or infinite (a run that diverged), or an
            entry over `max_mb`.
    """
    from zoo.export import atomic_directory, check_finite, non_finite_metrics
    from zoo.pretrained import load, models_dir as default_models_dir
    from zoo.safety import MANIFEST, check_saved_model_ops, entry_files, write_manifest

    run_dir = Path(run_dir)
    source = run_dir if (run_dir / "saved_model.pb").is_file() else run_dir / "saved_model"
    if not (source / "saved_model.pb").is_file():
        raise ZooError(f"{run_dir}: no SavedModel (expected {run_dir}/saved_model/saved_model.pb).")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", name):
        raise ZooError(f"Entry names are lowercase letters, digits and underscores. Received: {name!r}")
    dest = Path(models_dir or default_models_dir()) / name
    if dest.exists() and not force:
        raise ZooError(f"{dest} exists: pass --force to replace it.")
    check_saved_model_ops(source)  # an entry that zoo.load refuses helps nobody
    card = model_card(source, run_dir, name, metric=metric, data_dir=data_dir)
    check_finite(source, weights=_non_finite_weights(source), metrics=non_finite_metrics(card["metrics"]))

    with atomic_directory(dest) as tmp:
        for f in entry_files(source):
            if f not in ("metadata.json", MANIFEST):
                (tmp / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / f, tmp / f)
        (tmp / "metadata.json").write_text(dumps_strict(card, indent=2, ensure_ascii=False, default=str) + "\n")
        write_manifest(tmp)
        size = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
        if size > max_mb * 1e6:
            raise ZooError(f"{name}: {size / 1e6:.1f} MB, over the {max_mb:g} MB an entry may take. Export its weights "
                           "in float16 (the task with --weights RUN/model.weights.h5 --epochs 0 --export-weights "
                           "float16) or train a smaller model.")
    predictor = load(dest)
    predictor.predict(predictor.example())
    return dest


def refreshed_card(card: dict, specs: dict, *, data_dir=None) -> dict:
    """An existing card (SavedModel or LiteRT entry) in the schema's form: `signatures` from
    `specs` with the meanings the card gave, `labels` (not `class_names`), no `input`/`output`
    (now in `signatures`), and its paths made portable. What it says of the model is kept."""
    card = dict(card)
    if "class_names" in card:
        card["labels"] = card.get("labels") or card["class_names"]
        del card["class_names"]
    training = card.get("training") or {}
    data_dirs = data_dirs_of(training, data_dir)
    signatures = card_signatures(specs, card, card.get("kind"))
    rebuilt = {}
    for key, value in card.items():  # signatures where they were, else before signature_specs (or input)
        if key in ("input", "output", "signatures"):
            if "signatures" not in rebuilt:
                rebuilt["signatures"] = signatures
            continue
        if key == "signature_specs" and "signatures" not in rebuilt:
            rebuilt["signatures"] = signatures
        rebuilt[key] = value
    rebuilt.setdefault("signatures", signatures)
    card = rebuilt
    if isinstance(card.get("dataset"), dict):
        card["dataset"] = {**card["dataset"],
                           "read_from": portable_path(card["dataset"].get("read_from"), data_dirs=data_dirs)}
    if isinstance(card.get("data"), dict) and isinstance(card["data"].get("spec"), str):
        card["data"] = {**card["data"], "spec": portable_path(card["data"]["spec"], data_dirs=data_dirs)}
    for key in ("command", "reproduce"):
        if key in card:
            card[key] = portable_command(card[key], data_dirs=data_dirs)
    if card.get("reproduce") and training:
        # Name the policy it trained in and the settings its preset has moved away from, so the
        # command trains the same way on a machine where auto would choose another policy and
        # after the preset changed.
        card["reproduce"] = _pinned(card["reproduce"], training)
    if training:
        card["training"] = portable_training(training, data_dirs)
    if isinstance(card.get("published"), dict):
        run = card["published"].get("from")
        card["published"] = {**card["published"], "from": portable_path(run, run_dirs=[run])}
    if isinstance(card.get("weights_from"), dict):
        run = card["weights_from"].get("run")
        card["weights_from"] = {**card["weights_from"], "run": portable_path(run, run_dirs=[run]),
                                "command": portable_command(card["weights_from"].get("command"), data_dirs=data_dirs)}
    if isinstance(card.get("source"), dict):
        card["source"] = {**card["source"],
                          "command": portable_command(card["source"].get("command"), data_dirs=data_dirs)}
    return _add_fine_tune(card, card.get("name") or "")


def write_card(path, card: dict) -> Path:
    """Validates `card`, writes it to `path/metadata.json` as strict JSON and the manifest of
    `path` again; returns the manifest."""
    from zoo.safety import write_manifest

    validate_card(card, f"The card of {Path(path).name}")
    (Path(path) / "metadata.json").write_text(dumps_strict(card, indent=2, ensure_ascii=False, default=str) + "\n")
    return write_manifest(path)


def _rewrite_card(path: Path, *, data_dir=None, **fields) -> Path:
    # The entry's card in the schema's form, with `fields` replaced; returns the new manifest.
    from zoo.lite import FRONTEND_FILE, LiteChain, LiteModel, lite_file
    from zoo.pretrained import CARD, signature_specs

    card = {**json.loads((path / CARD).read_text()), **fields}
    if lite_file(path):
        models = [LiteModel(f.read_bytes()) for f in (path / FRONTEND_FILE, lite_file(path)) if f.is_file()]
        specs = (LiteChain(*models) if len(models) == 2 else models[0]).specs
    else:
        specs = signature_specs(path)
    return write_card(path, refreshed_card(card, specs, data_dir=data_dir))


def refresh_card(name_or_path, *, data_dir=None) -> Path:
    """Rewrites the card of a published entry to the schema (`refreshed_card`) and its
    `SHA256SUMS`; the model files are checked against the manifest first and left untouched.
    LiteRT entries converted from it (their `source.manifest_sha256` is the old manifest's) are
    pointed at the new manifest. Returns the entry's path.

    Args:
        name_or_path: an entry name or directory.
        data_dir: the data directory its run read from, if not ZOO_DATA_DIR (see `portable_path`).
    """
    from zoo.pretrained import CARD, resolve
    from zoo.safety import MANIFEST, sha256, verify_manifest

    path = resolve(name_or_path)
    verify_manifest(path)
    old = sha256(path / MANIFEST)
    card = json.loads((path / CARD).read_text())
    if card.get("kind") == "text_classifier" and not (path / "vocabulary.txt").is_file():
        # Entries published before the vocabularies were files of the entry: read them from the graph.
        from zoo.finetune import vocabularies_from_graph, write_vocabularies

        write_vocabularies(path, *vocabularies_from_graph(path, card))
    new = sha256(_rewrite_card(path, data_dir=data_dir))
    for other in path.parent.iterdir():
        if other != path and (other / CARD).is_file() and (other / MANIFEST).is_file():
            source = json.loads((other / CARD).read_text()).get("source") or {}
            if source.get("entry") == path.name and source.get("manifest_sha256") == old and old != new:
                # Only the card changed: the model files the LiteRT entry was converted from are the same.
                verify_manifest(other)
                _rewrite_card(other, data_dir=data_dir, source={**source, "manifest_sha256": new})
    return path


def serving_layout(name_or_path, directory, *, name: str | None = None, version: int = 1,
                   force: bool = False) -> Path:
    """Writes an entry as TF Serving loads a model: `directory/NAME/VERSION/` with saved_model.pb,
    variables/ and assets/ (if any), and the entry's other files (card, manifest, vocabularies)
    beside them. Returns that version directory.

    Args:
        name_or_path: an entry name or directory (a SavedModel entry, not a LiteRT one).
        directory: TF Serving's model base directory (its --model_base_path is `directory/NAME`).
        name: the served model's name (default: the entry's).
        version: the version directory's number.
        force: replace an existing version directory.

    Raises:
        ZooError: a LiteRT entry, a version that is not a positive integer, an existing version
            directory without `force`, or files that do not match the entry's manifest.
    """
    from zoo.export import atomic_directory
    from zoo.pretrained import resolve
    from zoo.safety import entry_files, verify_manifest, MANIFEST

    path = resolve(name_or_path)
    if not (path / "saved_model.pb").is_file():
        raise ZooError(f"{path}: no saved_model.pb; TF Serving serves SavedModel entries (a .tflite entry is not one).")
    if not isinstance(version, int) or version < 1:
        raise ZooError(f"--serving-version is a positive integer (TF Serving's version directory). Received: {version!r}")
    name = name or path.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ZooError(f"A served model's name is letters, digits, '_', '.' and '-'. Received: {name!r}")
    if (path / MANIFEST).is_file():
        verify_manifest(path)
    dest = Path(directory) / name / str(version)
    if dest.exists() and not force:
        raise ZooError(f"{dest} exists: pass --force to replace it, or --serving-version {version + 1}.")
    with atomic_directory(dest) as tmp:
        for f in entry_files(path) + ([MANIFEST] if (path / MANIFEST).is_file() else []):
            (tmp / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path / f, tmp / f)
    return dest


def main(argv=None) -> Path:
    from zoo.config import check_number

    parser = argparse.ArgumentParser(prog="python -m zoo.publish", description=__doc__.split("\n")[0],
                                     epilog="Also: python -m zoo.publish --refresh-card NAME [NAME ...], and "
                                            "python -m zoo.publish NAME --serving-layout DIR for an entry already "
                                            "published.")
    parser.add_argument("run_dir", metavar="RUN_DIR", nargs="?",
                        help="a run directory with saved_model/, or a SavedModel (with --serving-layout and no "
                             "NAME: an entry name or directory)")
    parser.add_argument("name", metavar="NAME", nargs="?", help="the entry's name, e.g. cifar10")
    parser.add_argument("--models-dir", default=None, help="where entries live (default: saved_models/)")
    parser.add_argument("--force", action="store_true", help="replace an existing entry (or serving version)")
    parser.add_argument("--metric", default=None, help="the test metric to record (default: test_accuracy or test_bleu)")
    parser.add_argument("--max-mb", type=float, default=MAX_MB, help=f"the largest entry allowed, MB (default: {MAX_MB:g})")
    parser.add_argument("--data-dir", default=None,
                        help="the data directory the run read from, if neither its --data-dir nor ZOO_DATA_DIR: "
                             "the card records the data relative to it ($ZOO_DATA_DIR/...)")
    parser.add_argument("--refresh-card", metavar="NAME", nargs="+", default=None,
                        help="rewrite the cards of these published entries to the schema (model files untouched, "
                             "SHA256SUMS written again), instead of publishing")
    parser.add_argument("--serving-layout", metavar="DIR", default=None,
                        help="also write the entry as TF Serving loads it: DIR/NAME/1/ (saved_model.pb, variables/, "
                             "assets/)")
    parser.add_argument("--serving-version", type=int, default=1, help="the version directory of --serving-layout "
                                                                       "(default: 1)")
    args = parser.parse_args(argv)
    check_number("--max-mb", args.max_mb, gt=0)

    def entry(name):  # an entry name resolves in --models-dir when given
        return Path(args.models_dir) / name if args.models_dir and (Path(args.models_dir) / name).is_dir() else name

    if args.refresh_card:
        if args.run_dir:
            parser.error("--refresh-card takes entry names, not RUN_DIR NAME")
        for name in args.refresh_card:
            print(f"{refresh_card(entry(name), data_dir=args.data_dir)}: card rewritten to {SCHEMA.name}, "
                  "SHA256SUMS written again.")
        return None
    if args.run_dir and not args.name and args.serving_layout:
        dest = serving_layout(entry(args.run_dir), args.serving_layout, version=args.serving_version,
                              force=args.force)
        print(f"{dest}: ready for TF Serving (--model_base_path={dest.parent.absolute()}).")
        return dest
    if not (args.run_dir and args.name):
        parser.error("the following arguments are required: RUN_DIR NAME (or --refresh-card NAME, or "
                     "ENTRY --serving-layout DIR)")
    dest = publish(args.run_dir, args.name, models_dir=args.models_dir, force=args.force, metric=args.metric,
                   max_mb=args.max_mb, data_dir=args.data_dir)
    card = json.loads((dest / "metadata.json").read_text())
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    metric = card["metric"]
    value = "null" if metric["value"] is None else f"{metric['value']:.4f}"
    print(f"{dest}: {card['kind']}, task {card['task']}, {metric['name']} {value}, "
          f"{card['parameters']:,} parameters, {size / 1e6:.1f} MB, requires {', '.join(card['requires'])}.")
    if not card["check"].get("examples"):
        print(f"note: {card['check']['how']}: the card names the dataset as the run recorded it, and the real-data "
              "tests fail for this entry until its dataset is registered (zoo.datasets).")
    if args.serving_layout:
        layout = serving_layout(dest, args.serving_layout, name=args.name, version=args.serving_version,
                                force=args.force)
        print(f"{layout}: ready for TF Serving (--model_base_path={layout.parent.absolute()}).")
    return dest

if __name__ == "__main__":
    from zoo.cli import run as _run

    _run(main)
