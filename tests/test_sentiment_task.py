"""The sentiment task end to end on a toy corpus: outputs, the exported SavedModel with raw strings
in a fresh process (bad inputs included), the vocabulary's provenance and data errors. The
end-to-end runs take seconds each: they are marked slow."""

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tasks.text import sentiment
from zoo.data.text import IMDB_CLASSES, load_imdb, load_text_folder
from zoo.errors import DataError, ZooError

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TOY = ["--batch-size", "16", "--no-tensorboard", "--verbose", "0", "--epochs", "6", "--learning-rate", "0.02",
       "--model-arg", "embedding_dim=8", "--model-arg", "units=(8,)", "--model-arg", "dropout=0.0",
       "--model-arg", "embedding_dropout=0.0", "--vocab-size", "64", "--bigrams", "0", "--max-length", "16",
       "--bucket-width", "4"]


def run_main(argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        metrics = sentiment.main(argv)
    return metrics, out.getvalue()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, make_text_folder):
    return make_text_folder(tmp_path_factory.mktemp("imdb"))


@pytest.fixture(scope="module")
def sentiment_run(corpus, tmp_path_factory):
    """One finished 6-epoch run of a tiny BiLSTM on the toy corpus (a few seconds)."""
    run_dir = tmp_path_factory.mktemp("sentiment_run") / "run"
    metrics, stdout = run_main([*TOY, "--data-dir", str(corpus.parent), "--output-dir", str(run_dir)])
    return SimpleNamespace(metrics=metrics, stdout=stdout, run_dir=run_dir)


@pytest.mark.slow
def test_main_learns_the_toy_corpus_and_returns_metrics(sentiment_run):
    m = sentiment_run.metrics
    assert (m["task"], m["model"], m["preset"], m["epochs"]) == ("text.sentiment", "bilstm", "default", 6)
    assert m["test_examples"] == 32 and m["val_examples"] == 10  # 10% of 96 training reviews
    assert m["test_accuracy"] >= 0.9, m  # one sentiment word decides each toy review
    assert set(m["test_per_class_accuracy"]) == set(IMDB_CLASSES)
    assert f"Test accuracy {m['test_accuracy']:.4f}" in sentiment_run.stdout
    assert f"{m['parameters']:,} parameters" in sentiment_run.stdout


@pytest.mark.slow
def test_run_directory(sentiment_run):
    d = sentiment_run.run_dir
    config = json.loads((d / "config.json").read_text())
    assert config["task"] == "text.sentiment" and config["config"]["vocab_size"] == 64
    assert json.loads((d / "metrics.json").read_text()) == sentiment_run.metrics
    header, *rows = (d / "history.csv").read_text().splitlines()
    assert "epoch_time_s" in header.split(",") and len(rows) == 6  # the wall time of every epoch
    for png in ("learning_curves.png", "confusion_matrix.png"):
        assert (d / png).read_bytes()[:8] == PNG_MAGIC, png
    vocab = (d / "vocabulary.txt").read_text().splitlines()
    assert vocab[:2] == ["[PAD]", "[UNK]"] and "great" in vocab and "<br" not in " ".join(vocab)
    mistakes = json.loads((d / "mistakes.json").read_text())
    wrong = round((1 - sentiment_run.metrics["test_accuracy"]) * 32)
    assert len(mistakes) == wrong  # all of them: fewer than --mistakes 20
    assert [m["probability"] for m in mistakes] == sorted((m["probability"] for m in mistakes), reverse=True)
    assert (d / "mistakes.md").read_text().startswith("# Most confident test mistakes")
    meta = json.loads((d / "saved_model" / "metadata.json").read_text())
    assert meta["requires"] == ["tensorflow", "tensorflow_text"]
    assert meta["labels"] == ["neg", "pos"] and meta["preprocessing"]["vocab_size"] == len(vocab) < 64
    assert meta["metrics"]["test_accuracy"] == sentiment_run.metrics["test_accuracy"]
    assert meta["command"].startswith("python -m tasks.text.sentiment")


def test_confident_mistakes_are_the_surest_wrong_predictions():
    texts = np.array([b"a", b"b", b"c", b"d<br />e"], dtype=object)
    labels = np.array([0, 1, 0, 1])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.95, 0.05]])
    out = sentiment.confident_mistakes(texts, labels, probs, IMDB_CLASSES, n=5)
    assert [(m["rank"], m["predicted"], m["label"]) for m in out] == [(1, "neg", "pos"), (2, "pos", "neg"),
                                                                      (3, "neg", "pos")]
    assert out[0]["text"] == "d e" and out[0]["probability"] == 0.95


@pytest.mark.slow
def test_the_vocabulary_comes_from_the_training_split_only(corpus, tmp_path):
    # A word only in the test reviews must not get an id of its own.
    (corpus / "test" / "pos" / "999_9.txt").write_text("zyzzyva " * 50)
    try:
        run_main([*TOY, "--epochs", "1", "--vocab-size", "1000", "--data-dir", str(corpus.parent),
                  "--output-dir", str(tmp_path / "run"), "--no-export"])
    finally:
        (corpus / "test" / "pos" / "999_9.txt").unlink()
    assert "zyzzyva" not in (tmp_path / "run" / "vocabulary.txt").read_text().split()


SERVE_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the normalization ops)

path, texts_file, out = sys.argv[1:4]
model = tf.saved_model.load(path)
texts = [t.encode("latin-1") for t in json.load(open(texts_file))]
result = model.serve(tf.constant(texts))
default = model.signatures["serving_default"](texts=tf.constant(texts))
np.testing.assert_allclose(default["probabilities"].numpy(), result["probabilities"].numpy(), atol=1e-6)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("zoo", "tasks"))
assert not leaked, leaked
np.savez(out, probability=result["probabilities"].numpy()[:, 1], label=result["label"].numpy().astype(str))
"""


@pytest.mark.slow
def test_saved_model_serves_raw_strings_and_bad_input_in_a_fresh_process(sentiment_run, corpus, tmp_path):
    data = load_text_folder(corpus)
    texts = list(data.test_texts) + [
        b"",  # empty
        b"\xff\xfe not utf-8 \xc3",  # invalid bytes
        ("wonderful " * 12000).encode(),  # 108,000 characters
        b"qwxz vbnm plok",  # every word unknown
    ]
    (tmp_path / "texts.json").write_text(json.dumps([t.decode("latin-1") for t in texts]))
    env = {k: v for k, v in os.environ.items() if k != "ZOO_DEBUG"}
    result = subprocess.run([sys.executable, "-c", SERVE_SCRIPT, str(sentiment_run.run_dir / "saved_model"),
                             str(tmp_path / "texts.json"), str(tmp_path / "out.npz")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    p, label = out["probability"], out["label"]
    assert p.shape == (len(texts),) and np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    assert list(label) == [IMDB_CLASSES[int(q > 0.5)] for q in p]
    # The exported graph scores the test split as the evaluation did.
    n = len(data.test_texts)
    assert np.mean((p[:n] > 0.5) == data.test_labels) == pytest.approx(sentiment_run.metrics["test_accuracy"])
    assert p[n + 2] > 0.5  # the long positive review, truncated in the graph, is still positive


@pytest.mark.slow
def test_a_training_run_writes_no_tensorflow_error_lines(corpus, tmp_path):
    # On an x86-64 CPU without AVX-512, where `import zoo` turns TensorFlow's oneDNN kernels on,
    # TensorFlow logs at ERROR level, once a process, that ops of a type fall back to Eigen (the
    # tokenizer's int64 ids, the LSTM's transposed boolean mask): information the zoo absorbs when
    # the run is set up. Elsewhere no such line comes either.
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ZOO_DEBUG")}
    result = subprocess.run([sys.executable, "-m", "tasks.text.sentiment", *TOY, "--epochs", "1", "--no-export",
                             "--data-dir", str(corpus.parent), "--output-dir", str(tmp_path / "run")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Test accuracy" in result.stdout
    assert not re.search(r"^[EF]\d{4} |oneDNN supports", result.stderr, re.M), result.stderr[-3000:]


def test_unknown_model_and_reserved_arguments_are_errors(corpus, tmp_path):
    with pytest.raises(ZooError, match="Unknown text model 'resnet'"):
        sentiment.main(["--model", "resnet", "--data-dir", str(corpus.parent), "--output-dir", str(tmp_path)])
    with pytest.raises(ZooError, match="--model-arg vocab_size: set by the task"):
        sentiment.main(["--model-arg", "vocab_size=5", "--data-dir", str(corpus.parent), "--output-dir", str(tmp_path)])


def test_malformed_data_dirs_name_what_is_wrong(tmp_path, make_text_folder):
    with pytest.raises(DataError, match="No IMDB reviews found in"):
        load_imdb(tmp_path)
    base = make_text_folder(tmp_path / "a", train_per_class=2, test_per_class=1)
    for f in (base / "test" / "neg").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"test/neg: no texts \(\.txt\) in this class folder"):
        load_imdb(tmp_path / "a")
    base = make_text_folder(tmp_path / "b", train_per_class=2, test_per_class=1)
    (base / "train" / "pos" / "broken.txt").symlink_to(tmp_path / "nowhere")  # a .txt that cannot be read
    with pytest.raises(DataError, match=r"Cannot read .*train/pos/broken\.txt"):
        load_imdb(tmp_path / "b")
    base = make_text_folder(tmp_path / "c", train_per_class=1, test_per_class=1)
    shutil.rmtree(base / "test")
    with pytest.raises(DataError, match=r"c/aclImdb/test is missing"):
        load_imdb(tmp_path / "c")


def test_an_imdb_copy_with_the_wrong_count_is_refused(tmp_path, make_text_folder, monkeypatch):
    make_text_folder(tmp_path, train_per_class=3, test_per_class=2)
    monkeypatch.delenv("ZOO_PARTIAL_DATA")
    with pytest.raises(DataError, match=r"aclImdb/train/neg: 3 reviews, expected 12,500 .*truncated"):
        load_imdb(tmp_path)
    monkeypatch.setattr("zoo.data.text.IMDB_PER_FOLDER", 3)
    with pytest.raises(DataError, match=r"aclImdb/test/neg: 2 reviews, expected 3 "):
        load_imdb(tmp_path)
    # Any other text folder holds what it holds.
    assert len(load_text_folder(tmp_path / "aclImdb").test_texts) == 4


@pytest.mark.parametrize("subset, size", [("20", 20), ("0.5", 43)])
def test_subset_is_stratified_and_taken_once(corpus, subset, size):
    from zoo.config import parse_config

    argv = [*TOY, "--data-dir", str(corpus.parent), "--subset", subset, "--seed", "2"]
    cfg = parse_config(sentiment.Config, sentiment.PRESETS, argv)
    data = sentiment.load_data(cfg)  # reviews sorted by class: every neg one, then every pos one
    labels = data.splits["train"].labels
    assert len(labels) == size and abs(np.bincount(labels)[0] - size / 2) <= 1
    assert len(sentiment.make_datasets(cfg, data)[0]["tokenized"]["train"].labels) == size  # not a subset of the subset
    # A search loads every review and each trial takes the same sample.
    everything = sentiment.load_data(parse_config(sentiment.Config, sentiment.PRESETS, [*argv[:-4], "--seed", "2"]))
    trial = sentiment.make_datasets(cfg, everything)[0]["tokenized"]["train"]
    np.testing.assert_array_equal(trial.texts, data.splits["train"].texts)


def test_text_folder_takes_any_classes(tmp_path, make_text_folder):
    base = make_text_folder(tmp_path, train_per_class=3, test_per_class=2, subdir="reviews")
    (base / "train" / "unsup").mkdir()
    data = load_text_folder(base, class_names=("neg", "pos"))
    assert (len(data.train_texts), len(data.test_texts)) == (6, 4)
    assert data.train_labels.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(DataError, match=r"train/unsup: no texts \(\.txt\) in this class folder"):
        load_text_folder(base)  # without class_names every subfolder is a class


@pytest.mark.real_data
def test_imdb_mirror_loads_25000_and_25000_balanced(data_dir):
    data = load_imdb(data_dir)
    assert (len(data.train_texts), len(data.test_texts)) == (25000, 25000)
    assert np.bincount(data.train_labels).tolist() == [12500, 12500]
    assert np.bincount(data.test_labels).tolist() == [12500, 12500]
    assert data.class_names == ("neg", "pos")


@pytest.mark.slow
def test_bigram_features_train_and_export(corpus, tmp_path):
    import tensorflow as tf

    metrics, _ = run_main([*TOY, "--bigrams", "40", "--data-dir", str(corpus.parent), "--output-dir",
                           str(tmp_path / "run")])
    assert metrics["test_accuracy"] >= 0.9, metrics
    bigrams = (tmp_path / "run" / "bigrams.txt").read_text().splitlines()
    assert bigrams[:2] == ["[PAD]", "[UNK]"] and all(len(b.split()) == 2 for b in bigrams[2:])
    meta = json.loads((tmp_path / "run" / "saved_model" / "metadata.json").read_text())
    assert meta["preprocessing"]["bigram_vocab_size"] == len(bigrams)
    model = tf.saved_model.load(str(tmp_path / "run" / "saved_model"))
    data = load_text_folder(corpus)
    p = model.serve(tf.constant(list(data.test_texts)))["probabilities"].numpy()[:, 1]
    assert np.mean((p > 0.5) == data.test_labels) == pytest.approx(metrics["test_accuracy"])

    # Re-exported with int8 embeddings: the vocabularies beside the weights are reused, and the
    # recorded accuracy is the quantized SavedModel's own.
    metrics8, stdout = run_main([*TOY, "--bigrams", "40", "--data-dir", str(corpus.parent), "--epochs", "0",
                                 "--weights", str(tmp_path / "run" / "model.weights.h5"), "--export-weights", "int8",
                                 "--output-dir", str(tmp_path / "run8")])
    assert f"Vocabularies from {tmp_path / 'run'}" in stdout and "quantized to int8" in stdout
    for name in ("vocabulary.txt", "bigrams.txt"):
        assert (tmp_path / "run8" / name).read_text() == (tmp_path / "run" / name).read_text()
    stored = tf.train.load_checkpoint(str(tmp_path / "run8" / "saved_model" / "variables" / "variables"))
    assert "int8" in {d.name for d in stored.get_variable_to_dtype_map().values()}
    model8 = tf.saved_model.load(str(tmp_path / "run8" / "saved_model"))
    p8 = model8.serve(tf.constant(list(data.test_texts)))
    p8 = p8["probabilities"].numpy()[:, 1]
    assert np.mean((p8 > 0.5) == data.test_labels) == pytest.approx(metrics8["test_accuracy"])
    assert np.max(np.abs(p8 - p)) < 0.05


@pytest.mark.real_data
@pytest.mark.slow
def test_one_short_epoch_on_a_subset_of_imdb_beats_chance(data_dir, tmp_path):
    metrics, _ = run_main(["--data-dir", str(data_dir), "--output-dir", str(tmp_path / "run"), "--subset", "3000",
                           "--epochs", "1", "--bigrams", "0", "--vocab-size", "5000", "--max-length", "200",
                           "--batch-size", "32", "--learning-rate", "0.005", "--model-arg", "embedding_dim=32",
                           "--model-arg", "units=(16,)", "--no-export", "--no-tensorboard", "--verbose", "0"])
    assert metrics["test_examples"] == 25000
    assert metrics["test_accuracy"] > 0.6, metrics  # chance is 0.5: the two classes are balanced
