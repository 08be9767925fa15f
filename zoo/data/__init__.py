"""Data sources: local directories in canonical layouts, or TFDS by name, loaded into one
splits type (`Splits`: train, validation and test `Split`s with the class names and the source)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.errors import DataError, ZooError

# Set to 1 to read a cut-down copy of a canonical layout (toy data in tests, a deliberate sample)
# instead of refusing it as truncated.
PARTIAL_DATA_ENV = "ZOO_PARTIAL_DATA"


@dataclass
class Split:
    """One split: the examples `x` (uint8 images `[n, h, w, 3]`, raw texts as an object array of
    `bytes`, float32 waveforms `[n, samples]`), their int64 `labels` and, when they came from
    files, the file of each (for messages and reports)."""

    x: np.ndarray
    labels: np.ndarray
    files: tuple = ()

    def __len__(self):
        return len(self.labels)

    def take(self, indices) -> "Split":
        """The examples at `indices`, in that order."""
        indices = np.asarray(indices, dtype="int64")
        return dataclasses.replace(self, x=self.x[indices], labels=np.asarray(self.labels)[indices],
                                   files=tuple(self.files[i] for i in indices) if self.files else ())


@dataclass
class Splits:
    """What every dataset loads into, whatever its source: three splits, the class names (label
    `i` is `class_names[i]`), the source (a path, `tfds:NAME`, a registered name) and the input
    kind ("image", "text", "audio").

    `spec` holds what the examples were made into (`{"image_size": [h, w]}`,
    `{"sample_rate": 16000, "num_samples": 16000}`); `notes` what was handled on the way (sizes,
    rates or channel counts converted), for the run's summary.
    """

    kind: str
    train: Split
    validation: Split
    test: Split
    class_names: tuple
    source: str
    spec: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def __post_init__(self):
        self.class_names = tuple(str(c) for c in self.class_names)
        for name in ("train", "test"):
            if not len(getattr(self, name)):
                raise DataError(f"The {name} split of {self.source} is empty.")
        for name in ("train", "validation", "test"):
            split = getattr(self, name)
            if len(split.x) != len(split.labels):
                raise DataError(f"{self.source}: {len(split.x)} {name} examples but {len(split.labels)} labels.")
            if len(split) and (split.labels.min() < 0 or split.labels.max() >= len(self.class_names)):
                raise DataError(f"{self.source}: {name} labels outside 0..{len(self.class_names) - 1}.")
        if len(self.class_names) < 2:
            raise DataError(f"{self.source}: one class ({', '.join(self.class_names)}); a classifier needs two or "
                            "more.")

    def counts(self) -> str:
        """"1,000 train, 100 validation, 200 test" for messages."""
        return ", ".join(f"{len(getattr(self, s)):,} {s}" for s in ("train", "validation", "test"))


def stratified_split(labels, validation_split: float, test_split: float, seed: int = 0) -> np.ndarray:
    """The split ("train", "validation" or "test") of each example: each class gives
    `validation_split` and `test_split` of its examples (rounded, at least one of a class of
    three or more when the fraction is not 0), drawn with `seed`. Deterministic: the same labels,
    fractions and seed give the same split on every machine.
    """
    check_split_fractions(validation_split, test_split)
    labels = np.asarray(labels)
    out = np.full(len(labels), "train", dtype=object)
    rng = np.random.default_rng(seed)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n = len(idx)
        n_val = int(round(n * validation_split)) if validation_split else 0
        n_test = int(round(n * test_split)) if test_split else 0
        if n >= 3:
            n_val, n_test = max(n_val, 1 if validation_split else 0), max(n_test, 1 if test_split else 0)
        n_val, n_test = min(n_val, max(n - 1, 0)), min(n_test, max(n - 1 - n_val, 0))
        out[idx[:n_val]] = "validation"
        out[idx[n_val:n_val + n_test]] = "test"
    return out.astype(str)


def make_splits(kind, x, labels, assignment, class_names, source, *, files=(), spec=None, notes=None) -> Splits:
    """`Splits` from all the examples and the split of each (`stratified_split`, `hash_split`...)."""
    assignment, labels = np.asarray(assignment), np.asarray(labels, dtype="int64")
    parts = {}
    for name in ("train", "validation", "test"):
        idx = np.flatnonzero(assignment == name)
        parts[name] = Split(x[idx], labels[idx], tuple(files[i] for i in idx) if len(files) else ())
    return Splits(kind, **parts, class_names=tuple(class_names), source=str(source), spec=dict(spec or {}),
                  notes=list(notes or []))


def resolve_data_dir(data_dir=None):
    """The local data directory: the argument, else `ZOO_DATA_DIR`, else None (use TFDS).

    A directory that is given but does not exist is an error rather than a silent download.
    """
    data_dir = data_dir or os.environ.get("ZOO_DATA_DIR") or None
    if data_dir is None:
        return None
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise DataError(f"Data directory {path} does not exist (from --data-dir or ZOO_DATA_DIR).")
    return path


def tfds_load(name, splits):
    """Loads whole TFDS splits as numpy arrays, turning download failures into one clear error."""
    try:
        import tensorflow_datasets as tfds

        return tfds.as_numpy(tfds.load(name, split=list(splits), as_supervised=True, batch_size=-1))
    except Exception as e:  # TFDS raises many kinds of errors when offline
        raise DataError(
            f"Could not load {name!r} from TensorFlow Datasets ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
            "Offline, point --data-dir or ZOO_DATA_DIR at a local copy."
        ) from e


def check_splits(source, kind: str, splits) -> None:
    """Raises DataError if a split of `source` is empty or its examples and labels differ in
    number. `splits`: (name, examples, labels) triples; `kind` names the examples ("images")."""
    for split, x, y in splits:
        if len(x) == 0:
            raise DataError(f"The {split} split of {source} is empty.")
        if len(x) != len(y):
            raise DataError(f"{source}: {len(x)} {split} {kind} but {len(y)} labels.")


def check_count(path, received: int, expected: int, what: str) -> None:
    """Raises DataError unless `path` holds the `expected` number of `what` ("records") that its
    canonical layout has: a download or copy cut short at a record boundary reads cleanly but
    trains on less and reports the wrong test size. `ZOO_PARTIAL_DATA=1` turns the check off."""
    if received != expected and os.environ.get(PARTIAL_DATA_ENV) != "1":
        raise DataError(f"{path}: {received:,} {what}, expected {expected:,} (the dataset's canonical count): "
                        f"truncated or incomplete; set {PARTIAL_DATA_ENV}=1 to use a cut-down copy on purpose.")


def list_class_folders(path, suffixes, *, kind: str, layout: str, class_names=None, skip=()):
    """The files of a class-folder layout, `path/<class>/*`, the label of each and the class names.

    Args:
        path: the folder holding one subfolder per class.
        suffixes: the file extensions read (lowercase, with the dot); other files are ignored.
        kind: what the files hold, for error messages ("images").
        layout: how the layout looks, for error messages ("train/<class>/*.txt").
        class_names: the classes to read, in label order (other subfolders are ignored);
            the files of a class are those of its folder and of the folders inside it, at any depth;
            default: every subfolder, sorted, except hidden ones and those in `skip`.
        skip: subfolders that are not classes.

    Raises:
        DataError naming the folder when `path` is missing or has no class folders, or a class
        folder is missing or holds no file of `suffixes` (a class without examples).
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path} is missing; expected {layout}.")
    if class_names is None:
        class_names = tuple(sorted(p.name for p in path.iterdir()
                                   if p.is_dir() and not p.name.startswith(".") and p.name not in skip))
        if not class_names:
            raise DataError(f"{path}: no class folders inside; expected {layout}.")
    files, labels = [], []
    for label, name in enumerate(class_names):
        folder = path / name
        # Not only regular files: a broken link or a folder named like a file fails, named, when read.
        # Subfolders of a class folder are read too (as Keras' *_dataset_from_directory do), hidden ones not.
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes and not p.is_dir()
                       and not any(part.startswith(".") for part in p.relative_to(folder).parts)) \
            if folder.is_dir() else []
        if not found:
            raise DataError(f"{folder}: no {kind} ({', '.join(sorted(suffixes))}) in this class folder; "
                            "every class needs examples.")
        files += found
        labels += [label] * len(found)
    return files, np.asarray(labels, dtype="int64"), tuple(class_names)


def validate_subset(subset):
    """`subset` if it is a valid `--subset` (None, a count N > 1 or a fraction 0 < F <= 1), else a
    one-line ZooError. A count given as a float (2000.0, as the flag parses it) is a count."""
    ok = subset is None or (isinstance(subset, numbers.Real) and not isinstance(subset, bool) and math.isfinite(subset)
                            and subset > 0 and (subset <= 1 or subset == int(subset)))
    if not ok:
        raise ZooError(f"--subset must be a count N > 1 or a fraction 0 < F <= 1 of the training examples. "
                       f"Received: {subset!r}")
    return subset


def subset_count(subset, n: int) -> int:
    """How many of `n` training examples `--subset` keeps: all for None, `round(F * n)` (at least
    one) for a fraction F, `min(N, n)` for a count N."""
    validate_subset(subset)
    if subset is None:
        return n
    return min(n, max(1, round(subset * n)) if subset <= 1 else int(subset))


def subset_indices(labels, subset, seed: int = 0) -> np.ndarray:
    """The sorted indices of the training examples a `--subset` run trains on: a random sample,
    stratified by class, drawn with `seed`.

    Every task and the tuner's `--subset` go through here, so that it means one thing: a count
    N > 1 or a fraction 0 < F <= 1 of the examples (see `subset_count`). Each class gives its share
    (rounded by largest remainders), and at least one example when the sample has room for every
    class, so that data sorted by class never trains on one class.

    Args:
        labels: the class of each example; or the number of examples, when they have none
            (sentence pairs): a plain random sample.
        subset: None (all), a count or a fraction; anything else is a ZooError.
        seed: the run's `--seed`: the same seed draws the same sample.
    """
    labels = np.zeros(labels, dtype="int64") if isinstance(labels, numbers.Integral) else np.asarray(labels)
    n = len(labels)
    k = subset_count(subset, n)
    if k >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    share = _largest_remainder(k, counts, rng)
    if k >= len(classes):
        for c in np.flatnonzero(share == 0):  # a small class rounded to nothing: one from the largest share
            share[np.argmax(share)] -= 1
            share[c] = 1
    picked = [rng.choice(np.flatnonzero(inverse == c), size=share[c], replace=False) for c in range(len(classes))]
    return np.sort(np.concatenate(picked))


def _largest_remainder(k: int, weights: np.ndarray, rng) -> np.ndarray:
    """`k` split into integers proportional to `weights` (each at most its weight), the remainders
    going to the largest fractions, ties broken at random."""
    total = int(weights.sum())
    quota = k * weights.astype(np.int64)  # exact integer arithmetic: k * weight / total
    out, remainder = quota // total, quota % total
    order = np.lexsort((rng.permutation(len(weights)), -remainder))
    out[order[: k - int(out.sum())]] += 1
    return out


def train_val_split(x, y, validation_split, seed=0):
    """A stratified split of the training set: each class gives `validation_split` of its examples."""
    if not 0 <= validation_split < 1:
        raise ValueError(f"validation_split must be in [0, 1). Received: {validation_split}")
    rng = np.random.default_rng(seed)
    val_idx = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        val_idx.append(idx[: int(round(len(idx) * validation_split))])
    val_mask = np.zeros(len(y), dtype=bool)
    val_mask[np.concatenate(val_idx)] = True
    return (x[~val_mask], y[~val_mask]), (x[val_mask], y[val_mask])


def hash_split(key: str, validation_percent: float, test_percent: float) -> str:
    """"train", "validation" or "test" for `key`, stable across runs and machines."""
    percent = int(hashlib.sha256(key.encode()).hexdigest(), 16) % 1_000_000 / 10_000
    if percent < validation_percent:
        return "validation"
    if percent < validation_percent + test_percent:
        return "test"
    return "train"


def check_split_fractions(validation_split, test_split):
    if not (0 <= validation_split < 1 and 0 <= test_split < 1 and validation_split + test_split < 1):
        raise ZooError(f"--validation-split and --test-split must be in [0, 1) and sum to less than 1. "
                       f"Received: --validation-split {validation_split} --test-split {test_split}")
