"""The built-in datasets and generic sources of the registry (`zoo.datasets`).

Built-ins, by `--data NAME`: cifar10, imdb, speech_commands, fsdd (classification) and
multi30k, tatoeba (translation: `tasks.text.translation --pair`). Each looks in `--data-dir`
(else `ZOO_DATA_DIR`) for its canonical layout, whose known counts are checked, else downloads it
with TFDS. Generic sources, by `--data PATH`: class folders (Keras directory layouts) for every
kind, CSV/TSV files for text; `--data tfds:NAME` reads any supervised TFDS dataset of the kind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.data import DataError, Split, Splits, stratified_split, train_val_split
from zoo.datasets import register_dataset, register_source

# --- built-in classification datasets -----------------------------------------------------------


def _validation_from_train(kind, x_train, y_train, x_test, y_test, class_names, source, cfg, spec=None):
    # The split the task modules always made: stratified, drawn with the run's seed.
    (x_tr, y_tr), (x_val, y_val) = train_val_split(x_train, y_train, cfg.validation_split, cfg.seed)
    return Splits(kind, Split(x_tr, y_tr), Split(x_val, y_val), Split(x_test, y_test), tuple(class_names), source,
                  spec=dict(spec or {}))


@register_dataset("cifar10", kind="image",
                  description="CIFAR-10: 50,000 training and 10,000 test images, 32x32 RGB, 10 classes",
                  license="distributed by its authors without a formal license; cite Krizhevsky (2009)",
                  test_split="test split, 10,000 images (1,000 a class)", short="CIFAR-10", check_examples=2000)
def cifar10(cfg) -> Splits:
    from zoo.data.images import load_cifar10

    data = load_cifar10(cfg.data_dir)
    return _validation_from_train("image", data.x_train, data.y_train, data.x_test, data.y_test, data.class_names,
                                  data.source, cfg, spec={"image_size": list(data.x_train.shape[1:3])})


@register_dataset("imdb", kind="text",
                  description="IMDB Large Movie Review Dataset (Maas et al., 2011): 25,000 training and 25,000 test "
                              "reviews, positive or negative",
                  license="no explicit license; cite Maas et al. (2011)",
                  test_split="test split, 25,000 reviews (half positive)", short="IMDB reviews", check_examples=2000)
def imdb(cfg) -> Splits:
    from zoo.data.text import load_imdb

    data = load_imdb(cfg.data_dir)
    return _validation_from_train("text", data.train_texts, data.train_labels, data.test_texts, data.test_labels,
                                  data.class_names, data.source, cfg)


@register_dataset("speech_commands", kind="audio",
                  description="Speech Commands v0.02 (Warden, 2018), the 12-label set, split 80/10/10 by speaker",
                  license="CC BY 4.0", test_split="the speaker-disjoint test split (10% of the speakers)",
                  short="Speech Commands v0.02, 12 labels")
def speech_commands(cfg) -> Splits:
    from zoo.data.audio import load_speech_commands

    return load_speech_commands(cfg.data_dir, sample_rate=cfg.sample_rate, num_samples=cfg.num_samples,
                                validation_split=cfg.validation_split, test_split=cfg.test_split)


@register_dataset("fsdd", kind="audio",
                  description="Free Spoken Digit Dataset: 3,000 recordings of the digits 0-9 by 6 speakers, 8 kHz",
                  license="CC BY-SA 4.0", test_split="the official test split: recordings with index 0-4, 300 clips",
                  short="FSDD")
def fsdd(cfg) -> Splits:
    from zoo.data.audio import load_fsdd

    return load_fsdd(cfg.data_dir, sample_rate=cfg.sample_rate, num_samples=cfg.num_samples,
                     validation_split=cfg.validation_split)


# --- built-in translation corpora (the translation task's `--pair`) -----------------------------


@register_dataset("tatoeba", kind="translation",
                  description="Tatoeba Spanish-English sentence pairs (manythings.org Anki export), split 90/5/5 by "
                              "a hash of the source sentence",
                  license="CC BY 2.0 FR", test_split="the 5% test split by source hash")
def tatoeba(cfg):
    from zoo.data.translation import load_pair

    return load_pair("spa-eng", cfg.data_dir, validation_split=cfg.validation_split, test_split=cfg.test_split)


@register_dataset("multi30k", kind="translation",
                  description="Multi30K task 1 (Elliott et al., 2016): German-English image descriptions, official "
                              "splits", license="non-commercial research and educational use",
                  test_split="test_2016_flickr, 1,000 sentences")
def multi30k(cfg):
    from zoo.data.translation import load_pair

    return load_pair("de-en", cfg.data_dir, validation_split=cfg.validation_split, test_split=cfg.test_split)


# --- generic sources ----------------------------------------------------------------------------


def _image_folder(path, cfg) -> Splits:
    from zoo.data.images import load_image_dataset

    return load_image_dataset(path, image_size=cfg.image_size, validation_split=cfg.validation_split,
                              test_split=cfg.test_split, seed=cfg.seed)


def _text_source(path, cfg) -> Splits:
    from zoo.data.text import load_text_dataset

    return load_text_dataset(path, validation_split=cfg.validation_split, test_split=cfg.test_split, seed=cfg.seed,
                             text_column=cfg.text_column, label_column=cfg.label_column)


def _audio_folder(path, cfg) -> Splits:
    from zoo.data.audio import load_audio_dataset

    return load_audio_dataset(path, sample_rate=cfg.sample_rate, clip_seconds=cfg.clip_seconds,
                              validation_split=cfg.validation_split, test_split=cfg.test_split, seed=cfg.seed)


def _is_dir(path):
    return Path(path).is_dir()


def _is_table(path):
    path = Path(path)
    return path.is_file() and path.suffix.lower() in (".csv", ".tsv")


register_source("image", "a folder of class folders (<class>/*.jpg, or train/<class>/ and test/<class>/)", _is_dir,
                _image_folder)
register_source("text", "a folder of class folders (<class>/*.txt, or train/<class>/ and test/<class>/)", _is_dir,
                _text_source)
register_source("text", "a CSV or TSV file with a text and a label column", _is_table, _text_source)
register_source("audio", "a folder of class folders (<label>/*.wav, or train/<label>/ and test/<label>/)", _is_dir,
                _audio_folder)


# --- TFDS ---------------------------------------------------------------------------------------


def load_tfds(name: str, kind: str, cfg) -> Splits:
    """Any supervised TFDS dataset of `kind` (an image, text or audio input and a class label),
    downloaded by TFDS. Its own train/validation/test splits are used where it has them; a
    missing validation or test split is drawn from train, stratified (`--validation-split`,
    `--test-split`). Images are resized as folder images are, audio resampled and padded or
    trimmed as folder clips are."""
    try:
        import tensorflow_datasets as tfds

        datasets, info = tfds.load(name, as_supervised=True, with_info=True)
    except Exception as e:  # TFDS raises many kinds of errors when offline
        raise DataError(f"Could not load {name!r} from TensorFlow Datasets ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200]}). Offline, use a local copy: --data PATH.") from e
    input_key, label_key = info.supervised_keys[:2]
    label = info.features[label_key]
    if not hasattr(label, "names"):
        raise DataError(f"tfds:{name}: its label {label_key!r} is not a class label; the {kind} recipe classifies.")
    class_names = tuple(label.names)
    available = {s: datasets[s] for s in ("train", "validation", "test") if s in datasets}
    if "train" not in available:
        raise DataError(f"tfds:{name} has no train split (it has {', '.join(datasets)}).")
    arrays = {s: _tfds_arrays(ds, kind, cfg, info.features[input_key], name) for s, ds in available.items()}
    spec, notes = {}, []
    if kind == "image":
        spec["image_size"] = list(arrays["train"][0].shape[1:3])
    if kind == "audio":
        spec.update(sample_rate=cfg.sample_rate, num_samples=cfg.num_samples)
    x, y = arrays.pop("train")
    missing = [s for s in ("validation", "test") if s not in arrays]
    if missing:
        assignment = stratified_split(y, cfg.validation_split if "validation" in missing else 0.0,
                                      cfg.test_split if "test" in missing else 0.0, cfg.seed)
        notes.append(f"{' and '.join(missing)} drawn from train (stratified)")
        for s in missing:
            arrays[s] = (x[assignment == s], y[assignment == s])
        x, y = x[assignment == "train"], y[assignment == "train"]
    splits = Splits(kind, Split(x, y), Split(*arrays["validation"]), Split(*arrays["test"]), class_names,
                    f"tfds:{name}", spec=spec, notes=notes)
    if kind == "audio":
        from zoo.data.audio import AudioData

        return AudioData(**vars(splits))
    return splits


def _tfds_arrays(ds, kind, cfg, feature, name):
    import tensorflow as tf

    if kind == "image":
        from zoo.data.images import DEFAULT_IMAGE_SIZE
        from zoo.images import resize_to

        size = None
        if cfg.image_size:
            size = (cfg.image_size,) * 2 if isinstance(cfg.image_size, int) else tuple(cfg.image_size)
        if size is None:
            shape = getattr(feature, "shape", (None, None, 3))
            size = tuple(shape[:2]) if None not in shape[:2] else DEFAULT_IMAGE_SIZE

        def rgb(x):  # grayscale and RGBA, as folder images are converted
            x = tf.image.grayscale_to_rgb(x) if x.shape[-1] == 1 else x[..., :3]
            return resize_to(x, size)

        ds = ds.map(lambda x, y: (rgb(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    elif kind == "audio":
        from zoo.audio import fix_length, resample

        rate = getattr(feature, "sample_rate", None)
        if not rate:
            raise DataError(f"tfds:{name}: its audio feature does not say its sample rate.")

        def prepare(x, y):
            x = tf.cast(x, tf.float32)
            x = x / 32768.0 if feature.dtype in (tf.int16, np.int16) else x
            x = tf.reduce_mean(x, axis=-1) if x.shape.rank == 2 else x
            if rate != cfg.sample_rate:
                x = resample(x, rate, cfg.sample_rate, length=cfg.num_samples)
            return fix_length(x, cfg.num_samples), y

        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    elif kind != "text":
        raise DataError(f"tfds:{name}: the {kind} recipe does not read TFDS datasets.")
    xs, ys = [], []
    for x, y in ds.batch(256).as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    x = np.concatenate(xs) if xs else np.zeros((0,))
    return (x.astype(object) if kind == "text" else x), np.concatenate(ys).astype("int64") if ys else np.zeros(0, "int64")
