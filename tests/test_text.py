"""Text normalization, tokenization, vocabularies and batching on toy sentences."""

import numpy as np
import pytest
import tensorflow as tf

from zoo.text import OOV_ID, PAD_ID, Tokenizer, build_vocabulary, normalize_text


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


# --- vocabulary and tokenizer -----------------------------------------------------------------

CORPUS = ["The cat sat.", "The dog sat on the mat!", "A cat, a DOG<br />and the mat"]


def test_vocabulary_is_by_frequency_after_normalization_and_reserves_padding_and_oov():
    vocab = build_vocabulary(CORPUS, vocab_size=6)
    # "the" x4, then the twice-seen words; 6 ids = padding + OOV + 4 words.
    assert len(vocab) == 4 and vocab[0] == "the"
    assert set(vocab[1:]) <= {"cat", "sat", "dog", "mat", "a"}
    assert "<br" not in " ".join(build_vocabulary(CORPUS, vocab_size=100))


def test_vocab_size_below_three_is_an_error():
    with pytest.raises(ValueError, match="vocab_size must be >= 3"):
        build_vocabulary(CORPUS, vocab_size=2)


def test_tokenizer_maps_unknown_words_to_oov_and_keeps_known_ids():
    vocab = ["the", "cat", "sat"]
    tok = Tokenizer(vocab, max_length=10)
    ids = tok(tf.constant(["The CAT sat on a zebra"])).to_list()
    assert ids == [[2, 3, 4, OOV_ID, OOV_ID, OOV_ID]]


@pytest.mark.parametrize("truncate, expected", [("head", [2, 3]), ("tail", [OOV_ID, 4])])
def test_truncation_keeps_the_head_or_the_tail(truncate, expected):
    tok = Tokenizer(["the", "cat", "sat"], max_length=2, truncate=truncate)
    assert tok(tf.constant(["the cat zebra sat"])).to_list() == [expected]


def test_empty_and_markup_only_texts_become_one_oov_token():
    tok = Tokenizer(["the"], max_length=5)
    assert tok(tf.constant(["", "<br /><br />", "the"])).to_list() == [[OOV_ID], [OOV_ID], [2]]


def test_dense_pads_with_zeros_to_the_longest():
    tok = Tokenizer(["a", "b"], max_length=5)
    np.testing.assert_array_equal(tok.dense(tf.constant(["a b a", "b"])).numpy(), [[2, 3, 2], [3, PAD_ID, PAD_ID]])


def test_tokenize_all_matches_the_batched_call():
    tok = Tokenizer(build_vocabulary(CORPUS, vocab_size=8), max_length=4)
    ids = tok.tokenize_all(CORPUS, batch_size=2)
    assert [list(x) for x in ids] == tok(tf.constant(CORPUS)).to_list()
    assert all(x.dtype == np.int32 for x in ids)


@pytest.mark.parametrize("kwargs, message", [(dict(max_length=0), "max_length must be positive"),
                                             (dict(max_length=4, truncate="middle"), "truncate must be")])
def test_tokenizer_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Tokenizer(["a"], **kwargs)


# --- masking: padding never changes a prediction ---------------------------------------------

@pytest.mark.parametrize("name, pooling", [("lstm", "last"), ("lstm", "max"), ("bilstm", "last"), ("bilstm", "max"),
                                           ("bilstm", "mean"), ("bilstm", "attention")])
def test_padding_does_not_change_the_logits(name, pooling):
    import keras

    from zoo.registry import build_model

    keras.utils.set_random_seed(0)
    model = build_model(name, vocab_size=30, embedding_dim=8, units=(8,), pooling=pooling)
    ids = np.array([[5, 9, 2, 7]], dtype="int32")
    padded = np.concatenate([ids, np.zeros((1, 6), "int32")], axis=1)
    np.testing.assert_allclose(model(padded, training=False), model(ids, training=False), atol=1e-5)


def test_attention_pooling_of_an_all_padding_row_is_finite():
    from zoo.models.text import MaskedPooling

    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
    mask = np.array([[True, False, False], [False, False, False]])
    for mode in ("max", "mean", "attention"):
        out = np.asarray(MaskedPooling(mode)(x, mask=mask))
        assert np.all(np.isfinite(out)), mode
        np.testing.assert_allclose(out[1], 0.0)
        np.testing.assert_allclose(out[0], x[0, 0], atol=1e-6)


# --- bucketing --------------------------------------------------------------------------------

def _lengths_and_padding(ds):
    batches = [(x.numpy(), y.numpy()) for x, y in ds]
    tokens = sum(int((x != 0).sum()) for x, _ in batches)
    slots = sum(x.size for x, _ in batches)
    return batches, tokens, slots


def test_bucketing_batches_similar_lengths_and_pads_less():
    from zoo.pipeline import text_dataset

    rng = np.random.default_rng(0)
    ids = [rng.integers(2, 50, size=n).astype("int32") for n in rng.integers(1, 65, size=256)]
    labels = np.arange(256)
    fixed, tokens, fixed_slots = _lengths_and_padding(
        text_dataset(ids, labels, batch_size=16, training=True, max_length=64, seed=0))
    bucketed, tokens_b, bucket_slots = _lengths_and_padding(
        text_dataset(ids, labels, batch_size=16, training=True, bucket_width=8, max_length=64, seed=0))
    assert tokens == tokens_b == sum(len(t) for t in ids)  # nothing lost, nothing truncated
    assert all(x.shape[1] == 64 for x, _ in fixed)
    assert sorted(np.concatenate([y for _, y in bucketed])) == list(labels)  # every example once
    for x, y in bucketed:
        lengths = [len(ids[i]) for i in y]
        assert x.shape[1] == max(lengths) and max(lengths) - min(lengths) < 8 + 1
    assert bucket_slots < 0.6 * fixed_slots
    # The pipeline knows its number of batches (Keras shows the epoch's steps and does not warn).
    ds = text_dataset(ids, labels, batch_size=16, training=True, bucket_width=8, max_length=64, seed=1)
    assert int(ds.cardinality()) == len(bucketed) == len(list(ds))


def test_evaluation_pipelines_keep_the_order():
    from zoo.pipeline import text_dataset

    ids = [np.arange(1, n + 1, dtype="int32") for n in (3, 9, 1, 5, 7)]
    ds = text_dataset(ids, np.arange(5), batch_size=2, training=False, bucket_width=4)
    assert np.concatenate([y.numpy() for _, y in ds]).tolist() == [0, 1, 2, 3, 4]


# --- bigrams ----------------------------------------------------------------------------------

def test_bigram_vocabulary_counts_adjacent_word_pairs():
    texts = ["not good . not good", "not bad"]
    assert build_vocabulary(texts, vocab_size=3, ngram=2) == ["not good"]  # the most frequent
    assert set(build_vocabulary(texts, vocab_size=10, ngram=2)) == {"not good", "good .", ". not", "not bad"}


def test_tokenizer_with_bigrams_gives_each_word_the_bigram_it_ends():
    tok = Tokenizer(["not", "good", "bad"], max_length=10, bigram_vocabulary=["not good", "not bad"])
    ids = tok(tf.constant(["Not good", "zzz not bad", ""])).to_list()
    # words: not=2, good=3, bad=4; bigrams: "not good"=2, "not bad"=3; the first word's bigram is OOV.
    assert ids == [[[2, OOV_ID], [3, 2]], [[OOV_ID, OOV_ID], [2, OOV_ID], [4, 3]], [[OOV_ID, OOV_ID]]]
    assert tok.bigram_vocab_size == 4 and Tokenizer(["a"], max_length=2).bigram_vocab_size == 0
    assert tok.dense(tf.constant(["not good", "bad"])).shape == (2, 2, 2)
    tail = Tokenizer(["not", "good"], max_length=1, truncate="tail", bigram_vocabulary=["not good"])
    assert tail(tf.constant(["not good"])).to_list() == [[[3, 2]]]  # the kept word keeps its bigram


def test_bigram_ids_batch_and_bucket():
    from zoo.pipeline import text_dataset

    rng = np.random.default_rng(0)
    ids = [rng.integers(2, 50, size=(n, 2)).astype("int32") for n in rng.integers(1, 20, size=32)]
    for width in (0, 4):
        batches = list(text_dataset(ids, np.arange(32), batch_size=8, training=True, bucket_width=width,
                                    max_length=20, seed=0))
        assert all(x.shape[0] <= 8 and x.shape[2] == 2 for x, _ in batches)
        assert sum(int((x.numpy()[..., 0] != 0).sum()) for x, _ in batches) == sum(len(i) for i in ids)


def test_padding_does_not_change_the_logits_with_bigrams():
    import keras

    from zoo.registry import build_model

    keras.utils.set_random_seed(0)
    model = build_model("bilstm", vocab_size=30, bigram_vocab_size=20, embedding_dim=8, units=(8,), pooling="attention")
    ids = np.array([[[5, 1], [9, 3], [2, 4]]], dtype="int32")
    padded = np.concatenate([ids, np.zeros((1, 5, 2), "int32")], axis=1)
    np.testing.assert_allclose(model(padded, training=False), model(ids, training=False), atol=1e-5)
    other = ids.copy()
    other[0, :, 1] = [1, 7, 8]  # other bigrams, same words: the bigram embedding is used
    assert not np.allclose(model(other, training=False), model(ids, training=False))
