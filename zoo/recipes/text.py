"""The text classification recipe: raw UTF-8 texts, normalized and tokenized in the graph
(`zoo.text`: NFKC case folding, markup stripped, punctuation split, a word vocabulary and
optionally a bigram one, learned on the training split only), length-bucketed training batches,
an LSTM family model, and a SavedModel that takes raw strings and returns `probabilities` over
every class and the `label` string.

Datasets: any registered text dataset, a folder of class folders (`<class>/*.txt`, with or
without `train/` and `test/`), a CSV/TSV file with a text and a label column, or `tfds:NAME`.
Tasks: `tasks.text.classify` (any data) and `tasks.text.sentiment` (IMDB and its presets).
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.config import FineTuneOptions, TrainConfig, option
from zoo.data import subset_indices
from zoo.recipes import Recipe, register_recipe


@dataclass
class TextConfig(FineTuneOptions, TrainConfig):
    """What the text recipe takes: the data, the tokenizer and the model."""

    data: typing.Optional[str] = option(None, "the dataset: a registered name (python -m zoo.models), a folder of class "
                                              "folders (<class>/*.txt, with or without train/ and test/), a CSV/TSV "
                                              "file, or tfds:NAME")
    text_column: typing.Optional[str] = option(None, "CSV/TSV: the text column (default: text, sentence, review...)")
    label_column: typing.Optional[str] = option(None, "CSV/TSV: the label column (default: label, class, category...)")
    test_split: float = option(0.1, "fraction held out for testing when the data has no test split", ge=0, lt=1)
    validation_split: float = option(0.1, "fraction of the training set held out for validation", ge=0, lt=1)
    model: str = option("bilstm", "registered text model (see python -m zoo.models)")
    model_kwargs: dict = option({}, "builder argument, repeatable: --model-arg units=(64,64) --model-arg pooling=max")
    vocab_size: int = option(20000, "vocabulary size, padding and out-of-vocabulary ids included", ge=3)
    bigrams: int = option(0, "size of a bigram vocabulary: each token also embeds the bigram it ends (0: words only)",
                          ge=0)
    max_length: int = option(400, "keep at most this many tokens of each text", ge=1)
    truncate: str = option("head", "which end of a long text to keep", ("head", "tail"))
    max_chars: int = option(20000, "read at most this many characters of a text", ge=1)
    bucket_width: int = option(32, "training batches group texts whose lengths fall in buckets this wide "
                                   "(0: pad every batch to --max-length)", ge=0)
    mistakes: int = option(20, "how many of the most confident test mistakes to report", ge=0)


@dataclass
class Tokenized:
    """One split's raw texts, labels and token ids, in the same order."""

    texts: np.ndarray
    labels: np.ndarray
    ids: list

    def sorted_by_length(self):
        # Evaluation batches of similar lengths pad less; metrics do not depend on the order.
        order = np.argsort([len(i) for i in self.ids], kind="stable")
        return Tokenized(self.texts[order], self.labels[order], [self.ids[i] for i in order])

    def take(self, keep):
        return Tokenized(self.texts[keep], self.labels[keep], [self.ids[i] for i in keep])


@dataclass
class TextData:
    """What a run, or every trial of a search, starts from (no TensorFlow objects): the source,
    the vocabularies learned on the training split and the token ids of the three splits."""

    source: str
    class_names: tuple
    vocabulary: list
    bigrams: list
    splits: dict  # "train", "val" and "test" (sorted by length): Tokenized
    subset: typing.Optional[float] = None  # the --subset "train" already is (None: all the training texts)
    notes: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)  # examples of each split, before --subset


def make_tokenizer(cfg, vocabulary, bigrams):
    from zoo.text import Tokenizer

    return Tokenizer(vocabulary, max_length=cfg.max_length, truncate=cfg.truncate, max_chars=cfg.max_chars,
                     bigram_vocabulary=bigrams)


def vocabularies(cfg, x_train) -> tuple[list, list]:
    """The word and bigram vocabularies: the ones beside `--weights` (the weights' own), else
    learned from `x_train`."""
    from zoo.text import build_vocabulary

    if getattr(cfg, "init_from", None):
        from zoo.finetune import load_parent

        parent = load_parent(cfg.init_from)
        print(f"Vocabularies of {parent.name} (the ones its weights were trained with).")
        return parent.vocabularies()
    saved = Path(cfg.weights).parent if cfg.weights else None
    if saved and (saved / "vocabulary.txt").is_file():
        from zoo.finetune import read_vocabularies

        print(f"Vocabularies from {saved} (the ones the weights were trained with).")
        return read_vocabularies(saved)
    vocabulary = build_vocabulary(x_train, vocab_size=cfg.vocab_size, max_chars=cfg.max_chars)
    bigrams = build_vocabulary(x_train, vocab_size=cfg.bigrams, max_chars=cfg.max_chars, ngram=2) if cfg.bigrams else []
    return vocabulary, bigrams


def confident_mistakes(texts, labels, probs, class_names, n):
    """The `n` test mistakes the model was surest of: text, label, predicted label, probability."""
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]])][:n]
    return [{"rank": rank, "label": class_names[labels[i]], "predicted": class_names[pred[i]],
             "probability": round(float(probs[i, pred[i]]), 4),
             "text": texts[i].decode("utf-8", "replace").replace("<br />", " ")} for rank, i in enumerate(wrong, 1)]


def write_mistakes(path, mistakes, chars=400):
    lines = ["# Most confident test mistakes", "", "| # | label | predicted | probability | text (start) |",
             "|---|---|---|---|---|"]
    for m in mistakes:
        text = m["text"][:chars].replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {m['rank']} | {m['label']} | {m['predicted']} | {m['probability']:.4f} | {text}"
                     f"{'...' if len(m['text']) > chars else ''} |")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps(mistakes, indent=2, ensure_ascii=False) + "\n")


class TextRecipe(Recipe):
    kind = "text"
    family = "text"
    noun = "texts"
    predictor = "text_classifier"
    reserved = ("num_classes", "vocab_size", "bigram_vocab_size")
    reserved_hint = " (use --vocab-size and --bigrams)"

    def load_data(self, cfg) -> TextData:
        """The splits of `cfg.data`, the vocabularies (learned on all the training texts, or the
        ones beside `--weights`) and the token ids of every text (of the training ones, the
        `--subset` a run trains on: all of them in a search, whose trials choose)."""
        from zoo.datasets import load_dataset

        splits = load_dataset(cfg.data, self.kind, cfg)
        vocabulary, bigrams = vocabularies(cfg, splits.train.x)
        tokenizer = make_tokenizer(cfg, vocabulary, bigrams)
        train = splits.train.take(subset_indices(splits.train.labels, cfg.subset, cfg.seed))
        tokenized = {name: Tokenized(s.x, s.labels, tokenizer.tokenize_all(s.x) if len(s) else [])
                     for name, s in (("train", train), ("val", splits.validation), ("test", splits.test))}
        tokenized["val"], tokenized["test"] = tokenized["val"].sorted_by_length(), tokenized["test"].sorted_by_length()
        counts = {s: len(getattr(splits, s)) for s in ("train", "validation", "test")}
        return TextData(splits.source, tuple(splits.class_names), vocabulary, bigrams, tokenized, cfg.subset,
                        list(splits.notes), counts)

    def counts(self, data: TextData) -> dict:
        return dict(data.counts)

    def train_size(self, cfg, data: TextData) -> int:
        return len(data.splits["train"].labels)

    def datasets(self, cfg, data: TextData):
        from zoo.pipeline import text_dataset

        splits = dict(data.splits)
        if data.subset is None:  # a search loads every training text; each trial takes its --subset here
            splits["train"] = splits["train"].take(subset_indices(splits["train"].labels, cfg.subset, cfg.seed))
        common = dict(batch_size=cfg.batch_size, seed=cfg.seed, deterministic=cfg.deterministic)
        train = splits["train"]
        out = {"train": text_dataset(train.ids, train.labels, training=True, bucket_width=cfg.bucket_width,
                                     max_length=cfg.max_length, **common), "tokenized": splits}
        for name in ("val", "test"):
            split = splits[name]
            out[name] = (text_dataset(split.ids, split.labels, training=False, **common), split.labels) \
                if len(split.labels) else None
        return out, len(train.labels)

    def build(self, cfg, data: TextData):
        from zoo.registry import build_model

        return build_model(cfg.model, vocab_size=len(data.vocabulary) + 2,
                           bigram_vocab_size=len(data.bigrams) + 2 if data.bigrams else 0,
                           num_classes=len(data.class_names), **cfg.model_kwargs)

    def describe(self, cfg, data: TextData, n_train):
        lengths = np.array([len(t) for t in data.splits["train"].ids])
        return (f"Data: {data.source}; {n_train:,} train, {len(data.splits['val'].labels):,} validation, "
                f"{len(data.splits['test'].labels):,} test texts, {len(data.class_names)} classes; vocabulary "
                f"{len(data.vocabulary) + 2:,} ids; tokens per text: median {int(np.median(lengths))}, "
                f"{np.mean(lengths >= cfg.max_length):.1%} truncated to {cfg.max_length}.")

    def write_files(self, cfg, run, data: TextData):
        from zoo.finetune import write_vocabularies

        write_vocabularies(run.run_dir, data.vocabulary, data.bigrams)

    def export_files(self, cfg, path, data: TextData):
        from zoo.finetune import write_vocabularies

        write_vocabularies(path, data.vocabulary, data.bigrams)  # the entry's, for fine-tuning from it

    def report(self, cfg, run, model, data: TextData, datasets, probabilities):
        test = datasets["tokenized"]["test"]
        write_mistakes(run.run_dir / "mistakes", confident_mistakes(
            test.texts, test.labels, probabilities["test"], data.class_names, cfg.mistakes))

    def serving(self, cfg, model, classifier, data: TextData):
        from zoo.text import text_classifier_serving

        return text_classifier_serving(model, make_tokenizer(cfg, data.vocabulary, data.bigrams),
                                       list(data.class_names))

    def card(self, cfg, data: TextData):
        from zoo.text import text_serving_metadata

        tokenizer = make_tokenizer(cfg, data.vocabulary, data.bigrams)
        return {**text_serving_metadata(tokenizer, list(data.class_names)), "requires": ["tensorflow", "tensorflow_text"],
                "load": "import tensorflow as tf, tensorflow_text; tf.saved_model.load(path)"}

    def builder_args(self, card):
        pp = card["preprocessing"]
        return {"num_classes": len(card["labels"]), "vocab_size": int(pp["vocab_size"]),
                "bigram_vocab_size": int(pp.get("bigram_vocab_size") or 0)}

    def inherit(self, cfg, parent):
        pp = parent.preprocessing
        parent.vocabularies()  # a clear error now if the entry lacks them
        return {"vocab_size": int(pp["vocab_size"]), "bigrams": int(pp.get("bigram_vocab_size") or 0),
                "max_length": int(pp["max_length"]), "truncate": pp.get("truncate", "head"),
                "max_chars": int(pp.get("max_chars") or cfg.max_chars)}

    def model_inputs(self, card):
        pp = card["preprocessing"]
        shape = "[N, T, 2] (word id, bigram id)" if pp.get("bigram_vocab_size") else "[N, T]"
        return (f"int token ids {shape}, T <= {pp.get('max_length')}, 0 padding, 1 out of vocabulary: "
                "zoo.text.Tokenizer with the entry's vocabulary.txt (and bigrams.txt) and these settings")

    def search_space(self, hp) -> dict:
        """Settings to search, as config overrides; the defaults are the sentiment task's `default`
        preset's. The vocabularies and lengths (--vocab-size, --bigrams, --max-length) are the
        search's task flags, not searched: they are learned once, on the training split."""
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


TEXT = register_recipe(TextRecipe())
