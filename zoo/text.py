"""In-graph text normalization shared by the text tasks (sentiment, translation).

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
