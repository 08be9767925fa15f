"""What the zoo holds: the registered builders with their arguments, the tasks with the data they
read, the registered datasets and data sources, and the pretrained entries with their test metric.

    python -m zoo.models              # all four
    python -m zoo.models --json       # the same, for machines
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil


def builders() -> dict:
    """{domain: {builder name: {argument: default}}} of the registered builders, from their
    signatures (an argument without a default is None)."""
    from zoo.registry import builder_arguments, list_models, model_domain

    out = {}
    for name in list_models():
        out.setdefault(model_domain(name), {})[name] = builder_arguments(name)
    return dict(sorted(out.items()))


def task_names() -> list[str]:
    """The task modules (`tasks.<name>`) that define a `main`, as `<name>`, sorted."""
    import tasks

    return sorted(info.name.removeprefix("tasks.") for info in pkgutil.walk_packages(tasks.__path__, "tasks.")
                  if not info.ispkg and hasattr(importlib.import_module(info.name), "main"))


def data_layout(module) -> str:
    """What a task reads from `--data-dir` / `ZOO_DATA_DIR`: the paragraph of its docstring that
    says so, up to how runs resume."""
    for paragraph in (module.__doc__ or "").split("\n\n"):
        if "ZOO_DATA_DIR" in paragraph:
            text = " ".join(paragraph.split()).removeprefix("Offline, ")
            return text.split(" Killing a run")[0]
    return "see the task's module docstring"


def tasks() -> dict:
    """{task: {"presets": [...], "recipe": kind or None, "data": default --data or layout}} of
    every task module."""
    out = {}
    for name in task_names():
        module = importlib.import_module(f"tasks.{name}")
        recipe = getattr(module, "RECIPE", None)
        default = getattr(module.Config(), "data", None) if recipe is not None else None
        data = (f"--data {default or 'DATA (required)'}: a registered {recipe.kind} dataset (read from --data-dir or "
                f"ZOO_DATA_DIR, else TFDS), a path or tfds:NAME") if recipe else data_layout(module)
        out[name] = {"presets": list(getattr(module, "PRESETS", {})), "recipe": recipe and recipe.kind, "data": data}
    return out


def datasets() -> dict:
    """{"registered": {name: {"kind", "description"}}, "sources": {kind: [what --data PATH reads]}}."""
    from zoo.datasets import _SOURCES, get_dataset, list_datasets

    return {"registered": {n: {"kind": get_dataset(n).kind, "description": get_dataset(n).description}
                           for n in list_datasets()},
            "sources": {kind: [name for name, _, _ in sources] for kind, sources in _SOURCES.items() if sources}}


def pretrained() -> dict:
    """{entry: {"task", "kind", "metric", "value"}} of the entries in `zoo.pretrained.models_dir()`,
    read from their model cards (nothing is loaded)."""
    from zoo.pretrained import list_models, models_dir

    out = {}
    for name in list_models():
        try:
            card = json.loads((models_dir() / name / "metadata.json").read_text())
        except (OSError, ValueError):
            card = {}
        metric = card.get("metric") or {}
        out[name] = {"task": card.get("task"), "kind": card.get("kind"), "metric": metric.get("name"),
                     "value": metric.get("value"), "fine_tune": (card.get("fine_tune") or {}).get("command")}
    return out


def format_catalog(catalog: dict) -> str:
    def value(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["Builders (zoo.build_model(NAME, ...); a task's --model NAME --model-arg KEY=VALUE):"]
    for domain, names in catalog["builders"].items():
        lines.append(f"  {domain}:")
        for name, arguments in names.items():
            lines.append(f"    {name}(" + ", ".join(f"{k}={v!r}" for k, v in arguments.items()) + ")")
    lines.append("\nTasks (python -m tasks.TASK, or zoo-train TASK; data from --data-dir or ZOO_DATA_DIR):")
    for name, info in catalog["tasks"].items():
        lines.append(f"  {name}: presets {', '.join(info['presets'])}")
        lines.append(f"    data: {info['data']}")
    lines.append("\nDatasets (a task's --data NAME; or --data PATH, or --data tfds:NAME online):")
    for name, info in catalog["datasets"]["registered"].items():
        lines.append(f"  {name} ({info['kind']}): {info['description']}")
    for kind, sources in catalog["datasets"]["sources"].items():
        lines.append(f"  --data PATH for {kind} tasks: {'; '.join(sources)}")
    lines.append("\nPretrained entries (zoo.load(NAME), python -m zoo.predict NAME INPUT...; fine-tune: a task's "
                 "--init-from NAME):")
    for name, info in catalog["pretrained"].items():
        lines.append(f"  {name}: {info['task']}, {info['kind']}, {info['metric']} {value(info['value'])}")
        if info.get("fine_tune"):
            lines.append(f"    fine-tune: {info['fine_tune']}")
    if not catalog["pretrained"]:
        from zoo.pretrained import models_dir

        lines.append(f"  none in {models_dir()} (set ZOO_MODELS_DIR to a directory of entries)")
    return "\n".join(lines)


def main(argv=None) -> dict:
    """Prints the builders, tasks and pretrained entries; returns them."""
    from zoo.cli import dumps_strict

    parser = argparse.ArgumentParser(prog="python -m zoo.models", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    catalog = {"builders": builders(), "tasks": tasks(), "datasets": datasets(), "pretrained": pretrained()}
    print(dumps_strict(catalog, indent=2, default=repr) if args.json else format_catalog(catalog))
    return catalog
