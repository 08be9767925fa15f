"""Sentiment analysis of IMDB movie reviews with LSTMs.

Trains an LSTM classifier from scratch (no pretrained embeddings) on the IMDB Large Movie Review
Dataset (Maas et al., 2011: 25,000 training and 25,000 test reviews, half positive), evaluates
it on the 25,000 test reviews and exports a SavedModel that takes raw review strings and
returns the probability that each is positive, and its label.

Text is normalized in the graph (UTF-8 repair, Unicode NFKC case folding, `<br />` and other
markup stripped, punctuation split off), split on whitespace and looked up in a vocabulary
learned on the training split only (`--bigrams N` adds a vocabulary of the N most frequent word
pairs: each token then also embeds the bigram it ends); reviews are truncated to `--max-length`
tokens, and training batches group reviews of similar length (`--bucket-width`) instead of
padding all to the maximum.

    python -m tasks.text.sentiment                          # `default`: BiLSTM over words and bigrams
    python -m tasks.text.sentiment --preset words           # the same network on words only
    python -m tasks.text.sentiment --model lstm --model-arg pooling=attention --epochs 3
    python -m tuning.search text.sentiment --preset words --tuner random --max-epochs 2 --subset 0.2

Offline, `--data-dir DIR` or `ZOO_DATA_DIR` points at `aclImdb/{train,test}/{neg,pos}/*.txt`;
any Keras text folder (`train/<class>/*.txt`, `test/<class>/*.txt`) works with `--text-folder`.
Otherwise TFDS downloads `imdb_reviews`. Killing a run and starting the same command again
resumes it. Loading the exported model needs `import tensorflow_text` (its normalization ops).

The `default` preset reached 90.91% accuracy on the 25,000 test reviews (41 min of training on
a 2-core CPU shared with other jobs); `words` 88.12%. Commands and details: README, Sentiment.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.config import TrainConfig, option, parse_config
from zoo.data import subset_indices, train_val_split
from zoo.errors import ZooError
from zoo.registry import build_model, list_models
from zoo.train import Experiment, compile_classifier, export_metadata, finish_run, setup_run, train

TASK = "text.sentiment"


@dataclass
class Config(TrainConfig):
    model: str = option("bilstm", "registered text model (see zoo.list_models('text'))")
    model_kwargs: dict = option({}, "builder argument, repeatable: --model-arg units=(64,64) --model-arg pooling=max")
    text_folder: typing.Optional[str] = option(None, "a Keras text folder (train/<class>/*.txt, test/<class>/*.txt) "
                                                     "instead of IMDB")
    vocab_size: int = option(20000, "vocabulary size, padding and out-of-vocabulary ids included", ge=3)
    bigrams: int = option(0, "size of a bigram vocabulary: each token also embeds the bigram it ends (0: words only)",
                          ge=0)
    max_length: int = option(400, "keep at most this many tokens of each review", ge=1)
    truncate: str = option("head", "which end of a long review to keep", ("head", "tail"))
    max_chars: int = option(20000, "read at most this many characters of a review (IMDB's longest: 13,704)", ge=1)
    bucket_width: int = option(32, "training batches group reviews whose lengths fall in buckets this wide "
                                   "(0: pad every batch to --max-length)", ge=0)
    mistakes: int = option(20, "how many of the most confident test mistakes to report", ge=0)


_RECIPE = dict(optimizer="adamw", learning_rate=2e-3, weight_decay=1e-2, schedule="cosine", warmup_epochs=0.5,
               batch_size=64, clipnorm=1.0, validation_split=0.1, precision="float32")
PRESETS = {
    # 2 x 64-unit BiLSTM over word + bigram embeddings, max pooling: 90.91% test (README).
    "default": dict(_RECIPE, model="bilstm", epochs=4, vocab_size=30000, bigrams=50000, max_length=800,
                    model_kwargs={"embedding_dim": 128, "units": (64, 64), "pooling": "max", "dropout": 0.4,
                                  "embedding_dropout": 0.3}),
    # The same network on words only, 400 tokens: 88.12% test after 3 epochs (README).
    "words": dict(_RECIPE, model="bilstm", epochs=3, vocab_size=20000, bigrams=0, max_length=400,
                  model_kwargs={"embedding_dim": 128, "units": (64, 64), "pooling": "max", "dropout": 0.3,
                                "embedding_dropout": 0.2}),
}


def load_corpus(cfg):
    """The raw reviews: `--text-folder`, else IMDB from `cfg.data_dir` (else ZOO_DATA_DIR, else TFDS)."""
    from zoo.data.text import load_imdb, load_text_folder

    return load_text_folder(cfg.text_folder) if cfg.text_folder else load_imdb(cfg.data_dir)


@dataclass
class Split:
    """One split's raw texts, labels and token ids, in the same order."""

    texts: np.ndarray
    labels: np.ndarray
    ids: list

    def sorted_by_length(self):
        # Evaluation batches of similar lengths pad less; metrics do not depend on the order.
        order = np.argsort([len(i) for i in self.ids], kind="stable")
        return Split(self.texts[order], self.labels[order], [self.ids[i] for i in order])


@dataclass
class SentimentData:
    """What a run, or every trial of a search, starts from (picklable, no TensorFlow objects):
    the vocabularies learned on the training split and the token ids of the three splits."""

    source: str
    class_names: tuple
    vocabulary: list
    bigrams: list
    splits: dict  # "train", "val" and "test" (sorted by length): Split
    subset: typing.Optional[float] = None  # the --subset "train" already is (None: all the training reviews)


def load_data(cfg) -> SentimentData:
    """The corpus split into training and validation reviews, the vocabularies (learned on all the
    training reviews, or the ones beside `--weights`) and the token ids of every review (of the
    training ones, the `--subset` a run trains on: all of them in a search, whose trials choose)."""
    corpus = load_corpus(cfg)
    (x_train, y_train), (x_val, y_val) = train_val_split(corpus.train_texts, corpus.train_labels,
                                                         cfg.validation_split, cfg.seed)
    vocabulary, bigrams = vocabularies(cfg, x_train)
    tokenizer = make_tokenizer(cfg, vocabulary, bigrams)
    keep = subset_indices(y_train, cfg.subset, cfg.seed)
    x_train, y_train = x_train[keep], y_train[keep]
    splits = {name: Split(x, y, tokenizer.tokenize_all(x)) for name, x, y in (
        ("train", x_train, y_train), ("val", x_val, y_val), ("test", corpus.test_texts, corpus.test_labels))}
    splits["val"], splits["test"] = splits["val"].sorted_by_length(), splits["test"].sorted_by_length()
    return SentimentData(corpus.source, tuple(corpus.class_names), vocabulary, bigrams, splits, cfg.subset)


def make_tokenizer(cfg, vocabulary, bigrams):
    from zoo.text import Tokenizer

    return Tokenizer(vocabulary, max_length=cfg.max_length, truncate=cfg.truncate, max_chars=cfg.max_chars,
                     bigram_vocabulary=bigrams)


def make_datasets(cfg, data: SentimentData):
    """The three splits, the training one sampled by `cfg.subset`, and their pipelines
    (training shuffled and bucketed; validation `None` when `--validation-split 0`)."""
    from zoo.pipeline import text_dataset

    splits = dict(data.splits)
    if data.subset is None:  # a search loads every training review; each trial takes its --subset here
        train, keep = splits["train"], subset_indices(splits["train"].labels, cfg.subset, cfg.seed)
        splits["train"] = Split(train.texts[keep], train.labels[keep], [train.ids[i] for i in keep])
    common = dict(batch_size=cfg.batch_size, seed=cfg.seed, deterministic=cfg.deterministic)
    train = splits["train"]
    datasets = {"train": text_dataset(train.ids, train.labels, training=True, bucket_width=cfg.bucket_width,
                                      max_length=cfg.max_length, **common)}
    for name in ("val", "test"):
        split = splits[name]
        datasets[name] = text_dataset(split.ids, split.labels, training=False, **common) if len(split.labels) else None
    return datasets, splits


def make_model(cfg, run, data: SentimentData, n_train: int):
    """The model of `cfg` for `data`'s vocabularies and classes, compiled."""
    with run.strategy.scope():
        model = build_model(cfg.model, vocab_size=len(data.vocabulary) + 2,
                            bigram_vocab_size=len(data.bigrams) + 2 if data.bigrams else 0,
                            num_classes=len(data.class_names), **cfg.model_kwargs)
        compile_classifier(model, cfg, run, steps_per_epoch=int(np.ceil(n_train / cfg.batch_size)))
    return model


def confident_mistakes(texts, labels, probs, class_names, n):
    """The `n` test mistakes the model was surest of: text, label, predicted label, probability."""
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]])][:n]
    return [{"rank": rank, "label": class_names[labels[i]], "predicted": class_names[pred[i]],
             "probability": round(float(probs[i, pred[i]]), 4),
             "text": texts[i].decode("utf-8", "replace").replace("<br />", " ")} for rank, i in enumerate(wrong, 1)]


def write_mistakes(path, mistakes, chars=400):
    lines = ["# Most confident test mistakes", "", "| # | label | predicted | probability | review (start) |",
             "|---|---|---|---|---|"]
    for m in mistakes:
        text = m["text"][:chars].replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {m['rank']} | {m['label']} | {m['predicted']} | {m['probability']:.4f} | {text}"
                     f"{'...' if len(m['text']) > chars else ''} |")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps(mistakes, indent=2, ensure_ascii=False) + "\n")


def vocabularies(cfg, x_train) -> tuple[list, list]:
    """The word and bigram vocabularies: the ones beside `--weights` (the weights' own), else
    learned from `x_train`."""
    from zoo.text import build_vocabulary

    saved = Path(cfg.weights).parent if cfg.weights else None
    if saved and (saved / "vocabulary.txt").is_file():
        def read(name):  # one entry a line after [PAD] and [UNK]; no file: none
            return (saved / name).read_text(encoding="utf-8").split("\n")[2:-1] if (saved / name).is_file() else []

        print(f"Vocabularies from {saved} (the ones the weights were trained with).")
        return read("vocabulary.txt"), read("bigrams.txt")
    vocabulary = build_vocabulary(x_train, vocab_size=cfg.vocab_size, max_chars=cfg.max_chars)
    bigrams = build_vocabulary(x_train, vocab_size=cfg.bigrams, max_chars=cfg.max_chars, ngram=2) if cfg.bigrams else []
    return vocabulary, bigrams


def main(argv=None) -> dict:
    """Trains, evaluates and exports; returns the metrics written to `metrics.json`."""
    import keras
    import tensorflow as tf

    from zoo.evaluate import classification_metrics, predict_probabilities, write_classification_report
    from zoo.export import export_saved_model

    cfg = parse_config(Config, PRESETS, argv, prog="python -m tasks.text.sentiment", description=__doc__.split("\n")[0])
    if cfg.model not in list_models("text"):
        raise ZooError(f"Unknown text model {cfg.model!r}. Known: {', '.join(list_models('text'))}.")
    reserved = sorted({"vocab_size", "bigram_vocab_size", "num_classes"} & set(cfg.model_kwargs))
    if reserved:
        raise ZooError(f"--model-arg {', '.join(reserved)}: set by the task (use --vocab-size and --bigrams).")
    run = setup_run(cfg, TASK, argv)
    if run.finished is not None:
        return run.finished

    # Data: the vocabulary comes from the training split only (not validation, not test).
    data = load_data(cfg)
    tokenizer = make_tokenizer(cfg, data.vocabulary, data.bigrams)
    if run.chief:
        for name, words in (("vocabulary.txt", data.vocabulary), ("bigrams.txt", data.bigrams)):
            if words:
                (run.run_dir / name).write_text("\n".join(["[PAD]", "[UNK]", *words]) + "\n", encoding="utf-8")
    datasets, splits = make_datasets(cfg, data)
    train_split, val_split, test_split = splits["train"], splits["val"], splits["test"]
    lengths = np.array([len(t) for t in train_split.ids])
    print(f"Data: {data.source}; {len(lengths)} train, {len(val_split.labels)} validation, "
          f"{len(test_split.labels)} test reviews; vocabulary {tokenizer.vocab_size:,} ids; tokens per review: "
          f"median {int(np.median(lengths))}, {np.mean(lengths >= cfg.max_length):.1%} truncated to {cfg.max_length}.")

    # Model
    model = make_model(cfg, run, data, len(lengths))

    # Train
    history, metrics = train(model, datasets["train"], datasets["val"], cfg, run, task=TASK, dataset=data.source)

    # Evaluate
    probs = {}
    for name in ("val", "test"):
        if datasets[name] is not None:
            probs[name] = predict_probabilities(model, datasets[name])
            split_metrics, cm = classification_metrics(splits[name].labels, probs[name], data.class_names,
                                                       prefix=f"{name}_")
            metrics.update(split_metrics)
    print(f"Test accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f} "
          f"({data.source}, {len(test_split.labels)} reviews).")
    if run.chief:
        write_classification_report(run.run_dir, metrics, history, cm, data.class_names,
                                    title=f"IMDB test, accuracy {metrics['test_accuracy']:.2%}")
        write_mistakes(run.run_dir / "mistakes", confident_mistakes(
            test_split.texts, test_split.labels, probs["test"], data.class_names, cfg.mistakes))

    # Export: raw strings in, the probability of the last class ("pos" for IMDB) and the label out.
    if cfg.export and run.chief:
        class_names = tf.constant(list(data.class_names))

        def serve(texts):
            p = keras.ops.softmax(model(tokenizer.dense(texts), training=False))
            return {"probability": p[:, -1], "label": tf.gather(class_names, tf.argmax(p, axis=1))}

        path = export_saved_model(
            model, run.run_dir / "saved_model", track=[tokenizer.module],
            input_signature=[tf.TensorSpec([None], tf.string, name="texts")], serve_fn=serve,
            weights_dtype=cfg.export_weights,
            metadata=export_metadata(
                run, metrics, task=TASK, class_names=list(data.class_names),
                input={"name": "texts", "dtype": "string", "shape": [None], "meaning": "raw UTF-8 reviews"},
                output={"probability": f"float32[None], probability of {data.class_names[-1]!r}",
                        "label": "string[None], the more probable class"},
                signatures=["serve", "serving_default"], requires=["tensorflow", "tensorflow_text"],
                load="import tensorflow as tf, tensorflow_text; tf.saved_model.load(path)",
                dataset=data.source, model=cfg.model, model_kwargs=cfg.model_kwargs,
                preprocessing={"normalization": "UTF-8 repair, NFKC case folding, markup stripped, punctuation split",
                               "vocab_size": tokenizer.vocab_size, "bigram_vocab_size": tokenizer.bigram_vocab_size,
                               "max_length": cfg.max_length,
                               "truncate": cfg.truncate, "max_chars": cfg.max_chars,
                               "out_of_vocabulary_id": 1, "padding_id": 0}))
        print(f"SavedModel: {path}")
    return finish_run(run, metrics)



# Tuning: `python -m tuning.search text.sentiment` searches this space with the data, pipelines
# and model above (the hooks are described in tuning/search.py). The vocabularies and lengths
# (--vocab-size, --bigrams, --max-length) are the search's task flags, not searched: they are
# learned once, on the training split, for all the trials.

OBJECTIVE = ("val_accuracy", "max")


def search_space(hp) -> dict:
    """Settings to search, as config overrides; the defaults are the `default` preset's."""
    width, layers = hp.Choice("units", [32, 64, 128], default=64), hp.Int("layers", 1, 2, default=2)
    return dict(
        model=hp.Choice("model", ["bilstm", "lstm"]),
        model_kwargs={"embedding_dim": hp.Choice("embedding_dim", [64, 128, 256], default=128),
                      "units": (width,) * layers,
                      "pooling": hp.Choice("pooling", ["max", "mean", "attention", "last"]),
                      "dropout": hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.4),
                      "embedding_dropout": hp.Float("embedding_dropout", 0.0, 0.5, step=0.1, default=0.3)},
        learning_rate=hp.Float("learning_rate", 5e-4, 1e-2, sampling="log", default=2e-3),
        weight_decay=hp.Float("weight_decay", 1e-3, 1e-1, sampling="log", default=1e-2),
        batch_size=hp.Choice("batch_size", [32, 64, 128], default=64),
    )


def train_size(cfg, data) -> int:
    """Training reviews after the validation split: the ones `--subset` samples."""
    return len(data.splits["train"].labels)


def build_trial(cfg, run, data) -> Experiment:
    datasets, splits = make_datasets(cfg, data)
    return Experiment(make_model(cfg, run, data, len(splits["train"].labels)), datasets["train"], datasets["val"])


if __name__ == "__main__":
    from zoo.cli import run as _run

    _run(main)
