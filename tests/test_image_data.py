"""Image folders of any layout, size and format (`zoo.data.images.load_image_dataset`), their bad
inputs, one resize policy (`zoo.images.resize_to`) shared by the loader, the predictor and the
SavedModel, the image serving signatures (`zoo.images.image_serving`) and `zoo.load` on them."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from zoo.data.images import DEFAULT_IMAGE_SIZE, load_image_dataset, load_image_folder
from zoo.errors import DataError
from zoo.export import export_saved_model
from zoo.images import image_serving, image_serving_metadata, resize_to
from zoo.pretrained import load, read_image
from zoo.safety import write_manifest

COLOURS = ("blue", "green", "red")  # class i is brightest in channel 2 - i


def save(path, array, mode=None):
    """Writes `array` (uint8 RGB) as the file `path` names, in the format its suffix names and,
    with `mode`, converted first (PIL modes: "L", "P", "RGBA")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if mode == "RGBA":
        image = Image.fromarray(np.dstack([array, np.full(array.shape[:2], 200, np.uint8)]))
    elif mode:
        image = image.convert(mode)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".gif": "GIF", ".bmp": "BMP"}[path.suffix.lower()]
    image.save(path, format=fmt)
    return path


def tinted(rng, label, height, width):
    """A noisy image whose channel `2 - label` is the brightest (so the toy model can tell)."""
    image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    image[..., 2 - label] += 180
    return image


FORMATS = [(".png", None), (".jpg", None), (".PNG", "L"), (".png", "RGBA"), (".JPEG", None), (".gif", "P"),
           (".bmp", None), (".png", "P")]


def mixed_folder(root, counts=(10, 10, 5), seed=0):
    """`root/<colour>/*`: images of varying sizes in every format and colour mode of FORMATS."""
    rng = np.random.default_rng(seed)
    for label, (name, n) in enumerate(zip(COLOURS, counts)):
        for i in range(n):
            suffix, mode = FORMATS[(i + label) % len(FORMATS)]
            save(root / name / f"{i:02d}{suffix}", tinted(rng, label, 20 + 7 * i, 30 + 3 * label), mode)
    return root


# --- layouts --------------------------------------------------------------------------------------


def test_class_folders_of_mixed_sizes_and_formats_split_stratified(tmp_path):
    root = mixed_folder(tmp_path / "photos")
    data = load_image_dataset(root)
    assert data.kind == "image" and data.class_names == COLOURS
    assert data.spec == {"image_size": list(DEFAULT_IMAGE_SIZE)}
    assert data.train.x.shape[1:] == (*DEFAULT_IMAGE_SIZE, 3) and data.train.x.dtype == np.uint8
    # 10 images: 1 validation, 1 test; 5 images: round(0.5) = 0, but a class of 3+ gives one to each.
    for split, counts in (("train", [8, 8, 3]), ("validation", [1, 1, 1]), ("test", [1, 1, 1])):
        assert np.bincount(getattr(data, split).labels, minlength=3).tolist() == counts, split
    notes = " ".join(data.notes)
    assert "25 images of 25 sizes, 25 resized to 64x64 (shorter side fit, centre crop)" in notes
    assert "12 converted to RGB (grayscale 4, palette 5, RGBA 3)." in notes
    assert "Formats: PNG 12, JPEG 7, GIF 3, BMP 3." in notes
    # Every image is RGB now, still brightest in its class's channel, and exactly what the
    # predictor's reader makes of its file: one resize policy.
    for split in (data.train, data.validation, data.test):
        for x, label, f in zip(split.x, split.labels, split.files):
            if f.endswith(".PNG"):  # grayscale: three equal channels
                assert (x[..., 0] == x[..., 1]).all() and (x[..., 0] == x[..., 2]).all()
            else:
                assert x.reshape(-1, 3).mean(0).argmax() == 2 - label, f
    for i in (0, 5, 17):
        np.testing.assert_array_equal(data.train.x[i], read_image(data.train.files[i], DEFAULT_IMAGE_SIZE))
    # Deterministic: the same files in each split again (from the cache and without it), another seed differs.
    again = load_image_dataset(root)
    assert again.test.files == data.test.files and again.validation.files == data.validation.files
    np.testing.assert_array_equal(again.train.x, data.train.x)
    assert load_image_dataset(root, seed=1).test.files != data.test.files


def test_a_folder_of_one_size_keeps_it_and_its_pixels(tmp_path):
    rng = np.random.default_rng(0)
    images = {(c, i): tinted(rng, label, 40, 24) for label, c in enumerate(COLOURS) for i in range(4)}
    for (c, i), image in images.items():
        save(tmp_path / "data" / c / f"{i}.png", image)
    data = load_image_dataset(tmp_path / "data", validation_split=0.25, test_split=0.25)
    assert data.spec == {"image_size": [40, 24]}
    assert "12 images, all 40x24." in data.notes
    for split in (data.train, data.validation, data.test):
        for x, f in zip(split.x, split.files):
            np.testing.assert_array_equal(x, images[(Path(f).parent.name, int(Path(f).stem))])
    # A size given is what comes out, whatever the images' own.
    assert load_image_dataset(tmp_path / "data", image_size=(16, 20)).train.x.shape[1:] == (16, 20, 3)
    # Uniform but large: the default.
    for c in COLOURS:
        save(tmp_path / "big" / c / "0.png", np.zeros((300, 300, 3), np.uint8))
        save(tmp_path / "big" / c / "1.png", np.zeros((300, 300, 3), np.uint8))
        save(tmp_path / "big" / c / "2.png", np.zeros((300, 300, 3), np.uint8))
    big = load_image_dataset(tmp_path / "big")
    assert big.spec == {"image_size": list(DEFAULT_IMAGE_SIZE)}
    assert "the default: the images are 300x300, above 256 a side" in " ".join(big.notes)


def test_train_and_test_folders_draw_validation_from_train(tmp_path):
    tmp_path = tmp_path / "data"  # beside the test's image cache, not holding it
    rng = np.random.default_rng(0)
    for label, c in enumerate(COLOURS):
        for i in range(10):
            save(tmp_path / "train" / c / f"{i}.jpg", tinted(rng, label, 30, 30 + i))
        if c != "green":  # a test split without one class is fine: labels follow train/'s classes
            for i in range(2):
                save(tmp_path / "test" / c / f"{i}.png", tinted(rng, label, 50, 40))
    data = load_image_dataset(tmp_path, image_size=(24, 24), validation_split=0.2)
    assert data.class_names == COLOURS
    assert (len(data.train), len(data.validation), len(data.test)) == (24, 6, 4)
    assert data.test.labels.tolist() == [0, 0, 2, 2]
    assert all("/test/" in f for f in data.test.files) and all("/train/" in f for f in data.validation.files)
    # With validation/, nothing is drawn from train/.
    for label, c in enumerate(COLOURS):
        save(tmp_path / "validation" / c / "0.bmp", tinted(rng, label, 20, 20))
    data = load_image_dataset(tmp_path, image_size=(24, 24))
    assert (len(data.train), len(data.validation), len(data.test)) == (30, 3, 4)
    assert data.validation.labels.tolist() == [0, 1, 2]


def test_train_and_test_folders_read_as_the_cifar_folder_loader_reads_them(tmp_path, make_image_folder):
    fake = make_image_folder(tmp_path)
    old = load_image_folder(fake.path)
    new = load_image_dataset(fake.path, validation_split=0)
    assert new.spec == {"image_size": [32, 32]} and new.class_names == old.class_names
    np.testing.assert_array_equal(new.train.x, old.x_train)
    np.testing.assert_array_equal(new.train.labels, old.y_train)
    np.testing.assert_array_equal(new.test.x, old.x_test)
    np.testing.assert_array_equal(new.test.labels, old.y_test)


# --- bad input: one line naming the file or folder -----------------------------------------------


def test_a_class_in_test_that_train_lacks(tmp_path):
    tmp_path = tmp_path / "data"  # beside the test's image cache, not holding it
    mixed_folder(tmp_path / "train")
    save(tmp_path / "test" / "red" / "0.png", np.zeros((8, 8, 3), np.uint8))
    save(tmp_path / "test" / "violet" / "0.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError) as e:
        load_image_dataset(tmp_path)
    assert str(e.value) == (f"{tmp_path / 'test' / 'violet'}: class 'violet' is not in {tmp_path / 'train'} "
                            "(its classes: blue, green, red).")


def test_an_empty_class_folder(tmp_path):
    tmp_path = tmp_path / "data"  # beside the test's image cache, not holding it
    mixed_folder(tmp_path)
    (tmp_path / "yellow").mkdir()
    (tmp_path / "yellow" / "notes.txt").write_text("no images")
    with pytest.raises(DataError, match=r"no images \(.*\) in this class folder") as e:
        load_image_dataset(tmp_path)
    assert str(e.value).startswith(f"{tmp_path / 'yellow'}: ")


@pytest.mark.parametrize("layout", ["classes", "train"])
def test_one_class(tmp_path, layout):
    tmp_path = tmp_path / "data"  # beside the test's image cache, not holding it
    folder = tmp_path if layout == "classes" else tmp_path / "train"
    mixed_folder(folder, counts=(6,))
    if layout == "train":
        save(tmp_path / "test" / "blue" / "0.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError) as e:
        load_image_dataset(tmp_path)
    assert str(e.value) == f"{folder}: one class folder (blue/); a classifier needs two or more."


@pytest.mark.parametrize("damage", ["header", "body", "jpeg header"])
def test_an_undecodable_file_is_named(tmp_path, damage):
    tmp_path = tmp_path / "data"  # beside the test's image cache, not holding it
    mixed_folder(tmp_path)
    bad = tmp_path / "green" / "03.png"
    contents = save(bad, np.zeros((30, 30, 3), np.uint8)).read_bytes()
    bad.write_bytes({"header": b"not an image at all", "body": contents[:40] + bytes(200),
                     "jpeg header": b"\xff\xd8\xff\xe0" + bytes(60)}[damage])
    with pytest.raises(DataError, match="not a decodable image") as e:
        load_image_dataset(tmp_path)
    assert str(e.value).startswith(f"{bad}: ")


def test_a_header_declaring_too_many_pixels_is_named_and_not_decoded(tmp_path):
    tmp_path = tmp_path / "data"  # beside the test's image cache, not holding it
    mixed_folder(tmp_path)
    bad = tmp_path / "red" / "huge.png"
    contents = bytearray(save(bad, np.zeros((8, 8, 3), np.uint8)).read_bytes())
    contents[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR width, height
    bad.write_bytes(bytes(contents))
    with pytest.raises(DataError, match=r"declares 100000x100000 pixels .*MAX_IMAGE_PIXELS") as e:
        load_image_dataset(tmp_path)
    assert str(e.value).startswith(f"{bad}: ")


def test_splits_that_would_be_empty(tmp_path):
    # A class of one image stays in train; the others give validation and test their share.
    mixed_folder(tmp_path / "ok", counts=(10, 1, 6))
    data = load_image_dataset(tmp_path / "ok")
    assert np.bincount(data.test.labels, minlength=3).tolist() == [1, 0, 1]
    assert np.bincount(data.train.labels, minlength=3).tolist() == [8, 1, 4]
    # Too few images in every class for a test split: said, not an empty split.
    mixed_folder(tmp_path / "tiny", counts=(2, 2))
    with pytest.raises(DataError, match=r"tiny: 4 images, too few to draw a validation split"):
        load_image_dataset(tmp_path / "tiny")
    with pytest.raises(DataError, match=r"tiny: no test/ folder and a test split of 0"):
        load_image_dataset(tmp_path / "tiny", validation_split=0, test_split=0)
    # A test/ folder without train/.
    save(tmp_path / "half" / "test" / "red" / "0.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match=r"half/test: a test/ folder without train/"):
        load_image_dataset(tmp_path / "half")


# --- serving: one resize policy in the graph, named outputs, zoo.load -----------------------------


def colour_model(size):
    """Global average pooling and a Dense layer: logits 10x the mean of channel 2 - i."""
    inputs = keras.Input((*size, 3))
    dense = keras.layers.Dense(3)
    outputs = dense(keras.layers.GlobalAveragePooling2D()(inputs))
    dense.set_weights([np.eye(3, dtype="float32")[:, ::-1] * 10, np.zeros(3, "float32")])
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A toy image classifier at 16x12, exported with `image_serving`, manifest written."""
    size, mean, std = (16, 12), 0.5, 0.25
    model = colour_model(size)
    path = tmp_path_factory.mktemp("image_entry") / "colours"
    card = image_serving_metadata(image_size=size, mean=mean, std=std, class_names=COLOURS)
    export_saved_model(model, path, **image_serving(model, image_size=size, mean=mean, std=std, class_names=COLOURS),
                       metadata={"name": "colours", "kind": "image_classifier", "class_names": list(COLOURS), **card})
    write_manifest(path)
    return path, size


def test_saved_model_signatures_resize_in_the_graph(exported, tmp_path):
    path, size = exported
    model = tf.saved_model.load(str(path))
    assert set(model.signatures) == {"serve", "serving_default", "serve_any_size", "serve_image_bytes"}
    rng = np.random.default_rng(1)
    images = np.stack([tinted(rng, label, *size) for label in (2, 0, 1, 1)])
    serve = model.signatures["serve"](images=tf.constant(images))
    same = model.signatures["serve_any_size"](images=tf.constant(images))
    assert sorted(serve) == ["label", "probabilities"] and serve["probabilities"].shape == (4, 3)
    np.testing.assert_array_equal(serve["probabilities"].numpy(), same["probabilities"].numpy())
    np.testing.assert_allclose(serve["probabilities"].numpy().sum(1), 1, atol=1e-6)
    assert serve["label"].numpy().tolist() == [b"red", b"blue", b"green", b"green"]
    # Another size: resized in the graph exactly as resize_to does outside it.
    wide = np.stack([tinted(rng, label, 40, 70) for label in (0, 2)])
    any_size = model.signatures["serve_any_size"](images=tf.constant(wide))
    resized = model.signatures["serve"](images=resize_to(wide, size))
    np.testing.assert_array_equal(any_size["probabilities"].numpy(), resized["probabilities"].numpy())
    assert any_size["label"].numpy().tolist() == [b"blue", b"red"]
    # Encoded files of mixed formats and sizes, one batch.
    files = [save(tmp_path / "a.jpg", wide[0]), save(tmp_path / "b.png", wide[1], "RGBA"),
             save(tmp_path / "c.gif", images[2], "P")]
    from_bytes = model.signatures["serve_image_bytes"](image_bytes=tf.constant([f.read_bytes() for f in files]))
    assert from_bytes["label"].numpy().tolist() == [b"blue", b"red", b"green"]
    from_files = model.signatures["serve"](images=tf.constant(np.stack([read_image(f, size) for f in files])))
    np.testing.assert_allclose(from_bytes["probabilities"].numpy(), from_files["probabilities"].numpy(), atol=1e-6)


def test_the_card_describes_the_signatures_the_graph_has(exported):
    path, size = exported
    card = json.loads((path / "metadata.json").read_text())
    assert card["preprocessing"]["image_size"] == list(size) and "centre crop" in card["preprocessing"]["resize"]
    model = tf.saved_model.load(str(path))
    for name, spec in card["signatures"].items():
        fn = model.signatures[name]
        assert sorted(fn.structured_input_signature[1]) == sorted(spec["inputs"]), name
        assert sorted(fn.structured_outputs) == sorted(spec["outputs"]), name
        assert fn.structured_outputs["probabilities"].shape.as_list() == [None, len(COLOURS)]


def test_zoo_load_predicts_images_of_any_size(exported, tmp_path):
    path, size = exported
    model = load(path)  # manifest and ops checked
    assert model.image_size == size and model.labels == list(COLOURS)
    rng = np.random.default_rng(2)
    wide, tall = tinted(rng, 0, 50, 90), tinted(rng, 2, 33, 9)
    results = model.predict([save(tmp_path / "wide.jpg", wide), save(tmp_path / "tall.png", tall, "L"),
                             save(tmp_path / "tall.png", tall)])
    assert [r["label"] for r in results[::2]] == ["blue", "red"] and results[1]["label"] in COLOURS
    np.testing.assert_allclose(model.probabilities([tmp_path / "wide.jpg"]).sum(), 1, atol=1e-6)
    # Arrays: one of another size (serve_any_size), a list of several sizes, the model's own size.
    expected = model.probabilities(resize_to(wide, size).numpy())
    np.testing.assert_array_equal(model.probabilities(wide), expected)
    np.testing.assert_array_equal(model.probabilities([wide, tall])[0], expected[0])
    assert [r["label"] for r in model.predict([wide, tall])] == ["blue", "red"]
