"""Text classification data: the IMDB `aclImdb` layout, Keras text folders and CSV/TSV files, as
in-memory arrays of raw UTF-8 bytes (normalization happens in the graph, see `zoo.text`)."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.data import Split, Splits, check_count, check_split_fractions, check_splits, list_class_folders, \
    resolve_data_dir, stratified_split, tfds_load
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


# --- any text classification dataset: class folders or CSV/TSV ---------------------------------

SPLITS = ("train", "validation", "test")
TEXT_COLUMNS = ("text", "sentence", "review", "content", "document")
LABEL_COLUMNS = ("label", "class", "category", "sentiment", "target")
DELIMITERS = {".csv": ",", ".tsv": "\t"}
LAYOUTS = ("train/<class>/*.txt and test/<class>/*.txt (validation/ optional), <class>/*.txt, a .csv or .tsv "
           "file with a header row, or a folder holding train.csv and test.csv (or .tsv)")


def load_text_dataset(path, *, validation_split: float = 0.1, test_split: float = 0.1, seed: int = 0,
                      text_column: str | None = None, label_column: str | None = None,
                      delimiter: str | None = None) -> Splits:
    """Loads a text classification dataset of the user's: raw texts (`bytes`) and their classes.

    Sources, by what `path` is:
      - a folder with `train/<class>/*.txt` (Keras text folders), with `test/<class>/*.txt` and
        `validation/<class>/*.txt` if it has them;
      - a folder of class folders alone, `<class>/*.txt`;
      - a CSV or TSV file with a header row (the delimiter from the suffix, or `delimiter`);
      - a folder holding `train.csv` (or `.tsv`), with `test.csv` and `validation.csv` if it
        has them.
    A split that the source lacks is drawn from the training examples, stratified by class
    (`stratified_split` with `seed`): deterministic on every machine. Classes are the train
    split's; they are sorted, numerically when every one is a number ("2" before "10").

    Args:
        path: the folder or file.
        validation_split: the fraction of each class drawn for validation when the source has
            no validation split.
        test_split: the same for the test split.
        seed: the seed of those draws.
        text_column: the CSV column of the texts (case-insensitive); default: the one named
            text, sentence, review, content or document.
        label_column: the CSV column of the labels; default: label, class, category,
            sentiment or target.
        delimiter: the CSV field delimiter, for files that are neither .csv nor .tsv.

    Returns:
        `Splits` of kind "text": object arrays of `bytes` (invalid UTF-8 in .txt files is kept,
        and repaired in the graph), int64 labels, the file (or `file:line`) of each example, and
        `notes` for the run's summary.

    Raises:
        DataError, one line naming the file and line or folder: a missing path, a layout it
        cannot read, a class folder without .txt files, an empty text or label, a CSV row with
        the wrong number of fields, a CSV that is not UTF-8, a label of validation or test that
        train does not have, or one class only.
    """
    check_split_fractions(validation_split, test_split)
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; expected {LAYOUTS}.")
    if path.is_file():
        parts, spec, notes = _read_tables({"train": path}, text_column, label_column, delimiter)
    elif any((path / f"train{suffix}").is_file() for suffix in DELIMITERS):
        files = _split_tables(path)
        parts, spec, notes = _read_tables(files, text_column, label_column, delimiter)
    elif (path / "train").is_dir():
        parts, spec, notes = _read_split_folders(path)
    else:
        parts, spec, notes = _read_class_folders(path)
    return _splits(path, parts, spec, notes, validation_split, test_split, seed)


@dataclass
class _Part:
    """One split as read: texts, label strings, where each came from, and the split's folder or file."""

    texts: list
    labels: list
    files: list
    where: str


def sort_class_names(names) -> tuple:
    """Class names sorted: numerically when every one is a number ("2" before "10"), else as strings."""
    names = sorted(set(names))
    try:
        values = [float(n) for n in names]
    except ValueError:
        return tuple(names)
    if not all(math.isfinite(v) for v in values):
        return tuple(names)
    return tuple(n for _, n in sorted(zip(values, names)))


def _splits(path, parts, spec, notes, validation_split, test_split, seed) -> Splits:
    train = parts["train"]
    class_names = sort_class_names(train.labels)
    if len(class_names) < 2:
        raise DataError(f"{train.where}: one class ({', '.join(class_names) or 'none'}); a classifier needs two or "
                        "more.")
    index = {name: i for i, name in enumerate(class_names)}
    for name in ("validation", "test"):
        part = parts.get(name)
        if part is None:
            continue
        for label, file in zip(part.labels, part.files):
            if label not in index:
                raise DataError(f"{file}: class {label!r} is not one of {train.where}'s ({', '.join(class_names)}).")

    def split(part, take=None):
        take = np.arange(len(part.texts)) if take is None else take
        return Split(np.array([part.texts[i] for i in take], dtype=object),
                     np.array([index[part.labels[i]] for i in take], dtype="int64"),
                     tuple(part.files[i] for i in take))

    missing = [name for name in ("validation", "test") if name not in parts]
    out = {name: split(parts[name]) for name in ("validation", "test") if name in parts}
    if missing:
        fractions = {"validation": validation_split if "validation" in missing else 0,
                     "test": test_split if "test" in missing else 0}
        labels = np.array([index[label] for label in train.labels])
        assignment = stratified_split(labels, fractions["validation"], fractions["test"], seed)
        for name in ("train", *missing):
            out[name] = split(train, np.flatnonzero(assignment == name))
        drawn = [name for name in missing if fractions[name]]
        for name in [name for name in drawn if not len(out[name])]:
            fewest = int(np.bincount(labels).min())
            too_few = (f"{fractions[name]:.0%} of each class rounds to none; the smallest class has {fewest} "
                       f"example{'s' if fewest != 1 else ''}")
            if name == "test":
                raise DataError(f"{train.where}: too few examples to draw a test split ({too_few}): add examples "
                                "or raise --test-split.")
            notes.append(f"no validation examples ({too_few})")
            drawn.remove(name)
        if drawn:
            notes.append(" and ".join(f"{name} ({fractions[name]:.0%} of each class)" for name in drawn)
                         + f" drawn from {train.where}, stratified, seed {seed}")
    else:
        out["train"] = split(train)
    counts = np.bincount(out["train"].labels, minlength=len(class_names))
    smallest, largest = int(np.argmin(counts)), int(np.argmax(counts))
    notes.append(f"{len(class_names)} classes; " + (
        f"{counts[0]:,} train example{'s' if counts[0] != 1 else ''} each" if counts.min() == counts.max() else
        f"train examples a class: {class_names[smallest]!r} {counts[smallest]:,} (fewest) to {class_names[largest]!r} "
        f"{counts[largest]:,} (most)"))
    for name in ("validation", "test"):
        absent = [class_names[i] for i in np.flatnonzero(np.bincount(out[name].labels, minlength=len(counts)) == 0)]
        if absent and len(out[name]):
            notes.append(f"no {name} examples of {', '.join(map(repr, absent[:5]))}"
                         f"{f' and {len(absent) - 5} more' if len(absent) > 5 else ''}")
    chars = np.array([len(t.decode("utf-8", "replace")) for part in parts.values() for t in part.texts])
    notes.append(f"longest text {chars.max():,} characters (median {int(np.median(chars)):,})")
    return Splits("text", out["train"], out["validation"], out["test"], class_names, str(path), spec=spec, notes=notes)


# --- class folders ---

def _read_split_folders(path: Path):
    """`train/<class>/*.txt`, and `validation/` and `test/` where they exist."""
    layout = f"{path}/train/<class>/*.txt and {path}/test/<class>/*.txt"
    parts, ignored = {}, 0
    for name in SPLITS:
        if (path / name).is_dir() or name == "train":
            parts[name], n = _read_folder(path / name, layout)
            ignored += n
    splits = "train/" + "".join(f", {name}/" for name in ("validation", "test") if name in parts)
    return parts, {"layout": "split class folders"}, [f"read {splits} class folders", _ignored(ignored)]


def _read_class_folders(path: Path):
    """`<class>/*.txt` directly in `path`."""
    part, ignored = _read_folder(path, f"{path}/<class>/*.txt or {LAYOUTS}")
    return {"train": part}, {"layout": "class folders"}, ["read class folders", _ignored(ignored)]


def _read_folder(folder: Path, layout: str):
    """One folder of class folders as a `_Part`, and how many files it skipped (not .txt)."""
    if not folder.is_dir():
        raise DataError(f"{folder} is missing; expected {layout}.")
    classes = sort_class_names(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{folder}: no class folders inside; expected {layout}.")
    files, labels, classes = list_class_folders(folder, {".txt"}, kind="texts", layout=layout, class_names=classes)
    texts = []
    for file in files:
        text = _read(file)
        if not text.strip():
            raise DataError(f"{file}: empty text; every example needs some.")
        texts.append(text)
    ignored = sum(1 for name in classes for p in (folder / name).iterdir()
                  if p.is_file() and p.suffix.lower() != ".txt" and not p.name.startswith("."))
    return _Part(texts, [classes[i] for i in labels], [str(f) for f in files], str(folder)), ignored


def _ignored(n: int) -> str:
    return f"ignored {n:,} file{'s' if n != 1 else ''} that {'are' if n != 1 else 'is'} not .txt" if n else \
        "dropped nothing"


# --- CSV and TSV ---

def _split_tables(path: Path) -> dict:
    """The `train`, `validation` and `test` files of a folder of CSV or TSV files."""
    suffixes = [s for s in DELIMITERS if (path / f"train{s}").is_file()]
    if len(suffixes) > 1:
        raise DataError(f"{path}: both train.csv and train.tsv; keep one.")
    return {name: path / f"{name}{suffixes[0]}" for name in SPLITS if (path / f"{name}{suffixes[0]}").is_file()}


def _read_tables(files: dict, text_column, label_column, delimiter):
    parts, columns, blank = {}, None, 0
    for name, file in files.items():
        parts[name], columns, skipped = _read_table(file, text_column, label_column, delimiter)
        blank += skipped
    sep = delimiter or DELIMITERS.get(files["train"].suffix.lower())
    spec = {"layout": "table", "text_column": columns[0], "label_column": columns[1], "delimiter": sep}
    read = ", ".join(f"{f.name} ({len(parts[n].texts):,} rows)" for n, f in files.items())
    return parts, spec, [f"read {read}; columns {columns[0]!r} (text) and {columns[1]!r} (label)",
                         f"skipped {blank:,} blank line{'s' if blank != 1 else ''}" if blank else "dropped nothing"]


def _read_table(file: Path, text_column, label_column, delimiter):
    """One CSV/TSV file as a `_Part`, the (text, label) column names, and the blank lines skipped."""
    sep = delimiter or DELIMITERS.get(file.suffix.lower())
    if sep is None:
        raise DataError(f"{file}: not a .csv or .tsv file; name its field delimiter with --delimiter.")
    try:
        raw = file.read_bytes()
    except OSError as e:
        raise DataError(f"Cannot read {file}: {e.strerror or e}.") from e
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DataError(f"{file}:{line}: not UTF-8 (byte 0x{raw[e.start]:02x}); save the file as UTF-8.") from None
    where = str(file)
    old_limit = csv.field_size_limit()
    csv.field_size_limit(max(old_limit, len(content) + 1))  # one long review is not an error
    try:
        reader = csv.reader(io.StringIO(content, newline=""), delimiter=sep)
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise DataError(f"{where}:1: no header row; the first row names the columns (e.g. text{sep}label).")
        text_i = _column(where, header, text_column, TEXT_COLUMNS, "text")
        label_i = _column(where, header, label_column, LABEL_COLUMNS, "label")
        if text_i == label_i:
            raise DataError(f"{where}:1: column {header[text_i]!r} is both the text and the label; name the columns "
                            "with --text-column and --label-column.")
        texts, labels, lines, blank, end = [], [], [], 0, reader.line_num
        while True:
            start = end + 1
            try:
                row = next(reader, None)
            except csv.Error as e:
                raise DataError(f"{where}:{start}: {e}.") from None
            end = reader.line_num
            if row is None:
                break
            if not row or (len(row) == 1 and not row[0].strip() and len(header) > 1):
                blank += 1
                continue
            if len(row) != len(header):
                raise DataError(f"{where}:{start}: {len(row)} fields, expected {len(header)} as in the header "
                                f"({', '.join(header)}); quote fields that hold the delimiter or a line break.")
            if not row[label_i].strip():
                raise DataError(f"{where}:{start}: empty label.")
            if not row[text_i].strip():
                raise DataError(f"{where}:{start}: empty text.")
            texts.append(row[text_i].encode("utf-8"))
            labels.append(row[label_i].strip())
            lines.append(f"{where}:{start}")
    finally:
        csv.field_size_limit(old_limit)
    if not texts:
        raise DataError(f"{where}: no rows after the header.")
    return _Part(texts, labels, lines, where), (header[text_i], header[label_i]), blank


def _column(where, header, name, defaults, what) -> int:
    """The index of the header's column `name` (case-insensitive), else of the first of `defaults`."""
    folded = [h.strip().casefold() for h in header]
    wanted = [name] if name else list(defaults)
    for w in wanted:
        if w.strip().casefold() in folded:
            return folded.index(w.strip().casefold())
    found = f"no column {name!r}" if name else f"no {what} column (named {', '.join(defaults)})"
    raise DataError(f"{where}:1: {found}; its columns are {', '.join(header)}: name the columns with --text-column "
                    "and --label-column.")
