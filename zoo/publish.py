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
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shlex
import shutil
from pathlib import Path

from zoo.errors import ZooError

MAX_MB = 20

def _reproduce(command: str | None) -> str | None:
    """The run's command without `--output-dir` (where the run wrote is not part of the recipe)."""
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
    return shlex.join(out)


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


def model_card(source: Path, run_dir: Path, name: str, *, metric: str | None = None) -> dict:
    """The `metadata.json` of an entry made from the SavedModel at `source` (and the run's
    `config.json` beside it, if any)."""
    from zoo.pretrained import PREDICTORS, check_subset, check_tolerance, detect_kind, needs_tensorflow_text, \
        signature_specs, task_info
    from zoo.train import package_versions

    run = json.loads((source / "metadata.json").read_text()) if (source / "metadata.json").is_file() else {}
    config_file = run_dir / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    specs = signature_specs(source)
    kind = run.get("kind") or detect_kind(specs)
    training = {k: config[k] for k in ("config", "resolved") if k in config}
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
                    "read_from": run.get("dataset"),
                    **({"splits": run["split"]} if "split" in run else {})},
        "metric": {"name": metric, "value": metrics[metric], "examples": examples, "measured": measured},
        "check": check,
        "labels": run.get("labels") or run.get("class_names"),
        "inputs": PREDICTORS[kind].reads,
        "signatures": run.get("signatures"),
        "signature_specs": specs,
        **{k: run[k] for k in ("recipe", "data", "input", "output", "sample_rate", "num_samples", "pair", "decoding", "max_source_tokens",
                               "truncation", "empty_input") if k in run},
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
        "command": run.get("command"),
        "reproduce": _reproduce(run.get("command")),
        "metrics": metrics,
        "training": training,
        "versions": run.get("versions"),
        "published": {"from": str(run_dir), "date": datetime.date.today().isoformat(), "versions": package_versions()},
    }
    weights = training.get("config", {}).get("weights")
    source_run = Path(weights).parent if weights else None
    if source_run and (source_run / "config.json").is_file():
        # A re-export (--weights W --epochs 0): the weights, and the recipe, come from W's run.
        trained_by = json.loads((source_run / "config.json").read_text()).get("command")
        card["weights_from"] = {"run": str(source_run), "command": trained_by}
        # The weights' path is this machine's: name it by its place in the first command's run directory.
        # The second command writes beside the first: a run directory that holds a finished run
        # of other settings is refused, so the two cannot share one.
        card["reproduce"] = (f"{_reproduce(trained_by)}, then "
                             f"{card['reproduce'].replace(shlex.quote(weights), 'RUN/' + Path(weights).name)}"
                             " --output-dir RUN-export")
        card["reproduce_note"] = ("RUN: the run directory of the first command (its --output-dir, by default "
                                  "runs/<task>-<preset>); the second command writes to RUN-export")
    example = run.get("example_input") or (task.example if task else None)
    if example:
        card["example_input"] = example
    return card


def publish(run_dir, name: str, *, models_dir=None, force: bool = False, metric: str | None = None,
            max_mb: float = MAX_MB) -> Path:
    """Makes `saved_models/NAME/` (or `models_dir/NAME/`) from a run; returns its path.

    Args:
        run_dir: a run directory holding `saved_model/`, or a SavedModel directory.
        name: the entry's name (lowercase letters, digits and `_`).
        models_dir: where entries live (default `zoo.pretrained.models_dir()`).
        force: replace an existing entry of that name.
        metric: the test metric the card records (default: test_accuracy, else test_bleu).
        max_mb: the largest entry allowed, in MB (10^6 bytes).

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
    card = model_card(source, run_dir, name, metric=metric)
    check_finite(source, weights=_non_finite_weights(source), metrics=non_finite_metrics(card["metrics"]))

    with atomic_directory(dest) as tmp:
        for f in entry_files(source):
            if f not in ("metadata.json", MANIFEST):
                (tmp / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / f, tmp / f)
        (tmp / "metadata.json").write_text(json.dumps(card, indent=2, ensure_ascii=False, default=str) + "\n")
        write_manifest(tmp)
        size = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
        if size > max_mb * 1e6:
            raise ZooError(f"{name}: {size / 1e6:.1f} MB, over the {max_mb:g} MB an entry may take. Export its weights "
                           "in float16 (the task with --weights RUN/model.weights.h5 --epochs 0 --export-weights "
                           "float16) or train a smaller model.")
    predictor = load(dest)
    predictor.predict(predictor.example())
    return dest


def main(argv=None) -> Path:
    from zoo.config import check_number

    parser = argparse.ArgumentParser(prog="python -m zoo.publish", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory with saved_model/, or a SavedModel")
    parser.add_argument("name", metavar="NAME", help="the entry's name, e.g. cifar10")
    parser.add_argument("--models-dir", default=None, help="where entries live (default: saved_models/)")
    parser.add_argument("--force", action="store_true", help="replace an existing entry")
    parser.add_argument("--metric", default=None, help="the test metric to record (default: test_accuracy or test_bleu)")
    parser.add_argument("--max-mb", type=float, default=MAX_MB, help=f"the largest entry allowed, MB (default: {MAX_MB:g})")
    args = parser.parse_args(argv)
    check_number("--max-mb", args.max_mb, gt=0)
    dest = publish(args.run_dir, args.name, models_dir=args.models_dir, force=args.force, metric=args.metric,
                   max_mb=args.max_mb)
    card = json.loads((dest / "metadata.json").read_text())
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    metric = card["metric"]
    print(f"{dest}: {card['kind']}, task {card['task']}, {metric['name']} {metric['value']:.4f}, "
          f"{card['parameters']:,} parameters, {size / 1e6:.1f} MB, requires {', '.join(card['requires'])}.")
    if not card["check"].get("examples"):
        print(f"note: {card['check']['how']}: the card names the dataset as the run recorded it, and the real-data "
              "tests fail for this entry until its dataset is registered (zoo.datasets).")
    return dest


if __name__ == "__main__":
    from zoo.cli import run as _run

    _run(main)
