"""Int8 LiteRT exports: every speech and vision builder converts at toy size, the int8 model
agrees with the float one, `.tflite` entries load through `zoo.load` and `zoo.predict` with
their manifest and ops checked, and the shipped int8 entries (their cards, and on the mirror
their recorded accuracy)."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.test_pretrained import EVAL_SCRIPT, REPO, SHIPPED_DIR, _flip_byte, clean_env, cli, tone, wav_bytes
from tests.test_registry import NUM_CLASSES, toy, toy_batch
from zoo import export_lite
from zoo.cli import run as run_cli
from zoo.errors import ZooError
from zoo.export_lite import (FLOAT_LAYERS, convert_separate, cut_frontend, keras_serving_function, quantize_int8,
                             strip_names)
from zoo.lite import FRONTEND_FILE, LITE_FILE, LiteChain, LiteModel, lite_ops, op_counts
from zoo.pretrained import check_tolerance, load
from zoo.registry import list_models
from zoo.safety import disallowed_lite_ops, verify_manifest, write_manifest

LITE_SHIPPED = sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / LITE_FILE).is_file())
BUILDERS = list_models("vision") + list_models("speech")


def toy_int8(model, inputs, representative):
    """The int8 flatbuffer of a toy model's serving function (raw inputs -> probabilities)."""
    prepare = inputs["prepare"]
    fn, loaded = keras_serving_function(model, lambda raw: keras.ops.softmax(model(prepare(raw), training=False)),
                                        inputs["spec"])
    float_layers = FLOAT_LAYERS["audio_classifier"] if inputs["spec"].dtype == tf.float32 else ()
    return quantize_int8(fn, loaded, representative, float_layers=float_layers)


def toy_separate(model, inputs, representative):
    """The (float front end, int8 model) flatbuffers of a toy speech model, as --separate-frontend
    writes them."""
    return convert_separate(*cut_frontend(model), representative, inputs["spec"])


@pytest.mark.parametrize("name", BUILDERS)
def test_every_speech_and_vision_builder_converts_to_int8(name):
    model, inputs = toy(name)
    raw, x = toy_batch(inputs, n=8)
    content = toy_int8(model, inputs, raw)
    lite = LiteModel(content)
    (spec,) = lite.specs["serve"]["inputs"].values()
    assert spec["shape"] == [1, *inputs["spec"].shape[1:]] and spec["dtype"] == inputs["spec"].dtype.name
    (probs,) = lite.run(raw[:3]).values()
    assert probs.shape == (3, NUM_CLASSES) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.02)  # an int8 softmax: steps of 1/256
    counts = op_counts(content)
    assert set(counts["int8"]) & {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}, counts
    if inputs["spec"].dtype == tf.float32:  # the log-mel front end stays float
        assert {"RFFT2D", "LOG"} <= set(counts["float32"]) and "LOG" not in counts["int8"], counts
    assert disallowed_lite_ops(content) == []


@pytest.mark.parametrize("name", list_models("speech"))
def test_every_speech_builder_converts_with_a_separate_frontend(name):
    model, inputs = toy(name)
    raw, _ = toy_batch(inputs, n=8)
    frontend, content = toy_separate(model, inputs, raw)
    chain = LiteChain(LiteModel(frontend), LiteModel(content))
    (probs,) = chain.run(raw[:3]).values()
    assert probs.shape == (3, NUM_CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.02)
    front_ops, ops = op_counts(frontend), op_counts(content)
    assert {"RFFT2D", "LOG"} <= set(front_ops["float32"]) and "int8" not in front_ops, front_ops
    assert set(ops["int8"]) & {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}, ops
    assert set(ops["float32"]) == {"QUANTIZE"}, ops  # the int8 network alone, float features in
    assert disallowed_lite_ops(frontend) == disallowed_lite_ops(content) == []


def test_the_chain_computes_what_the_single_file_export_does():
    model, inputs = toy("ds_cnn")
    raw, _ = toy_batch(inputs, n=16)
    frontend, content = toy_separate(model, inputs, raw)
    keras_frontend, _ = cut_frontend(model)
    (features,) = LiteModel(frontend).run(raw).values()
    np.testing.assert_allclose(features, keras.ops.convert_to_numpy(keras_frontend(raw)), atol=1e-4)
    (chained,) = LiteChain(LiteModel(frontend), LiteModel(content)).run(raw).values()
    (single,) = LiteModel(toy_int8(model, inputs, raw)).run(raw).values()
    np.testing.assert_allclose(chained, single, atol=3 / 256)  # an int8 softmax: steps of 1/256


def test_stripping_names_keeps_what_the_model_computes():
    model, inputs = toy("ds_cnn")
    raw, _ = toy_batch(inputs, n=4)
    content = toy_int8(model, inputs, raw)
    stripped = strip_names(content)
    assert len(stripped) < len(content) and op_counts(stripped) == op_counts(content)
    lite, bare = LiteModel(content), LiteModel(stripped)
    assert bare.specs == lite.specs  # the signature keeps its names
    assert all(not d["name"] for d in bare.interpreter.get_tensor_details())
    (a,), (b,) = lite.run(raw).values(), bare.run(raw).values()
    np.testing.assert_array_equal(a, b)


# --- a trained toy: the int8 model agrees with the float one ------------------------------------


def separable(name, rng, n):
    """Raw inputs whose class is easy to learn, and the classes: tones of three pitches (speech),
    images tinted by one of three colours (vision)."""
    _, inputs = toy(name)
    raw, _ = toy_batch(inputs, n=n, seed=int(rng.integers(1 << 30)))
    labels = rng.integers(0, NUM_CLASSES, n)
    if raw.dtype == np.uint8:
        raw = (raw // 2).astype(np.uint8)
        raw[np.arange(n), :, :, labels] += 120
    else:
        t = np.arange(raw.shape[1]) / 8000
        raw = (0.3 * np.sin(2 * np.pi * np.array([300, 900, 2500])[labels, None] * t)
               + 0.05 * rng.normal(size=raw.shape)).astype(np.float32)
    return raw, labels


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ds_cnn", "seed_cnn"])
def test_int8_model_agrees_with_the_float_model_on_a_trained_toy(name):
    rng = np.random.default_rng(0)
    model, inputs = toy(name)
    raw, labels = separable(name, rng, 192)
    prepare = inputs["prepare"]
    for layer in model.layers:  # BatchNorm's statistics are the last batch's: a few steps leave them right
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(keras.ops.convert_to_numpy(prepare(raw)), labels, epochs=8, batch_size=32, verbose=0)

    test_raw, test_labels = separable(name, rng, 64)
    float_top1 = keras.ops.convert_to_numpy(model(prepare(test_raw), training=False)).argmax(1)
    assert np.mean(float_top1 == test_labels) > 0.6  # trained, far above chance (1/3): top-1 means something
    (probs,) = LiteModel(toy_int8(model, inputs, raw[:64])).run(test_raw).values()
    assert np.mean(probs.argmax(1) == float_top1) >= 0.95


# --- entries: zoo.load, zoo.predict, refusals ---------------------------------------------------


@pytest.fixture(scope="module")
def toy_entry(tmp_path_factory):
    """A `.tflite` entry of an audio classifier at 8 kHz, as zoo.export_lite lays it out."""
    model, inputs = toy("ds_cnn")
    raw, _ = toy_batch(inputs, n=8)
    path = tmp_path_factory.mktemp("lite") / "toy_int8"
    path.mkdir()
    (path / LITE_FILE).write_bytes(toy_int8(model, inputs, raw))
    (path / "metadata.json").write_text(json.dumps({"name": "toy_int8", "kind": "audio_classifier", "format": "tflite",
                                                    "labels": ["a", "b", "c"], "sample_rate": 8000,
                                                    "num_samples": raw.shape[1]}))
    write_manifest(path)
    return path


def test_zoo_load_runs_a_lite_entry_with_the_audio_predictor(toy_entry, tmp_path):
    model = load(toy_entry)
    assert model.kind == "audio_classifier" and isinstance(model.model, LiteModel)
    clip = tone(500, 8000, 0.25)
    (tmp_path / "clip.wav").write_bytes(wav_bytes(np.stack([clip, clip], 1), 16000))  # stereo, resampled in Python
    from zoo.audio import load_waveform

    waveform = load_waveform(wav_bytes(np.stack([clip, clip], 1), 16000), sample_rate=8000, num_samples=2000).numpy()
    np.testing.assert_allclose(model.probabilities([tmp_path / "clip.wav"]), model.probabilities(waveform), atol=1e-6)
    (result,) = model.predict(model.example(), top_k=2)
    assert result["label"] in "abc" and len(result["top_k"]) == 2
    with pytest.raises(ZooError, match="takes waveforms of 2000 samples at 8000 Hz"):
        model.probabilities(np.zeros((1, 100), np.float32))


def test_zoo_predict_on_a_lite_entry(toy_entry, tmp_path, capsys, monkeypatch):
    (tmp_path / "clip.wav").write_bytes(wav_bytes(tone(440, 8000, 0.3), 8000))
    code, out, _ = cli([str(toy_entry), str(tmp_path / "clip.wav"), "--json"], capsys, monkeypatch)
    assert code == 0
    doc = json.loads(out)
    assert (doc["model"], doc["kind"]) == ("toy_int8", "audio_classifier") and len(doc["results"][0]["top_k"]) == 3


def test_a_tampered_lite_entry_is_refused_even_when_trusted(toy_entry, tmp_path):
    import shutil

    path = shutil.copytree(toy_entry, tmp_path / "entry")
    _flip_byte(path / LITE_FILE)
    for trust in (False, True):
        with pytest.raises(ZooError, match=r"changed: model\.tflite"):
            load(path, trust=trust)
    with pytest.raises(ZooError, match=r"changed: model\.tflite"):
        load(path / LITE_FILE)


@pytest.fixture(scope="module")
def two_file_entry(toy_entry, tmp_path_factory):
    """The toy entry as --separate-frontend lays it out: frontend.tflite and the int8 model.tflite."""
    import shutil

    model, inputs = toy("ds_cnn")
    raw, _ = toy_batch(inputs, n=8)
    path = shutil.copytree(toy_entry, tmp_path_factory.mktemp("lite") / "toy_int8")
    frontend, content = toy_separate(model, inputs, raw)
    (path / FRONTEND_FILE).write_bytes(frontend)
    (path / LITE_FILE).write_bytes(content)
    write_manifest(path)
    return path


def test_zoo_load_chains_a_two_file_entry(two_file_entry, toy_entry):
    model = load(two_file_entry)
    assert model.kind == "audio_classifier" and isinstance(model.model, LiteChain) and model.num_samples == 2000
    one_file = load(toy_entry)
    waveforms = toy_batch(toy("ds_cnn")[1], n=8)[0]
    # The same float model converted two ways: int8 rounding apart, the same probabilities.
    np.testing.assert_allclose(model.probabilities(waveforms), one_file.probabilities(waveforms), atol=3 / 256)
    (result,) = model.predict(model.example())
    assert result["label"] in "abc"


@pytest.mark.parametrize("file", [FRONTEND_FILE, LITE_FILE])
def test_a_tampered_file_of_a_two_file_entry_is_refused(two_file_entry, tmp_path, file):
    import shutil

    path = shutil.copytree(two_file_entry, tmp_path / "entry")
    _flip_byte(path / file)
    with pytest.raises(ZooError, match=rf"changed: {file}"):
        load(path, trust=True)


def test_a_front_end_with_flex_ops_is_refused(two_file_entry, tmp_path):
    import shutil

    path = shutil.copytree(two_file_entry, tmp_path / "entry")
    (path / FRONTEND_FILE).write_bytes(flex_model(tmp_path / "secret.txt"))
    write_manifest(path)
    with pytest.raises(ZooError, match=r"frontend\.tflite.*ops outside LiteRT's builtin set: CUSTOM:FlexReadFile"):
        load(path)


def test_a_bare_tflite_file_loads_only_when_trusted(toy_entry, tmp_path):
    bare = tmp_path / "model.int8.tflite"
    bare.write_bytes((toy_entry / LITE_FILE).read_bytes())
    with pytest.raises(ZooError, match="no SHA256SUMS manifest beside it"):
        load(bare)
    model = load(bare, trust=True)
    assert model.kind == "audio_classifier" and model.num_samples == 2000  # the kind from the input, no card


def flex_model(secret) -> bytes:
    """A `.tflite` model with a TensorFlow op run through the Flex delegate: ReadFile, which
    reads any file it names (here `secret`)."""
    secret.write_text("private")

    @tf.function(input_signature=[tf.TensorSpec([1], tf.float32)])
    def leak(x):
        return x + tf.cast(tf.strings.length(tf.io.read_file(str(secret))), tf.float32)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([leak.get_concrete_function()], None)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    return converter.convert()


def test_flex_ops_are_refused_unless_trusted(tmp_path):
    content = flex_model(tmp_path / "secret.txt")
    assert "CUSTOM:FlexReadFile" in disallowed_lite_ops(content)
    entry = tmp_path / "hostile"
    entry.mkdir()
    (entry / LITE_FILE).write_bytes(content)
    write_manifest(entry)
    with pytest.raises(ZooError, match="ops outside LiteRT's builtin set: CUSTOM:FlexReadFile"):
        load(entry)


def test_a_file_that_is_not_a_flatbuffer_is_refused(tmp_path):
    (tmp_path / LITE_FILE).write_bytes(b"not a model at all, just some bytes")
    write_manifest(tmp_path)
    with pytest.raises(ZooError, match="not a TensorFlow Lite flatbuffer"):
        load(tmp_path)


@pytest.mark.parametrize("argv, message", [
    (["imdb_sentiment", "--int8"], "takes image and audio classifiers"),
    (["cifar10"], "pass --int8"),
    (["cifar10", "--int8", "--examples", "0"], "--examples"),
])
def test_export_lite_refuses_what_it_cannot_export(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_:
        run_cli(export_lite.main, argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


# --- the shipped int8 entries -------------------------------------------------------------------


def test_the_int8_entries_are_shipped():
    assert LITE_SHIPPED == ["cifar10_int8", "speech_commands_int8"]


@pytest.mark.parametrize("name", LITE_SHIPPED)
def test_shipped_lite_entry_has_a_complete_card_and_predicts(name):
    path = SHIPPED_DIR / name
    verify_manifest(path)
    card = json.loads((path / "metadata.json").read_text())
    float_card = json.loads((SHIPPED_DIR / card["source"]["entry"] / "metadata.json").read_text())
    content = (path / LITE_FILE).read_bytes()
    assert card["size_bytes"] == len(content) < 20e6 and card["ops"] == op_counts(content)
    assert disallowed_lite_ops(content) == [] and ("FULLY_CONNECTED", "INT8") in lite_ops(content)
    assert card["quantization"]["representative_dataset"]["split"] == "train"
    assert (card["task"], card["kind"], card["labels"]) == (float_card["task"], float_card["kind"], float_card["labels"])
    assert card["check"]["tolerance"] == check_tolerance("test_accuracy", card["metric"]["value"],
                                                         card["check"]["examples"], card["check"]["of"])
    # The targets: within 0.5 points of float (images), >= 92% and within 0.6 points (keywords).
    assert card["metric"]["value"] >= card["metric"]["float_value"] - (0.006 if card["kind"] == "audio_classifier"
                                                                       else 0.005)
    assert {"median_ms", "p90_ms", "cpu"} <= set(card["latency"])
    model = load(name)
    (result,) = model.predict(model.example())
    assert result["label"] in model.labels


def test_the_keyword_spotters_int8_model_meets_its_targets():
    path = SHIPPED_DIR / "speech_commands_int8"
    card = json.loads((path / "metadata.json").read_text())
    # The size target is the int8 model's; the float front end is a file of its own.
    assert card["size_bytes"] == (path / LITE_FILE).stat().st_size <= 100_000
    assert {f: v["size_bytes"] for f, v in card["files"].items()} == {
        f: (path / f).stat().st_size for f in (FRONTEND_FILE, LITE_FILE)}
    assert card["files"][LITE_FILE]["computes_in"] == "int8" and "LOG" not in str(card["ops"])
    assert card["metric"]["value"] >= 0.92 and {"median_ms", "p90_ms"} <= set(card["latency_model"])
    assert isinstance(load(path).model, LiteChain)


@pytest.mark.real_data
@pytest.mark.parametrize("name", LITE_SHIPPED)
def test_shipped_lite_entry_reaches_its_recorded_accuracy(name, data_dir, image_cache_dir):
    card = json.loads((SHIPPED_DIR / name / "metadata.json").read_text())
    result = subprocess.run([sys.executable, "-c", EVAL_SCRIPT, str(SHIPPED_DIR / name)], cwd=REPO,
                            env=clean_env(ZOO_DATA_DIR=str(data_dir), ZOO_CACHE_DIR=str(image_cache_dir)),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert (measured["examples"], measured["of"]) == (card["check"]["examples"], card["check"]["of"])
    assert abs(measured["value"] - card["metric"]["value"]) <= card["check"]["tolerance"], (measured, card["metric"])
