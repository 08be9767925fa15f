"""In-graph text normalization and tokenization shared by the text tasks (classification,
translation), and the serving signature of text classifiers.

TensorFlow-only code (tf.strings and tensorflow-text ops), so that the exported SavedModels do
the same preprocessing as training. A SavedModel that uses these ops needs
`import tensorflow_text` before `tf.saved_model.load` (the ops register on import).
"""

from __future__ import annotations

# Any character that is not a letter, a digit, whitespace or an apostrophe ("don't" stays one word).
_PUNCTUATION = r"([^\p{L}\p{N}\s'])"


def normalize_text(texts, *, lowercase: bool = True, strip_markup: bool = True, split_punctuation: bool = True,
                   max_chars: int | None = None):
    """Normalizes a `tf.string` tensor of any shape, in the graph.

    Steps, in order: invalid UTF-8 bytes become U+FFFD (never an error); truncation to
    `max_chars` characters (bounds the cost of a 100,000-character input); Unicode NFKC
    normalization, with case folding when `lowercase`; HTML tags such as `<br />` replaced by a
    space; punctuation and symbols split off as tokens of their own; runs of whitespace collapsed
    and the ends stripped.

    Args:
        texts: `tf.string` tensor (or anything `tf.constant` takes).
        lowercase: fold case (Unicode case folding, so "ÉTÉ" -> "été").
        strip_markup: remove `<...>` tags.
        split_punctuation: put spaces around every character that is not a letter, a digit,
            whitespace or an apostrophe.
        max_chars: keep at most this many characters (None: all).

    Returns:
        A `tf.string` tensor of the same shape.
    """
    import tensorflow as tf
    import tensorflow_text as tf_text

    texts = tf.strings.unicode_transcode(tf.convert_to_tensor(texts, tf.string), "UTF-8", "UTF-8",
                                         errors="replace", replacement_char=0xFFFD)
    if max_chars is not None:
        texts = tf.strings.substr(texts, 0, max_chars, unit="UTF8_CHAR")
    texts = tf_text.case_fold_utf8(texts) if lowercase else tf_text.normalize_utf8(texts, "NFKC")
    if strip_markup:
        texts = tf.strings.regex_replace(texts, r"<[^>]*>", " ")
    if split_punctuation:
        texts = tf.strings.regex_replace(texts, _PUNCTUATION, r" \1 ")
    return tf.strings.strip(tf.strings.regex_replace(texts, r"\s+", " "))


# --- vocabulary and token ids -----------------------------------------------------------------

PAD_ID, OOV_ID = 0, 1


def build_vocabulary(texts, *, vocab_size: int, max_chars: int | None = None, batch_size: int = 1024,
                     ngram: int = 1) -> list[str]:
    """The `vocab_size - 2` most frequent whitespace tokens (or `ngram`-grams of them, joined by a
    space) of the normalized `texts`.

    Learn it on the training split only. Index 0 of the token ids is padding and index 1 the
    out-of-vocabulary token, so the returned list starts at id 2 (the layout of Keras'
    `TextVectorization`, which does the counting).

    Args:
        texts: raw strings (an array or list of `str`/`bytes`).
        vocab_size: the size of the id space, padding and OOV included.
        max_chars: truncation applied before normalization, as in `tokenize`.
        batch_size: texts normalized at once while counting.
        ngram: 1 counts words, 2 counts word bigrams ("not good").
    """
    import keras
    import tensorflow as tf

    if vocab_size < 3:
        raise ValueError(f"vocab_size must be >= 3 (padding, OOV and a word). Received: vocab_size={vocab_size}")
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), tf.string)).batch(batch_size)
    ds = ds.map(lambda t: normalize_text(t, max_chars=max_chars), num_parallel_calls=tf.data.AUTOTUNE)
    counter = keras.layers.TextVectorization(max_tokens=vocab_size, standardize=None, split="whitespace",
                                             ngrams=None if ngram == 1 else (ngram,))
    counter.adapt(ds)
    return [str(t) for t in counter.get_vocabulary() if t not in ("", "[UNK]")][: vocab_size - 2]


class Tokenizer:
    """Raw strings -> token ids, in the graph: `normalize_text`, whitespace split, vocabulary lookup
    (unknown words -> `OOV_ID`), truncation to `max_length` tokens keeping the head or the tail.
    An empty text becomes the single token `OOV_ID`, so every sequence has a step to read.

    With a `bigram_vocabulary`, each token also gets the id of the bigram it ends (the previous
    word and itself; the first word's is `OOV_ID`), so ids are `[tokens, 2]`: word, bigram.

    A `tf.Module`, so that a SavedModel that calls it stores the vocabulary with the model.
    """

    def __init__(self, vocabulary, *, max_length: int, truncate: str = "head", max_chars: int | None = None,
                 bigram_vocabulary=None):
        import tensorflow as tf

        if truncate not in ("head", "tail"):
            raise ValueError(f"truncate must be 'head' or 'tail'. Received: truncate={truncate!r}")
        if max_length < 1:
            raise ValueError(f"max_length must be positive. Received: max_length={max_length}")
        self.vocabulary = list(vocabulary)
        self.max_length, self.truncate, self.max_chars = int(max_length), truncate, max_chars
        self.module = tf.Module(name="tokenizer")
        keys = tf.constant(self.vocabulary, tf.string)
        ids = tf.range(2, len(self.vocabulary) + 2, dtype=tf.int64)
        self.module.table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, ids), OOV_ID)
        self.bigram_vocabulary = list(bigram_vocabulary or [])
        if self.bigram_vocabulary:
            keys = tf.constant(self.bigram_vocabulary, tf.string)
            ids = tf.range(2, len(self.bigram_vocabulary) + 2, dtype=tf.int64)
            self.module.bigram_table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, ids), OOV_ID)

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary) + 2

    @property
    def bigram_vocab_size(self) -> int:
        """Ids of the bigram vocabulary, padding and OOV included; 0 without bigrams."""
        return len(self.bigram_vocabulary) + 2 if self.bigram_vocabulary else 0

    def __call__(self, texts):
        """`tf.string[batch]` -> int32 `tf.RaggedTensor[batch, (tokens)]` (`[batch, (tokens), 2]`
        with bigrams), 1 to `max_length` tokens long."""
        import tensorflow as tf

        words = tf.strings.split(normalize_text(texts, max_chars=self.max_chars))
        ids = tf.ragged.map_flat_values(self.module.table.lookup, words)
        if self.bigram_vocabulary:
            # The bigram each word ends; the first word's starts with "<s>", which no bigram has.
            previous = tf.concat([tf.fill([words.nrows(), 1], "<s>"), words], axis=1)[:, :-1]
            bigrams = tf.ragged.map_flat_values(lambda a, b: tf.strings.join([a, b], separator=" "), previous, words)
            bigram_ids = tf.ragged.map_flat_values(self.module.bigram_table.lookup, bigrams)
            ids = tf.ragged.map_flat_values(lambda a, b: tf.stack([a, b], axis=-1), ids, bigram_ids)
        ids = ids[:, : self.max_length] if self.truncate == "head" else ids[:, -self.max_length:]
        empty = tf.cast(tf.equal(ids.row_lengths(), 0), tf.int64)
        fill = [tf.reduce_sum(empty)] + ([2] if self.bigram_vocabulary else [])
        oov = tf.RaggedTensor.from_row_lengths(tf.fill(fill, tf.constant(OOV_ID, tf.int64)), empty)
        ids = tf.concat([ids, oov], axis=1)
        return tf.cast(ids, tf.int32)

    def dense(self, texts):
        """`tf.string[batch]` -> int32 `[batch, longest]` (`[batch, longest, 2]` with bigrams),
        padded with `PAD_ID`: the model's input."""
        return self(texts).to_tensor(PAD_ID)

    def tokenize_all(self, texts, batch_size: int = 1024):
        """Token ids of many texts at once, as a list of int32 numpy arrays (with a progress bar)."""
        import keras
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), tf.string)).batch(batch_size)
        ds = ds.map(self, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        bar = keras.utils.Progbar(len(texts), unit_name="text")
        out = []
        for batch in ds:
            out += [row for row in batch.numpy()]
            bar.add(batch.shape[0])
        return out


# --- serving: raw strings in, probabilities over the classes and the label out ------------------

NORMALIZATION = "UTF-8 repair, NFKC case folding, markup stripped, punctuation split"


def text_classifier_serving(model, tokenizer: Tokenizer, class_names) -> dict:
    """The keyword arguments of `zoo.export.export_saved_model` for a text classifier:
    `serve` (also `serving_default`) takes `string[None]` raw texts and returns
    `{"probabilities": float32[None, num_classes], "label": string[None]}`, the tokenizer
    inside the graph. Two classes are no special case.

    Args:
        model: a Keras model from token ids (`tokenizer.dense`) to logits over `class_names`.
        tokenizer: the `Tokenizer` the model was trained with; its tables are stored with the model.
        class_names: the name of each class, in the order of the model's logits.

    Raises:
        ValueError: the model's output does not have one logit a class.
    """
    import keras
    import tensorflow as tf

    class_names = [str(c) for c in class_names]
    try:
        outputs = model.output_shape[-1]
    except (AttributeError, ValueError):  # a subclassed model not yet called
        outputs = None
    if outputs is not None and outputs != len(class_names):
        raise ValueError(f"The model has {outputs} outputs but there are {len(class_names)} class_names. "
                         f"Received: class_names={class_names}")
    names = tf.constant(class_names)

    def serve(texts):
        logits = model(tokenizer.dense(texts), training=False)
        p = keras.ops.softmax(tf.cast(logits, tf.float32), axis=-1)
        return {"probabilities": p, "label": tf.gather(names, tf.argmax(p, axis=1))}

    return {"input_signature": [tf.TensorSpec([None], tf.string, name="texts")], "serve_fn": serve,
            "track": [tokenizer.module]}


def text_serving_metadata(tokenizer: Tokenizer, class_names) -> dict:
    """What a text classifier's model card says about its serving, to merge into the metadata of
    `export_saved_model`: `signatures` (name -> inputs and outputs) and `preprocessing` (what
    the graph does to a raw text; the tokenizer's settings and its padding and OOV ids).

    Args:
        tokenizer: the `Tokenizer` of `text_classifier_serving`.
        class_names: the classes, in the order of the probabilities.
    """
    from zoo.export import classifier_outputs, tensor

    signature = {"inputs": {"texts": tensor("string", [None], "raw UTF-8 texts; normalized and tokenized in the graph")},
                 "outputs": classifier_outputs(len(class_names))}
    return {"signatures": {"serve": signature, "serving_default": signature},
            "preprocessing": {"normalization": NORMALIZATION, "vocab_size": tokenizer.vocab_size,
                              "bigram_vocab_size": tokenizer.bigram_vocab_size, "max_length": tokenizer.max_length,
                              "truncate": tokenizer.truncate, "max_chars": tokenizer.max_chars,
                              "out_of_vocabulary_id": OOV_ID, "padding_id": PAD_ID}}
