"""Text classification on your own texts.

Trains an LSTM text classifier (from scratch, or from an entry) on a folder of class folders
(`questions/<class>/*.txt`, with or without `train/` and `test/`), a CSV/TSV file with a text and
a label column, a registered dataset or `tfds:NAME`; evaluates it on the test split and exports a
SavedModel that takes raw strings and returns the probabilities of every class and the label.

    python -m tasks.text.classify --data questions/                      # <class>/*.txt folders
    python -m tasks.text.classify --data questions.csv                   # text,label columns
    python -m tasks.text.classify --data tickets.tsv --text-column body --label-column team
    python -m tasks.text.classify --data imdb --preset bigrams           # the same as tasks.text.sentiment
    python -m tasks.text.classify --data tfds:ag_news_subset             # online
    python -m tasks.text.classify --data reviews.csv --init-from imdb_sentiment   # fine-tune the sentiment entry

Texts are normalized in the graph (UTF-8 repair, NFKC case folding, markup stripped, punctuation
split off) and looked up in a vocabulary learned on the training split only. Without a test split,
`--test-split` of each class is held out for testing and `--validation-split` for validation,
stratified and the same on every run with the same `--seed`. Killing a run and starting the same
command again resumes it. Loading the exported model needs `import tensorflow_text`. With
`--init-from ENTRY` the run starts from a pretrained entry: its architecture, weights, vocabulary
and tokenizer settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.text.sentiment import PRESETS as SENTIMENT_PRESETS
from zoo.recipes.text import TEXT, TextConfig

TASK = "text.classify"
RECIPE = TEXT


@dataclass
class Config(TextConfig):
    pass


_RECIPE = dict(optimizer="adamw", learning_rate=2e-3, weight_decay=1e-2, schedule="cosine", warmup_epochs=0.5,
               batch_size=32, clipnorm=1.0)
PRESETS = {
    # A 2 x 64-unit BiLSTM over words, max pooling: for a few hundred to a few hundred thousand
    # texts of up to a few paragraphs.
    "default": dict(_RECIPE, model="bilstm", epochs=10, vocab_size=20000, bigrams=0, max_length=256,
                    model_kwargs={"embedding_dim": 128, "units": (64, 64), "pooling": "max", "dropout": 0.3,
                                  "embedding_dropout": 0.2}),
    # The sentiment task's presets: words + bigrams (its `default`), words only.
    "bigrams": dict(SENTIMENT_PRESETS["default"]),
    "words": dict(SENTIMENT_PRESETS["words"]),
}


def main(argv=None) -> dict:
    """Trains, evaluates and exports; returns the metrics written to `metrics.json`."""
    return TEXT.main(argv, Config, PRESETS, task=TASK, doc=__doc__)


# Tuning: `python -m tuning.search text.classify --data questions/` (hooks: tuning/search.py).
OBJECTIVE = ("val_accuracy", "max")
load_data, train_size, build_trial, search_space = TEXT.tuning_hooks()


if __name__ == "__main__":
    from zoo.cli import run as _run

    _run(main)
