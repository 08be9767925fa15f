"""The dataset registry: every dataset a recipe trains on, by name, path or `tfds:NAME`.

    from zoo.datasets import load_dataset, list_datasets
    list_datasets("image")                    # ['cifar10']
    data = load_dataset("photos/", "image", cfg)          # any Keras image folder
    data = load_dataset("tfds:oxford_flowers102", "image", cfg)   # any TFDS dataset, online

`load_dataset` always returns `zoo.data.Splits` (train, validation and test splits, class names,
source). What the loaders read from `cfg` (the recipe's config): `data_dir` (where built-in
datasets are looked for, else `ZOO_DATA_DIR`, else TFDS), `validation_split`, `test_split`, `seed`
and the recipe's own fields (`image_size`; `text_column`, `label_column`; `sample_rate`,
`clip_seconds`).

A new dataset of a known kind is one registered function:

    @register_dataset("my_birds", kind="image", description="...")
    def my_birds(cfg) -> Splits:
        ...

A new source of a known kind (a folder layout, a file type) registers with `register_source`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from zoo.errors import ZooError

KINDS = ("image", "text", "audio", "translation")


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset.

    Attributes:
        name: what `--data` takes.
        kind: the input kind, one of `KINDS`: the recipe that trains on it.
        loader: `cfg -> zoo.data.Splits`.
        description: the dataset in a sentence (for `python -m zoo.models` and model cards).
        license: its license or terms.
        test_split: which examples its test split holds, in words (for model cards).
        short: its name in a few words, for tables.
        check_examples: how many test examples the real-data check of a pretrained entry
            scores again (None: all).
    """

    name: str
    kind: str
    loader: Callable
    description: str = ""
    license: str = ""
    test_split: str = ""
    short: str = ""
    check_examples: int | None = None


_DATASETS: dict[str, DatasetInfo] = {}
# kind -> [(name, matches(path) -> bool, load(path, cfg) -> Splits)], tried in order.
_SOURCES: dict[str, list] = {kind: [] for kind in KINDS}


def register_dataset(name: str, *, kind: str, description: str = "", license: str = "", test_split: str = "",
                     short: str = "", check_examples: int | None = None):
    """Decorator: registers `loader(cfg) -> Splits` as the dataset `name` of `kind`."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}. Received: kind={kind!r}")

    def wrap(loader):
        if name in _DATASETS and _DATASETS[name].loader is not loader:
            raise ValueError(f"A dataset named {name!r} is already registered.")
        _DATASETS[name] = DatasetInfo(name, kind, loader, description, license, test_split, short, check_examples)
        return loader

    return wrap


def register_source(kind: str, name: str, matches: Callable, load: Callable):
    """Registers a generic source of `kind`: `load(path, cfg) -> Splits` for the paths for which
    `matches(path)` is true (tried in registration order)."""
    _SOURCES[kind] = [s for s in _SOURCES[kind] if s[0] != name] + [(name, matches, load)]


def _builtins():
    # The built-in datasets and sources register on import of these modules.
    import zoo.data.builtins  # noqa: F401


def list_datasets(kind: str | None = None) -> list[str]:
    """The registered names, all or those of `kind`."""
    _builtins()
    return sorted(n for n, info in _DATASETS.items() if kind is None or info.kind == kind)


def get_dataset(name: str) -> DatasetInfo:
    _builtins()
    if name not in _DATASETS:
        raise ZooError(f"Unknown dataset {name!r}. Registered: {', '.join(list_datasets())}.")
    return _DATASETS[name]


def describe_data_flag(kind: str) -> str:
    """The help of a recipe's `--data` flag."""
    names = ", ".join(list_datasets(kind)) or "none"
    return (f"a registered dataset ({names}), a path (a folder of class folders, with or without train/ and test/"
            f"{', or a CSV/TSV file' if kind == 'text' else ''}), or tfds:NAME (online)")


def check_data_spec(spec, kind: str) -> None:
    """A `ZooError` for a `--data` that cannot work, found before anything is loaded or a run
    directory is made: none given, a registered dataset of another kind, a path that does not
    exist."""
    _builtins()
    if spec is None or str(spec) == "":
        raise ZooError(f"--data is required: {describe_data_flag(kind)}.")
    spec = str(spec)
    if spec in _DATASETS:
        if _DATASETS[spec].kind != kind:
            raise ZooError(f"--data {spec}: a dataset of {_DATASETS[spec].kind}s, and this recipe trains on {kind}s.")
    elif not spec.startswith("tfds:") and not Path(spec).expanduser().exists():
        raise ZooError(f"--data {spec}: neither a registered {kind} dataset ({', '.join(list_datasets(kind)) or 'none'}) "
                       "nor an existing path; tfds:NAME reads a TensorFlow Datasets dataset.")


def load_dataset(spec, kind: str, cfg):
    """The `Splits` of `spec` (a registered name, a path or `tfds:NAME`) for a recipe of `kind`.

    Raises:
        ZooError: the name is not registered and no such path exists, or the dataset is of
            another kind (an image dataset for the text recipe).
    """
    check_data_spec(spec, kind)
    spec = str(spec)
    if spec in _DATASETS:
        return _checked(_DATASETS[spec].loader(cfg), kind, spec)
    if spec.startswith("tfds:"):
        from zoo.data.builtins import load_tfds

        return _checked(load_tfds(spec[len("tfds:"):], kind, cfg), kind, spec)
    path = Path(spec).expanduser()
    for name, matches, load in _SOURCES[kind]:
        if matches(path):
            return _checked(load(path, cfg), kind, spec)
    raise ZooError(f"--data {spec}: not a layout the {kind} recipe reads; expected "
                   f"{' or '.join(name for name, _, _ in _SOURCES[kind])}.")


def _checked(data, kind, spec):
    if getattr(data, "kind", kind) != kind:
        raise ZooError(f"--data {spec}: loaded {data.kind} data, and this recipe trains on {kind}s.")
    return data


def class_counts(labels, class_names) -> str:
    """"cat 120, dog 80" for reports."""
    counts = np.bincount(np.asarray(labels, dtype="int64"), minlength=len(class_names))
    return ", ".join(f"{name} {n:,}" for name, n in zip(class_names, counts))
