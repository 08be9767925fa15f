"""Text classification data: the IMDB `aclImdb` layout and Keras text folders, as in-memory
arrays of raw UTF-8 bytes (normalization happens in the graph, see `zoo.text`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.data import check_count, check_splits, list_class_folders, resolve_data_dir, tfds_load
from zoo.errors import DataError

IMDB_CLASSES = ("neg", "pos")
IMDB_PER_FOLDER = 12_500  # reviews in each of aclImdb's {train,test}/{neg,pos}


@dataclass
class TextData:
    """Train and test texts (object arrays of `bytes`) with integer labels and their files."""

    train_texts: np.ndarray
    train_labels: np.ndarray
    test_texts: np.ndarray
    test_labels: np.ndarray
    class_names: tuple
    source: str

    def __post_init__(self):
        check_splits(self.source, "texts", (("train", self.train_texts, self.train_labels),
                                            ("test", self.test_texts, self.test_labels)))


def load_imdb(data_dir=None) -> TextData:
    """Loads the IMDB Large Movie Review Dataset (25,000 train and 25,000 test reviews).

    Looks in `data_dir` (or `ZOO_DATA_DIR`) for `aclImdb/{train,test}/{neg,pos}/*.txt` (or the
    `{train,test}/{neg,pos}` folders directly); `train/unsup` is ignored. Without a directory,
    downloads `imdb_reviews` with TFDS. Label 1 is positive.
    """
    root = resolve_data_dir(data_dir)
    if root is None:
        (x_train, y_train), (x_test, y_test) = tfds_load("imdb_reviews", ["train", "test"])
        return TextData(x_train.astype(object), y_train.astype("int64"), x_test.astype(object),
                        y_test.astype("int64"), IMDB_CLASSES, "tfds:imdb_reviews")
    for base in (root / "aclImdb", root):
        if (base / "train" / "pos").is_dir() or (base / "train" / "neg").is_dir():
            data = load_text_folder(base, class_names=IMDB_CLASSES)
            for split, labels in (("train", data.train_labels), ("test", data.test_labels)):
                for name, n in zip(IMDB_CLASSES, np.bincount(labels, minlength=len(IMDB_CLASSES))):
                    check_count(base / split / name, int(n), IMDB_PER_FOLDER, "reviews")
            return data
    raise DataError(f"No IMDB reviews found in {root}: expected aclImdb/train/{{neg,pos}}/*.txt and "
                    "aclImdb/test/{neg,pos}/*.txt (or train/ and test/ directly).")


def load_text_folder(path, class_names=None) -> TextData:
    """Loads a Keras text-folder layout: `path/train/<class>/*.txt` and `path/test/<class>/*.txt`.

    Args:
        path: the directory holding `train/` and `test/`.
        class_names: the classes to read, in label order (other subfolders are ignored, as
            aclImdb's `train/unsup`); default: every subfolder of `train/`, sorted.

    Raises:
        DataError naming the directory or file when a split or class folder is missing, a class
        folder holds no .txt files, or a file cannot be read.
    """
    path = Path(path)
    splits = {}
    for split in ("train", "test"):
        files, labels, class_names = list_class_folders(
            path / split, {".txt"}, kind="texts", layout=f"{path}/train/<class>/*.txt and {path}/test/<class>/*.txt",
            class_names=class_names)
        splits[split] = (np.array([_read(f) for f in files], dtype=object), labels)
    return TextData(*splits["train"], *splits["test"], tuple(class_names), str(path))


def _read(file: Path) -> bytes:
    # Raw bytes: invalid UTF-8 is repaired in the graph (zoo.text.normalize_text), as at serving time.
    try:
        return file.read_bytes()
    except OSError as e:
        raise DataError(f"Cannot read {file}: {e.strerror or e}.") from e
