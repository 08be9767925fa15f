"""Shared fixtures: the Keras backend, tiny fake datasets in every CIFAR-10 layout, clean global state."""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import pickle  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import zoo  # noqa: E402,F401  (before Keras imports TensorFlow: its kernels are chosen then, zoo.cpu)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# ZOO_CACHE_DIR as the user started pytest with it (the autouse fixture below replaces it per test).
USER_CACHE_DIR = os.environ.get("ZOO_CACHE_DIR")


@dataclass
class FakeData:
    """A fake dataset on disk and the arrays written into it (NHWC uint8, int64 labels)."""

    path: Path  # the directory to pass as --data-dir / to load_cifar10
    layout_dir: Path  # the directory that holds the files themselves
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple


def _random_images(rng, n, size=32):
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def _labels(n, num_classes, offset=0):
    return ((np.arange(n) + offset) % num_classes).astype("int64")


def write_cifar_bin(root, records_per_file=20, subdir="", seed=0, class_names=CIFAR10_CLASSES):
    """Writes `root/<subdir>/cifar-10-batches-bin/` (5 train batches, a test batch, batches.meta.txt)."""
    root = Path(root)
    d = root / subdir / "cifar-10-batches-bin"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        x = _random_images(rng, records_per_file)
        y = _labels(records_per_file, len(class_names), offset=len(xs))
        records = np.concatenate([y.astype(np.uint8)[:, None], x.transpose(0, 3, 1, 2).reshape(len(x), -1)], axis=1)
        records.tofile(d / name)
        xs.append(x)
        ys.append(y)
    (d / "batches.meta.txt").write_text("\n".join(class_names) + "\n\n")
    return FakeData(root, d, np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5], tuple(class_names))


def write_cifar_py(root, records_per_file=20, subdir="", seed=0, class_names=CIFAR10_CLASSES):
    """Writes `root/<subdir>/cifar-10-batches-py/` (pickled dicts, as the canonical python layout)."""
    root = Path(root)
    d = root / subdir / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = _random_images(rng, records_per_file)
        y = _labels(records_per_file, len(class_names), offset=len(xs))
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in y],
                 b"data": x.transpose(0, 3, 1, 2).reshape(len(x), -1), b"filenames": [b"x.png"] * len(x)}
        with open(d / name, "wb") as f:
            pickle.dump(batch, f)
        xs.append(x)
        ys.append(y)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in class_names], b"num_vis": 3072}, f)
    return FakeData(root, d, np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5], tuple(class_names))


def write_image_folder(root, class_names=("cat", "dog", "frog"), train_per_class=4, test_per_class=2, subdir="",
                       size=32, seed=0):
    """Writes `root/<subdir>/{train,test}/<class>/NNNN.png`; arrays are in the loader's order
    (classes sorted by name, files sorted by name)."""
    from PIL import Image

    root = Path(root)
    d = root / subdir
    rng = np.random.default_rng(seed)
    names = tuple(sorted(class_names))
    out = {}
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        xs, ys = [], []
        for label, name in enumerate(names):
            (d / split / name).mkdir(parents=True, exist_ok=True)
            x = _random_images(rng, n, size)
            for i, img in enumerate(x):
                Image.fromarray(img).save(d / split / name / f"{i:04d}.png")
            xs.append(x)
            ys.append(np.full(n, label, dtype="int64"))
        out[split] = (np.concatenate(xs), np.concatenate(ys))
    return FakeData(root, d, *out["train"], *out["test"], names)


@pytest.fixture(scope="session")
def make_cifar_bin():
    return write_cifar_bin


@pytest.fixture(scope="session")
def make_cifar_py():
    return write_cifar_py


@pytest.fixture(scope="session")
def make_image_folder():
    return write_image_folder


@pytest.fixture
def cifar_bin(tmp_path):
    """A tiny CIFAR-10 binary layout: 5 x 20 training and 20 test records, labels cycling 0..9."""
    return write_cifar_bin(tmp_path / "data")


@pytest.fixture(scope="session")
def data_dir():
    """The dataset mirror from ZOO_DATA_DIR; the test is skipped when it is not set."""
    value = os.environ.get("ZOO_DATA_DIR")
    if not value:
        pytest.skip("ZOO_DATA_DIR is not set (real-data tests need the dataset mirror)")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"ZOO_DATA_DIR={value} is not a directory")
    return path


@pytest.fixture(scope="session")
def image_cache_dir(tmp_path_factory):
    """Where real-data tests cache decoded image folders: ZOO_CACHE_DIR as pytest was started with
    (so that later runs reuse it), else a directory for this session."""
    return Path(USER_CACHE_DIR) if USER_CACHE_DIR else tmp_path_factory.mktemp("zoo_cache")


@pytest.fixture(scope="session", autouse=True)
def _toy_copies_of_canonical_layouts():
    """The fake datasets hold a few examples where the canonical layouts hold thousands: read them
    as they are, from module fixtures and subprocesses too (real-data tests turn the check back on)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_PARTIAL_DATA", "1")
        yield


@pytest.fixture(autouse=True)
def _clean_global_state(request, tmp_path, monkeypatch):
    """Decoded-image caches go to the test's tmp dir (real-data tests pick their own, and check the
    mirror's canonical counts), and the global Keras dtype policy, which tasks set, is float32
    again after each test."""
    if request.node.get_closest_marker("real_data") is None:
        monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "zoo_cache"))
    else:
        monkeypatch.delenv("ZOO_PARTIAL_DATA")
    yield
    keras.mixed_precision.set_dtype_policy("float32")


POSITIVE_WORDS = ("great", "wonderful", "loved", "brilliant", "superb")
NEGATIVE_WORDS = ("awful", "boring", "hated", "terrible", "dull")
FILLER_WORDS = ("the", "film", "was", "a", "movie", "and", "plot", "actors", "it", "story")


def write_text_folder(root, train_per_class=48, test_per_class=16, seed=0, subdir="aclImdb"):
    """Writes a toy sentiment corpus in the aclImdb layout, `root/<subdir>/{train,test}/{neg,pos}/<i>_<r>.txt`:
    filler words, one or two sentiment words of the class, `<br />` markup. Returns the corpus dir."""
    rng = np.random.default_rng(seed)
    base = Path(root) / subdir
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for name, words in (("neg", NEGATIVE_WORDS), ("pos", POSITIVE_WORDS)):
            folder = base / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                tokens = [*rng.choice(FILLER_WORDS, size=rng.integers(3, 12)), *rng.choice(words, size=rng.integers(1, 3))]
                rng.shuffle(tokens)
                (folder / f"{i}_{8 if name == 'pos' else 2}.txt").write_text(" ".join(tokens).capitalize() + ".<br /><br />")
    return base


@pytest.fixture(scope="session")
def make_text_folder():
    return write_text_folder
