"""Text normalization, tokenization, vocabularies and batching on toy sentences."""

import numpy as np
import tensorflow as tf

from zoo.text import normalize_text


def _norm(texts, **kwargs):
    return [t.decode() for t in normalize_text(tf.constant(texts), **kwargs).numpy()]


def test_normalize_lowercases_strips_markup_and_splits_punctuation():
    assert _norm(["Great film!<br /><br />Don't  MISS it..."]) == ["great film ! don't miss it . . ."]


def test_normalize_folds_unicode_compatibility_forms_and_case():
    # Full-width letters (NFKC) and accented capitals (case folding); "café" composed either way.
    assert _norm(["ＦＵＬＬ ÉTÉ", "cafe\u0301"]) == ["full été", "café"]


def test_normalize_keeps_case_and_punctuation_when_asked():
    assert _norm(["Hello, World"], lowercase=False, split_punctuation=False) == ["Hello, World"]


def test_invalid_utf8_becomes_the_replacement_character_not_an_error():
    out = normalize_text(tf.constant([b"bad \xff\xfe bytes"])).numpy()[0].decode()
    assert out.startswith("bad ") and out.endswith(" bytes") and "\ufffd" in out


def test_max_chars_truncates_by_character_not_byte():
    assert _norm(["éééééé long"], max_chars=3) == ["ééé"]


def test_empty_and_whitespace_only_inputs_normalize_to_empty():
    assert _norm(["", "  \n\t <br />"]) == ["", ""]


def test_shape_is_kept():
    x = tf.constant([["a B"], ["C d"]])
    out = normalize_text(x)
    assert out.shape == (2, 1)
    np.testing.assert_array_equal(out.numpy(), [[b"a b"], [b"c d"]])
