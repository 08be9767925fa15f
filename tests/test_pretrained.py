"""The pretrained zoo: the shipped entries (manifest, model card, ops, standard tools, the same
outputs from `tf.saved_model.load` alone in a fresh process), `zoo.load`'s refusals (tampered
files, ops outside the allow-list, unsafe `.keras` files), `zoo.publish`, the predict command
line on every input kind and its errors, and, on the mirror, each entry's recorded metric."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import predict
from zoo.audio import load_waveform
from zoo.cli import run as run_cli
from zoo.errors import DataError, ZooError
from zoo.export import saved_model_ops
from zoo.datasets import get_dataset
from zoo.pretrained import TRANSLATION_TASKS, check_tolerance, detect_kind, load, read_image, signature_specs, task_info
from zoo.publish import publish
from zoo.safety import ALLOWED_OPS, MANIFEST, disallowed_ops, verify_manifest, write_manifest

REPO = Path(__file__).resolve().parents[1]
SHIPPED_DIR = REPO / "saved_models"
# SavedModel entries; the .tflite ones (model.tflite) are tests/test_lite.py's.
SHIPPED = sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / "saved_model.pb").is_file())
KINDS = {name: json.loads((SHIPPED_DIR / name / "metadata.json").read_text())["kind"] for name in SHIPPED}
TRANSLATORS = [name for name in SHIPPED if KINDS[name] == "translator"]
CLASSIFIERS = [name for name in SHIPPED if KINDS[name] != "translator"]
CARD_FIELDS = {"name", "kind", "task", "dataset", "metric", "check", "inputs", "signature_specs", "preprocessing",
               "parameters", "weights", "saved_model_bytes", "requires", "load", "command", "reproduce", "metrics",
               "versions", "published"}
TEXTS = ["A wonderful film, GREAT actors.", "An awful, boring film.", "hola", "¿dónde está la estación?"]


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "ZOO_DEBUG"}
    return {**env, "PYTHONPATH": str(REPO), **extra}


def wav_bytes(x, rate):
    x = np.asarray(x, dtype="float32")
    return tf.audio.encode_wav(x[:, None] if x.ndim == 1 else x, rate).numpy()


def tone(freq, rate, seconds, amp=0.3):
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype("float32")


# --- fixtures: toy runs of the kinds that are not shipped yet, and hostile SavedModels ----------


class ToyTextClassifier(tf.Module):
    """The sentiment export's signature (strings -> probability of "pos" and the label), with a
    tensorflow_text op and a lookup table as the real one has."""

    def __init__(self):
        super().__init__()
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(["great", "wonderful", "awful", "boring"], [1.0, 1.0, -1.0, -1.0]), 0.0)
        self.scale = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def serve(self, texts):
        import tensorflow_text as tf_text

        words = tf.strings.split(tf.strings.regex_replace(tf_text.case_fold_utf8(texts), r"[^\w\s]", " "))
        p = tf.sigmoid(self.scale * tf.reduce_sum(self.table.lookup(words), axis=1))
        return {"probability": p, "label": tf.where(p > 0.5, "pos", "neg")}


class ToyTranslator(tf.Module):
    """A string -> string `serve`, as the translation export has."""

    def __init__(self):
        super().__init__()
        self.unused = tf.Variable(1.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def serve(self, sentences):
        out = tf.strings.regex_replace(sentences, "¿dónde está la estación\\?", "where is the station?")
        return tf.strings.regex_replace(out, "hola", "hello")


class Hostile(tf.Module):
    """Signatures that read or write files, the ops `zoo.load` must refuse."""

    def __init__(self, target):
        super().__init__()
        self.target = target

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def serve(self, texts):
        return tf.strings.join([texts, tf.io.read_file(self.target)])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def write(self, texts):
        tf.io.write_file(self.target, texts[0])
        return texts


def save_toy_run(module, run_dir, metadata, **config):
    """A run directory as a task leaves it: saved_model/ with metadata.json, and config.json
    holding the config its command parses into (with `config` on top)."""
    import dataclasses

    from zoo.publish import command_config

    path = run_dir / "saved_model"
    tf.saved_model.save(module, str(path), signatures={"serve": module.serve, "serving_default": module.serve})
    (path / "metadata.json").write_text(json.dumps({"parameters": 1, "versions": {"tensorflow": tf.__version__},
                                                    **metadata}))
    parsed = dataclasses.asdict(command_config(metadata["command"]))
    (run_dir / "config.json").write_text(json.dumps({"config": {**parsed, **config}, "resolved": {}}))
    return run_dir


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Published toy entries of the text classifier and translator kinds, and their runs."""
    root = tmp_path_factory.mktemp("toy")
    runs = {
        "toy_sentiment": save_toy_run(ToyTextClassifier(), root / "run-sentiment", {
            "task": "text.sentiment", "class_names": ["neg", "pos"], "dataset": "toy",
            "metrics": {"test_accuracy": 0.75, "test_examples": 4}, "requires": ["tensorflow", "tensorflow_text"],
            "command": "python -m tasks.text.sentiment --epochs 1 --output-dir runs/x"}),
        "toy_translate": save_toy_run(ToyTranslator(), root / "run-translate", {
            "task": "text.translation", "dataset": "toy pairs", "metrics": {"test_bleu": 12.5, "test_sentences": 3},
            "example_input": "hola", "command": "python -m tasks.text.translation --pair de-en --output-dir runs/y"},
            pair="de-en"),
    }
    entries = {name: publish(run, name, models_dir=root / "models") for name, run in runs.items()}
    return {"root": root, "runs": runs, "entries": entries}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A SavedModel with ReadFile and WriteFile ops, with a manifest (so the ops are the reason
    it is refused), and the file it reads."""
    root = tmp_path_factory.mktemp("hostile")
    secret = root / "secret.txt"
    secret.write_text("the contents of a private file")
    module = Hostile(str(secret))
    path = root / "model"
    tf.saved_model.save(module, str(path), signatures={"serve": module.serve, "write": module.write})
    write_manifest(path)
    return path, secret


def copy_entry(name, tmp_path):
    return Path(shutil.copytree(SHIPPED_DIR / name, tmp_path / name))


# --- the shipped entries ------------------------------------------------------------------------


def test_the_six_entries_of_the_issue_are_shipped():
    assert set(SHIPPED) == {"cifar10", "imdb_sentiment", "speech_commands", "spoken_digits", "translate_de_en",
                            "translate_spa_eng"}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_entry_has_a_complete_card_a_valid_manifest_and_allowed_ops(name):
    path = SHIPPED_DIR / name
    verify_manifest(path)
    assert disallowed_ops(path) == {}
    card = json.loads((path / "metadata.json").read_text())
    assert CARD_FIELDS <= set(card), CARD_FIELDS - set(card)
    assert card["name"] == name and card["kind"] == detect_kind(signature_specs(path))
    assert task_info(card) is not None and card["dataset"]["test_split"] and card["dataset"]["license"]
    assert card["metric"]["name"] in card["metrics"] and card["metric"]["value"] == card["metrics"][card["metric"]["name"]]
    assert card["check"]["examples"] <= card["check"]["of"] == card["metric"]["examples"]
    assert 0 < card["check"]["tolerance"] < (1.0 if card["metric"]["name"] == "test_bleu" else 0.05)
    assert card["command"].startswith(f"python -m tasks.{card['task']}") and "--output-dir" not in card["reproduce"].replace(" --output-dir RUN-export", "")
    # Every parameter is stored once; int64 variables are dropout layers' random seed states.
    assert card["parameters"] == sum(n for dtype, n in card["weights"].items() if dtype != "int64") > 0
    assert {"tensorflow", "keras"} <= set(card["versions"])
    assert ("tensorflow_text" in card["requires"]) == bool(saved_model_ops(path) & {"CaseFoldUTF8", "NormalizeUTF8"})
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    assert size < 20e6
    # The manifest is in `sha256sum` format, so the standard tool checks it too.
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "--quiet", "-c", MANIFEST], cwd=path, check=True)


@pytest.mark.parametrize("name", TRANSLATORS)
def test_zoo_load_translates_sentences(name):
    model = load(SHIPPED_DIR / name)
    (result,) = model.predict(model.example())
    assert result["translation"].strip() and result["translation"] != model.example()[0]
    with pytest.raises(ZooError, match="empty string"):
        model.predict(["   "])


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_zoo_load_predicts_with_probabilities_and_top_k(name):
    model = load(SHIPPED_DIR / name)
    assert model.metadata["name"] == name
    (result,) = model.predict(model.example(), top_k=2)
    assert [r["label"] for r in result["top_k"]][0] == result["label"] in model.labels
    assert result["top_k"][0]["probability"] >= result["top_k"][1]["probability"]
    np.testing.assert_allclose(model.probabilities(model.example()).sum(), 1.0, atol=1e-5)


def test_image_files_are_centre_cropped_and_resized(tmp_path):
    # A wide image: blue in the middle square, red bands left and right that the crop removes.
    image = np.zeros((48, 80, 3), np.uint8)
    image[:, :, 0] = 255
    image[:, 16:64] = (0, 0, 255)
    (tmp_path / "wide.png").write_bytes(tf.io.encode_png(image).numpy())
    out = read_image(tmp_path / "wide.png", (32, 32))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert (out[:, :, 2] > 240).all() and (out[:, :, 0] < 15).all()
    # A smooth image upscaled 2x comes back close to itself; a 32x32 one comes back unchanged.
    small = np.stack([*np.meshgrid(np.arange(32) * 8, np.arange(32) * 8), np.full((32, 32), 128)], -1).astype(np.uint8)
    (tmp_path / "big.jpg").write_bytes(tf.io.encode_jpeg(np.repeat(np.repeat(small, 2, 0), 2, 1), quality=100).numpy())
    assert np.abs(read_image(tmp_path / "big.jpg", (32, 32)).astype(int) - small).max() <= 12
    (tmp_path / "same.png").write_bytes(tf.io.encode_png(small).numpy())
    np.testing.assert_array_equal(read_image(tmp_path / "same.png", (32, 32)), small)
    # Grey and RGBA images become RGB.
    (tmp_path / "grey.png").write_bytes(tf.io.encode_png(small[:, :, :1]).numpy())
    assert read_image(tmp_path / "grey.png", (32, 32)).shape == (32, 32, 3)

    model = load("cifar10")
    np.testing.assert_allclose(model.probabilities([tmp_path / "same.png"]), model.probabilities(small), atol=1e-6)
    with pytest.raises(DataError, match=r"missing\.png: no such file"):
        model.predict([tmp_path / "missing.png"])
    with pytest.raises(ZooError, match=r"takes uint8 RGB images of 32x32 \(0-255\); received float32\[1, 32, 32, 3\]"):
        model.predict(small[None].astype(np.float32))


def test_wav_files_and_waveforms_agree(tmp_path):
    model = load("spoken_digits")
    clip = tone(500, 16000, 0.5)
    (tmp_path / "stereo16k.wav").write_bytes(wav_bytes(np.stack([clip, clip], 1), 16000))
    decoded = load_waveform(wav_bytes(clip, 16000), sample_rate=8000, num_samples=8000).numpy()
    np.testing.assert_allclose(model.probabilities([tmp_path / "stereo16k.wav"]), model.probabilities(decoded),
                               atol=1e-5)
    with pytest.raises(ZooError, match="takes waveforms of 8000 samples at 8000 Hz"):
        model.probabilities(np.zeros((1, 100), np.float32))


# --- refusals -------------------------------------------------------------------------------------


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("tamper, message", [
    (lambda p: _flip_byte(p / "variables" / "variables.data-00000-of-00001"),
     r"changed: variables/variables\.data-00000-of-00001"),
    (lambda p: (p / "metadata.json").write_text((p / "metadata.json").read_text().replace("speech", "SPEECH")),
     r"changed: metadata\.json"),
    (lambda p: (p / "saved_model.pb").unlink(), r"missing: saved_model\.pb"),
    (lambda p: (p / "assets").mkdir(exist_ok=True) or (p / "assets" / "extra.txt").write_text("x"),
     r"not in the manifest: assets/extra\.txt"),
])
def test_a_tampered_entry_is_refused_even_when_trusted(tamper, message, tmp_path):
    path = copy_entry("spoken_digits", tmp_path)
    tamper(path)
    for trust in (False, True):
        with pytest.raises(ZooError, match=message):
            load(path, trust=trust)


def test_an_entry_without_a_manifest_loads_only_when_trusted(tmp_path):
    path = copy_entry("spoken_digits", tmp_path)
    (path / MANIFEST).unlink()
    with pytest.raises(ZooError, match=r"has no SHA256SUMS manifest.*trust=True"):
        load(path)
    assert load(path, trust=True).kind == "audio_classifier"


def test_ops_that_read_and_write_files_are_refused_unless_trusted(hostile):
    path, secret = hostile
    assert set(disallowed_ops(path)) == {"ReadFile", "WriteFile"}
    with pytest.raises(ZooError, match=r"ops outside the zoo's allow-list: ReadFile \(in __inference_serve.*"
                                       r"WriteFile \(in __inference_write"):
        load(path)
    model = load(path, trust=True)  # the caller's decision: now it runs, and does read the file
    (out,) = model.call("serve", np.array([b">"], dtype=object)).values()
    assert out[0] == b">" + secret.read_bytes()


def test_the_audit_command_lists_what_would_be_refused(hostile, capsys, monkeypatch):
    from zoo import safety

    path, _ = hostile
    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    run_cli(safety.main, [str(SHIPPED_DIR / "cifar10"), str(path)])
    shipped, refused = capsys.readouterr().out.strip().splitlines()
    assert shipped.endswith("all allowed") and refused.endswith("refused: ReadFile (1 place), WriteFile (1 place)")
    with pytest.raises(SystemExit) as e:
        run_cli(safety.main, [str(SHIPPED_DIR / "README.md")])
    assert e.value.code == 2 and "not a SavedModel directory" in capsys.readouterr().err


def test_checkpoint_ops_pass_only_in_the_saver_and_print_only_to_the_console(tmp_path):
    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.v = tf.Variable(1.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def save(self, x):
            tf.raw_ops.SaveV2(prefix=str(tmp_path / "ckpt"), tensor_names=["x"], shape_and_slices=[""], tensors=[x])
            return x * self.v

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def to_file(self, x):
            tf.print(x, output_stream=f"file://{tmp_path}/printed.txt")
            return x

    class Console(tf.Module):
        def __init__(self):
            super().__init__()
            self.v = tf.Variable(1.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def serve(self, x):
            tf.print(x, output_stream=sys.stderr)
            tf.print(x, output_stream=sys.stdout)
            return x * self.v

    m, c = M(), Console()
    tf.saved_model.save(m, str(tmp_path / "a"), signatures={"save": m.save, "to_file": m.to_file})
    tf.saved_model.save(c, str(tmp_path / "b"), signatures={"serve": c.serve})
    bad = disallowed_ops(tmp_path / "a")
    assert set(bad) == {"SaveV2", "PrintV2"}
    assert bad["SaveV2"] and not any("_traced_" in f for f in bad["SaveV2"])  # the signature's, not the saver's
    # Every SavedModel has SaveV2 and RestoreV2 in its saver functions: they pass there.
    assert {"SaveV2", "RestoreV2"} <= saved_model_ops(tmp_path / "b") and disallowed_ops(tmp_path / "b") == {}


def test_keras_files_load_in_safe_mode_unless_trusted(tmp_path):
    inputs = keras.Input((3,))
    unsafe = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2.0)(inputs))
    unsafe.save(tmp_path / "lambda.keras")
    with pytest.raises(ZooError, match=r"lambda\.keras: refused by Keras safe_mode"):
        load(tmp_path / "lambda.keras")
    x = np.ones((1, 3), np.float32)
    np.testing.assert_allclose(load(tmp_path / "lambda.keras", trust=True).outputs(x)["output"], 2 * x)
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    plain.save(tmp_path / "dense.keras")
    model = load(tmp_path / "dense.keras")
    assert model.kind == "keras" and model.outputs(x)["output"].shape == (1, 2)


def test_unknown_names_list_the_known_entries():
    with pytest.raises(ZooError, match=r"Unknown model 'nope'.*Known: .*cifar10"):
        load("nope")


# --- publishing -----------------------------------------------------------------------------------


def test_publish_writes_the_card_and_manifest_and_refuses_what_it_should(toy, tmp_path):
    entry = toy["entries"]["toy_sentiment"]
    verify_manifest(entry)
    card = json.loads((entry / "metadata.json").read_text())
    assert CARD_FIELDS <= set(card)
    assert (card["kind"], card["task"], card["labels"]) == ("text_classifier", "text.sentiment", ["neg", "pos"])
    assert card["requires"] == ["tensorflow", "tensorflow_text"] and "import tensorflow_text" in card["load"]["tensorflow"]
    assert card["dataset"]["name"] == get_dataset("imdb").description and card["dataset"]["read_from"] == "toy"
    assert card["check"]["examples"] == 4 and card["reproduce"] == "python -m tasks.text.sentiment --epochs 1"
    # Translation: the card of the run's language pair, BLEU on the whole test split.
    card = json.loads((toy["entries"]["toy_translate"] / "metadata.json").read_text())
    assert (card["kind"], card["dataset"]["short"], card["example_input"]) == ("translator", "Multi30K de-en", "hola")
    assert card["metric"] == {**card["metric"], "name": "test_bleu", "value": 12.5, "examples": 3}
    assert (card["check"]["examples"], card["check"]["of"], card["check"]["tolerance"]) == (3, 3, 0.5)

    run = toy["runs"]["toy_sentiment"]
    with pytest.raises(ZooError, match="exists: pass --force"):
        publish(run, "toy_sentiment", models_dir=toy["root"] / "models")
    with pytest.raises(ZooError, match=r"over the 0\.001 MB an entry may take"):
        publish(run, "tiny", models_dir=tmp_path, max_mb=0.001)
    with pytest.raises(ZooError, match="lowercase letters"):
        publish(run, "Bad-Name", models_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_task_cards_by_task_and_language_pair():
    # The recipes' tasks: from the dataset registry, by the run's --data (else the task's default).
    assert task_info({"task": "vision.cifar10"}).dataset == get_dataset("cifar10").description
    assert task_info({"task": "vision.cifar10"}).check_examples == 2000
    assert task_info({"task": "speech.classify", "training": {"config": {"data": "fsdd"}}}).short == "FSDD"
    custom = task_info({"task": "vision.classify", "training": {"config": {"data": "photos", "test_split": 0.2}}})
    assert custom.short == "photos" and "20% of each class" in custom.test_split and custom.test_data is not None
    pair = {"task": "text.translation", "training": {"config": {"pair": "spa-eng"}}}
    assert task_info(pair) is TRANSLATION_TASKS["text.translation:spa-eng"] and task_info(pair).metric == "test_bleu"
    assert task_info({"task": "text.translation"}) is None and task_info({}) is None
    assert check_tolerance("test_accuracy", 0.9, 2000, 10000) == 0.032  # 0.005 + 4 sqrt(0.9 * 0.1 / 2000)
    assert check_tolerance("test_accuracy", 0.9, 434, 434) == 0.005
    with pytest.raises(ZooError, match="BLEU on a subset"):
        check_tolerance("test_bleu", 30.0, 500, 1000)


def test_publish_refuses_a_run_whose_ops_zoo_load_would_refuse(hostile, tmp_path):
    path, _ = hostile
    with pytest.raises(ZooError, match="ReadFile"):
        publish(path, "hostile", models_dir=tmp_path)


def test_the_allow_list_covers_what_the_text_exports_use(toy):
    for entry in toy["entries"].values():
        assert saved_model_ops(entry) - ALLOWED_OPS <= {"MergeV2Checkpoints", "RestoreV2", "SaveV2", "ShardedFilename"}


@pytest.mark.slow
def test_a_run_re_exported_with_float16_weights_publishes_with_its_training_command(tmp_path):
    from tasks.speech import digits
    from test_speech_tasks import FAST, run_main, write_fake_fsdd
    from zoo.data.audio import load_fsdd

    data = write_fake_fsdd(tmp_path / "data")
    common = [*FAST, "--model-arg", "widths=(4, 8)", "--data-dir", str(data)]
    run_main(digits.main, [*common, "--epochs", "1", "--output-dir", str(tmp_path / "run")])
    metrics, stdout = run_main(digits.main, [*common, "--weights", str(tmp_path / "run" / "model.weights.h5"),
                                             "--epochs", "0", "--export-weights", "float16",
                                             "--output-dir", str(tmp_path / "run16")])
    assert "Weights rounded to float16 for evaluation and export." in stdout
    entry = publish(tmp_path / "run16", "digits16", models_dir=tmp_path / "models")
    card = json.loads((entry / "metadata.json").read_text())
    assert "float16" in card["weights"] and "float32" not in card["weights"]
    assert "rounded to float16" in card["metric"]["measured"]
    assert card["weights_from"]["command"].startswith("python -m tasks.speech.digits")
    first, then = card["reproduce"].split(", then ")
    assert "--epochs 1" in first and "--export-weights float16" in then and "--output-dir" not in first
    assert then.endswith(" --output-dir RUN-export")  # not the first run's directory: that one is finished
    assert "--weights RUN/model.weights.h5" in then and "RUN" in card["reproduce_note"]
    # The recorded metric is the stored weights' own: the entry scores the test split exactly so.
    test = load_fsdd(data, sample_rate=8000, num_samples=8000).test
    probs = load(entry).probabilities(test.waveforms)
    assert np.mean(probs.argmax(axis=1) == test.labels) == pytest.approx(metrics["test_accuracy"])
    assert -np.mean(np.log(probs[np.arange(len(test)), test.labels])) == pytest.approx(metrics["test_loss"], rel=1e-4)


# --- the command line -----------------------------------------------------------------------------


def cli(argv, capsys, monkeypatch):
    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    try:
        run_cli(predict.main, argv)
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    paths = {"png": tmp_path / "photo.png", "jpg": tmp_path / "photo.jpg", "wav": tmp_path / "clip.wav",
             "txt": tmp_path / "notes.txt", "bad_wav": tmp_path / "broken.wav"}
    paths["png"].write_bytes(tf.io.encode_png(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).numpy())
    paths["jpg"].write_bytes(tf.io.encode_jpeg(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).numpy())
    paths["wav"].write_bytes(wav_bytes(tone(440, 16000, 1.0), 16000))
    paths["txt"].write_text("not an image and not a sound")
    paths["bad_wav"].write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    return paths


def test_cli_classifies_image_files_with_top_k(files, capsys, monkeypatch):
    code, out, _ = cli(["cifar10", str(files["png"]), str(files["jpg"]), "--top-k", "2"], capsys, monkeypatch)
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{files['png']}: ") and lines[0].count("%") == 2


def test_cli_json_for_wav_files(files, capsys, monkeypatch):
    code, out, _ = cli(["speech_commands", str(files["wav"]), "--json"], capsys, monkeypatch)
    assert code == 0
    doc = json.loads(out)
    assert (doc["model"], doc["kind"], doc["task"]) == ("speech_commands", "audio_classifier", "speech.commands")
    (r,) = doc["results"]
    assert r["input"] == str(files["wav"]) and len(r["top_k"]) == 3 and r["label"] == r["top_k"][0]["label"]
    assert sum(t["probability"] for t in r["top_k"]) <= 1.0 + 1e-6


def test_cli_classifies_texts(toy, capsys, monkeypatch):
    entry = str(toy["entries"]["toy_sentiment"])
    code, out, _ = cli([entry, "What a GREAT, wonderful film!", "boring and awful"], capsys, monkeypatch)
    assert code == 0
    good, bad = out.strip().splitlines()
    assert good.startswith("What a GREAT, wonderful film!: pos ") and bad.startswith("boring and awful: neg ")
    code, out, _ = cli([entry, "great", "--json"], capsys, monkeypatch)
    (r,) = json.loads(out)["results"]
    assert r["label"] == "pos" and [t["label"] for t in r["top_k"]] == ["pos", "neg"]


def test_cli_translates_sentences(toy, capsys, monkeypatch):
    entry = str(toy["entries"]["toy_translate"])
    code, out, _ = cli([entry, "¿dónde está la estación?"], capsys, monkeypatch)
    assert (code, out) == (0, "¿dónde está la estación? -> where is the station?\n")
    code, out, _ = cli([entry, "hola", "--json"], capsys, monkeypatch)
    assert json.loads(out)["results"] == [{"input": "hola", "translation": "hello"}]


@pytest.mark.parametrize("entry, which, message", [
    ("cifar10", "missing", r"missing\.png: no such file\."),
    ("cifar10", "txt", r"notes\.txt: not a decodable image \(PNG, JPEG, GIF or BMP\)\."),
    ("spoken_digits", "missing", r"missing\.png: no such file\."),
    ("spoken_digits", "png", r"photo\.png: not a readable audio file \(WAV, FLAC, OGG or MP3; Format not recognised\.\)"),
    ("spoken_digits", "bad_wav", r"broken\.wav: not a readable audio file"),
    ("toy_sentiment", "empty", r"Input 1 is an empty string: toy_sentiment needs some text\."),
    ("toy_translate", "blank", r"Input 1 is an empty string: toy_translate needs some text\."),
    ("nope", "txt", r"Unknown model 'nope'.*Known: cifar10"),
])
def test_cli_bad_input_is_one_error_line_and_exit_2(entry, which, message, files, toy, capsys, monkeypatch):
    files = {**files, "missing": files["png"].with_name("missing.png"), "empty": "", "blank": "   "}
    entry = str(toy["entries"].get(entry, entry))
    code, out, err = cli([entry, str(files[which])], capsys, monkeypatch)
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ") and re.search(message, line), line


@pytest.mark.slow
def test_python_m_zoo_predict(files):
    result = subprocess.run([sys.executable, "-m", "zoo.predict", "cifar10", str(files["png"]), "--json"],
                            cwd=files["png"].parent, env=clean_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["results"][0]["input"] == str(files["png"])
    result = subprocess.run([sys.executable, "-m", "zoo.predict", "cifar10", str(files["txt"])],
                            env=clean_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"error: {files['txt']}: not a decodable image (PNG, JPEG, GIF or BMP)."


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["translate_spa_eng", "cifar10"])
def test_python_m_zoo_predict_writes_no_tensorflow_error_lines(entry, files):
    # With oneDNN on, on a CPU without AVX-512, TensorFlow writes once a process, at ERROR level,
    # that oneDNN leaves ops of a type to Eigen (float16 weights, bfloat16 ops): information the
    # zoo absorbs when it loads an entry. Elsewhere no such line comes either.
    inputs = ["hola, ¿cómo estás?"] if entry == "translate_spa_eng" else [str(files["png"])]
    env = {k: v for k, v in clean_env().items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-m", "zoo.predict", entry, *inputs], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(inputs[0])
    assert not re.search(r"^[EF]\d{4} |oneDNN supports", result.stderr, re.M), result.stderr[-2000:]


# --- standard tools, fresh processes --------------------------------------------------------------


FRESH_SCRIPT = r"""
import sys
import numpy as np
import tensorflow as tf

path, inputs_file, out_file, needs_text = sys.argv[1:5]
if needs_text == "1":
    import tensorflow_text  # noqa: F401  (the ops the graph uses)
model = tf.saved_model.load(path)
inputs = np.load(inputs_file, allow_pickle=True)
out = {}
for sig in inputs.files:
    fn = model.signatures[sig]
    (key,) = fn.structured_input_signature[1]
    for k, v in fn(**{key: tf.constant(inputs[sig])}).items():
        out[f"{sig}/{k}"] = v.numpy()
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("zoo", "tasks"))
assert not leaked, leaked
np.savez(out_file, **out)
"""


def signature_inputs(model):
    """A few inputs for every signature of an entry, from its specs."""
    rng = np.random.default_rng(1)
    inputs = {}
    for sig, spec in model.specs.items():
        (x,) = spec["inputs"].values()
        shape = [3 if d is None else d for d in x["shape"]]
        if x["dtype"] == "uint8":
            inputs[sig] = rng.integers(0, 256, shape, dtype=np.uint8)
        elif x["dtype"] == "float32":
            inputs[sig] = (0.1 * rng.normal(size=shape)).astype(np.float32)
        elif sig == "serve_wav":
            inputs[sig] = np.array([wav_bytes(tone(f, rate, 0.7), rate) for f, rate in ((300, 8000), (700, 16000),
                                                                                        (1200, 44100))], dtype=object)
        else:
            inputs[sig] = np.array([t.encode() for t in TEXTS], dtype=object)
    return inputs


@pytest.mark.slow
@pytest.mark.parametrize("name", [*SHIPPED, "toy_sentiment", "toy_translate"])
def test_tensorflow_alone_in_a_fresh_process_gives_the_same_outputs_as_zoo_load(name, toy, tmp_path):
    path = toy["entries"].get(name, SHIPPED_DIR / name)
    model = load(path)
    inputs = signature_inputs(model)
    np.savez(tmp_path / "inputs.npz", **inputs)
    needs_text = "1" if "tensorflow_text" in model.metadata["requires"] else "0"
    result = subprocess.run([sys.executable, "-c", FRESH_SCRIPT, str(path), str(tmp_path / "inputs.npz"),
                             str(tmp_path / "out.npz"), needs_text],
                            cwd=tmp_path, env=clean_env(PYTHONPATH=""), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    fresh = np.load(tmp_path / "out.npz", allow_pickle=True)
    assert {k.split("/")[0] for k in fresh.files} == set(model.specs)
    for sig, x in inputs.items():
        for key, expected in model.call(sig, x).items():
            got = fresh[f"{sig}/{key}"]
            if expected.dtype == object:
                assert got.tolist() == expected.tolist()
            else:
                np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_saved_model_cli_lists_the_signatures(name):
    cli_path = Path(sys.executable).with_name("saved_model_cli")
    if not cli_path.exists():
        pytest.skip("saved_model_cli is not installed next to this Python")
    result = subprocess.run([str(cli_path), "show", "--all", "--dir", str(SHIPPED_DIR / name)],
                            env=clean_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    card = json.loads((SHIPPED_DIR / name / "metadata.json").read_text())
    for sig in card["signature_specs"]:
        assert f"signature_def['{sig}']" in result.stdout


LOAD_SCRIPT = r"""
import sys
import zoo
model = zoo.load(sys.argv[1])
model.predict(model.example())
print(model.kind, "tensorflow_text" in sys.modules)
"""


@pytest.mark.slow
def test_tensorflow_text_is_imported_only_for_entries_that_need_it(toy):
    for entry, expected in (("spoken_digits", "audio_classifier False"),
                            (str(toy["entries"]["toy_sentiment"]), "text_classifier True")):
        result = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, entry], env=clean_env(), capture_output=True,
                                text=True, timeout=180)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip().splitlines()[-1] == expected


# --- the recorded metrics, on the mirror --------------------------------------------------------

EVAL_SCRIPT = r"""
import json, sys
import zoo.pretrained as p
print(json.dumps(p.evaluate(p.load(sys.argv[1]))))
"""


@pytest.mark.real_data
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_reaches_its_recorded_metric(name, data_dir, image_cache_dir):
    card = json.loads((SHIPPED_DIR / name / "metadata.json").read_text())
    check = card["check"]
    if not check.get("examples"):
        pytest.fail(f"{name}: its card has no check ({check.get('how')}); add an evaluation recipe to "
                    "zoo.pretrained.TASKS and publish it again.")
    result = subprocess.run([sys.executable, "-c", EVAL_SCRIPT, str(SHIPPED_DIR / name)], cwd=REPO,
                            env=clean_env(ZOO_DATA_DIR=str(data_dir), ZOO_CACHE_DIR=str(image_cache_dir)),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert (measured["examples"], measured["of"]) == (check["examples"], check["of"])
    assert abs(measured["value"] - card["metric"]["value"]) <= check["tolerance"], (measured, card["metric"])


EIGEN_BFLOAT16 = (b"E0000 00:00:1796072004.387926    4045 util.cc:131] oneDNN supports DT_BFLOAT16 only on platforms "
                  b"with AVX-512. Falling back to the default Eigen-based implementation if present.\n")


class ChattySignature:
    """A signature that writes TensorFlow's oneDNN/bfloat16 note to fd 2 on every call, as
    TensorFlow does on a bfloat16 graph's first optimization on a CPU without AVX-512."""

    structured_input_signature = ((), {"x": None})

    def __call__(self, x):
        os.write(2, EIGEN_BFLOAT16 + b"E0000 00:00:1.0   1 other.cc:9] a real error\n")
        return {"y": x * 2}


def test_a_signatures_first_call_drops_tensorflows_bfloat16_note_and_keeps_errors(capfd, monkeypatch):
    from zoo.pretrained import Predictor

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    model = type("Loaded", (), {"signatures": {"serve": ChattySignature()}})()
    predictor = Predictor("p", {}, model)
    out = predictor.call("serve", np.ones((3, 2), np.float32))
    np.testing.assert_array_equal(out["y"], np.full((3, 2), 2.0))
    err = capfd.readouterr().err
    assert "DT_BFLOAT16" not in err and "a real error" in err
    predictor.call("serve", np.ones((1, 2), np.float32))  # later calls are not filtered (no capture cost)
    assert "DT_BFLOAT16" in capfd.readouterr().err
