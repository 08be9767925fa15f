"""Subword tokenization in the graph: WordPiece vocabularies learned from a corpus, and a
tokenizer and detokenizer that an exported SavedModel carries inside its graph.

Text is first normalized by `zoo.text.normalize_text` (UTF-8 repair, NFKC, optional case
folding, punctuation split off), split on whitespace, and each word is cut into WordPiece
subwords by tensorflow-text's `FastWordpieceTokenizer` (its model is a constant of the graph,
so a SavedModel needs no vocabulary file beside it). Detokenization joins the `##` pieces, then
puts punctuation back against its word ("a dog , running ." -> "a dog, running.").

TensorFlow-only code; a SavedModel that uses it needs `import tensorflow_text` before loading.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np

from zoo.errors import DataError

RESERVED_TOKENS = ("[PAD]", "[UNK]", "[START]", "[END]")
PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3

# Undoing the punctuation split of `normalize_text` (RE2 patterns, applied in order): decimals
# and times, closing punctuation, opening punctuation, hyphens and slashes, straight quotes.
_DETOKENIZE_RULES = (
    (r"(\d) ([.,:]) (\d)", r"\1\2\3"),
    (r" ([.,!?;:%)\]}»…])", r"\1"),
    (r"([(\[{¿¡«$]) ", r"\1"),
    (r" ([-/]) ", r"\1"),
    (r'" ([^"]*?) "', r'"\1"'),
)


def normalize(texts, *, lowercase: bool, max_chars: int | None = None):
    """`zoo.text.normalize_text` for translation: typographic apostrophes become "'" first, so
    that "don’t" stays one word like "don't"; no markup stripping ("<" is text here)."""
    import tensorflow as tf

    from zoo.text import normalize_text

    texts = tf.strings.unicode_transcode(tf.convert_to_tensor(texts, tf.string), "UTF-8", "UTF-8",
                                         errors="replace", replacement_char=0xFFFD)
    texts = tf.strings.regex_replace(texts, "[’‘]", "'")
    return normalize_text(texts, lowercase=lowercase, strip_markup=False, max_chars=max_chars)


def count_words(texts, *, lowercase: bool, batch_size: int = 4096) -> collections.Counter:
    """Word counts of `texts` (a sequence of str) after `normalize`."""
    counts = collections.Counter()
    texts = list(texts)
    for start in range(0, len(texts), batch_size):
        for line in normalize(texts[start:start + batch_size], lowercase=lowercase).numpy():
            counts.update(line.decode("utf-8").split())
    return counts


def learn_vocabulary(texts, *, vocab_size: int, lowercase: bool, min_count: int = 2) -> list[str]:
    """A WordPiece vocabulary of at most `vocab_size` tokens learned from `texts`.

    Uses tensorflow-text's WordPiece learner (the algorithm behind `bert_vocab_from_dataset`) on
    the words `normalize` makes, so the vocabulary matches how `SubwordTokenizer` splits text.
    Every character seen in `texts` gets a token (alone and as a `##` suffix) when `vocab_size`
    leaves room for them, so only characters never seen become `[UNK]`.

    Args:
        texts: the training sentences (str).
        vocab_size: the largest vocabulary wanted, reserved tokens included.
        lowercase: fold case before counting (as the tokenizer will).
        min_count: subwords seen fewer times are not candidates (small corpora).
    """
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    if vocab_size <= len(RESERVED_TOKENS):
        raise ValueError(f"vocab_size must exceed the {len(RESERVED_TOKENS)} reserved tokens. "
                         f"Received: vocab_size={vocab_size}")
    counts = count_words(texts, lowercase=lowercase)
    if not counts:
        raise ValueError("Cannot learn a vocabulary from no words.")
    vocab = learner.learn(sorted(counts.items()), vocab_size, list(RESERVED_TOKENS), lower_thresh=min_count,
                          max_unique_chars=2000)
    # The learner searches integer count thresholds and can overshoot vocab_size (11k for 8k
    # asked on Multi30k English): keep the subwords that tokenizing the corpus uses most.
    return _most_used(list(vocab), counts, vocab_size) if len(vocab) > vocab_size else list(vocab)


def _most_used(vocab, counts, vocab_size):
    import tensorflow as tf
    import tensorflow_text as tf_text

    words, freqs = zip(*counts.items())
    tokenizer = tf_text.FastWordpieceTokenizer(vocab, token_out_type=tf.int32, no_pretokenization=True)
    ids = tokenizer.tokenize(tf.constant(words))
    usage = np.bincount(ids.flat_values.numpy(), weights=np.repeat(freqs, ids.row_lengths().numpy()),
                        minlength=len(vocab))
    # Reserved tokens and single characters (alone or as suffixes) stay, so every word that
    # could be tokenized still can.
    always = np.array([i < len(RESERVED_TOKENS) or len(t.removeprefix("##")) == 1 for i, t in enumerate(vocab)])
    usage[always] = np.inf
    keep = np.sort(np.argsort(-usage, kind="stable")[:vocab_size])
    return [vocab[i] for i in keep]


class SubwordTokenizer:
    """Text <-> WordPiece ids, in the graph.

    Ids 0-3 are `[PAD]`, `[UNK]`, `[START]` and `[END]`. `tokenize` wraps each sentence in
    `[START] ... [END]`; `detokenize` drops every reserved id and returns plain text.

    Args:
        vocab: the tokens (from `learn_vocabulary` or a vocabulary file), reserved ones first.
        lowercase: fold case when normalizing (sources: yes; targets: no, to output cased text).
        max_chars: characters kept of each input before tokenizing (bounds the cost of a huge input).
    """

    def __init__(self, vocab, *, lowercase: bool = True, max_chars: int = 2000):
        import tensorflow as tf
        import tensorflow_text as tf_text

        self.vocab = [str(t) for t in vocab]
        if tuple(self.vocab[:len(RESERVED_TOKENS)]) != RESERVED_TOKENS:
            raise ValueError(f"The vocabulary must start with {', '.join(RESERVED_TOKENS)}. "
                             f"Received: {self.vocab[:len(RESERVED_TOKENS)]}")
        if len(set(self.vocab)) != len(self.vocab):
            raise ValueError("The vocabulary has duplicate tokens.")
        self.lowercase = lowercase
        self.max_chars = max_chars
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            self.vocab, token_out_type=tf.int32, unknown_token="[UNK]", no_pretokenization=True,
            support_detokenization=True)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokenize(self, texts, *, max_tokens: int | None = None):
        """Sentences -> `[START] subwords [END]` ids.

        Args:
            texts: a `tf.string` tensor `[batch]`.
            max_tokens: keep at most this many ids a sentence, `[START]` and `[END]` included
                (the end of a longer sentence is cut off and `[END]` put after what is kept).

        Returns:
            (ids, truncated): an int32 `tf.RaggedTensor` `[batch, (tokens)]` and a bool `[batch]`
            that is True where subwords were cut off.
        """
        import tensorflow as tf

        words = tf.strings.split(normalize(texts, lowercase=self.lowercase, max_chars=self.max_chars))
        pieces = self._wordpiece.tokenize(words).merge_dims(-2, -1)
        truncated = tf.zeros_like(pieces.row_lengths(), tf.bool)
        if max_tokens is not None:
            if max_tokens < 3:
                raise ValueError(f"max_tokens must be at least 3. Received: max_tokens={max_tokens}")
            truncated = pieces.row_lengths() > max_tokens - 2
            pieces = pieces[:, :max_tokens - 2]
        batch = pieces.nrows()
        start = tf.fill([batch, 1], START_ID)
        end = tf.fill([batch, 1], END_ID)
        return tf.concat([start, pieces, end], axis=1), truncated

    def detokenize(self, ids):
        """Ids `[batch, length]` (dense, padded with 0, or ragged) -> text `[batch]`.

        Reserved ids (padding, `[UNK]`, `[START]`, `[END]`) are dropped.
        """
        import tensorflow as tf

        ids = tf.cast(ids, tf.int32)
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids)
        ids = tf.ragged.boolean_mask(ids, ids >= len(RESERVED_TOKENS))
        text = self._wordpiece.detokenize(ids)
        for pattern, rewrite in _DETOKENIZE_RULES:
            text = tf.strings.regex_replace(text, pattern, rewrite)
        return tf.strings.strip(text)

    def id_to_token(self, ids) -> list[str]:
        """The tokens of a sequence of ids (for plots and logs)."""
        return [self.vocab[int(i)] for i in np.asarray(ids).reshape(-1)]

    def save(self, path) -> Path:
        """Writes the vocabulary, one token a line."""
        path = Path(path)
        path.write_text("\n".join(self.vocab) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path, **kwargs) -> "SubwordTokenizer":
        """A tokenizer from a vocabulary file written by `save`; `kwargs` as the constructor's."""
        try:
            return cls(Path(path).read_text(encoding="utf-8").splitlines(), **kwargs)
        except ValueError as e:  # UnicodeDecodeError too
            raise DataError(f"{path}: not a vocabulary file: {e}") from e
