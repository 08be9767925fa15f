"""Data sources: local directories in canonical layouts, or TFDS by name."""

import hashlib
import os
from pathlib import Path

import numpy as np

from zoo.errors import DataError, ZooError


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
