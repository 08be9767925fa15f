"""Model cards: one schema (zoo/model_card.schema.json) for every entry, portable paths, strict
JSON, and the TF Serving layout of an entry."""

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from test_pretrained import SHIPPED_DIR, ToyTextClassifier, save_toy_run
from zoo.errors import ZooError
from zoo.jsonutil import dumps_strict, schema_errors
from zoo.publish import SCHEMA, card_schema, main as publish_main, portable_command, portable_path, publish, \
    refresh_card, serving_layout, validate_card
from zoo.safety import verify_manifest

ALL_ENTRIES = sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / "metadata.json").is_file())


def card_of(name):
    return json.loads((SHIPPED_DIR / name / "metadata.json").read_text())


def test_the_schema_is_package_data_and_draft_2020_12():
    schema = card_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    setup = (SHIPPED_DIR.parent / "setup.cfg").read_text()
    assert SCHEMA.name in setup.split("[options.package_data]")[1].split("[")[0]


@pytest.mark.parametrize("name", ALL_ENTRIES)
def test_every_shipped_card_follows_the_schema_with_no_build_machine_path(name):
    card = validate_card(card_of(name))
    assert "class_names" not in card and "input" not in card and "output" not in card
    text = json.dumps(card)
    assert "/home/" not in text and '"/' not in text and " /" not in text
    assert not card["dataset"]["read_from"].startswith("/")
    if card["kind"] != "translator":
        assert card["labels"]


@pytest.mark.parametrize("name", [n for n in ALL_ENTRIES if (SHIPPED_DIR / n / "saved_model.pb").is_file()])
def test_shipped_signatures_are_the_saved_models_with_a_meaning_each(name):
    from zoo.pretrained import signature_specs

    card = card_of(name)
    specs = signature_specs(SHIPPED_DIR / name)
    assert set(card["signatures"]) == set(specs)
    for sig, spec in specs.items():
        for direction in ("inputs", "outputs"):
            described = card["signatures"][sig][direction]
            assert {k: {"dtype": t["dtype"], "shape": t["shape"]} for k, t in described.items()} == spec[direction]
            assert all(t["meaning"] for t in described.values())


def test_a_card_with_signatures_as_a_list_fails_naming_the_field():
    card = card_of("cifar10")
    card["signatures"] = ["serve", "serving_default"]
    with pytest.raises(ZooError, match=r"signatures: expected object, received list"):
        validate_card(card)
    card = card_of("spoken_digits")
    card["signatures"]["serving_default"] = "the same as serve"
    with pytest.raises(ZooError, match=r"signatures\.serving_default: expected object"):
        validate_card(card)
    card = card_of("spoken_digits")
    del card["signatures"]["serve"]["inputs"]["waveforms"]["meaning"]
    with pytest.raises(ZooError, match=r"signatures\.serve\.inputs\.waveforms\.meaning: missing"):
        validate_card(card)


@pytest.mark.parametrize("field, value", [
    (("dataset", "read_from"), "/home/alice/data/cifar10"),
    (("published", "from"), "/home/alice/runs/cifar10-fast"),
    (("command",), "python -m tasks.vision.cifar10 --output-dir /home/alice/runs/x"),
    (("command",), "python -m tasks.vision.cifar10 --data-dir=/home/alice/data"),
])
def test_an_absolute_path_fails_validation_naming_the_field(field, value):
    card = card_of("cifar10")
    target = card
    for key in field[:-1]:
        target = target[key]
    target[field[-1]] = value
    with pytest.raises(ZooError, match=rf"{'.'.join(field)}: .*absolute.*{value[:20]}"):
        validate_card(card)


def test_other_schema_breaks_are_named():
    card = card_of("imdb_sentiment")
    bad = {**copy.deepcopy(card), "class_names": ["neg", "pos"]}
    assert schema_errors(bad, card_schema()) == ["class_names: not a field of this schema"]
    bad = copy.deepcopy(card)
    del bad["labels"]
    assert schema_errors(bad, card_schema()) == ["labels: missing (required)"]
    bad = {**copy.deepcopy(card), "kind": "regressor"}
    assert schema_errors(bad, card_schema())[0].startswith("kind: expected one of")
    lite = card_of("cifar10_int8")
    del lite["source"]
    assert schema_errors(lite, card_schema()) == ["source: missing (required)"]


def test_portable_paths(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.chdir(tmp_path)
    outside = Path("/elsewhere/users/alice/photos")
    assert portable_path(data / "cifar10" / "batches", data_dirs=[data]) == "$ZOO_DATA_DIR/cifar10/batches"
    assert portable_path("tfds:oxford_flowers102", data_dirs=[data]) == "tfds:oxford_flowers102"
    assert portable_path("photos/", data_dirs=[data]) == "photos/"  # as the user gave it
    assert portable_path(outside, data_dirs=[data]) == ".../photos"
    assert portable_path(tmp_path / "runs" / "x") == "runs/x"  # inside the current directory
    assert portable_path("/elsewhere/runs/x", run_dirs=["/elsewhere/runs/x"]) == "x"
    command = (f"python -m tasks.vision.classify --data {outside} --data-dir={data} --weights "
               "/elsewhere/runs/a/model.weights.h5 --output-dir /elsewhere/runs/b")
    assert portable_command(command, data_dirs=[data]) == (
        "python -m tasks.vision.classify --data .../photos --data-dir=$ZOO_DATA_DIR --weights a/model.weights.h5 "
        "--output-dir b")


def test_a_toy_publish_validates_with_portable_paths(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("ZOO_DATA_DIR", str(data))
    run = save_toy_run(ToyTextClassifier(), tmp_path / "run-sentiment", {
        "task": "text.sentiment", "labels": ["neg", "pos"], "dataset": str(data / "aclImdb"),
        "metrics": {"test_accuracy": 0.75, "test_examples": 4},
        "requires": ["tensorflow", "tensorflow_text"],
        "command": f"python -m tasks.text.sentiment --epochs 1 --output-dir {tmp_path / 'run-sentiment'}"},
        output_dir=str(tmp_path / "run-sentiment"))
    entry = publish(run, "toy_sentiment", models_dir=tmp_path / "models")
    text = (entry / "metadata.json").read_text()
    card = validate_card(json.loads(text))
    assert card["dataset"]["read_from"] == "$ZOO_DATA_DIR/aclImdb"
    assert card["published"]["from"] == "run-sentiment"
    assert card["command"] == "python -m tasks.text.sentiment --epochs 1 --output-dir run-sentiment"
    assert card["training"]["config"]["output_dir"] == "run-sentiment"
    assert str(tmp_path) not in text
    assert card["signatures"]["serve"]["outputs"]["probability"] == {
        "dtype": "float32", "shape": [None], "meaning": "the probability of the last of the two labels"}


def test_dumps_strict_lives_in_jsonutil_and_cli_still_exports_it():
    import zoo.cli

    assert zoo.cli.dumps_strict is dumps_strict
    value = {"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": -math.inf}
    assert json.loads(dumps_strict(value), parse_constant=pytest.fail) == {"a": None, "b": [None, 1.5], "c": None}


def test_refresh_card_migrates_an_old_card_to_strict_json_and_its_manifest(tmp_path):
    import shutil

    from zoo.pretrained import load

    models = tmp_path / "models"
    entry = Path(shutil.copytree(SHIPPED_DIR / "spoken_digits", models / "spoken_digits"))
    old = card_of("spoken_digits")
    old["signatures"] = {"serve": {"input": {"name": "waveforms", "meaning": "old words"}},
                         "serving_default": "the same as serve"}
    old["class_names"] = old.pop("labels")
    old["dataset"]["read_from"] = str(tmp_path / "mirror" / "fsdd" / "recordings")
    old["published"]["from"] = "/build/runs/speech-digits"
    old["metrics"]["val_loss"] = float("nan")  # what Python's json writes as NaN
    old["reproduce"] = "python -m tasks.speech.digits"  # as published, before commands named the precision
    (entry / "metadata.json").write_text(json.dumps(old))
    from zoo.safety import write_manifest
    write_manifest(entry)
    publish_main(["--refresh-card", "spoken_digits", "--models-dir", str(models), "--data-dir", str(tmp_path / "mirror")])
    verify_manifest(entry)
    card = validate_card(json.loads((entry / "metadata.json").read_text(), parse_constant=pytest.fail))
    assert card["metrics"]["val_loss"] is None
    assert card["labels"] == old["class_names"] and card["published"]["from"] == "speech-digits"
    assert card["dataset"]["read_from"] == "$ZOO_DATA_DIR/fsdd/recordings"
    assert card["signatures"]["serving_default"]["inputs"]["waveforms"]["meaning"] == "old words"
    # Trained under --precision auto, which chose float32 then: the command says so.
    assert old["training"]["config"]["precision"] == "auto"
    assert card["reproduce"] == "python -m tasks.speech.digits --precision float32"
    load(entry)


@pytest.mark.parametrize("name", ALL_ENTRIES)
def test_a_shipped_entry_reproduces_with_the_policy_it_trained_in(name):
    card = card_of(name)
    policy = (card.get("training") or {}).get("resolved", {}).get("dtype_policy")
    if "reproduce" not in card or not policy:
        pytest.skip("no training record (a LiteRT entry)")
    for command in card["reproduce"].split(", then "):
        assert f"--precision {policy}" in command


@pytest.mark.parametrize("name", ALL_ENTRIES)
def test_a_shipped_entry_reproduces_its_recipe_under_todays_presets(name):
    """A preset that moves on (more epochs, another trick) must not change what a card's command
    trains: the card pins the settings the preset no longer gives."""
    from zoo.publish import recipe_differences

    card = card_of(name)
    config = (card.get("training") or {}).get("config")
    if "reproduce" not in card or not config:
        pytest.skip("no training record (a LiteRT entry)")
    commands = card["reproduce"].split(", then ")
    # A re-export's card holds the second command's config (--weights, --epochs 0).
    differences = recipe_differences(commands[-1], config)
    assert differences == {}, f"the preset moved: python -m zoo.publish --refresh-card {name} pins {differences}"


def test_a_moved_preset_is_pinned_back_to_what_the_run_trained(monkeypatch):
    from tasks.vision import cifar10
    from zoo.publish import RUN_SETTINGS, pin_recipe, recipe_differences

    trained = dict(card_of("cifar10")["training"]["config"])
    for new in ("lookahead", "offset_lr_scale"):  # settings added after the run: their defaults are what it had
        trained.pop(new, None)
    recipe = {k: v for k, v in trained.items() if k not in RUN_SETTINGS}
    moved = {**recipe, "epochs": 12, "lookahead": 5, "model_kwargs": {"bn_scale": False, "identity_init": True}}
    monkeypatch.setitem(cifar10.PRESETS, "fast", moved)
    command = "python -m tasks.vision.cifar10 --preset fast --precision mixed_bfloat16"
    assert recipe_differences(command, trained) == {
        "epochs": trained["epochs"], "lookahead": 0, "model_kwargs": {"bn_scale": True, "identity_init": False}}
    pinned = pin_recipe(command, trained)
    assert pinned == (f"{command} --epochs {trained['epochs']} --lookahead 0 --model-arg bn_scale=True "
                      "--model-arg identity_init=False")
    assert recipe_differences(pinned, trained) == {}
    another = pin_recipe("python -m tasks.vision.cifar10 --preset fast --model resnet", trained)
    assert "--model airbench" in another and recipe_differences(another, trained) == {}


def test_reproduce_names_the_precision_unless_the_command_does():
    from zoo.publish import _reproduce, pinned_precision

    auto = {"config": {"precision": "auto"}, "resolved": {"dtype_policy": "mixed_bfloat16"}}
    assert pinned_precision(auto) == "mixed_bfloat16" and pinned_precision({}) is None
    assert _reproduce("python -m tasks.vision.cifar10 --output-dir r", "mixed_bfloat16") == \
        "python -m tasks.vision.cifar10 --precision mixed_bfloat16"
    assert _reproduce("python -m t --precision=float32", "mixed_bfloat16") == "python -m t --precision=float32"
    assert _reproduce("python -m t --output-dir=r") == "python -m t"


def test_serving_layout_is_what_tf_serving_loads(tmp_path):
    run = save_toy_run(ToyTextClassifier(), tmp_path / "run", {
        "task": "text.sentiment", "labels": ["neg", "pos"], "dataset": "toy",
        "metrics": {"test_accuracy": 0.75, "test_examples": 4}, "requires": ["tensorflow", "tensorflow_text"],
        "command": "python -m tasks.text.sentiment --epochs 1"})
    entry = publish_main([str(run), "toy_sentiment", "--models-dir", str(tmp_path / "models"),
                          "--serving-layout", str(tmp_path / "serving")])
    version = tmp_path / "serving" / "toy_sentiment" / "1"
    assert (version / "saved_model.pb").is_file() and (version / "variables" / "variables.index").is_file()
    assert sorted(p.name for p in (tmp_path / "serving" / "toy_sentiment").iterdir()) == ["1"]
    verify_manifest(version)  # the entry's files, unchanged
    import tensorflow_text  # noqa: F401  (the toy's ops)

    model = tf.saved_model.load(str(version))
    out = model.signatures["serving_default"](texts=tf.constant(["a wonderful film", "an awful film"]))
    assert [x.decode() for x in out["label"].numpy()] == ["pos", "neg"]
    # An entry already published, as a second version; an existing one is refused.
    assert serving_layout(entry, tmp_path / "serving", version=2) == version.with_name("2")
    with pytest.raises(ZooError, match="exists: pass --force"):
        serving_layout(entry, tmp_path / "serving")
    with pytest.raises(ZooError, match="TF Serving serves SavedModel entries"):
        serving_layout(SHIPPED_DIR / "cifar10_int8", tmp_path / "serving")


class NamedToyTranslator(tf.Module):
    """A string -> {"translation": string} `serve`, as the translation export has now."""

    def __init__(self):
        super().__init__()
        self.unused = tf.Variable(1.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def serve(self, sentences):
        return {"translation": tf.strings.regex_replace(sentences, "hola", "hello")}


def test_zoo_load_translates_with_a_named_output_and_the_card_describes_it(tmp_path):
    from zoo.pretrained import load

    run = save_toy_run(NamedToyTranslator(), tmp_path / "run", {
        "task": "text.translation", "dataset": "toy pairs", "metrics": {"test_bleu": 12.5, "test_sentences": 3},
        "example_input": "hola", "command": "python -m tasks.text.translation --pair de-en"}, pair="de-en")
    entry = publish(run, "toy_named", models_dir=tmp_path / "models")
    assert load(entry).predict(["hola amigo"]) == [{"translation": "hello amigo"}]
    card = json.loads((entry / "metadata.json").read_text())
    assert card["signatures"]["serve"]["outputs"] == {
        "translation": {"dtype": "string", "shape": [None], "meaning": "the translations, detokenized"}}
