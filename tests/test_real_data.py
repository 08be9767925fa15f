"""The CIFAR-10 mirror from ZOO_DATA_DIR (skipped without it): both layouts load completely and
agree, and one short epoch on a subset learns something."""

import numpy as np
import pytest

from tasks.vision.cifar10 import CIFAR10_MEAN, CIFAR10_STD, main
from zoo.data.images import CIFAR10_CLASSES, load_cifar10, load_image_folder

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def binary(data_dir):
    if not (data_dir / "cifar10" / "cifar-10-batches-bin").is_dir():
        pytest.skip(f"no cifar10/cifar-10-batches-bin in {data_dir}")
    return load_cifar10(data_dir)


@pytest.fixture(scope="module")
def folders(data_dir, image_cache_dir):
    path = data_dir / "cifar10" / "images"
    if not path.is_dir():
        pytest.skip(f"no cifar10/images in {data_dir}")
    # The first decode of the 60,000 JPEGs takes a minute on two cores; later ones read the cache.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_CACHE_DIR", str(image_cache_dir))
        return load_image_folder(path)


def check_cifar10(data, pixel_atol):
    assert data.x_train.shape == (50000, 32, 32, 3) and data.x_test.shape == (10000, 32, 32, 3)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert data.class_names == CIFAR10_CLASSES
    assert np.bincount(data.y_train, minlength=10).tolist() == [5000] * 10
    assert np.bincount(data.y_test, minlength=10).tolist() == [1000] * 10
    # The task's normalization constants are the training set's statistics (RGB order, [0, 1] units).
    x = data.x_train[::10].astype(np.float64) / 255.0
    np.testing.assert_allclose(x.mean(axis=(0, 1, 2)), CIFAR10_MEAN, atol=pixel_atol)
    np.testing.assert_allclose(x.std(axis=(0, 1, 2)), CIFAR10_STD, atol=pixel_atol)


def test_binary_layout(binary):
    assert binary.source.endswith("cifar10/cifar-10-batches-bin")
    check_cifar10(binary, pixel_atol=0.005)


def test_image_folder_layout(folders, image_cache_dir):
    check_cifar10(folders, pixel_atol=0.01)  # JPEG
    assert len(list(image_cache_dir.glob("images-*.npy"))) >= 2  # decoded once, then cached


def test_the_layouts_agree(binary, folders):
    assert folders.class_names == binary.class_names
    for split in ("train", "test"):
        yb, yf = getattr(binary, f"y_{split}"), getattr(folders, f"y_{split}")
        assert np.bincount(yb).tolist() == np.bincount(yf).tolist()
        xb, xf = getattr(binary, f"x_{split}"), getattr(folders, f"x_{split}")
        for c in range(10):  # the same images per class, up to JPEG error
            mb = xb[yb == c].mean(axis=(0, 1, 2))
            mf = xf[yf == c].mean(axis=(0, 1, 2))
            np.testing.assert_allclose(mf, mb, atol=2.0, err_msg=f"{split} class {c}")


def test_one_short_epoch_beats_chance(data_dir, tmp_path):
    metrics = main([
        "--preset", "fast", "--epochs", "1", "--subset", "5000", "--batch-size", "64", "--precision", "float32",
        "--model-arg", "widths=(32, 64, 64)", "--no-tta", "--validation-split", "0.02",
        "--no-tensorboard", "--no-export", "--verbose", "0",
        "--data-dir", str(data_dir), "--output-dir", str(tmp_path / "run"),
    ])
    assert metrics["test_examples"] == 10000 and metrics["val_examples"] == 1000
    assert metrics["test_accuracy"] > 0.25, metrics
