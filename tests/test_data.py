"""Data sources (every CIFAR-10 layout, their errors, the train/validation split) and tf.data pipelines."""

import os
import pickle

import numpy as np
import pytest
import tensorflow as tf

from zoo.data import resolve_data_dir, subset_count, subset_indices
from zoo.data.images import CIFAR10_CLASSES, load_cifar10, load_image_folder, train_val_split
from zoo.errors import DataError, ZooError
from zoo.pipeline import augment_images, image_dataset, normalize_images

# --- layouts ----------------------------------------------------------------------------


def assert_loaded(data, fake):
    for name in ("x_train", "y_train", "x_test", "y_test"):
        got, want = getattr(data, name), getattr(fake, name)
        assert got.shape == want.shape, name
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert data.class_names == fake.class_names


@pytest.mark.parametrize("subdir", ["", "cifar10"])
def test_binary_layout(tmp_path, make_cifar_bin, subdir):
    fake = make_cifar_bin(tmp_path, subdir=subdir)
    data = load_cifar10(tmp_path)
    assert data.x_train.shape == (100, 32, 32, 3) and data.x_test.shape == (20, 32, 32, 3)
    assert_loaded(data, fake)
    assert data.class_names == CIFAR10_CLASSES
    assert np.bincount(data.y_train).tolist() == [10] * 10
    assert data.source == str(fake.layout_dir)


def test_binary_layout_given_directly(tmp_path, make_cifar_bin):
    fake = make_cifar_bin(tmp_path)
    assert_loaded(load_cifar10(fake.layout_dir), fake)


def test_binary_layout_reads_class_names_from_the_meta_file(tmp_path, make_cifar_bin):
    fake = make_cifar_bin(tmp_path, class_names=("a", "b", "c"))
    data = load_cifar10(tmp_path)
    assert data.class_names == ("a", "b", "c")
    assert set(data.y_train.tolist()) == {0, 1, 2}
    assert_loaded(data, fake)


@pytest.mark.parametrize("subdir", ["", "cifar10"])
def test_pickle_layout(tmp_path, make_cifar_py, subdir):
    fake = make_cifar_py(tmp_path, subdir=subdir)
    data = load_cifar10(tmp_path)
    assert data.x_train.shape == (100, 32, 32, 3) and data.x_test.shape == (20, 32, 32, 3)
    assert_loaded(data, fake)
    assert data.class_names == CIFAR10_CLASSES


@pytest.mark.parametrize("subdir", ["", "cifar10", "cifar10/images"])
def test_image_folder_layout(tmp_path, make_image_folder, subdir):
    fake = make_image_folder(tmp_path, class_names=("frog", "cat", "dog"), subdir=subdir)
    data = load_cifar10(tmp_path)
    assert data.class_names == ("cat", "dog", "frog")  # sorted folder names
    assert data.x_train.shape == (12, 32, 32, 3) and data.x_test.shape == (6, 32, 32, 3)
    assert data.y_train.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert_loaded(data, fake)


def test_image_folder_decodes_once_and_notices_changed_files(tmp_path, make_image_folder, monkeypatch):
    from PIL import Image

    cache = tmp_path / "cache"
    monkeypatch.setenv("ZOO_CACHE_DIR", str(cache))
    fake = make_image_folder(tmp_path / "data")
    first = load_image_folder(tmp_path / "data")
    assert len(list(cache.glob("images-*.npy"))) == 2  # train and test
    assert_loaded(load_image_folder(tmp_path / "data"), fake)

    changed = tmp_path / "data" / "train" / "cat" / "0000.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(changed)
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = load_image_folder(tmp_path / "data")
    assert not again.x_train[0].any() and first.x_train[0].any()
    np.testing.assert_array_equal(again.x_train[1:], first.x_train[1:])


def test_zoo_data_dir_is_the_default(cifar_bin, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_DIR", str(cifar_bin.path))
    assert_loaded(load_cifar10(), cifar_bin)
    assert resolve_data_dir(None) == cifar_bin.path


# --- errors -----------------------------------------------------------------------------


def test_missing_data_dir(tmp_path):
    with pytest.raises(DataError, match="does-not-exist.*does not exist"):
        load_cifar10(tmp_path / "does-not-exist")


def test_empty_data_dir(tmp_path):
    with pytest.raises(DataError, match="No CIFAR-10 found") as e:
        load_cifar10(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_data_errors_are_user_errors():
    assert issubclass(DataError, ZooError) and issubclass(ZooError, ValueError)


def test_truncated_bin_file(cifar_bin):
    f = cifar_bin.layout_dir / "data_batch_3.bin"
    f.write_bytes(f.read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated") as e:
        load_cifar10(cifar_bin.path)
    assert str(f) in str(e.value)


def test_empty_bin_file(cifar_bin):
    f = cifar_bin.layout_dir / "data_batch_2.bin"
    f.write_bytes(b"")
    with pytest.raises(DataError, match="empty") as e:
        load_cifar10(cifar_bin.path)
    assert str(f) in str(e.value)


def test_missing_bin_file(cifar_bin):
    f = cifar_bin.layout_dir / "data_batch_4.bin"
    f.unlink()
    with pytest.raises(DataError, match="missing") as e:
        load_cifar10(cifar_bin.path)
    assert str(f) in str(e.value)


def test_label_out_of_range(cifar_bin):
    f = cifar_bin.layout_dir / "test_batch.bin"
    raw = bytearray(f.read_bytes())
    raw[3 * 3073] = 10  # the label byte of record 3
    f.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="record 3 has label 10") as e:
        load_cifar10(cifar_bin.path)
    assert str(f) in str(e.value)


@pytest.mark.parametrize("which", ["train/cat/0000.png", "train/dog/0002.png", "test/frog/0001.png"])
def test_corrupt_image(tmp_path, make_image_folder, which):
    fake = make_image_folder(tmp_path)
    (fake.path / which).write_bytes(b"\x89PNG but not really" + bytes(100))
    with pytest.raises(DataError, match="not a decodable image") as e:
        load_cifar10(tmp_path)
    assert str(fake.path / which) in str(e.value)


def test_wrong_image_size(tmp_path, make_image_folder):
    from PIL import Image

    fake = make_image_folder(tmp_path)
    bad = fake.path / "train" / "dog" / "0001.png"
    Image.fromarray(np.zeros((16, 20, 3), np.uint8)).save(bad)
    with pytest.raises(DataError, match="20x16, expected 32x32") as e:
        load_cifar10(tmp_path)
    assert str(bad) in str(e.value)


def test_image_folder_class_mismatch(tmp_path, make_image_folder):
    fake = make_image_folder(tmp_path)
    (fake.path / "test" / "frog").rename(fake.path / "test" / "toad")
    with pytest.raises(DataError, match="train/ has classes"):
        load_cifar10(tmp_path)


def test_image_folder_without_images(tmp_path):
    for split in ("train", "test"):
        (tmp_path / split / "cat").mkdir(parents=True)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="no images") as e:
        load_cifar10(tmp_path)
    assert str(tmp_path / "train") in str(e.value)


def test_garbage_pickle(tmp_path, make_cifar_py):
    fake = make_cifar_py(tmp_path)
    f = fake.layout_dir / "data_batch_2"
    f.write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match="not a readable CIFAR-10 pickle") as e:
        load_cifar10(tmp_path)
    assert str(f) in str(e.value)


def test_pickle_with_the_wrong_contents(tmp_path, make_cifar_py):
    fake = make_cifar_py(tmp_path)
    f = fake.layout_dir / "test_batch"
    f.write_bytes(pickle.dumps({b"images": [1, 2, 3]}))
    with pytest.raises(DataError, match="expected a dict with b'data'") as e:
        load_cifar10(tmp_path)
    assert str(f) in str(e.value)

@pytest.mark.parametrize("layout", ["bin", "py"])
def test_a_cifar_file_cut_at_a_record_boundary_is_refused(tmp_path, make_cifar_bin, make_cifar_py, monkeypatch,
                                                          layout):
    # The toy files hold 20 records where the real ones hold 10,000: the check is scaled to them.
    monkeypatch.delenv("ZOO_PARTIAL_DATA")
    monkeypatch.setattr("zoo.data.images.CIFAR10_PER_FILE", 20)
    fake = (make_cifar_bin if layout == "bin" else make_cifar_py)(tmp_path)
    assert len(load_cifar10(tmp_path).x_test) == 20
    f = fake.layout_dir / ("test_batch.bin" if layout == "bin" else "test_batch")
    if layout == "bin":
        f.write_bytes(f.read_bytes()[:18 * 3073])  # whole records: no partial one to notice
    else:
        batch = pickle.loads(f.read_bytes())
        f.write_bytes(pickle.dumps({b"data": batch[b"data"][:18], b"labels": batch[b"labels"][:18]}))
    with pytest.raises(DataError, match=r"18 (records|images), expected 20 .*truncated") as e:
        load_cifar10(tmp_path)
    assert str(e.value).startswith(f"{f}: ")


def test_a_cut_down_cifar_copy_needs_zoo_partial_data(cifar_bin, monkeypatch):
    monkeypatch.delenv("ZOO_PARTIAL_DATA")
    with pytest.raises(DataError, match=r"data_batch_1\.bin: 20 records, expected 10,000 .*ZOO_PARTIAL_DATA=1"):
        load_cifar10(cifar_bin.path)
    monkeypatch.setenv("ZOO_PARTIAL_DATA", "1")
    assert len(load_cifar10(cifar_bin.path).x_train) == 100


@pytest.mark.parametrize("split", ["train", "test"])
def test_image_folder_with_an_empty_class_folder(tmp_path, make_image_folder, split):
    fake = make_image_folder(tmp_path)
    for f in (fake.path / split / "dog").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="no images .* in this class folder") as e:
        load_cifar10(tmp_path)
    assert str(e.value).startswith(f"{fake.path / split / 'dog'}: ")


def test_image_folder_skips_hidden_folders(tmp_path, make_image_folder):
    fake = make_image_folder(tmp_path)
    (fake.path / "train" / ".ipynb_checkpoints").mkdir()
    assert load_cifar10(tmp_path).class_names == ("cat", "dog", "frog")


# --- --subset ---------------------------------------------------------------------------


def test_subset_keeps_every_class_of_class_sorted_data():
    y = np.repeat(np.arange(10), 500)  # sorted by class, as an image folder loads
    keep = subset_indices(y, 200, seed=0)
    assert len(keep) == 200 and np.all(np.diff(keep) > 0)  # sorted, no repeats
    assert np.bincount(y[keep]).tolist() == [20] * 10
    keep = subset_indices(y, 0.1, seed=0)
    assert np.bincount(y[keep]).tolist() == [50] * 10
    # Unbalanced classes give their share; each gives one when there is room for all.
    y = np.repeat(np.arange(4), [91, 3, 3, 3])
    assert np.bincount(y[subset_indices(y, 10, seed=0)]).tolist() == [7, 1, 1, 1]
    counts = np.bincount(y[subset_indices(y, 0.5, seed=0)]).tolist()  # shares 45.5, 1.5, 1.5, 1.5
    assert sum(counts) == 50 and counts[0] in (45, 46) and sorted(counts[1:]) in ([1, 1, 2], [1, 2, 2])
    assert len(subset_indices(y, 3, seed=0)) == 3  # fewer than the classes: the largest shares


def test_subset_count_and_fraction_forms():
    assert subset_count(None, 1000) == 1000 and subset_count(1, 1000) == 1000 and subset_count(1.0, 1000) == 1000
    assert subset_count(0.25, 1000) == 250 and subset_count(1e-6, 1000) == 1
    assert subset_count(300, 1000) == 300 and subset_count(300.0, 1000) == 300 and subset_count(5000, 1000) == 1000
    np.testing.assert_array_equal(subset_indices(np.zeros(7), None), np.arange(7))
    np.testing.assert_array_equal(subset_indices(np.zeros(7), 5000), np.arange(7))


def test_subset_is_drawn_with_the_seed():
    y = np.arange(1000) % 4
    a, b, c = (subset_indices(y, 0.2, seed=s) for s in (3, 3, 4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and len(c) == len(a) == 200


def test_subset_of_examples_without_labels_is_a_plain_random_sample():
    keep = subset_indices(50, 10, seed=1)
    assert len(keep) == 10 and len(set(keep)) == 10 and keep.max() < 50
    assert not np.array_equal(keep, np.arange(10))  # not the first ten
    np.testing.assert_array_equal(keep, subset_indices(50, 0.2, seed=1))


@pytest.mark.parametrize("bad", [0, 0.0, -5, -0.5, float("nan"), float("inf"), 1.5, 2.25, True, "10"])
def test_subset_rejects_what_is_neither_a_count_nor_a_fraction(bad):
    with pytest.raises(ZooError, match=r"^--subset must be a count N > 1 or a fraction 0 < F <= 1 .*Received"):
        subset_indices(np.arange(10), bad)


# --- train/validation split -------------------------------------------------------------


def test_train_val_split_is_stratified_and_deterministic():
    y = np.repeat(np.arange(3), [10, 20, 30])
    x = np.arange(len(y))
    (x_tr, y_tr), (x_val, y_val) = train_val_split(x, y, 0.2, seed=1)
    assert np.bincount(y_val).tolist() == [2, 4, 6]
    assert np.bincount(y_tr).tolist() == [8, 16, 24]
    np.testing.assert_array_equal(np.sort(np.concatenate([x_tr, x_val])), x)  # disjoint, nothing lost
    np.testing.assert_array_equal(y[x_val], y_val)  # images keep their labels
    (x_tr2, _), (x_val2, _) = train_val_split(x, y, 0.2, seed=1)
    np.testing.assert_array_equal(x_val2, x_val)
    np.testing.assert_array_equal(x_tr2, x_tr)
    (_, _), (x_val3, _) = train_val_split(x, y, 0.2, seed=2)
    assert not np.array_equal(x_val3, x_val)


def test_train_val_split_zero_keeps_everything_for_training():
    y = np.arange(20) % 4
    x = np.arange(20)
    (x_tr, y_tr), (x_val, y_val) = train_val_split(x, y, 0.0)
    np.testing.assert_array_equal(x_tr, x)
    np.testing.assert_array_equal(y_tr, y)
    assert len(x_val) == 0 and len(y_val) == 0


@pytest.mark.parametrize("split", [1.0, -0.1])
def test_train_val_split_rejects_bad_fractions(split):
    with pytest.raises(ValueError, match="validation_split"):
        train_val_split(np.arange(4), np.arange(4), split)


# --- augmentation -----------------------------------------------------------------------


def random_batch(n=32, size=16, channels=3, seed=0, dtype=np.uint8):
    # Values 1..255 so that zero padding and cutout are recognizable.
    return np.random.default_rng(seed).integers(1, 256, size=(n, size, size, channels)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_augment_keeps_shape_and_dtype(dtype):
    x = random_batch(dtype=dtype)
    y = augment_images(x, crop_padding=4, flip=True, cutout=6, seed=0)
    assert tuple(y.shape) == x.shape
    assert y.dtype == tf.as_dtype(dtype)


def test_augment_with_everything_off_is_the_identity():
    x = random_batch()
    np.testing.assert_array_equal(np.asarray(augment_images(x, crop_padding=0, flip=False, cutout=0)), x)


def test_augment_with_a_seed_is_deterministic():
    x = random_batch()
    a = augment_images(x, crop_padding=4, flip=True, cutout=4, seed=7).numpy()
    b = augment_images(x, crop_padding=4, flip=True, cutout=4, seed=7).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, x)


def test_flip_mirrors_about_half_of_the_images():
    x = random_batch(n=64)
    y = augment_images(x, crop_padding=0, flip=True, cutout=0, seed=3).numpy()
    flipped = []
    for img, out in zip(x, y):
        same, mirrored = np.array_equal(out, img), np.array_equal(out, img[:, ::-1])
        assert same or mirrored
        flipped.append(mirrored)
    assert 10 <= sum(flipped) <= 54  # binomial(64, 1/2): outside this is < 1e-7 likely


def test_crop_is_a_window_of_the_zero_padded_image():
    p = 3
    x = random_batch(n=32, size=12)
    y = augment_images(x, crop_padding=p, flip=False, cutout=0, seed=5).numpy()
    padded = np.pad(x, [(0, 0), (p, p), (p, p), (0, 0)])
    offsets = []
    for img, out in zip(padded, y):
        found = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                 if np.array_equal(out, img[dy:dy + 12, dx:dx + 12])]
        assert found, "output is not a window of the padded image"
        offsets.append(found[0])
    assert len(set(offsets)) > 5  # random offsets, not always the same window


@pytest.mark.parametrize("cutout", [3, 4])
def test_cutout_zeroes_one_square(cutout):
    x = random_batch(n=32, size=16)
    y = augment_images(x, crop_padding=0, flip=False, cutout=cutout, seed=11).numpy()
    full_squares = 0
    for img, out in zip(x, y):
        zero = (out == 0).all(axis=-1)
        np.testing.assert_array_equal(out[~zero], img[~zero])  # everything else untouched
        rows, cols = np.flatnonzero(zero.any(axis=1)), np.flatnonzero(zero.any(axis=0))
        assert len(rows) and len(cols)
        # one rectangle, at most cutout x cutout (clipped at the borders), exactly that inside
        assert zero[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all() and zero.sum() == len(rows) * len(cols)
        assert len(rows) <= cutout and len(cols) <= cutout
        inside = 0 < rows[0] and rows[-1] < 15 and 0 < cols[0] and cols[-1] < 15
        if inside:
            assert (len(rows), len(cols)) == (cutout, cutout)
            full_squares += 1
    assert full_squares > 0


# --- datasets ---------------------------------------------------------------------------


def test_normalize_images_per_channel():
    x = np.array([[[[0, 51, 255]]]], dtype=np.uint8)
    y = normalize_images(x, (0.0, 0.2, 0.5), (1.0, 0.5, 0.25)).numpy()
    np.testing.assert_allclose(y[0, 0, 0], [0.0, 0.0, 2.0], atol=1e-6)
    assert y.dtype == np.float32


def test_evaluation_dataset_normalizes_and_keeps_order():
    x = random_batch(n=40, size=8)
    y = np.arange(40)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    ds = image_dataset(x, y, batch_size=16, training=False, mean=mean, std=std)
    assert ds.options().deterministic  # predictions are matched to labels by position
    batches = list(ds.as_numpy_iterator())
    assert [len(b[1]) for b in batches] == [16, 16, 8]
    xs = np.concatenate([b[0] for b in batches])
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    np.testing.assert_allclose(xs, (x / 255.0 - np.array(mean)) / np.array(std), atol=1e-5)
    assert xs.dtype == np.float32


def test_training_dataset_shuffles_and_augments_every_example_once_per_epoch():
    x = random_batch(n=40, size=8)
    y = np.arange(40)
    ds = image_dataset(x, y, batch_size=16, training=True, mean=0.5, std=0.5, crop_padding=2, seed=0)
    epochs = [list(ds.as_numpy_iterator()) for _ in range(2)]
    labels = [np.concatenate([b[1] for b in batches]) for batches in epochs]
    for lab in labels:
        np.testing.assert_array_equal(np.sort(lab), y)
    assert not np.array_equal(labels[0], y) and not np.array_equal(labels[0], labels[1])
    xs = np.concatenate([b[0] for b in epochs[0]])
    assert xs.shape == (40, 8, 8, 3) and xs.dtype == np.float32
    assert xs.min() >= -1.0 and xs.max() <= 1.0
    assert np.isclose(xs, -1.0).any()  # zero padding came in through the crops


def test_drop_remainder():
    ds = image_dataset(random_batch(n=40, size=8), np.arange(40), batch_size=16, training=True, drop_remainder=True)
    assert [len(b[1]) for b in ds.as_numpy_iterator()] == [16, 16]
