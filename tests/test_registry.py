"""Every registered model: builds at toy size, trains a step, round-trips its config and exports."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.export import export_saved_model, reduce_precision, round_weights
from zoo.models.vision import with_flip_tta
from zoo.pipeline import normalize_images
from zoo.registry import build_model, builder_arguments, list_models, model_domain, register_model
from zoo.safety import disallowed_ops

NUM_CLASSES = 3
# Small widths per model so that every test stays well under a second or two; {} by default.
TOY_KWARGS = {
    "resnet": dict(depth=8, width=4),
    "airbench": dict(widths=(8, 8, 8), stem_width=4),
    "speech_cnn": dict(widths=(4, 8)),
    "ds_cnn": dict(filters=8, blocks=2),
    "crnn": dict(conv_filters=(4,), rnn_units=(8,)),
    "lstm": dict(embedding_dim=8, units=(8,)),
    "bilstm": dict(embedding_dim=8, units=(8, 8)),
    "luong_lstm": dict(embedding_dim=8, encoder_units=8, units=8),
    "bahdanau_lstm": dict(embedding_dim=8, encoder_units=8, units=8),
}
TEXT_VOCAB = 50


def _toy_token_ids(rng, n, length=8):
    """Token ids with padding (0) after a random length of 1..length, as the tokenizer makes them."""
    ids = rng.integers(1, TEXT_VOCAB, size=(n, length)).astype("int32")
    ids[np.arange(length)[None, :] >= rng.integers(1, length + 1, size=(n, 1))] = 0
    return ids


SPEECH_SAMPLES = 2000  # a quarter second at 8 kHz: 26 frames of 40 mel bins
SOURCE_LEN, TARGET_LEN = 7, 5  # seq2seq: source ids and decoder input ids


def _token_ids(rng, n):
    """[n, SOURCE_LEN + TARGET_LEN] int32: source ids padded with 0 after a random length, then
    decoder input ids starting with [START] (2)."""
    source = rng.integers(1, 20, size=(n, SOURCE_LEN)) * (np.arange(SOURCE_LEN) < rng.integers(2, SOURCE_LEN + 1, (n, 1)))
    target = np.concatenate([np.full((n, 1), 2), rng.integers(1, NUM_CLASSES, size=(n, TARGET_LEN - 1))], axis=1)
    return np.concatenate([source, target], axis=1).astype("int32")


# Toy input per domain: builder kwargs, and raw (serving) inputs -> model inputs. Classifiers
# output [n, NUM_CLASSES]; a domain whose outputs differ says how ("output_shape", "labels") and
# which builder argument takes NUM_CLASSES ("classes_arg").
TOY_INPUTS = {
    "vision": dict(
        kwargs=dict(input_shape=(16, 16, 3)),
        raw=lambda rng, n: rng.integers(0, 256, size=(n, 16, 16, 3), dtype=np.uint8),
        spec=tf.TensorSpec([None, 16, 16, 3], tf.uint8, name="images"),
        prepare=lambda x: normalize_images(x, 0.5, 0.5),
    ),
    # Raw waveforms: the spectrogram is inside the model. Tones plus noise, so that clips differ.
    "speech": dict(
        kwargs=dict(sample_rate=8000, num_samples=SPEECH_SAMPLES),
        raw=lambda rng, n: (0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000, size=(n, 1)) * np.arange(SPEECH_SAMPLES) / 8000)
                            + 0.05 * rng.normal(size=(n, SPEECH_SAMPLES))).astype("float32"),
        spec=tf.TensorSpec([None, SPEECH_SAMPLES], tf.float32, name="waveforms"),
        prepare=lambda x: x,
    ),
    # Token ids (the tokenizer is outside the model; tasks/text tests cover strings in, out).
    "text": dict(
        kwargs=dict(vocab_size=TEXT_VOCAB),
        raw=_toy_token_ids,
        spec=tf.TensorSpec([None, None], tf.int32, name="tokens"),
        prepare=lambda x: x,
    ),
    # Token ids: [source ids, decoder input ids] -> logits over the target vocabulary at each step.
    "seq2seq": dict(
        kwargs=dict(source_vocab_size=20),
        classes_arg="target_vocab_size",
        raw=_token_ids,
        spec=tf.TensorSpec([None, SOURCE_LEN + TARGET_LEN], tf.int32, name="ids"),
        prepare=lambda x: [x[:, :SOURCE_LEN], x[:, SOURCE_LEN:]],
        output_shape=lambda n: (n, TARGET_LEN, NUM_CLASSES),
        labels=lambda n: np.arange(n * TARGET_LEN).reshape(n, TARGET_LEN) % NUM_CLASSES,
    ),
}
MODELS = list_models()


def toy(name):
    domain = model_domain(name)
    if domain not in TOY_INPUTS:
        pytest.skip(f"no toy inputs for domain {domain!r} yet: add them to TOY_INPUTS in {__file__}")
    inputs = TOY_INPUTS[domain]
    keras.utils.set_random_seed(0)
    kwargs = {**inputs["kwargs"], inputs.get("classes_arg", "num_classes"): NUM_CLASSES, **TOY_KWARGS.get(name, {})}
    return build_model(name, **kwargs), inputs


def toy_batch(inputs, n=4, seed=0):
    raw = inputs["raw"](np.random.default_rng(seed), n)
    return raw, keras.tree.map_structure(keras.ops.convert_to_numpy, inputs["prepare"](raw))


def test_the_registry_has_the_vision_and_speech_models():
    assert {"seed_cnn", "resnet", "airbench"} <= set(list_models("vision"))
    assert {"speech_cnn", "ds_cnn", "crnn"} <= set(list_models("speech"))
    assert {"lstm", "bilstm"} <= set(list_models("text"))
    assert {"luong_lstm", "bahdanau_lstm"} <= set(list_models("seq2seq"))
    assert MODELS == sorted(MODELS)
    assert list_models("no-such-domain") == []


@pytest.mark.parametrize("name", MODELS)
def test_builds_and_outputs_float32_logits(name):
    model, inputs = toy(name)
    assert isinstance(model, keras.Model)
    _, x = toy_batch(inputs, n=5)
    y = model(x, training=False)
    assert tuple(y.shape) == inputs.get("output_shape", lambda n: (n, NUM_CLASSES))(5)
    assert y.dtype == "float32"
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(y)))


@pytest.mark.parametrize("name", MODELS)
def test_logits_stay_float32_under_mixed_precision(name):
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")  # the autouse fixture resets it
    model, inputs = toy(name)
    _, x = toy_batch(inputs, n=2)
    assert model(x, training=False).dtype == "float32"


@pytest.mark.parametrize("name", MODELS)
def test_train_steps_lower_the_loss(name):
    model, inputs = toy(name)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    _, x = toy_batch(inputs, n=8)
    y = inputs.get("labels", lambda n: np.arange(n) % NUM_CLASSES)(8)
    before = [w.copy() for w in model.get_weights()]
    losses = [float(model.train_on_batch(x, y)) for _ in range(6)]
    assert np.all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("name", MODELS)
def test_batch_norms_and_lstms_are_the_zoos(name):
    from zoo.models import layers as zoo_layers

    model, _ = toy(name)
    for keras_class in (keras.layers.BatchNormalization, keras.layers.LSTM):
        found = [layer for layer in model._flatten_layers() if isinstance(layer, keras_class)]
        zoo_class = getattr(zoo_layers, keras_class.__name__)
        assert all(type(layer) is zoo_class for layer in found), [type(layer) for layer in found]


@pytest.mark.parametrize("name", MODELS)
def test_config_round_trip(name):
    model, inputs = toy(name)
    clone = keras.Model.from_config(model.get_config())
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]
    clone.set_weights(model.get_weights())
    _, x = toy_batch(inputs)
    np.testing.assert_allclose(clone(x, training=False), model(x, training=False), atol=1e-6)


def toy_export(name, path, **kwargs):
    """A toy model of `name`, its inputs, and its export (raw inputs -> probabilities) at `path`."""
    model, inputs = toy(name)
    prepare = inputs["prepare"]

    def serve(raw):
        return keras.ops.softmax(model(prepare(raw), training=False))

    return model, inputs, export_saved_model(model, path, input_signature=[inputs["spec"]], serve_fn=serve,
                                             metadata={"model": name}, **kwargs)


@pytest.mark.parametrize("name", MODELS)
def test_export_reloads_with_identical_predictions(name, tmp_path):
    model, inputs, path = toy_export(name, tmp_path / "saved_model")
    raw, x = toy_batch(inputs, n=6, seed=1)
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(model(x, training=False)))
    np.testing.assert_allclose(expected.sum(axis=-1), 1.0, atol=1e-5)

    loaded = tf.saved_model.load(str(path))
    np.testing.assert_allclose(loaded.serve(tf.constant(raw)).numpy(), expected, atol=1e-5)
    assert "serving_default" in loaded.signatures
    layer = keras.layers.TFSMLayer(str(path), call_endpoint="serve")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(raw)), expected, atol=1e-5)

    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["model"] == name
    assert metadata["parameters"] == model.count_params()
    assert metadata["size_bytes"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["saved_model"]  # no temporary directory left
    # zoo.load runs only graphs of allowed ops: a builder that needs a new one fails here first.
    assert disallowed_ops(path) == {}


@pytest.mark.parametrize("name", MODELS)
def test_export_can_store_the_weights_in_float16(name, tmp_path):
    model, inputs, path = toy_export(name, tmp_path / "saved_model", weights_dtype="float16")
    stored = tf.train.load_checkpoint(str(path / "variables" / "variables")).get_variable_to_dtype_map()
    assert "float32" not in {d.name for d in stored.values()}
    assert json.loads((path / "metadata.json").read_text())["weights_dtype"] == "float16"
    assert disallowed_ops(path) == {}
    # The model with its weights rounded to float16 computes what the SavedModel computes.
    raw, x = toy_batch(inputs, n=6, seed=1)
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(round_weights(model, "float16")(x, training=False)))
    loaded = tf.saved_model.load(str(path))
    np.testing.assert_allclose(loaded.serve(tf.constant(raw)).numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_export_can_store_embedding_and_dense_layers_in_int8(name, tmp_path):
    model, inputs = toy(name)
    raw, x = toy_batch(inputs, n=6, seed=1)
    before = keras.ops.convert_to_numpy(model(x, training=False))
    reduce_precision(model, "int8")
    quantized = {v.path for v in model.variables if v.dtype == "int8"}
    assert quantized, "every registered model ends in a Dense layer"
    prepare = inputs["prepare"]
    path = export_saved_model(model, tmp_path / "saved_model", input_signature=[inputs["spec"]],
                              serve_fn=lambda r: keras.ops.softmax(model(prepare(r), training=False)),
                              metadata={}, weights_dtype="int8")
    stored = tf.train.load_checkpoint(str(path / "variables" / "variables")).get_variable_to_dtype_map()
    assert sum(d.name == "int8" for d in stored.values()) == len(quantized)
    assert json.loads((path / "metadata.json").read_text())["weights_dtype"] == "int8"
    assert disallowed_ops(path) == {}
    # The SavedModel computes what the quantized model computes, and that is close to the original.
    after = keras.ops.convert_to_numpy(model(x, training=False))
    loaded = tf.saved_model.load(str(path))
    np.testing.assert_allclose(loaded.serve(tf.constant(raw)).numpy(), keras.ops.softmax(after), atol=1e-5)
    assert np.max(np.abs(after - before)) < 0.05 * max(1.0, np.max(np.abs(before)))


def test_int8_export_refuses_a_model_that_was_not_quantized(tmp_path):
    with pytest.raises(ValueError, match="needs a quantized model"):
        toy_export("seed_cnn", tmp_path / "saved_model", weights_dtype="int8")
    assert not (tmp_path / "saved_model").exists()


def test_flip_tta_averages_the_logits_of_an_image_and_its_mirror():
    model = build_model("seed_cnn", input_shape=(16, 16, 3), num_classes=NUM_CLASSES)
    tta = with_flip_tta(model)
    x = np.random.default_rng(0).normal(size=(3, 16, 16, 3)).astype("float32")
    expected = (model(x) + model(x[:, :, ::-1])) / 2
    np.testing.assert_allclose(tta(x), expected, atol=1e-5)
    clone = keras.Model.from_config(tta.get_config())
    clone.set_weights(tta.get_weights())
    np.testing.assert_allclose(clone(x), expected, atol=1e-5)


def test_shift_tta_adds_the_diagonally_shifted_views_with_reflected_borders(tmp_path):
    model = build_model("seed_cnn", input_shape=(16, 16, 3), num_classes=NUM_CLASSES)
    tta = with_flip_tta(model, shift=1)
    x = np.random.default_rng(0).normal(size=(3, 16, 16, 3)).astype("float32")
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
    up_left, down_right = padded[:, 2:18, 2:18], padded[:, :16, :16]  # content moves by -1 and +1
    assert up_left[0, 0, 0, 0] == x[0, 1, 1, 0] and down_right[0, 1, 1, 0] == x[0, 0, 0, 0]

    def pair(v):
        return (model(v) + model(v[:, :, ::-1])) / 2

    expected = pair(x) / 2 + (pair(up_left) + pair(down_right)) / 4
    np.testing.assert_allclose(tta(x), expected, atol=1e-5)
    clone = keras.Model.from_config(tta.get_config())
    clone.set_weights(tta.get_weights())
    np.testing.assert_allclose(clone(x), expected, atol=1e-5)
    path = export_saved_model(tta, tmp_path / "saved_model", input_signature=[tf.TensorSpec([None, 16, 16, 3])],
                              serve_fn=lambda v: tta(v, training=False), metadata={})
    assert disallowed_ops(path) == {}  # MirrorPad, the reflected borders
    loaded = tf.saved_model.load(str(path))
    np.testing.assert_allclose(loaded.serve(tf.constant(x)).numpy(), expected, atol=1e-5)


def test_shift_tta_refuses_a_shift_as_large_as_the_image():
    model = build_model("seed_cnn", input_shape=(16, 16, 3), num_classes=NUM_CLASSES)
    with pytest.raises(ValueError, match=r"shift must be in \[0, 16\) pixels. Received: shift=16"):
        with_flip_tta(model, shift=16)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown model 'nope'") as e:
        build_model("nope")
    for name in MODELS:
        assert name in str(e.value)


def test_none_kwargs_keep_the_builders_defaults():
    model = build_model("resnet", depth=None, width=4, input_shape=(16, 16, 3), num_classes=NUM_CLASSES)
    assert model.name == "resnet20_w4"  # the default depth
    assert builder_arguments("resnet")["depth"] == 20


def test_unknown_kwarg_is_named():
    with pytest.raises(ValueError, match="does not take bogus") as e:
        build_model("seed_cnn", bogus=1)
    assert "num_classes" in str(e.value)  # and what it does take


@pytest.mark.parametrize("name, kwargs, message", [
    ("resnet", dict(depth=21), "depth must be 6n"),
    ("resnet", dict(depth=2), "depth must be 6n"),
    ("resnet", dict(width=0), "width must be positive"),
    ("resnet", dict(dropout=1.0), "dropout"),
    ("resnet", dict(kernel_initializer="zeros"), "kernel_initializer"),
    ("airbench", dict(widths=(1, 2)), "widths must be three"),
    ("airbench", dict(widths=(8, 0, 8)), "widths must be three"),
    ("airbench", dict(dropout=-0.1), "dropout"),
    ("speech_cnn", dict(widths=()), "widths must be one or more"),
    ("speech_cnn", dict(sample_rate=100), "sample_rate must be >= 1000"),
    ("speech_cnn", dict(time_masks=-1), "time_masks must be a non-negative integer"),
    ("speech_cnn", dict(fmax=9000), "fmax <= sample_rate / 2"),
    ("ds_cnn", dict(filters=0), "filters must be positive"),
    ("ds_cnn", dict(window_ms=0.01), "window_ms and hop_ms are too short"),
    ("crnn", dict(rnn="transformer"), "rnn must be 'gru' or 'lstm'"),
    ("crnn", dict(rnn_units=()), "rnn_units must be one or more"),
    ("lstm", dict(vocab_size=2), "vocab_size must be >= 3"),
    ("lstm", dict(units=()), "units must be one or more"),
    ("lstm", dict(units=(8, 0)), "units must be one or more"),
    ("bilstm", dict(pooling="sum"), "pooling must be one of"),
    ("bilstm", dict(recurrent_dropout=1.0), "recurrent_dropout must be in"),
    ("bilstm", dict(num_classes=1), "num_classes must be >= 2"),
    ("luong_lstm", dict(units=0), "units must be a positive integer"),
    ("bahdanau_lstm", dict(decoder_layers=1.5), "decoder_layers must be a positive integer"),
    ("bahdanau_lstm", dict(target_vocab_size=1), "Vocabularies need at least 2 ids"),
    ("luong_lstm", dict(dropout=1.0), "dropout must be in"),
])
def test_builder_argument_errors(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model(name, **kwargs)


def test_registering_a_second_builder_under_a_taken_name_fails():
    with pytest.raises(ValueError, match="already registered"):
        register_model("seed_cnn")(lambda **kw: None)
    assert zoo.build_model is build_model


def test_pytorch_is_only_a_benchmark_peer():
    # bench/peer_cpu.py compares against PyTorch (the `bench` extra); the zoo never needs it.
    import subprocess
    import sys

    code = ("import sys, zoo, zoo.models, zoo.finetune, zoo.pretrained, tasks.vision.cifar10, tasks.speech.commands, "
            "tasks.text.sentiment, tasks.text.translation, tuning.search; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    from pathlib import Path

    setup = (Path(zoo.__file__).parents[1] / "setup.cfg").read_text()
    requires = setup.split("install_requires =")[1].split("\n[")[0]
    assert "torch" not in requires
