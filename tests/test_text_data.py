"""Text classification data of any kind (Keras text folders, class folders alone, CSV and TSV files
and folders of them) into one splits type, their one-line errors naming file and line, and the
N-class serving signature through the SavedModel, `zoo.load` and `zoo.pretrained.evaluate`."""

import json
from pathlib import Path

import numpy as np
import pytest

from zoo.data.text import load_text_dataset, load_text_folder, sort_class_names
from zoo.errors import DataError

REPO = Path(__file__).resolve().parents[1]
CLASS_NAMES = ("eggs", "ham", "spam")
WORDS = {"eggs": ["omelette", "yolk", "boiled"], "ham": ["smoked", "slice", "pork"], "spam": ["tin", "canned", "lunch"],
         "bacon": ["crispy", "rasher"]}  # bacon: a class that only a bad test split has
FILLER = ["the", "a", "was", "very", "today", "and"]


def toy_text(label, rng):
    words = [*rng.choice(FILLER, size=3), *rng.choice(WORDS[label], size=2)]
    rng.shuffle(words)
    return " ".join(words).capitalize() + "."


def write_folders(root, splits=(("train", 6), ("test", 2)), classes=CLASS_NAMES, seed=0):
    """`root/<split>/<class>/<i>.txt` for each (split, count); split "" writes `root/<class>/`."""
    rng = np.random.default_rng(seed)
    for split, n in splits:
        for label in classes:
            folder = Path(root) / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (folder / f"{i}.txt").write_text(toy_text(label, rng))
    return Path(root)


def write_table(path, rows, header=("text", "label"), delimiter=","):
    """A CSV/TSV file written by the csv module (quotes where needed); `rows` of (text, label)."""
    import csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def toy_rows(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return [(toy_text(label, rng), label) for label in CLASS_NAMES for _ in range(n)]


def texts(split):
    return [t.decode() for t in split.x]


# --- folders ------------------------------------------------------------------------------------


def test_keras_text_folders_of_three_classes_draw_validation_from_train(tmp_path):
    root = write_folders(tmp_path / "d")
    data = load_text_dataset(root, validation_split=0.2, seed=1)
    assert (data.kind, data.class_names, data.source) == ("text", ("eggs", "ham", "spam"), str(root))
    assert data.train.x.dtype == object and all(isinstance(t, bytes) for t in data.train.x)
    # 20% of 6 a class (rounded: 1); test is test/ as it is, in file order.
    assert (len(data.train), len(data.validation), len(data.test)) == (15, 3, 6)
    assert np.bincount(data.validation.labels).tolist() == [1, 1, 1]
    assert list(data.test.files) == [str(root / "test" / c / f"{i}.txt") for c in CLASS_NAMES for i in range(2)]
    assert data.test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    for split in (data.train, data.validation, data.test):  # each text under its own class folder
        assert all(Path(f).parent.name == data.class_names[y] and Path(f).read_bytes() == x
                   for x, y, f in zip(split.x, split.labels, split.files))
    assert not set(data.train.files) & set(data.validation.files)
    assert any("validation (20% of each class) drawn from" in n for n in data.notes)
    assert "dropped nothing" in data.notes and any(n.startswith("3 classes") for n in data.notes)
    assert any(n.startswith("longest text ") for n in data.notes)


def test_a_validation_folder_is_used_as_it_is(tmp_path):
    root = write_folders(tmp_path / "d", splits=(("train", 4), ("validation", 2), ("test", 1)))
    data = load_text_dataset(root)
    assert (len(data.train), len(data.validation), len(data.test)) == (12, 6, 3)
    assert all("/validation/" in f for f in data.validation.files)


@pytest.mark.parametrize("splits", [(("", 10),), (("train", 10),)], ids=["class-folders-alone", "train-without-test"])
def test_folders_without_test_are_split_stratified_and_deterministically(tmp_path, splits):
    root = write_folders(tmp_path / "d", splits=splits)
    data = load_text_dataset(root, validation_split=0.2, test_split=0.3, seed=3)
    assert data.class_names == ("eggs", "ham", "spam")
    assert np.bincount(data.validation.labels).tolist() == [2, 2, 2]
    assert np.bincount(data.test.labels).tolist() == [3, 3, 3]
    files = [set(s.files) for s in (data.train, data.validation, data.test)]
    assert sum(map(len, files)) == 30 and len(set.union(*files)) == 30
    again = load_text_dataset(root, validation_split=0.2, test_split=0.3, seed=3)
    assert again.test.files == data.test.files
    assert load_text_dataset(root, validation_split=0.2, test_split=0.3, seed=4).test.files != data.test.files


def test_numeric_class_names_sort_as_numbers(tmp_path):
    root = write_folders(tmp_path / "d", splits=(("", 3),), classes=("eggs", "ham", "spam"))
    for old, new in (("eggs", "10"), ("ham", "2"), ("spam", "1")):
        (root / old).rename(root / new)
    assert load_text_dataset(root).class_names == ("1", "2", "10")
    assert sort_class_names(["b", "10", "a"]) == ("10", "a", "b") and sort_class_names(["-1", "1", "0.5"]) == \
        ("-1", "0.5", "1")


def test_imdb_folders_read_the_same_texts_in_the_same_order(tmp_path, make_text_folder):
    base = make_text_folder(tmp_path, train_per_class=5, test_per_class=3)
    old, new = load_text_folder(base), load_text_dataset(base, validation_split=0)
    assert new.class_names == old.class_names
    np.testing.assert_array_equal(new.train.x, old.train_texts)
    np.testing.assert_array_equal(new.train.labels, old.train_labels)
    np.testing.assert_array_equal(new.test.x, old.test_texts)
    np.testing.assert_array_equal(new.test.labels, old.test_labels)


# --- CSV and TSV --------------------------------------------------------------------------------


def test_csv_with_default_columns_and_quoted_multi_line_fields(tmp_path):
    rows = toy_rows()
    rows[0] = ('She said "yolk",\nthen left;\r\nboiled.', "eggs")
    path = write_table(tmp_path / "food.csv", [(label, text, i) for i, (text, label) in enumerate(rows)],
                       header=("Category", "Sentence", "id"))
    data = load_text_dataset(path, validation_split=0.1, test_split=0.2)
    assert data.class_names == ("eggs", "ham", "spam") and data.spec["text_column"] == "Sentence"
    assert (len(data.train), len(data.validation), len(data.test)) == (21, 3, 6)
    every = {f: (x, y) for s in (data.train, data.validation, data.test) for f, x, y in zip(s.files, s.x, s.labels)}
    # The first record spans lines 2 to 4; the next starts on line 5.
    assert every[f"{path}:2"] == (rows[0][0].encode(), 0) and every[f"{path}:5"] == (rows[1][0].encode(), 0)
    assert every[f"{path}:33"] == (rows[-1][0].encode(), 2) and len(every) == 30
    assert "dropped nothing" in data.notes


def test_tsv_with_named_columns_and_a_folder_of_split_files(tmp_path):
    rows = [(label.upper(), text) for text, label in toy_rows(4)]
    for name, part in (("train", rows), ("validation", rows[::4]), ("test", rows[1::2])):
        write_table(tmp_path / "d" / f"{name}.tsv", part, header=("topic", "question"), delimiter="\t")
    data = load_text_dataset(tmp_path / "d", text_column="QUESTION", label_column="topic")
    assert data.class_names == ("EGGS", "HAM", "SPAM") and data.spec["delimiter"] == "\t"
    assert (len(data.train), len(data.validation), len(data.test)) == (12, 3, 6)
    assert texts(data.test) == [text for _, text in rows[1::2]]
    assert data.test.files[0] == f"{tmp_path / 'd' / 'test.tsv'}:2"


def test_numeric_labels_and_a_delimiter_named_for_other_files(tmp_path):
    rows = [(text, {"eggs": "10", "ham": "2", "spam": "1"}[label]) for text, label in toy_rows(5)]
    path = write_table(tmp_path / "food.txt", rows, delimiter=";")
    with pytest.raises(DataError, match=r"food\.txt: not a \.csv or \.tsv file; name its field delimiter with "
                                        "--delimiter"):
        load_text_dataset(path)
    assert load_text_dataset(path, delimiter=";").class_names == ("1", "2", "10")


def test_blank_lines_are_skipped_and_said(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\n" + "an egg,eggs\n\nsome ham,ham\n" * 2 + "\n")
    data = load_text_dataset(path, validation_split=0, test_split=0.5)
    assert len(data.train) + len(data.test) == 4 and "skipped 3 blank lines" in data.notes


# --- bad input: one line, naming the file and line (or folder) ----------------------------------

GOOD = 'text,label\n"an egg\nboiled",eggs\nsome ham,ham\n'  # a record on lines 2-3, one on line 4

BAD_CSV = [
    ("missing-label", GOOD + "canned lunch,\n", r"q\.csv:5: empty label\.$"),
    ("empty-text", GOOD + '"  ",spam\n', r"q\.csv:5: empty text\.$"),
    ("fields", GOOD + "canned, lunch,spam\n", r"q\.csv:5: 3 fields, expected 2 as in the header \(text, label\)"),
    ("not-utf8", GOOD + "caf\xe9,spam\n", r"q\.csv:5: not UTF-8 \(byte 0xe9\); save the file as UTF-8\.$"),
    ("one-class", "text,label\nan egg,eggs\nboiled egg,eggs\n", r"q\.csv: one class \(eggs\); a classifier needs two"),
    ("no-column", "question,topic\nan egg,eggs\n", r"q\.csv:1: no text column \(named text, sentence, review, content, "
                                                   r"document\); its columns are question, topic: name the columns "
                                                   r"with --text-column and --label-column\.$"),
    ("header-only", "text,label\n", r"q\.csv: no rows after the header\.$"),
    ("too-few", "text,label\nan egg,eggs\nham,ham\n", r"q\.csv: too few examples to draw a test split \(10% of each "
                                                     r"class rounds to none; the smallest class has 1 example\)"),
]


@pytest.mark.parametrize("content, message", [c[1:] for c in BAD_CSV], ids=[c[0] for c in BAD_CSV])
def test_bad_csv_rows_are_one_line_errors_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "q.csv"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(DataError, match=message) as e:
        load_text_dataset(path)
    assert "\n" not in str(e.value)


def test_a_named_column_that_is_not_there(tmp_path):
    path = write_table(tmp_path / "q.csv", toy_rows(2))
    with pytest.raises(DataError, match=r"q\.csv:1: no column 'topic'; its columns are text, label"):
        load_text_dataset(path, label_column="topic")
    with pytest.raises(DataError, match=r"q\.csv:1: column 'label' is both the text and the label"):
        load_text_dataset(path, text_column="LABEL")


def test_a_test_label_that_train_does_not_have(tmp_path):
    write_table(tmp_path / "d" / "train.csv", toy_rows(3))
    write_table(tmp_path / "d" / "test.csv", [("a tin of spam", "spam"), ("bacon", "bacon")])
    with pytest.raises(DataError, match=r"test\.csv:3: class 'bacon' is not one of .*train\.csv's \(eggs, ham, spam\)"):
        load_text_dataset(tmp_path / "d")


def _empty_class_folder(root):
    for f in (root / "train" / "ham").iterdir():
        f.unlink()
    (root / "train" / "ham" / "notes.md").write_text("not a text")


BAD_FOLDERS = [
    ("test-class-not-in-train", lambda root: write_folders(root, splits=(("test", 1),), classes=("bacon",)),
     r"test/bacon/0\.txt: class 'bacon' is not one of .*/train's \(eggs, ham, spam\)\.$"),
    ("empty-class-folder", _empty_class_folder, r"train/ham: no texts \(\.txt\) in this class folder"),
    ("empty-text", lambda root: (root / "test" / "ham" / "0.txt").write_text(" \n"), r"test/ham/0\.txt: empty text"),
]


@pytest.mark.parametrize("spoil, message", [c[1:] for c in BAD_FOLDERS], ids=[c[0] for c in BAD_FOLDERS])
def test_bad_folders_are_one_line_errors_naming_the_folder_or_file(tmp_path, spoil, message):
    root = write_folders(tmp_path / "d")
    spoil(root)
    with pytest.raises(DataError, match=message) as e:
        load_text_dataset(root)
    assert "\n" not in str(e.value)


def test_one_class_folder_and_a_folder_of_nothing(tmp_path):
    root = write_folders(tmp_path / "d", splits=(("", 4),), classes=("eggs",))
    with pytest.raises(DataError, match=r"d: one class \(eggs\); a classifier needs two or more\.$"):
        load_text_dataset(root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no class folders inside; expected .*train\.csv"):
        load_text_dataset(tmp_path / "empty")
    with pytest.raises(DataError, match=r"missing: no such file or folder"):
        load_text_dataset(tmp_path / "missing")


# --- N-class serving ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def topic_entry(tmp_path_factory):
    """A 3-class embedding + pooling model over the toy corpus, exported with
    `text_classifier_serving`, with a manifest; and the Keras model's own probabilities. Training
    and export take seconds: the tests that use it are marked slow."""
    import keras
    import tensorflow as tf

    from zoo.export import export_saved_model
    from zoo.safety import write_manifest
    from zoo.text import Tokenizer, build_vocabulary, text_classifier_serving, text_serving_metadata

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("topics")
    data = load_text_dataset(write_folders(root / "data", splits=(("", 12),)), validation_split=0, test_split=0.25)
    tokenizer = Tokenizer(build_vocabulary(data.train.x, vocab_size=32), max_length=8)
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(tokenizer.vocab_size, 8, mask_zero=True)(inputs)
    logits = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(x))
    model = keras.Model(inputs, logits)
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(tokenizer.dense(tf.constant(list(data.train.x))), data.train.labels, epochs=10, verbose=0)
    test_texts = [t.decode() for t in data.test.x]
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(model(tokenizer.dense(tf.constant(test_texts)))))
    path = root / "saved_model"
    export_saved_model(model, path, **text_classifier_serving(model, tokenizer, CLASS_NAMES), metadata={
        "task": "text.toy_topics", "class_names": list(CLASS_NAMES), "dataset": str(data.source),
        "metrics": {"test_accuracy": float(np.mean(expected.argmax(1) == data.test.labels)), "test_examples": 9},
        "requires": ["tensorflow", "tensorflow_text"], **text_serving_metadata(tokenizer, CLASS_NAMES)})
    write_manifest(path)
    return {"path": path, "texts": test_texts, "labels": data.test.labels, "expected": expected, "model": model,
            "tokenizer": tokenizer}


@pytest.mark.slow
def test_the_saved_model_serves_probabilities_over_three_classes(topic_entry):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the normalization ops the graph uses)

    loaded = tf.saved_model.load(str(topic_entry["path"]))
    for name in ("serve", "serving_default"):
        out = loaded.signatures[name](texts=tf.constant(topic_entry["texts"]))
        p, label = out["probabilities"].numpy(), out["label"].numpy().astype(str)
        assert p.shape == (len(topic_entry["texts"]), 3) and p.dtype == np.float32
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(p, topic_entry["expected"], atol=1e-5)
        assert list(label) == [CLASS_NAMES[i] for i in p.argmax(axis=1)]
    card = json.loads((topic_entry["path"] / "metadata.json").read_text())
    assert set(card["signatures"]) == {"serve", "serving_default"}
    assert card["signatures"]["serve"]["outputs"]["probabilities"]["shape"] == [None, 3]
    assert card["preprocessing"]["vocab_size"] == topic_entry["tokenizer"].vocab_size
    assert (card["preprocessing"]["padding_id"], card["preprocessing"]["out_of_vocabulary_id"]) == (0, 1)


@pytest.mark.slow
def test_zoo_load_predicts_and_evaluates_three_classes(topic_entry, monkeypatch):
    import zoo.pretrained
    from zoo.pretrained import TaskInfo, TextClassifier, evaluate, load

    model = load(topic_entry["path"])
    assert isinstance(model, TextClassifier) and model.labels == list(CLASS_NAMES)
    p = model.probabilities(topic_entry["texts"])
    assert p.shape == (len(topic_entry["texts"]), 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p, topic_entry["expected"], atol=1e-5)
    results = model.predict(topic_entry["texts"])
    assert [r["label"] for r in results] == [CLASS_NAMES[i] for i in p.argmax(axis=1)]
    assert all(len(r["top_k"]) == 3 for r in results)

    def test_data(card, data_dir):
        return np.array(topic_entry["texts"], dtype=object), topic_entry["labels"], CLASS_NAMES

    info = TaskInfo(short="toy", dataset="toy", test_split="toy", license="none", test_data=test_data)
    monkeypatch.setattr(zoo.pretrained, "task_info", lambda card: info)
    result = evaluate(model)
    assert result["value"] == pytest.approx(np.mean(topic_entry["expected"].argmax(1) == topic_entry["labels"]))
    assert result["examples"] == result["of"] == len(topic_entry["labels"])


@pytest.mark.slow
def test_publish_records_the_text_classifier_and_its_signatures(topic_entry, tmp_path):
    from zoo.publish import publish

    entry = publish(topic_entry["path"], "toy_topics", models_dir=tmp_path)
    card = json.loads((entry / "metadata.json").read_text())
    assert (card["kind"], card["labels"]) == ("text_classifier", list(CLASS_NAMES))
    assert card["signatures"]["serve"]["outputs"]["label"]["dtype"] == "string"
    assert card["signature_specs"]["serve"]["outputs"]["probabilities"]["shape"] == [None, 3]


@pytest.mark.slow
def test_serving_refuses_a_model_whose_outputs_are_not_the_classes(topic_entry):
    from zoo.text import text_classifier_serving

    with pytest.raises(ValueError, match=r"The model has 3 outputs but there are 2 class_names"):
        text_classifier_serving(topic_entry["model"], topic_entry["tokenizer"], ("a", "b"))


def test_the_shipped_binary_entry_still_gives_two_probabilities():
    from zoo.pretrained import load

    model = load(REPO / "saved_models" / "imdb_sentiment")
    reviews = ["A wonderful film, GREAT actors.", "An awful, boring film.", "hola"]
    p = model.probabilities(reviews)
    assert p.shape == (3, 2) and model.labels == ["neg", "pos"]
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(p[:, 1], model.outputs(reviews)["probability"], atol=1e-7)
    assert [r["label"] for r in model.predict(reviews[:2])] == ["pos", "neg"]


def test_an_old_single_probability_export_of_three_classes_is_refused(tmp_path):
    import tensorflow as tf

    from zoo.errors import ZooError
    from zoo.pretrained import load
    from zoo.safety import write_manifest

    class LastClassOnly(tf.Module):  # what the export served before `probabilities`
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
        def serve(self, texts):
            p = tf.fill(tf.shape(texts), 0.5)
            return {"probability": p, "label": tf.fill(tf.shape(texts), "spam")}

    module = LastClassOnly()
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serve": module.serve})
    (tmp_path / "m" / "metadata.json").write_text(json.dumps({"class_names": list(CLASS_NAMES)}))
    write_manifest(tmp_path / "m")
    with pytest.raises(ZooError, match=r"m: its `serve` returns the probability of one of 3 classes only; export it "
                                       "again"):
        load(tmp_path / "m").probabilities(["a tin"])
