"""The dataset registry (zoo.datasets): built-ins by name, generic sources by path, tfds:NAME (faked:
tests never download), and the errors a wrong --data gives."""

from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from zoo.data import Split, Splits, stratified_split
from zoo.datasets import DatasetInfo, get_dataset, list_datasets, load_dataset, register_dataset
from zoo.errors import DataError, ZooError


def config(**kw):
    """What the loaders read from a recipe's config."""
    base = dict(data_dir=None, validation_split=0.1, test_split=0.1, seed=0, image_size=None, text_column=None,
                label_column=None, sample_rate=8000, clip_seconds=0.25, num_samples=2000)
    return SimpleNamespace(**{**base, **kw})


def test_the_built_in_datasets_are_registered_with_their_kind():
    assert list_datasets("image") == ["cifar10"]
    assert list_datasets("text") == ["imdb"]
    assert list_datasets("audio") == ["fsdd", "speech_commands"]
    assert list_datasets("translation") == ["multi30k", "tatoeba"]
    for name in list_datasets():
        info = get_dataset(name)
        assert isinstance(info, DatasetInfo) and info.description and info.license and info.test_split


def test_cifar10_and_imdb_go_through_the_registry(make_cifar_bin, make_text_folder, tmp_path):
    fake = make_cifar_bin(tmp_path / "c", records_per_file=20)
    data = load_dataset("cifar10", "image", config(data_dir=str(fake.path), validation_split=0.2))
    assert isinstance(data, Splits) and data.kind == "image" and len(data.class_names) == 10
    assert (len(data.train), len(data.validation), len(data.test)) == (80, 20, 20)
    assert data.spec == {"image_size": [32, 32]} and data.train.x.dtype == np.uint8

    corpus = make_text_folder(tmp_path / "t")
    data = load_dataset("imdb", "text", config(data_dir=str(corpus.parent), validation_split=0.25))
    assert data.kind == "text" and data.class_names == ("neg", "pos")
    assert (len(data.train), len(data.validation), len(data.test)) == (72, 24, 32)
    assert isinstance(data.train.x[0], bytes)


def test_speech_datasets_go_through_the_registry(tmp_path):
    from tests.test_speech_tasks import write_fake_commands, write_fake_fsdd

    root = write_fake_fsdd(write_fake_commands(tmp_path, speakers=10))
    commands = load_dataset("speech_commands", "audio", config(data_dir=str(root), validation_split=0.3,
                                                                 test_split=0.3))
    assert commands.kind == "audio" and len(commands.class_names) == 12 and commands.train.x.shape[1] == 2000
    digits = load_dataset("fsdd", "audio", config(data_dir=str(root)))
    assert digits.class_names == tuple("0123456789") and len(digits.test) == 100  # index 0-4 of 2 speakers


def test_a_wrong_data_flag_is_one_clear_error(tmp_path):
    with pytest.raises(ZooError, match="--data is required: a registered dataset"):
        load_dataset(None, "image", config())
    with pytest.raises(ZooError, match="--data imdb: a dataset of texts, and this recipe trains on images"):
        load_dataset("imdb", "image", config())
    with pytest.raises(ZooError, match=r"--data nosuch: neither a registered image dataset \(cifar10\) nor an "
                                       r"existing path; tfds:NAME"):
        load_dataset("nosuch", "image", config())
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ZooError, match="not a layout the image recipe reads; expected a folder of class folders"):
        load_dataset(str(tmp_path / "notes.txt"), "image", config())


def test_a_new_dataset_is_one_registered_function():
    @register_dataset("toy_words_for_test", kind="text", description="toy")
    def toy(cfg):
        x = np.array([b"a", b"b", b"c", b"d"] * 5, dtype=object)
        y = np.arange(20) % 2
        part = stratified_split(y, cfg.validation_split, cfg.test_split, cfg.seed)
        return Splits("text", *(Split(x[part == s], y[part == s]) for s in ("train", "validation", "test")),
                      ("odd", "even"), "toy")

    try:
        data = load_dataset("toy_words_for_test", "text", config(validation_split=0.2, test_split=0.2))
        assert (len(data.train), len(data.validation), len(data.test)) == (12, 4, 4)
        assert "toy_words_for_test" in list_datasets("text")
    finally:
        import zoo.datasets

        zoo.datasets._DATASETS.pop("toy_words_for_test")


def test_splits_refuse_one_class_and_labels_out_of_range():
    one = Split(np.zeros((2, 1)), np.zeros(2, "int64"))
    with pytest.raises(DataError, match="one class"):
        Splits("text", one, one, one, ("a",), "src")
    bad = Split(np.zeros((2, 1)), np.array([0, 5]))
    with pytest.raises(DataError, match="labels outside 0..1"):
        Splits("text", bad, bad, bad, ("a", "b"), "src")


@pytest.mark.parametrize("validation, test", [(0.1, 0.1), (0.2, 0.0), (0.0, 0.3)])
def test_stratified_split_is_deterministic_and_per_class(validation, test):
    labels = np.repeat([0, 1, 2], [50, 30, 3])
    a = stratified_split(labels, validation, test, seed=3)
    np.testing.assert_array_equal(a, stratified_split(labels, validation, test, seed=3))
    assert not np.array_equal(a, stratified_split(labels, validation, test, seed=4))
    for c, n in ((0, 50), (1, 30)):
        assert np.sum((labels == c) & (a == "validation")) == round(n * validation)
        assert np.sum((labels == c) & (a == "test")) == round(n * test)
    # A class of three still trains on one and gives one to each held-out split asked for.
    small = a[labels == 2]
    assert (small == "train").sum() >= 1 and ((small == "validation").sum() == 1) == bool(validation)


# --- tfds:NAME (faked) ------------------------------------------------------------------------------


class FakeLabel:
    def __init__(self, names):
        self.names = names


class FakeInfo:
    def __init__(self, features, keys=("x", "label")):
        self.features, self.supervised_keys = features, keys


def fake_tfds(monkeypatch, splits: dict, features: dict):
    calls = []

    def load(name, as_supervised, with_info):
        calls.append(name)
        return {s: tf.data.Dataset.from_tensor_slices(v) for s, v in splits.items()}, FakeInfo(features)

    monkeypatch.setattr(tfds, "load", load)
    return calls


def test_tfds_images_of_any_size_keep_their_splits_and_get_a_test_split_when_missing(monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 40, 48, 3), dtype=np.uint8)
    labels = np.arange(30) % 3
    calls = fake_tfds(monkeypatch, {"train": (images, labels), "validation": (images[:6], labels[:6])},
                      {"x": SimpleNamespace(shape=(None, None, 3)), "label": FakeLabel(["a", "b", "c"])})
    data = load_dataset("tfds:my_flowers", "image", config(image_size=(16, 16), test_split=0.2))
    assert calls == ["my_flowers"] and data.source == "tfds:my_flowers" and data.class_names == ("a", "b", "c")
    assert data.train.x.shape[1:] == (16, 16, 3) and data.train.x.dtype == np.uint8
    assert (len(data.train), len(data.validation), len(data.test)) == (24, 6, 6)
    assert data.notes == ["test drawn from train (stratified)"]


def test_tfds_text_and_audio(monkeypatch):
    texts = np.array([b"good", b"bad", b"fine"] * 4, dtype=object)
    fake_tfds(monkeypatch, {"train": (texts, np.arange(12) % 3), "test": (texts[:3], np.arange(3))},
              {"x": None, "label": FakeLabel(["p", "n", "m"])})
    data = load_dataset("tfds:reviews", "text", config(validation_split=0.25))
    assert data.kind == "text" and (len(data.train), len(data.validation), len(data.test)) == (9, 3, 3)

    t = np.arange(16000) / 16000
    clips = np.stack([(20000 * np.sin(2 * np.pi * f * t)).astype(np.int16) for f in (400, 800) * 5])
    fake_tfds(monkeypatch, {"train": (clips, np.arange(10) % 2), "test": (clips[:2], np.arange(2))},
              {"x": SimpleNamespace(sample_rate=16000, dtype=tf.int16), "label": FakeLabel(["lo", "hi"])})
    data = load_dataset("tfds:tones", "audio", config(validation_split=0.2))
    assert data.train.x.shape[1] == 2000 and data.train.x.dtype == np.float32  # 8 kHz, 0.25 s
    spectrum = np.abs(np.fft.rfft(data.test.x[0]))
    assert abs(np.argmax(spectrum) * 8000 / 2000 - 400) <= 4  # the 400 Hz tone, resampled


def test_tfds_offline_and_unlabelled_datasets_are_clear_errors(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Failed to establish a new connection")

    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(DataError, match=r"Could not load 'x' from TensorFlow Datasets .*--data PATH"):
        load_dataset("tfds:x", "image", config())
    fake_tfds(monkeypatch, {"train": (np.zeros((2, 4, 4, 3), np.uint8), np.zeros(2))},
              {"x": SimpleNamespace(shape=(4, 4, 3)), "label": object()})
    with pytest.raises(DataError, match="its label 'label' is not a class label"):
        load_dataset("tfds:y", "image", config())


def test_class_folders_are_read_at_any_depth_and_hidden_files_skipped(tmp_path):
    for label in ("cats", "dogs"):
        for i, sub in enumerate(["", "2024/", "2024/june/", ".thumbnails/"] * 3):
            path = tmp_path / "notes" / label / sub / f"{i}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"a note about {label} number {i}")
    data = load_dataset(str(tmp_path / "notes"), "text", config(validation_split=0.0, test_split=0.25))
    assert len(data.train) + len(data.test) == 2 * 9  # 12 files a class, 3 of them in a hidden folder
    assert not any("/.thumbnails/" in f for f in data.train.files + data.test.files)


def test_mp3_clips_are_read(tmp_path):
    import soundfile as sf

    rate = 16000
    t = np.arange(rate // 2) / rate
    for label, freq in (("low", 500), ("high", 2000)):
        (tmp_path / "clips" / label).mkdir(parents=True)
        for i in range(5):
            sf.write(tmp_path / "clips" / label / f"{i}.mp3", (0.3 * np.sin(2 * np.pi * freq * t)).astype("float32"),
                     rate, format="MP3")
    data = load_dataset(str(tmp_path / "clips"), "audio", config(sample_rate=8000, clip_seconds=0.5,
                                                                 validation_split=0.2, test_split=0.2))
    clip = data.test.x[0]
    peak = np.argmax(np.abs(np.fft.rfft(clip))) * 8000 / len(clip)
    assert abs(peak - (500 if data.class_names[data.test.labels[0]] == "low" else 2000)) < 30
    assert any("mp3" in note for note in data.notes)
