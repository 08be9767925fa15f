"""Length bucketing vs fixed padding for the sentiment task: training reviews/s and padding.

    python bench/text_bucketing.py [--data-dir DIR] [--reviews 3200] [--preset default]

Tokenizes a random sample of IMDB training reviews as `tasks.text.sentiment` does (the preset's
vocabulary size and `--max-length`), then trains the preset's model for one pass over the sample
twice: batches padded to `max_length` (`--bucket-width 0`) and batches bucketed by length
(the preset's `--bucket-width`), each after a warm-up pass, and reports reviews/s, the fraction
of token slots that are padding, and the speed-up. Without `--data-dir`/`ZOO_DATA_DIR`, uses
TFDS (needs a network).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tasks.text.sentiment import PRESETS, Config  # noqa: E402
from zoo.data.text import load_imdb  # noqa: E402
from zoo.pipeline import text_dataset  # noqa: E402
from zoo.registry import build_model  # noqa: E402
from zoo.text import Tokenizer, build_vocabulary  # noqa: E402


def one_pass(model, ds):
    """Seconds and (tokens, slots) of one pass of `train_on_batch` over `ds`."""
    tokens = slots = 0
    start = time.perf_counter()
    for x, y in ds:
        model.train_on_batch(x, y)
        words = x[..., 0] if x.shape.rank == 3 else x
        tokens += int(tf.math.count_nonzero(words))
        slots += int(tf.size(words))
    return time.perf_counter() - start, tokens, slots


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--reviews", type=int, default=3200)
    p.add_argument("--preset", default="default", choices=sorted(PRESETS))
    args = p.parse_args(argv)

    cfg = Config(**PRESETS[args.preset])
    data = load_imdb(args.data_dir)
    texts = data.train_texts[np.random.default_rng(0).permutation(len(data.train_texts))[: args.reviews]]
    labels = data.train_labels[np.random.default_rng(0).permutation(len(data.train_texts))[: args.reviews]]
    bigrams = (build_vocabulary(data.train_texts, vocab_size=cfg.bigrams, max_chars=cfg.max_chars, ngram=2)
               if cfg.bigrams else None)
    tokenizer = Tokenizer(build_vocabulary(data.train_texts, vocab_size=cfg.vocab_size, max_chars=cfg.max_chars),
                          max_length=cfg.max_length, truncate=cfg.truncate, max_chars=cfg.max_chars,
                          bigram_vocabulary=bigrams)
    ids = tokenizer.tokenize_all(texts)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, TF {tf.__version__}, "
          f"Keras {keras.__version__}; preset {args.preset!r}: {cfg.model} {cfg.model_kwargs}, batch {cfg.batch_size}, "
          f"max_length {cfg.max_length}, bigrams {cfg.bigrams}; {len(ids)} IMDB training reviews, median {int(np.median([len(i) for i in ids]))} "
          "tokens")
    rates = {}
    for name, width in (("fixed padding", 0), (f"bucketing (width {cfg.bucket_width})", cfg.bucket_width)):
        keras.utils.set_random_seed(0)
        model = build_model(cfg.model, vocab_size=tokenizer.vocab_size, bigram_vocab_size=tokenizer.bigram_vocab_size,
                            num_classes=2, **cfg.model_kwargs)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        ds = text_dataset(ids, labels, batch_size=cfg.batch_size, training=True, bucket_width=width,
                          max_length=cfg.max_length, seed=0)
        one_pass(model, ds.take(4))  # trace every shape the first batches need
        seconds, tokens, slots = one_pass(model, ds)
        rates[name] = len(ids) / seconds
        print(f"{name:24s} {rates[name]:7.1f} reviews/s  {seconds:6.1f} s/pass  padding {1 - tokens / slots:5.1%}")
    fixed, bucketed = rates.values()
    print(f"speed-up of bucketing over fixed padding: {bucketed / fixed:.2f}x")


if __name__ == "__main__":
    main()
