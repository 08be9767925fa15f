"""Image classification data: CIFAR-10 layouts and Keras image folders, as in-memory uint8 arrays."""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.data import check_count, check_splits, list_class_folders, resolve_data_dir, tfds_load
from zoo.data import train_val_split  # noqa: F401 (re-exported)
from zoo.errors import DataError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_RECORD = 1 + 32 * 32 * 3
CIFAR10_PER_FILE = 10_000  # records in each file of the binary layout, images in each batch of the pickle one
_IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}


@dataclass
class ImageData:
    """Train and test images (uint8, NHWC) with integer labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple
    source: str

    def __post_init__(self):
        check_splits(self.source, "images", (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)))


def load_cifar10(data_dir=None) -> ImageData:
    """Loads CIFAR-10.

    Looks in `data_dir` (or `ZOO_DATA_DIR`) for, in order, the binary layout
    (`cifar-10-batches-bin`), the python-pickle layout (`cifar-10-batches-py`) or the Keras
    image-folder layout (`train/<class>/*`, `test/<class>/*`), each either directly inside or
    under `cifar10/` (and `cifar10/images/` for folders), as the data mirror lays them out.
    Without a directory, downloads it with TFDS.
    """
    root = resolve_data_dir(data_dir)
    if root is None:
        (x_train, y_train), (x_test, y_test) = tfds_load("cifar10", ["train", "test"])
        return ImageData(x_train, y_train.astype("int64"), x_test, y_test.astype("int64"), CIFAR10_CLASSES, "tfds:cifar10")
    for base in (root, root / "cifar10"):
        for path, loader in (
            (base, _load_cifar_bin),
            (base / "cifar-10-batches-bin", _load_cifar_bin),
            (base, _load_cifar_py),
            (base / "cifar-10-batches-py", _load_cifar_py),
            (base, load_image_folder),
            (base / "images", load_image_folder),
        ):
            if loader.looks_like(path):
                return loader(path)
    raise DataError(
        f"No CIFAR-10 found in {root}: expected cifar-10-batches-bin/, cifar-10-batches-py/ or "
        "train/<class>/ and test/<class>/ folders (directly or under cifar10/)."
    )


# --- binary layout ------------------------------------------------------------------------


def _load_cifar_bin(path: Path) -> ImageData:
    names = CIFAR10_CLASSES
    meta = path / "batches.meta.txt"
    if meta.exists():
        names = tuple(line.strip() for line in meta.read_text().splitlines() if line.strip())
    x_train, y_train = _read_bin_files([path / f"data_batch_{i}.bin" for i in range(1, 6)], len(names))
    x_test, y_test = _read_bin_files([path / "test_batch.bin"], len(names))
    return ImageData(x_train, y_train, x_test, y_test, names, str(path))


_load_cifar_bin.looks_like = lambda p: (p / "data_batch_1.bin").exists() or (p / "test_batch.bin").exists()


def _read_bin_files(files, num_classes):
    xs, ys = [], []
    for f in files:
        if not f.exists():
            raise DataError(f"{f}: missing (the CIFAR-10 binary layout has data_batch_1..5.bin and test_batch.bin).")
        raw = np.fromfile(f, dtype=np.uint8)
        if raw.size == 0:
            raise DataError(f"{f}: empty file.")
        if raw.size % _RECORD:
            raise DataError(
                f"{f}: {raw.size} bytes is not a whole number of {_RECORD}-byte records "
                f"(1 label byte + 3072 pixel bytes); the file is truncated or not CIFAR-10."
            )
        records = raw.reshape(-1, _RECORD)
        check_count(f, len(records), CIFAR10_PER_FILE, "records")
        labels = records[:, 0].astype("int64")
        bad = np.flatnonzero(labels >= num_classes)
        if bad.size:
            raise DataError(f"{f}: record {bad[0]} has label {labels[bad[0]]}, expected 0..{num_classes - 1}.")
        xs.append(records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(labels)
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)


# --- python pickle layout -----------------------------------------------------------------


def _load_cifar_py(path: Path) -> ImageData:
    meta = _unpickle(path / "batches.meta")
    names = tuple(n.decode() if isinstance(n, bytes) else n for n in meta.get(b"label_names", CIFAR10_CLASSES))
    x_train, y_train = _read_py_batches([path / f"data_batch_{i}" for i in range(1, 6)])
    x_test, y_test = _read_py_batches([path / "test_batch"])
    return ImageData(x_train, y_train, x_test, y_test, names, str(path))


_load_cifar_py.looks_like = lambda p: (p / "data_batch_1").exists() or (p / "batches.meta").exists()


def _unpickle(f: Path):
    if not f.exists():
        raise DataError(f"{f}: missing (the CIFAR-10 python layout has batches.meta, data_batch_1..5 and test_batch).")
    try:
        with open(f, "rb") as fh:
            # The canonical layout is a pickle; only load it from a copy you trust.
            return pickle.load(fh, encoding="bytes")
    except Exception as e:
        raise DataError(f"{f}: not a readable CIFAR-10 pickle ({type(e).__name__}: {e}).") from e


def _read_py_batches(files):
    xs, ys = [], []
    for f in files:
        batch = _unpickle(f)
        try:
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            labels = np.asarray(batch[b"labels"], dtype="int64")
            xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        except (KeyError, ValueError, TypeError) as e:
            raise DataError(f"{f}: expected a dict with b'data' (N x 3072 uint8) and b'labels' ({e}).") from e
        check_count(f, len(xs[-1]), CIFAR10_PER_FILE, "images")
        ys.append(labels)
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)


# --- Keras image-folder layout ------------------------------------------------------------


def load_image_folder(path: Path, image_size=(32, 32)) -> ImageData:
    """Reads `path/train/<class>/*` and `path/test/<class>/*` into uint8 arrays.

    Decoding runs in parallel in a `tf.data` pipeline; the decoded arrays are cached (keyed by
    the file list and modification times) under `ZOO_CACHE_DIR` or `~/.cache/keras_zoo`, so only
    the first run pays for it. A file that does not decode, or has the wrong size, is named.
    """
    path = Path(path)
    listed = {split: list_class_folders(path / split, _IMAGE_EXTENSIONS, kind="images",
                                        layout=f"{path}/train/<class>/ and {path}/test/<class>/ image folders")
              for split in ("train", "test")}
    class_names = listed["train"][2]
    if listed["test"][2] != class_names:
        raise DataError(f"{path}: train/ has classes {class_names} but test/ has {listed['test'][2]}.")
    splits = {split: (_decode_cached(files, image_size), labels) for split, (files, labels, _) in listed.items()}
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    return ImageData(x_train, y_train, x_test, y_test, class_names, str(path))


load_image_folder.looks_like = lambda p: (p / "train").is_dir() and (p / "test").is_dir()


def _cache_dir() -> Path:
    return Path(os.environ.get("ZOO_CACHE_DIR", Path.home() / ".cache" / "keras_zoo"))


def _decode_cached(files, image_size):
    key = hashlib.sha256()
    for f in files:
        st = f.stat()
        key.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    key.update(repr(image_size).encode())
    cache = _cache_dir() / f"images-{key.hexdigest()[:24]}.npy"
    if cache.exists():
        try:
            return np.load(cache)
        except Exception:
            pass  # a damaged cache is rebuilt below
    images = _decode(files, image_size)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, images)
        os.replace(tmp, cache)
    except OSError:
        pass  # caching is an optimization; a read-only home must not stop training
    return images


def _decode(files, image_size):
    import tensorflow as tf

    from zoo.images import decode_image

    ds = tf.data.Dataset.from_tensor_slices([str(f) for f in files])
    ds = ds.map(lambda f: decode_image(tf.io.read_file(f)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    out = np.empty((len(files), *image_size, 3), dtype=np.uint8)
    progress = None
    if len(files) >= 1000:
        import keras

        print(f"Decoding {len(files)} images under {files[0].parent.parent} (cached after this run)")
        progress = keras.utils.Progbar(len(files), unit_name="image")
    i = 0  # the failing index is at or after the last one decoded (none yet if the first fails)
    try:
        for i, img in enumerate(ds.as_numpy_iterator()):
            if progress is not None and (i + 1) % 1000 == 0:
                progress.update(i + 1)
            if img.shape[:2] != tuple(image_size):
                raise DataError(f"{files[i]}: image is {img.shape[1]}x{img.shape[0]}, expected {image_size[1]}x{image_size[0]}.")
            out[i] = img
    except tf.errors.OpError:
        # tf.data does not say which element failed: find it.
        raise DataError(f"{_first_undecodable(files, i)}: not a decodable image.") from None
    if progress is not None:
        progress.update(len(files), finalize=True)
    return out


def _first_undecodable(files, start):
    import tensorflow as tf

    from zoo.images import check_image_header

    for f in files[start:]:
        contents = Path(f).read_bytes()
        check_image_header(contents, f)  # a header declaring too many pixels is named, never decoded
        try:
            tf.io.decode_image(contents, channels=3, expand_animations=False)
        except tf.errors.OpError:
            return f
    return files[start]
