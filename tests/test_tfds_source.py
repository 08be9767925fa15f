"""The TFDS source, used when no local directory is given. Tests never download: tfds.load is faked."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from zoo.data.images import CIFAR10_CLASSES, load_cifar10
from zoo.errors import DataError


@pytest.fixture(autouse=True)
def no_local_data(monkeypatch):
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)


def test_without_a_directory_cifar10_comes_from_tfds(monkeypatch):
    calls = []

    def fake_load(name, split, as_supervised, batch_size):
        calls.append((name, tuple(split), as_supervised, batch_size))
        rng = np.random.default_rng(0)
        return [(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 10) for n in (30, 10)]

    monkeypatch.setattr(tfds, "load", fake_load)
    monkeypatch.setattr(tfds, "as_numpy", lambda x: x)
    data = load_cifar10()
    assert calls == [("cifar10", ("train", "test"), True, -1)]
    assert data.x_train.shape == (30, 32, 32, 3) and data.x_test.shape == (10, 32, 32, 3)
    assert data.y_train.dtype == np.int64
    assert data.class_names == CIFAR10_CLASSES
    assert data.source == "tfds:cifar10"


def test_offline_tfds_is_one_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Failed to establish a new connection: Name or service not known")

    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(DataError, match=r"Could not load 'cifar10' from TensorFlow Datasets .*ZOO_DATA_DIR"):
        load_cifar10()
