"""Sentiment analysis of IMDB movie reviews with LSTMs.

Trains an LSTM classifier from scratch (no pretrained embeddings) on the IMDB Large Movie Review
Dataset (Maas et al., 2011: 25,000 training and 25,000 test reviews, half positive), evaluates
it on the 25,000 test reviews and exports a SavedModel that takes raw review strings and
returns the probabilities of the two classes (neg, pos) and the label.

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
any other data goes through `tasks.text.classify --data` (folders of any classes, CSV/TSV).
Otherwise TFDS downloads `imdb_reviews`. Killing a run and starting the same command again
resumes it. Loading the exported model needs `import tensorflow_text` (its normalization ops).

The `default` preset reached 90.91% accuracy on the 25,000 test reviews (41 min of training on
a 2-core CPU shared with other jobs); `words` 88.12%. Commands and details: docs/text.md.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

from zoo.config import option
from zoo.recipes.text import TEXT, TextConfig, confident_mistakes, vocabularies  # noqa: F401 (re-exported)

TASK = "text.sentiment"
RECIPE = TEXT


@dataclass
class Config(TextConfig):
    data: typing.Optional[str] = option("imdb", "the dataset (python -m zoo.models lists them); IMDB is read from "
                                                "--data-dir, else ZOO_DATA_DIR, else TFDS")
    text_folder: typing.Optional[str] = option(None, "a Keras text folder (train/<class>/*.txt, test/<class>/*.txt) "
                                                     "instead of IMDB (the same as --data FOLDER)")
    validation_split: float = option(0.2, "fraction of the training set held out for validation", ge=0, lt=1)
    max_chars: int = option(20000, "read at most this many characters of a review (IMDB's longest: 13,704)", ge=1)

    def __post_init__(self):
        super().__post_init__()
        if self.text_folder:
            self.data = self.text_folder


_RECIPE = dict(optimizer="adamw", learning_rate=2e-3, weight_decay=1e-2, schedule="cosine", warmup_epochs=0.5,
               batch_size=64, clipnorm=1.0, validation_split=0.1)
PRESETS = {
    # 2 x 64-unit BiLSTM over word + bigram embeddings, max pooling: 90.91% test (docs/text.md).
    "default": dict(_RECIPE, model="bilstm", epochs=4, vocab_size=30000, bigrams=50000, max_length=800,
                    model_kwargs={"embedding_dim": 128, "units": (64, 64), "pooling": "max", "dropout": 0.4,
                                  "embedding_dropout": 0.3}),
    # The same network on words only, 400 tokens: 88.12% test after 3 epochs (docs/text.md).
    "words": dict(_RECIPE, model="bilstm", epochs=3, vocab_size=20000, bigrams=0, max_length=400,
                  model_kwargs={"embedding_dim": 128, "units": (64, 64), "pooling": "max", "dropout": 0.3,
                                "embedding_dropout": 0.2}),
}



def main(argv=None) -> dict:
    """Trains, evaluates and exports; returns the metrics written to `metrics.json`."""
    return TEXT.main(argv, Config, PRESETS, task=TASK, doc=__doc__)


def make_datasets(cfg, data):
    """The pipelines of `cfg` on `data` and the token ids they read: `({"train", "val", "test",
    "tokenized"}, training reviews)`."""
    return TEXT.datasets(cfg, data)


# Tuning: `python -m tuning.search text.sentiment` searches the text recipe's space with the data,
# pipelines and model above (the hooks are described in tuning/search.py). The vocabularies and
# lengths (--vocab-size, --bigrams, --max-length) are the search's task flags, not searched.
OBJECTIVE = ("val_accuracy", "max")
load_data, train_size, build_trial, search_space = TEXT.tuning_hooks()


if __name__ == "__main__":
    from zoo.cli import run as _run

    _run(main)
