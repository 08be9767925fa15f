"""Fine-tuning: an entry's weights read back by variable path, `keras_model()` equal to the
SavedModel, `build_model(weights=ENTRY)`, heads kept or replaced, what `--freeze` freezes, and
`--init-from` end to end for every input kind on toy data (slow)."""

import json
import shutil

import keras
import numpy as np
import pytest

import zoo
import zoo.pretrained
from tests.test_registry import MODELS, toy, toy_batch
from tests.test_speech_tasks import run_main
from zoo.errors import ZooError
from zoo.finetune import (FREEZE, HEAD, dequantized, freeze, head_mapping, is_feature_extractor, keras_model,
                          leaf_layers, load_parent, load_weights, saved_model_variables, unfreeze)
from zoo.registry import build_model, model_domain

CLASSIFIERS = [n for n in MODELS if model_domain(n) in ("vision", "speech", "text")]
RECIPE_ENTRIES = ("cifar10", "speech_commands", "spoken_digits", "imdb_sentiment")


def by_path(model) -> dict:
    return {v.path: keras.ops.convert_to_numpy(v) for v in model.variables}


# --- every registered classifier ---------------------------------------------------------------


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_every_classifier_has_a_logits_head_and_takes_its_weights_back_by_path(name):
    model, inputs = toy(name)
    assert model.layers[-1].name == HEAD or HEAD in [layer.name for layer in model.layers]
    _, x = toy_batch(inputs)
    expected = model.predict(x, verbose=0)
    other = randomized(toy(name)[0])
    assert not np.allclose(other.predict(x, verbose=0), expected)
    done = load_weights(other, by_path(model), head=[0, 1, 2], source="toy")
    assert done["head"] == "kept"
    np.testing.assert_allclose(other.predict(x, verbose=0), expected, atol=1e-5)
    # The head kept in another label order: the logits follow the labels.
    load_weights(other, by_path(model), head=[2, 0, 1], source="toy")
    np.testing.assert_allclose(other.predict(x, verbose=0), expected[:, [2, 0, 1]], atol=1e-5)


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("mode", ["backbone", "all-but-head"])
def test_freeze_keeps_exactly_what_it_says_through_a_training_step(name, mode):
    model, inputs = toy(name)
    _, x = toy_batch(inputs, n=8)
    y = np.arange(8) % 3
    before_flags = {layer: layer.trainable for layer in model._flatten_layers(include_self=False)}
    before = by_path(model)
    restore = freeze(model, mode)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.train_on_batch(x, y)
    after = by_path(model)
    frozen_paths = ({v.path for layer in leaf_layers(model) if is_feature_extractor(layer) for v in layer.weights}
                    if mode == "backbone" else {p for p in before if not p.startswith(f"{HEAD}/")})
    for path, value in before.items():
        if "seed_generator" in path:
            continue
        if path in frozen_paths:
            np.testing.assert_array_equal(after[path], value, err_msg=path)
    assert not np.allclose(after[f"{HEAD}/kernel"], before[f"{HEAD}/kernel"])  # the head trains
    trained = {p for p in before if "seed_generator" not in p and not np.array_equal(after[p], before[p])}
    if mode == "backbone":
        assert trained - {f"{HEAD}/kernel", f"{HEAD}/bias"}, "something besides the head trains"
    else:
        assert trained <= {f"{HEAD}/kernel", f"{HEAD}/bias"}
    unfreeze(restore)
    assert {layer: layer.trainable for layer in model._flatten_layers(include_self=False)} == before_flags


def test_freeze_none_and_unknown_modes():
    model, _ = toy("ds_cnn")
    freeze(model, "none")
    assert all(layer.trainable for layer in model.layers if layer.weights)
    assert FREEZE == ("none", "backbone", "all-but-head")
    with pytest.raises(ZooError, match="one of none, backbone, all-but-head"):
        freeze(model, "head")


def test_int8_weights_are_dequantized_to_what_keras_computes_with():
    from zoo.export import reduce_precision

    model, _ = toy("bilstm")
    floats = by_path(model)
    reduce_precision(model, "int8")
    stored = by_path(model)
    assert stored["embedding/embeddings"].dtype == np.int8 and "embedding/embeddings_scale" in stored
    weights = dequantized(stored)
    assert "embedding/embeddings_scale" not in weights and f"{HEAD}/kernel_scale" not in weights
    for path in ("embedding/embeddings", f"{HEAD}/kernel"):
        step = np.abs(floats[path]).max() / 127
        assert np.abs(weights[path] - floats[path]).max() <= step, path
    assert weights[f"{HEAD}/bias"].dtype == np.float32


def randomized(model, seed=1):
    """`model` with other weights than the builder's seeded ones."""
    rng = np.random.default_rng(seed)
    for v in model.variables:
        if "float" in str(v.dtype):
            v.assign(rng.normal(0, 0.1, v.shape).astype(v.dtype))
    return model


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_weights_of_a_reduced_precision_export_map_back_onto_the_model(dtype, tmp_path):
    from zoo.export import export_saved_model, reduce_precision

    model, inputs = toy("bilstm")
    _, x = toy_batch(inputs)
    expected = model.predict(x, verbose=0)
    if dtype == "int8":
        reduce_precision(model, "int8")
    path = export_saved_model(model, tmp_path / "export", input_signature=[inputs["spec"]],
                              serve_fn=lambda raw: model(raw, training=False), metadata={}, weights_dtype=dtype)
    fresh = randomized(toy("bilstm")[0])
    assert not np.allclose(fresh.predict(x, verbose=0), expected, atol=5e-2)
    load_weights(fresh, dequantized(saved_model_variables(path)), head=[0, 1, 2], source="export")
    np.testing.assert_allclose(fresh.predict(x, verbose=0), expected, atol=2e-2 if dtype == "int8" else 5e-3)


def test_head_mapping_keeps_the_head_only_for_the_same_labels():
    assert head_mapping(["cat", "dog"], ["cat", "dog"]) == [0, 1]
    assert head_mapping(["cat", "dog"], ["dog", "cat"]) == [1, 0]
    assert head_mapping(["cat", "dog"], ["cat", "dog", "bird"]) is None
    assert head_mapping(["cat", "dog"], ["cat", "bird"]) is None


def test_weights_of_another_architecture_or_input_size_are_refused_in_one_line():
    a = build_model("seed_cnn", num_classes=3, input_shape=(16, 16, 3))
    b = build_model("seed_cnn", num_classes=3, input_shape=(24, 24, 3))  # Flatten: the dense layer grows
    with pytest.raises(ZooError, match=r"do not fit this model \(1 of another shape: \w+/kernel") as e:
        load_weights(b, by_path(a), head=[0, 1, 2], source="toy")
    assert "\n" not in str(e.value) and "input size" in str(e.value)
    c = build_model("resnet", num_classes=3, input_shape=(16, 16, 3), depth=8, width=4)
    with pytest.raises(ZooError, match="the entry lacks"):
        load_weights(c, by_path(a), head=None, source="toy")


# --- the shipped entries --------------------------------------------------------------------


@pytest.mark.parametrize("name", RECIPE_ENTRIES)
def test_keras_model_computes_what_the_saved_model_serves(name):
    from zoo.pipeline import normalize_images

    entry = zoo.load(name)
    model = entry.keras_model()
    assert model.preprocessing["entry"] == name and model.preprocessing["labels"] == entry.labels
    stored = {p: v for p, v in load_parent(name).variables.items() if "seed_generator" not in p}
    assert len(model.trainable_variables) > 0 and model.count_params() == sum(np.size(v) for v in stored.values())
    rng = np.random.default_rng(0)
    if name == "cifar10":
        from zoo.models.vision import with_flip_tta

        raw = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
        pp = entry.metadata["preprocessing"]
        logits = with_flip_tta(model, 1).predict(normalize_images(raw, pp["mean"], pp["std"]).numpy(), verbose=0)
        atol = 5e-3  # the entry was traced under mixed_bfloat16; the Keras model computes in float32
    elif name == "imdb_sentiment":
        from zoo.text import Tokenizer

        raw = ["A wonderful film, the actors are great.", "Dull and far too long.", "not good", "a quiet gem"]
        vocabulary, bigrams = load_parent(name).vocabularies()
        pp = entry.metadata["preprocessing"]
        tokenizer = Tokenizer(vocabulary, max_length=pp["max_length"], truncate=pp["truncate"],
                              max_chars=pp["max_chars"], bigram_vocabulary=bigrams)
        ids = tokenizer.tokenize_all(np.array([t.encode() for t in raw], dtype=object))
        logits = np.concatenate([model.predict(np.array(i)[None], verbose=0) for i in ids])
        atol = 2e-3  # the int8 Dense of the SavedModel also quantizes its inputs
    else:
        raw = (0.1 * rng.normal(size=(6, entry.num_samples))).astype("float32")
        logits = model.predict(raw, verbose=0)
        atol = 1e-5
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    np.testing.assert_allclose(probabilities, entry.probabilities(raw), atol=atol)


def test_the_variables_are_read_without_loading_the_graph(monkeypatch):
    import tensorflow as tf

    def refuse(*args, **kwargs):
        raise AssertionError("tf.saved_model.load called")

    monkeypatch.setattr(tf.saved_model, "load", refuse)
    variables = saved_model_variables(zoo.pretrained.resolve("speech_commands"))
    assert variables["logits/kernel"].shape == (128, 12) and "conv1/kernel" in variables


def test_build_model_from_an_entry_keeps_or_replaces_the_head():
    entry = load_parent("speech_commands")
    same = build_model("ds_cnn", weights="speech_commands")
    assert same.preprocessing["labels"] == entry.labels
    np.testing.assert_array_equal(by_path(same)[f"{HEAD}/kernel"], entry.variables[f"{HEAD}/kernel"])
    new = build_model("ds_cnn", weights="speech_commands", num_classes=3)
    weights = by_path(new)
    assert weights[f"{HEAD}/kernel"].shape == (128, 3) and new.preprocessing["labels"] is None
    for path, value in entry.variables.items():
        if not path.startswith(f"{HEAD}/"):
            np.testing.assert_array_equal(weights[path], value, err_msg=path)
    with pytest.raises(ZooError, match="holds the weights of a 'ds_cnn' model, not 'crnn'"):
        build_model("crnn", weights="speech_commands")


def copy_entry(name, tmp_path):
    dest = tmp_path / name
    shutil.copytree(zoo.pretrained.resolve(name), dest)
    return dest


def test_a_tampered_weights_file_is_refused(tmp_path):
    entry = copy_entry("spoken_digits", tmp_path)
    data = entry / "variables" / "variables.data-00000-of-00001"
    contents = bytearray(data.read_bytes())
    contents[len(contents) // 2] ^= 0xFF
    data.write_bytes(bytes(contents))
    with pytest.raises(ZooError, match="variables.data-00000-of-00001"):
        keras_model(entry)
    with pytest.raises(ZooError, match="variables.data-00000-of-00001"):
        build_model("speech_cnn", weights=entry)


@pytest.mark.parametrize("name, message", [
    ("cifar10_int8", "LiteRT .* no Keras weights to start from. Use the SavedModel entry it was converted from "
                     r"\(cifar10\)"),
    ("translate_de_en", "is a translator: --init-from and keras_model\\(\\) take classifier entries"),
])
def test_entries_without_keras_weights_say_so(name, message):
    with pytest.raises(ZooError, match=message):
        zoo.load(name).keras_model() if name != "cifar10_int8" else keras_model(name)


def test_a_text_entry_without_its_vocabularies_says_so(tmp_path):
    from zoo.safety import write_manifest

    entry = copy_entry("imdb_sentiment", tmp_path)
    (entry / "vocabulary.txt").unlink()
    (entry / "bigrams.txt").unlink()
    write_manifest(entry)
    with pytest.raises(ZooError, match="no vocabulary.txt"):
        load_parent(entry).vocabularies()


def test_init_from_an_entry_of_another_kind_is_refused_before_any_data_is_read(tmp_path):
    from tasks.speech import classify

    with pytest.raises(ZooError, match=r"--init-from cifar10: a model for image data .*tasks.speech.classify trains "
                                       r"on clips\. Entries for clips: speech_commands, spoken_digits"):
        classify.main(["--data", str(tmp_path / "missing"), "--init-from", "cifar10"])
    with pytest.raises(ZooError, match="--freeze and --head-epochs need --init-from"):
        classify.main(["--data", str(tmp_path / "missing"), "--freeze", "backbone"])
    assert not list(tmp_path.iterdir())


def test_a_search_refuses_init_from(tmp_path):
    from tuning.search import main as search

    with pytest.raises(ZooError, match="--init-from speech_commands: a search draws architectures"):
        search(["speech.classify", "--data", str(tmp_path), "--init-from", "speech_commands",
                "--directory", str(tmp_path / "search")])


def test_every_recipe_entry_card_says_how_to_fine_tune_it():
    for name in ("cifar10_int8", "speech_commands_int8", "translate_de_en"):
        assert "fine_tune" not in zoo.load(name).metadata, name
    for name in RECIPE_ENTRIES:
        card = zoo.load(name).metadata
        ft = card["fine_tune"]
        assert ft["builder"] == card["model"] and ft["head"] == HEAD and f"--init-from {name}" in ft["command"]
        stored = load_parent(name).variables  # int8 entries: dequantized, without their scales
        assert build_model(ft["builder"], **ft["arguments"]).count_params() == sum(
            np.size(v) for p, v in stored.items() if "seed_generator" not in p)


# --- --init-from end to end (toy entries: a run published, then fine-tuned) ----------------------

FAST = ["--batch-size", "8", "--no-tensorboard", "--verbose", "0", "--precision", "float32", "--jit-compile", "false",
        "--validation-split", "0", "--test-split", "0.2"]


def published(tmp_path, main, argv, name):
    from zoo.publish import publish

    run_main(main, [*FAST, *argv, "--output-dir", str(tmp_path / f"{name}-run")])
    return publish(tmp_path / f"{name}-run", name, models_dir=tmp_path / "entries")


def fine_tuned(tmp_path, main, argv):
    metrics, stdout = run_main(main, [*FAST, *argv, "--output-dir", str(tmp_path / "child")])
    card = json.loads((tmp_path / "child" / "saved_model" / "metadata.json").read_text())
    return metrics, stdout, card, saved_model_variables(tmp_path / "child" / "saved_model")


@pytest.mark.slow
def test_images_fine_tune_with_a_new_head_and_a_frozen_backbone(tmp_path):
    from tasks.vision import classify
    from tests.test_image_data import COLOURS, mixed_folder

    mixed_folder(tmp_path / "photos", counts=(8, 8, 8))
    entry = published(tmp_path, classify.main, ["--data", str(tmp_path / "photos"), "--image-size", "16", "--model",
                                                "resnet", "--model-arg", "depth=8", "--model-arg", "width=4",
                                                "--epochs", "1"], "toy_photos")
    parent = saved_model_variables(entry)
    mixed_folder(tmp_path / "two", counts=(8, 8))  # two of the colours: the labels differ
    metrics, stdout, card, child = fine_tuned(tmp_path, classify.main, [
        "--data", str(tmp_path / "two"), "--init-from", str(entry), "--freeze", "backbone", "--epochs", "1",
        "--head-epochs", "1"])
    assert "head replaced (3 labels -> 2)" in stdout and "Stage 1: the head alone" in stdout
    assert metrics["init_from"] == "toy_photos" and card["labels"] == list(COLOURS[:2])
    assert card["parent"]["name"] == "toy_photos" and card["parent"]["head"] == "replaced"
    assert card["parent"]["manifest_sha256"] == load_parent(entry).manifest_sha256
    assert card["preprocessing"]["mean"] == json.loads((entry / "metadata.json").read_text())["preprocessing"]["mean"]
    assert child[f"{HEAD}/kernel"].shape[-1] == 2
    convs = [p for p in parent if p.endswith("conv/kernel") or "conv" in p.split("/")[0] and p.endswith("kernel")]
    assert convs
    for path in convs:
        np.testing.assert_array_equal(child[path], parent[path], err_msg=path)
    gammas = [p for p in parent if p.endswith("gamma")]
    assert any(not np.array_equal(child[p], parent[p]) for p in gammas)  # normalization layers train
    from zoo.publish import publish

    card = json.loads((publish(tmp_path / "child", "my_two", models_dir=tmp_path / "entries") / "metadata.json")
                      .read_text())
    assert card["parent"]["name"] == "toy_photos" and card["fine_tune"]["arguments"]["num_classes"] == 2


def toy_tones_entry(tmp_path):
    """An entry of a tiny DS-CNN trained one epoch on `tmp_path/clips` (three tones at 8 kHz)."""
    from tasks.speech import classify
    from tests.test_classify_tasks import write_clips

    write_clips(tmp_path / "clips", per_label=6)
    return published(tmp_path, classify.main, ["--data", str(tmp_path / "clips"), "--sample-rate", "8000",
                                               "--model-arg", "filters=8", "--model-arg", "blocks=1",
                                               "--epochs", "1"], "toy_tones")


@pytest.mark.slow
def test_clips_fine_tune_only_the_head_with_all_but_head(tmp_path):
    from tasks.speech import classify

    entry = toy_tones_entry(tmp_path)
    parent = saved_model_variables(entry)
    shutil.rmtree(tmp_path / "clips" / "mid")
    metrics, stdout, card, child = fine_tuned(tmp_path, classify.main, [
        "--data", str(tmp_path / "clips"), "--init-from", str(entry), "--freeze", "all-but-head", "--epochs", "2"])
    assert card["sample_rate"] == 8000 and card["parent"]["freeze"] == "all-but-head"
    assert child[f"{HEAD}/kernel"].shape == (8, 2)
    for path, value in parent.items():
        if not path.startswith(f"{HEAD}/") and "seed_generator" not in path:
            np.testing.assert_array_equal(child[path], value, err_msg=path)


@pytest.mark.slow
def test_texts_fine_tune_with_the_entrys_vocabulary_and_frozen_embeddings(tmp_path):
    from tasks.text import classify
    from tests.test_text_data import toy_rows, write_table

    rows = toy_rows(n=20)
    write_table(tmp_path / "topics.csv", rows, header=("text", "label"))
    entry = published(tmp_path, classify.main, ["--data", str(tmp_path / "topics.csv"), "--model-arg",
                                                "embedding_dim=8", "--model-arg", "units=(8,)", "--vocab-size", "64",
                                                "--max-length", "16", "--epochs", "1"], "toy_topics")
    parent = saved_model_variables(entry)
    labels = sorted({r[1] for r in rows})
    write_table(tmp_path / "other.csv", [(t, "first" if label == labels[0] else "rest") for t, label in rows],
                header=("text", "label"))
    metrics, stdout, card, child = fine_tuned(tmp_path, classify.main, [
        "--data", str(tmp_path / "other.csv"), "--init-from", str(entry), "--freeze", "backbone", "--epochs", "2",
        "--learning-rate", "0.05"])
    assert "Vocabularies of toy_topics" in stdout and card["labels"] == ["first", "rest"]
    assert card["preprocessing"]["max_length"] == 16
    for name in ("vocabulary.txt",):
        assert (tmp_path / "child" / "saved_model" / name).read_text() == (entry / name).read_text()
    np.testing.assert_array_equal(child["embedding/embeddings"], parent["embedding/embeddings"])
    lstm = [p for p in parent if "lstm" in p and p.endswith("/kernel")]
    assert lstm and any(not np.array_equal(child[p], parent[p]) for p in lstm)


@pytest.mark.slow
def test_the_same_labels_keep_the_head_and_zero_epochs_reproduce_the_entry(tmp_path):
    from tasks.speech import classify

    entry = toy_tones_entry(tmp_path)
    metrics, stdout, card, child = fine_tuned(tmp_path, classify.main, [
        "--data", str(tmp_path / "clips"), "--init-from", str(entry), "--epochs", "0"])
    assert "head kept (same labels)" in stdout and card["parent"]["head"] == "kept"
    clips = sorted((tmp_path / "clips" / "low").iterdir())[:3]
    np.testing.assert_allclose(zoo.load(tmp_path / "child" / "saved_model", trust=True).probabilities(clips),
                               zoo.load(entry).probabilities(clips), atol=1e-6)


def test_init_from_says_which_model_it_builds_in_place_of_the_configured_one(monkeypatch, capsys):
    from types import SimpleNamespace

    from tasks.vision import classify
    from zoo.config import parse_config

    entry = SimpleNamespace(name="toy_photos", recipe="image", card={"model": "resnet", "model_kwargs": {"depth": 2}})
    monkeypatch.setattr(classify.RECIPE, "parent", lambda cfg: entry)
    monkeypatch.setattr(classify.RECIPE, "inherit", lambda cfg, parent: {})
    cfg = parse_config(classify.Config, classify.PRESETS, ["--preset", "fast", "--init-from", "toy_photos"])
    adopted = classify.RECIPE.adopt(cfg, "vision.classify")
    assert (adopted.model, adopted.model_kwargs) == ("resnet", {"depth": 2})
    said = capsys.readouterr().out
    assert f"the model is the entry's (resnet {{'depth': 2}}), in place of airbench {cfg.model_kwargs}" in said
    assert "the preset's, with any --model and --model-arg" in said
