"""Image classification data: CIFAR-10 layouts and Keras image folders of any sizes and formats,
as in-memory uint8 arrays."""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.data import (Splits, check_count, check_split_fractions, check_splits, list_class_folders, make_splits,
                      resolve_data_dir, stratified_split, tfds_load)
from zoo.data import train_val_split  # noqa: F401 (re-exported)
from zoo.errors import DataError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_RECORD = 1 + 32 * 32 * 3
CIFAR10_PER_FILE = 10_000  # records in each file of the binary layout, images in each batch of the pickle one
_IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}
# The image size of folders whose images differ in size (or exceed MAX_NATIVE_SIDE): small
# enough that the registered models train at a few hundred images a second on a laptop CPU
# (compute grows with the pixel count: 64x64 costs 4x CIFAR-10's 32x32), large enough to keep
# the shapes in a photo. Pass `image_size` (--image-size) for more detail.
DEFAULT_IMAGE_SIZE = (64, 64)
MAX_NATIVE_SIDE = 256
SPLIT_FOLDERS = ("train", "validation", "test")


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


# --- any image folder: class folders alone or train/ (+ validation/) + test/ ----------------


def load_image_dataset(path, *, image_size=None, validation_split=0.1, test_split=0.1, seed=0) -> Splits:
    """Reads a folder of images into `Splits` (kind "image"), every image RGB at one size.

    Layouts: `path/<class>/*`, split stratified and deterministic (`zoo.data.stratified_split`);
    or `path/train/<class>/*` with `path/test/<class>/*` and optionally `path/validation/<class>/*`
    (Keras' directory layouts), the splits that are missing drawn from `train/` the same way. Files:
    `.jpg`, `.jpeg`, `.png`, `.bmp`, `.gif` (any case; the format is read from the bytes, so mixed
    formats are fine); grayscale, palette and RGBA images become RGB. Images of another size are
    centre-cropped to the target aspect and resized (`zoo.images.resize_to`). Decoded arrays are
    cached as `load_image_folder` caches them. What was converted is in the result's `notes`.

    Args:
        path: the folder.
        image_size: `(height, width)` (or one int for squares) of every image; None: the images'
            own size if they all have one and it is at most `MAX_NATIVE_SIDE` a side, else
            `DEFAULT_IMAGE_SIZE`. Sizes are read from the file headers, before decoding.
        validation_split, test_split: the fraction of each class drawn for validation and test
            where the layout has no such folder.
        seed: draws the splits.

    Raises:
        DataError: one line naming the file or folder: a missing folder, one class, a class folder
            without images, a class in `test/` or `validation/` that `train/` lacks, a file that
            does not decode, a header declaring more than `zoo.images.MAX_IMAGE_PIXELS` pixels, a
            split that would be empty.
    """
    path = Path(path)
    check_split_fractions(validation_split, test_split)
    size = _check_image_size(image_size)
    if not path.is_dir():
        raise DataError(f"{path}: no such folder; expected <class>/ image folders, or train/<class>/ and "
                        "test/<class>/.")
    if (path / "train").is_dir():
        files, labels, class_names, assignment, layout = _split_folders(path, validation_split, test_split, seed)
    else:
        for split in ("validation", "test"):
            if (path / split).is_dir():
                raise DataError(f"{path / split}: a {split}/ folder without train/ beside it; expected "
                                "train/<class>/ with it, or <class>/ folders alone.")
        files, labels, class_names = list_class_folders(
            path, _IMAGE_EXTENSIONS, kind="images", layout=f"{path}/<class>/ image folders (or train/<class>/ and "
                                                           "test/<class>/)")
        _check_classes(path, class_names)
        assignment = stratified_split(labels, validation_split, test_split, seed)
        layout = (f"class folders, split stratified by class: validation {validation_split:g}, test {test_split:g} "
                  f"(seed {seed})")
    for split, fraction in (("validation", validation_split), ("test", test_split)):
        if fraction and not (assignment == split).any():
            raise DataError(f"{path}: {len(files)} images, too few to draw a {split} split ({fraction:g} of each "
                            f"class rounds to none; a class of 3 or more images gives one): add images or give "
                            f"a {split}/ folder.")
    if not (assignment == "test").any():
        raise DataError(f"{path}: no test/ folder and a test split of 0: nothing to test on; give test/ or a test "
                        "split above 0.")
    headers = _read_headers(files)
    size, why = _choose_image_size(size, headers[:, :2])
    images = _decode_cached(files, size, resize=True)
    notes = [f"{path}: {layout}.", f"Image size {size[0]}x{size[1]} ({why})."] + _header_notes(headers, size)
    return make_splits("image", images, labels, assignment, class_names, path, files=[str(f) for f in files],
                       spec={"image_size": list(size)}, notes=notes)


def _check_image_size(image_size):
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
        raise DataError(f"--image-size must be HEIGHT WIDTH (or one side), positive integers. Received: {image_size!r}")
    return int(size[0]), int(size[1])


def _check_classes(folder, class_names):
    if len(class_names) < 2:
        raise DataError(f"{folder}: one class folder ({class_names[0]}/); a classifier needs two or more.")


def _split_folders(path, validation_split, test_split, seed):
    """The files of a train/ (+ validation/) + test/ layout, their labels (train/'s class order),
    the class names, the split of each file and a description of the layout."""
    other = sorted(f"{p.name}/" for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")
                   and p.name not in SPLIT_FOLDERS)
    layout = f"{path}/{{split}}/<class>/ image folders"
    files, labels, class_names = list_class_folders(path / "train", _IMAGE_EXTENSIONS, kind="images",
                                                    layout=layout.format(split="train"))
    _check_classes(path / "train", class_names)
    given = [s for s in ("validation", "test") if (path / s).is_dir()]
    assignment = list(stratified_split(labels, 0 if "validation" in given else validation_split,
                                       0 if "test" in given else test_split, seed))
    files, labels = list(files), list(labels)
    for split in given:
        split_files, split_labels, names = list_class_folders(path / split, _IMAGE_EXTENSIONS, kind="images",
                                                              layout=layout.format(split=split))
        unknown = [n for n in names if n not in class_names]
        if unknown:
            raise DataError(f"{path / split / unknown[0]}: class {unknown[0]!r} is not in {path / 'train'} (its "
                            f"classes: {', '.join(class_names)}).")
        files += split_files
        labels += [class_names.index(names[i]) for i in split_labels]
        assignment += [split] * len(split_files)
    drawn = [f"{s} {f:g} of train/" for s, f in (("validation", validation_split), ("test", test_split))
             if s not in given]
    layout = ", ".join(["train/", *(f"{s}/" for s in given)]) + (
        f"; drawn stratified by class (seed {seed}): {', '.join(drawn)}" if drawn else "") + (
        f"; not read, beside train/: {', '.join(other)}" if other else "")
    return files, np.asarray(labels, dtype="int64"), class_names, np.asarray(assignment), layout


# Header fields: height, width, format, colour. Formats and colours are indices into these.
_FORMATS = ("PNG", "JPEG", "GIF", "BMP")
_COLOURS = ("RGB", "grayscale", "palette", "RGBA", "CMYK")
_HEADER_BATCH = 256


def _read_headers(files) -> np.ndarray:
    """int64 `[n, 4]`: each file's height, width, format and colour from its header, without
    decoding it (cached like the images); a DataError names the first file that is not an image
    or declares more than `MAX_IMAGE_PIXELS` pixels."""
    return _cached("headers", files, "v1", lambda: _headers(files))


def _headers(files):
    import tensorflow as tf

    from zoo.images import MAX_IMAGE_PIXELS, check_image_header, image_header_size

    def header(f):
        contents = tf.io.read_file(f)
        jpeg = tf.strings.substr(contents, 0, 3) == b"\xff\xd8\xff"
        components = tf.cond(jpeg, lambda: tf.cast(tf.io.extract_jpeg_shape(contents)[2], tf.int64),
                             lambda: tf.constant(0, tf.int64))
        return image_header_size(contents), tf.strings.substr(contents, 0, 32), components

    ds = tf.data.Dataset.from_tensor_slices([str(f) for f in files])
    # Batched: a header takes microseconds, handing elements to Python one by one a millisecond.
    ds = ds.map(header, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(_HEADER_BATCH)
    out = np.zeros((len(files), 4), dtype="int64")
    start = 0  # a failing file is in the batch that starts here
    try:
        for sizes, heads, components in ds.as_numpy_iterator():
            for i, (size, head, c) in enumerate(zip(sizes, heads, components), start):
                if size[0] < 0 or size[0] * size[1] > MAX_IMAGE_PIXELS:
                    check_image_header(Path(files[i]).read_bytes(), files[i])  # raises, naming the file
                out[i] = (*size, *_format_and_colour(head, int(c)))
            start += len(sizes)
    except tf.errors.OpError:
        raise DataError(f"{_first_undecodable(files, start)}: not a decodable image.") from None
    return out


def _format_and_colour(head: bytes, jpeg_components: int):
    head = head.ljust(32, b"\0")
    if head.startswith(b"\x89PNG"):
        # IHDR colour type: 0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA.
        return 0, {0: 1, 2: 0, 3: 2, 4: 1, 6: 3}.get(head[25], 0)
    if head.startswith(b"\xff\xd8\xff"):
        return 1, {1: 1, 4: 4}.get(jpeg_components, 0)
    if head.startswith(b"GIF8"):
        return 2, 2
    bits = int.from_bytes(head[28:30], "little")  # BMP: bits a pixel
    return 3, 2 if bits <= 8 else 3 if bits == 32 else 0


def _choose_image_size(size, sizes):
    """The image size and why: the one given, else the images' own if uniform and small enough,
    else `DEFAULT_IMAGE_SIZE`."""
    if size is not None:
        return size, "as given"
    own = np.unique(sizes, axis=0)
    if len(own) == 1 and own[0].max() <= MAX_NATIVE_SIDE:
        return (int(own[0][0]), int(own[0][1])), "the images' own"
    why = (f"the images are {own[0][1]}x{own[0][0]}, above {MAX_NATIVE_SIDE} a side" if len(own) == 1
           else f"the images come in {len(own)} sizes")
    return DEFAULT_IMAGE_SIZE, f"the default: {why}"


def _header_notes(headers, size) -> list:
    n = len(headers)
    own = np.unique(headers[:, :2], axis=0)
    other = int((np.any(headers[:, :2] != size, axis=1)).sum())
    notes = [f"{n} images of {len(own)} size{'s' if len(own) > 1 else ''}, {other} resized to {size[0]}x{size[1]} "
             "(shorter side fit, centre crop)." if other else f"{n} images, all {size[0]}x{size[1]}."]
    colours = np.bincount(headers[:, 3], minlength=len(_COLOURS))
    if colours[1:].sum():
        kinds = ", ".join(f"{_COLOURS[c]} {colours[c]}" for c in range(1, len(_COLOURS)) if colours[c])
        notes.append(f"{colours[1:].sum()} converted to RGB ({kinds}).")
    formats = np.bincount(headers[:, 2], minlength=len(_FORMATS))
    notes.append("Formats: " + ", ".join(f"{_FORMATS[f]} {formats[f]}" for f in range(len(_FORMATS)) if formats[f])
                 + ".")
    return notes


def _cache_dir() -> Path:
    return Path(os.environ.get("ZOO_CACHE_DIR", Path.home() / ".cache" / "keras_zoo"))


def _decode_cached(files, image_size, *, resize=False):
    """`_decode`, cached by file list, modification times, size and resize policy."""
    from zoo.images import RESIZE_POLICY

    # Without resizing the key is what it always was: caches of the CIFAR-10 folders stay valid.
    extra = repr(image_size) + (f"\0{RESIZE_POLICY}" if resize else "")
    return _cached("images", files, extra, lambda: _decode(files, image_size, resize=resize))


def _cached(name, files, extra, compute):
    """`compute()`, an array saved under `_cache_dir()` keyed by the files (paths, sizes,
    modification times) and `extra`, and read from there while they are unchanged."""
    key = hashlib.sha256()
    for f in files:
        st = f.stat()
        key.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    key.update(extra.encode())
    cache = _cache_dir() / f"{name}-{key.hexdigest()[:24]}.npy"
    if cache.exists():
        try:
            return np.load(cache)
        except Exception:
            pass  # a damaged cache is rebuilt below
    value = compute()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, value)
        os.replace(tmp, cache)
    except OSError:
        pass  # caching is an optimization; a read-only home must not stop training
    return value


def _decode(files, image_size, *, resize=False):
    """uint8 `[n, height, width, 3]` of `files`: at `image_size` already (a file of another size is
    an error), or resized to it (`resize`, by `zoo.images.resize_to`)."""
    import tensorflow as tf

    from zoo.images import decode_image, resize_to

    def read(f):
        image = decode_image(tf.io.read_file(f))
        return resize_to(image, image_size) if resize else image

    ds = tf.data.Dataset.from_tensor_slices([str(f) for f in files])
    ds = ds.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
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
