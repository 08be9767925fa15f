"""Translation: subword tokenizer, masking, decoding, export and bad input, on a toy "language".

The toy language maps each of 8 source words to an English number word and reverses the order
("ka lo mi" -> "three two one."), so the model must learn an alignment through its attention.
One small model is trained once for the module (about 10 s) and shared by the decoding, export
and bad-input tests.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.data.translation import load_pair, load_tsv, read_tsv, split_by_source
from zoo.errors import DataError, ZooError
from zoo.losses import SparseCategoricalCrossentropyWithSmoothing
from zoo.registry import build_model
from zoo.subword import END_ID, PAD_ID, START_ID, UNK_ID, SubwordTokenizer, learn_vocabulary
from zoo.translate import (BleuCallback, MaskedAccuracy, Translator, corpus_scores, export_translator, teacher_forcing_dataset,
                           tokenize_all, translate_corpus)

REPO = Path(__file__).resolve().parents[1]
SOURCE_WORDS = "ka lo mi pu ne ri so ta".split()
TARGET_WORDS = "one two three four five six seven eight".split()


def toy_pairs(n, seed):
    """`n` toy sentence pairs: 2-5 source words, their number words reversed, and a full stop."""
    rng = np.random.default_rng(seed)
    sources, targets = [], []
    for _ in range(n):
        idx = rng.integers(0, len(SOURCE_WORDS), rng.integers(2, 6))
        sources.append(" ".join(SOURCE_WORDS[i] for i in idx))
        targets.append(" ".join(TARGET_WORDS[i] for i in idx[::-1]) + ".")
    return sources, targets


@pytest.fixture(scope="module")
def toy():
    """A bahdanau_lstm trained on 400 toy pairs, its tokenizers, and 40 held-out pairs."""
    train_src, train_tgt = toy_pairs(400, seed=0)
    test_src, test_tgt = toy_pairs(40, seed=1)
    source = SubwordTokenizer(learn_vocabulary(train_src, vocab_size=40, lowercase=True), lowercase=True)
    target = SubwordTokenizer(learn_vocabulary(train_tgt, vocab_size=40, lowercase=False), lowercase=False)
    keras.utils.set_random_seed(0)
    model = build_model("bahdanau_lstm", source_vocab_size=source.vocab_size, target_vocab_size=target.vocab_size,
                        embedding_dim=16, encoder_units=32, units=32, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=SparseCategoricalCrossentropyWithSmoothing(0.0, ignore_class=PAD_ID), metrics=[MaskedAccuracy()])
    ds, _ = teacher_forcing_dataset(tokenize_all(source, train_src), tokenize_all(target, train_tgt), batch_size=32,
                                    max_source_tokens=20, max_target_tokens=20, shuffle=True)
    model.fit(ds, epochs=20, verbose=0)
    translator = Translator(model, source, target, max_source_tokens=12, max_output_length=20, beam_width=3,
                            alpha=0.0)
    return dict(model=model, source=source, target=target, translator=translator, test_src=test_src,
                test_tgt=test_tgt)


# --- subword tokenizer --------------------------------------------------------------------------

SENTENCES = ["A man, in a red T-shirt, rides a bike.", "¿Dónde está el baño?", "It's 3.5 km (about 2 miles)!",
             'She said "hello" and left...', "Zwei Männer gehen über die Straße."]


def test_tokenizer_round_trip_restores_the_text():
    tokenizer = SubwordTokenizer(learn_vocabulary(SENTENCES * 3, vocab_size=200, lowercase=False), lowercase=False)
    ids, truncated = tokenizer.tokenize(tf.constant(SENTENCES))
    assert not truncated.numpy().any()
    assert all(row[0] == START_ID and row[-1] == END_ID for row in ids.to_list())
    assert not np.isin(ids.flat_values.numpy(), [PAD_ID, UNK_ID]).any()
    assert [t.decode() for t in tokenizer.detokenize(ids).numpy()] == SENTENCES
    # Dense, padded ids detokenize the same.
    assert [t.decode() for t in tokenizer.detokenize(ids.to_tensor()).numpy()] == SENTENCES


def test_lowercasing_tokenizer_folds_case_and_keeps_apostrophes_in_words():
    tokenizer = SubwordTokenizer(learn_vocabulary(["Don’t STOP me now"] * 3, vocab_size=60, lowercase=True))
    ids, _ = tokenizer.tokenize(tf.constant(["DON'T stop Me NOW"]))
    assert tokenizer.detokenize(ids).numpy()[0].decode() == "don't stop me now"
    assert "don't" in tokenizer.vocab


def test_vocabulary_stays_within_its_size_and_covers_every_character():
    texts, _ = toy_pairs(300, seed=0)
    texts += ["zebra quokka jinx vex"]
    # The learner proposes 50 tokens here: 4 reserved, 19 letters alone and as "##" suffixes, and
    # the 8 toy words. Trimming to 45 keeps every letter and the 3 words used most.
    vocab = learn_vocabulary(texts, vocab_size=45, lowercase=True)
    assert len(vocab) == 45 and vocab[:4] == ["[PAD]", "[UNK]", "[START]", "[END]"]
    assert len(set(vocab) & set(SOURCE_WORDS)) == 3
    tokenizer = SubwordTokenizer(vocab)
    ids, _ = tokenizer.tokenize(tf.constant(texts[-1:]))
    assert UNK_ID not in ids.flat_values.numpy()
    with pytest.raises(ValueError, match="vocab_size must exceed"):
        learn_vocabulary(texts, vocab_size=4, lowercase=True)
    with pytest.raises(ValueError, match="must start with"):
        SubwordTokenizer(["a", "b"])


def test_unseen_characters_become_unk_and_long_inputs_are_truncated():
    tokenizer = SubwordTokenizer(learn_vocabulary(["ab ba abba"] * 3, vocab_size=30, lowercase=True))
    ids, truncated = tokenizer.tokenize(tf.constant(["ab 漢字 ba", "ab " * 50, "", "   ", b"ab \xff ba"]),
                                        max_tokens=8)
    rows = ids.to_list()
    assert rows[0] == [START_ID, *tokenizer.tokenize(tf.constant(["ab"]))[0].to_list()[0][1:-1], UNK_ID,
                       *tokenizer.tokenize(tf.constant(["ba"]))[0].to_list()[0][1:-1], END_ID]
    assert len(rows[1]) == 8 and rows[1][-1] == END_ID
    assert rows[2] == rows[3] == [START_ID, END_ID]
    assert UNK_ID in rows[4]  # invalid UTF-8 became U+FFFD, never an error
    np.testing.assert_array_equal(truncated.numpy(), [False, True, False, False, False])


# --- masking ------------------------------------------------------------------------------------


def test_loss_and_accuracy_ignore_padding():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 6)).astype("float32")
    labels = np.array([[3, 4, 5, 0], [2, 0, 0, 0]])
    loss = SparseCategoricalCrossentropyWithSmoothing(0.0, ignore_class=0)
    changed = logits.copy()
    changed[labels == 0] = 100.0  # whatever the model says at padded positions
    np.testing.assert_allclose(float(loss(labels, logits)), float(loss(labels, changed)), rtol=1e-6)
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        labels[labels != 0], logits[labels != 0])
    np.testing.assert_allclose(float(loss(labels, logits)), float(expected), rtol=1e-5)

    metric = MaskedAccuracy()
    right = np.eye(6, dtype="float32")[labels]
    right[0, 3] = np.eye(6)[1]  # padding predicted wrong: does not count
    right[1, 0] = np.eye(6)[1]  # a real token predicted wrong: 3 of 4 right
    metric.update_state(labels, right)
    assert float(metric.result()) == pytest.approx(0.75)


@pytest.mark.parametrize("name", ["luong_lstm", "bahdanau_lstm"])
def test_source_padding_changes_nothing(name):
    model = build_model(name, source_vocab_size=20, target_vocab_size=15, embedding_dim=8, encoder_units=8, units=8,
                        encoder_layers=2, decoder_layers=2)
    source = np.array([[5, 6, 7, 0], [4, 3, 0, 0]], "int32")
    target = np.array([[2, 5, 6], [2, 7, 0]], "int32")
    padded = np.pad(source, [(0, 0), (0, 5)])
    np.testing.assert_allclose(model([padded, target]), model([source, target]), atol=1e-6)


def test_teacher_forcing_batches_shift_the_target_and_drop_long_pairs():
    sources = [np.array([2, 5, 3]), np.array([2, 5, 6, 7, 3]), np.array([2] + [5] * 30 + [3])]
    targets = [np.array([2, 8, 9, 3]), np.array([2, 8, 3]), np.array([2, 8, 3])]
    ds, kept = teacher_forcing_dataset(sources, targets, batch_size=4, max_source_tokens=10, max_target_tokens=10)
    assert kept == 2
    batches = list(ds)
    assert sum(len(b[1]) for b in batches) == 2 and int(ds.cardinality()) == len(batches)
    # Over many pairs of mixed lengths the pipeline still knows its number of batches.
    rng = np.random.default_rng(0)
    many = [np.arange(2, 2 + n) for n in rng.integers(3, 40, size=300)]
    ds, _ = teacher_forcing_dataset(many, many[::-1], batch_size=16, max_source_tokens=64, max_target_tokens=64,
                                    shuffle=True)
    assert int(ds.cardinality()) == len(list(ds))
    for (src, tgt_in), tgt_out in batches:
        np.testing.assert_array_equal(tgt_in[:, 1:][tgt_out[:, :-1] != 0], tgt_out[:, :-1][tgt_out[:, :-1] != 0])
        assert np.all(tgt_in.numpy()[:, 0] == START_ID)
    with pytest.raises(ValueError, match="No sentence pair fits"):
        teacher_forcing_dataset(sources[2:], targets[2:], batch_size=4, max_source_tokens=10, max_target_tokens=10)


# --- the toy model: learning, decoding, export, bad input ---------------------------------------


def test_the_model_learns_the_toy_language(toy):
    out = translate_corpus(toy["translator"], toy["test_src"], method="greedy")
    right = sum(h == r for h, r in zip(out["translations"], toy["test_tgt"]))
    assert right >= 0.75 * len(toy["test_tgt"]), list(zip(out["translations"], toy["test_tgt"]))
    scores = corpus_scores(out["translations"], toy["test_tgt"])
    assert scores["bleu"] > 70 and scores["chrf"] > 80
    assert scores["bleu_signature"].startswith("nrefs:1|case:mixed")


def test_corpus_translation_draws_progress_only_when_asked(toy, capsys):
    translate_corpus(toy["translator"], toy["test_src"], method="greedy", batch_size=4)
    assert capsys.readouterr().out == ""
    translate_corpus(toy["translator"], toy["test_src"], method="greedy", batch_size=4, progress=True)
    n = len(toy["test_src"])
    assert f"{n}/{n}" in capsys.readouterr().out


def test_bleu_callback_writes_the_greedy_bleu_into_the_logs(toy):
    callback = BleuCallback(toy["test_src"], toy["test_tgt"], toy["source"], toy["target"], max_source_tokens=12,
                            max_output_length=20)
    callback.set_model(toy["model"])
    logs = {"loss": 0.5}
    callback.on_epoch_end(0, logs)
    greedy = translate_corpus(toy["translator"], toy["test_src"], method="greedy")["translations"]
    assert logs["val_bleu"] == corpus_scores(greedy, toy["test_tgt"])["bleu"] > 70 and np.isfinite(logs["val_bleu"])
    callback.on_epoch_end(1, None)  # nothing to write into
    with pytest.raises(ValueError, match="as many references as sources"):
        BleuCallback(toy["test_src"], toy["test_tgt"][:3], toy["source"], toy["target"])


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_search_never_scores_below_greedy(toy, alpha):
    translator = toy["translator"]
    translator.alpha = alpha
    try:
        ids, _ = toy["source"].tokenize(tf.constant(toy["test_src"]))
        source = ids.to_tensor()
        greedy = tf.function(lambda s: translator.decode(s, "greedy"))(source)
        beam = tf.function(lambda s: translator.decode(s, "beam"))(source)
    finally:
        translator.alpha = 0.0
    assert np.all(beam["score"].numpy() >= greedy["score"].numpy() - 1e-5)
    # The score is the length-penalized sum of the log-probabilities of the output tokens.
    lengths = beam["length"].numpy()
    np.testing.assert_allclose(beam["score"].numpy(), beam["log_prob"].numpy() / ((5 + lengths) / 6) ** alpha,
                               rtol=1e-5)


def test_greedy_log_prob_is_the_teacher_forced_log_prob_of_its_output(toy):
    translator, model = toy["translator"], toy["model"]
    ids, _ = toy["source"].tokenize(tf.constant(toy["test_src"][:4]))
    source = ids.to_tensor()
    out = tf.function(lambda s: translator.greedy(s))(source)
    tokens = out["tokens"].numpy()[:, :int(out["steps"])]
    decoder_input = np.concatenate([np.full((4, 1), START_ID), tokens[:, :-1]], axis=1).astype("int32")
    logp = tf.nn.log_softmax(model([source, tf.constant(decoder_input)], training=False)).numpy()
    expected = [logp[i, np.arange(tokens.shape[1]), tokens[i]][tokens[i] != PAD_ID].sum() for i in range(4)]
    np.testing.assert_allclose(out["log_prob"].numpy(), expected, rtol=1e-4)


def test_bad_inputs_translate_without_errors(toy):
    translator = toy["translator"]
    texts = ["", "   ", " ".join(["ka lo"] * 40), "ka ñ 漢字 lo", b"ka \xff lo", "KA LO!"]
    out = translator.function("beam")(tf.constant(texts))
    translations = [t.decode() for t in out["translation"].numpy()]
    assert translations[:2] == ["", ""]
    np.testing.assert_array_equal(out["truncated"].numpy(), [False, False, True, False, False, False])
    assert out["source_tokens"].numpy()[2] == translator.max_source_tokens - 2
    assert all(isinstance(t, str) for t in translations[2:])
    # Outputs stop at max_output_length even for a very long input.
    assert out["tokens"].shape[1] <= translator.max_output_length
    # An empty batch is no error either.
    assert translator.function("greedy")(tf.constant([], tf.string))["translation"].shape == (0,)


@pytest.mark.slow
def test_export_with_float16_weights_translates_as_the_rounded_model(toy, tmp_path):
    from zoo.export import round_weights

    translator = toy["translator"]
    original = translator.model.get_weights()
    try:
        round_weights(translator.model, "float16")
        path = export_translator(translator, tmp_path / "saved_model", method="beam", metadata={"task": "toy"},
                                 weights_dtype="float16")
        sentences = tf.constant(toy["test_src"][:5])
        expected = {m: translator.function(m)(sentences)["translation"].numpy().tolist() for m in ("greedy", "beam")}
    finally:
        translator.model.set_weights(original)
    stored = tf.train.load_checkpoint(str(path / "variables" / "variables")).get_variable_to_dtype_map()
    assert "float16" in {d.name for d in stored.values()} and "float32" not in {d.name for d in stored.values()}
    model = tf.saved_model.load(str(path))
    assert model.serve(sentences)["translation"].numpy().tolist() == expected["beam"]
    assert model.signatures["greedy"](sentences=sentences)["translation"].numpy().tolist() == expected["greedy"]


@pytest.mark.slow
def test_export_round_trip_in_a_fresh_process_without_zoo(toy, tmp_path):
    translator = toy["translator"]
    path = export_translator(translator, tmp_path / "saved_model", method="beam", metadata={"task": "toy"})
    sentences = toy["test_src"][:5] + ["", " ".join(["ka"] * 30)]
    expected = {m: [t.decode() for t in translator.function(m)(tf.constant(sentences))["translation"].numpy()]
                for m in ("greedy", "beam")}
    script = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
        model = tf.saved_model.load({str(path)!r})
        texts = tf.constant(json.loads(sys.argv[1]))
        out = {{
            "serve": [t.decode() for t in model.serve(texts)["translation"].numpy()],
            "greedy": [t.decode() for t in model.signatures["greedy"](sentences=texts)["translation"].numpy()],
            "default": [t.decode() for t in model.signatures["serving_default"](sentences=texts)["translation"].numpy()],
            "truncated": model.signatures["details"](sentences=texts)["truncated"].numpy().tolist(),
            "empty_batch": model.serve(tf.constant([], tf.string))["translation"].numpy().tolist(),
            "zoo_imported": any(m == "zoo" or m.startswith("zoo.") for m in sys.modules),
        }}
        print("RESULT" + json.dumps(out))
    """)
    env = {**os.environ, "PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(sentences)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result["serve"] == result["default"] == expected["beam"]
    assert result["greedy"] == expected["greedy"]
    assert result["truncated"] == [False] * 6 + [True]
    assert result["empty_batch"] == []
    assert not result["zoo_imported"]
    assert "truncated" in proc.stderr  # the long input was reported
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["task"] == "toy" and metadata["max_source_tokens"] == translator.max_source_tokens
    assert (path / "source_vocab.txt").read_text().splitlines() == translator.source_tokenizer.vocab


# --- data ---------------------------------------------------------------------------------------


def test_read_tsv_names_the_file_and_line_of_a_malformed_line(tmp_path):
    good = tmp_path / "good.tsv"
    good.write_text("Go.\tVe.\n\nHi.\tHola.\tCC-BY 2.0 (France) Attribution\n", encoding="utf-8")
    assert read_tsv(good) == [("Go.", "Ve."), ("Hi.", "Hola.")]
    assert read_tsv(good, source_column=1, target_column=0) == [("Ve.", "Go."), ("Hola.", "Hi.")]
    for name, content, message in [
        ("one_column.tsv", "Go.\tVe.\nHi. Hola.\n", r"one_column.tsv, line 2: expected 2 tab-separated columns"),
        ("empty_side.tsv", "Go.\tVe.\nRun.\tCorre.\n\t\tHola.\n", r"empty_side.tsv, line 3: empty source sentence"),
        ("empty_target.tsv", "Go.\t \n", r"empty_target.tsv, line 1: empty target sentence"),
    ]:
        (tmp_path / name).write_text(content, encoding="utf-8")
        with pytest.raises(ZooError, match=message):
            read_tsv(tmp_path / name)
    (tmp_path / "latin1.tsv").write_bytes("Go.\tVe.\nHello.\tAdiós.\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.tsv, line 2: not UTF-8"):
        read_tsv(tmp_path / "latin1.tsv")
    with pytest.raises(DataError, match="cannot read"):
        read_tsv(tmp_path / "missing.tsv")


def test_split_by_source_is_deterministic_and_keeps_translations_of_a_sentence_together(tmp_path):
    sources = [f"sentence {i // 3}" for i in range(3000)]  # every source three times
    splits = split_by_source(sources, 0.1, 0.1)
    assert splits == split_by_source(sources, 0.1, 0.1)
    for i in range(0, 3000, 3):
        assert splits[i] == splits[i + 1] == splits[i + 2]
    counts = {s: splits.count(s) / len(splits) for s in ("train", "validation", "test")}
    assert counts["train"] == pytest.approx(0.8, abs=0.05) and counts["test"] == pytest.approx(0.1, abs=0.04)
    with pytest.raises(ZooError, match="--validation-split and --test-split must be in"):
        split_by_source(sources, 0.6, 0.5)


def test_load_pair_reads_the_anki_file_in_either_direction_and_multi30k(tmp_path, monkeypatch):
    (tmp_path / "anki").mkdir()
    lines = [f"English {i}.\tEspañol {i}." for i in range(200)]
    (tmp_path / "anki" / "spa-eng.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spa_eng = load_pair("spa-eng", tmp_path, validation_split=0.1, test_split=0.1)
    assert spa_eng.train.sources[0].startswith("Español") and spa_eng.train.targets[0].startswith("English")
    eng_spa = load_pair("eng-spa", tmp_path, validation_split=0.1, test_split=0.1)
    assert eng_spa.train.sources[0].startswith("English")
    assert len(spa_eng.train) + len(spa_eng.validation) + len(spa_eng.test) == 200

    m30k = tmp_path / "multi30k"
    m30k.mkdir()
    for stem, n in (("train", 5), ("val", 2), ("test_2016_flickr", 3)):
        (m30k / f"{stem}.de").write_text("".join(f"Satz {i}.\n" for i in range(n)), encoding="utf-8")
        (m30k / f"{stem}.en").write_text("".join(f"Sentence {i}.\n" for i in range(n)), encoding="utf-8")
    corpus = load_pair("de-en", tmp_path)
    assert (len(corpus.train), len(corpus.validation), len(corpus.test)) == (5, 2, 3)
    assert corpus.test.sources[2] == "Satz 2." and corpus.test.targets[2] == "Sentence 2."
    (m30k / "val.en").write_text("Sentence 0.\n", encoding="utf-8")
    with pytest.raises(DataError, match="val.de has 2 lines but .*val.en has 1"):
        load_pair("de-en", tmp_path)
    with pytest.raises(DataError, match="Unknown language pair"):
        load_pair("fr-en", tmp_path)
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="no data directory"):
        load_pair("de-en", None)


def test_a_multi30k_copy_with_the_wrong_count_is_refused(tmp_path, monkeypatch):
    m30k = tmp_path / "multi30k"
    m30k.mkdir()
    for stem, n in (("train", 5), ("val", 2), ("test_2016_flickr", 3)):
        for lang in ("de", "en"):
            (m30k / f"{stem}.{lang}").write_text("".join(f"{lang} {i}.\n" for i in range(n)), encoding="utf-8")
    monkeypatch.delenv("ZOO_PARTIAL_DATA")
    with pytest.raises(DataError, match=r"multi30k/train\.de: 5 sentences, expected 29,000 .*truncated"):
        load_pair("de-en", tmp_path)
    monkeypatch.setattr("zoo.data.translation.MULTI30K_SIZES", {"train": 5, "validation": 2, "test": 3})
    assert len(load_pair("en-de", tmp_path).test) == 3
    for lang in ("de", "en"):  # both sides cut at the same line: parallel, but short
        (m30k / f"test_2016_flickr.{lang}").write_text(f"{lang} 0.\n{lang} 1.\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test_2016_flickr\.de: 2 sentences, expected 3 "):
        load_pair("de-en", tmp_path)


def test_translation_subset_is_a_random_sample_taken_once(tmp_path):
    from tasks.text import translation
    from zoo.config import parse_config

    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in zip(*toy_pairs(200, seed=4))), encoding="utf-8")
    argv = ["--tsv", str(tsv), "--source-vocab-size", "40", "--target-vocab-size", "40", "--validation-split", "0.1",
            "--test-split", "0.1", "--subset", "0.5", "--seed", "3"]
    cfg = parse_config(translation.Config, translation.PRESETS, argv)
    data = translation.load_data(cfg)
    full = translation.load_data(parse_config(translation.Config, translation.PRESETS, argv[:-4]))
    n = len(full.train)
    assert len(data.train) == round(0.5 * n)  # half, not the first half
    assert list(data.train.sources) != list(full.train.sources[: len(data.train)])
    assert set(data.train.sources) <= set(full.train.sources)
    # A run's pipelines do not take half of the half again; a search's trial takes its half of all.
    assert translation.make_datasets(cfg, data)[2] == len(data.train)
    assert translation.make_datasets(cfg, full)[2] == len(data.train)


def test_load_tsv_split_names_its_fractions(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"s{i}\tt{i}\n" for i in range(100)), encoding="utf-8")
    corpus = load_tsv(path, validation_split=0.1, test_split=0.2)
    assert "70% train, 10% validation, 20% test" in corpus.split


# --- the task end to end ------------------------------------------------------------------------


@pytest.mark.slow
def test_task_trains_evaluates_and_exports_on_a_toy_tsv(tmp_path):
    from tasks.text import translation

    src, tgt = toy_pairs(300, seed=2)
    tsv = tmp_path / "toy.tsv"
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in zip(src, tgt)), encoding="utf-8")
    out = tmp_path / "run"
    args = ["--tsv", str(tsv), "--output-dir", str(out), "--epochs", "2", "--batch-size", "32",
            "--source-vocab-size", "40", "--target-vocab-size", "40", "--model-arg", "embedding_dim=8",
            "--model-arg", "encoder_units=8", "--model-arg", "units=8", "--beam-width", "2", "--max-output-length",
            "12", "--samples", "3", "--attention-plots", "2", "--no-tensorboard", "--verbose", "0",
            "--validation-split", "0.1", "--test-split", "0.1"]
    metrics = translation.main(args)
    for key in ("test_bleu_greedy", "test_chrf_greedy", "test_bleu_beam", "test_chrf_beam", "val_loss",
                "seconds_per_epoch"):
        assert key in metrics, key
    assert metrics["epochs"] == 2 and metrics["test_decoding"] == "beam"
    for name in ("samples.txt", "attention_1.png", "attention_2.png", "test_translations.beam.txt",
                 "source_vocab.txt", "metrics.json", "saved_model/metadata.json", "learning_curves.png"):
        assert (out / name).exists(), name
    assert (out / "attention_1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Evaluate and export again from the weights: the vocabularies come from beside them.
    again = translation.main(args[:2] + ["--output-dir", str(tmp_path / "again"), "--weights",
                                         str(out / "model.weights.h5"), "--epochs", "0"] + args[6:])
    assert again["test_bleu_beam"] == metrics["test_bleu_beam"]


@pytest.mark.parametrize("args, message", [
    (["--model", "resnet"], "Unknown seq2seq model 'resnet'"),
    (["--model-arg", "target_vocab_size=5"], "set by the task"),
    (["--max-source-tokens", "2"], r"--max-source-tokens must be >= 3\. Received: --max-source-tokens 2"),
    (["--beam-width", "0"], "--beam-width must be >= 1"),
])
def test_config_errors_are_zoo_errors(args, message, tmp_path):
    from tasks.text import translation

    with pytest.raises(ZooError, match=message):
        translation.main(args + ["--output-dir", str(tmp_path)])


def test_weights_without_vocabularies_are_refused(tmp_path):
    from tasks.text import translation

    tsv = tmp_path / "toy.tsv"
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in zip(*toy_pairs(50, seed=3))), encoding="utf-8")
    (tmp_path / "w").mkdir()
    with pytest.raises(ZooError, match="no source_vocab.txt beside it"):
        translation.main(["--tsv", str(tsv), "--weights", str(tmp_path / "w" / "model.weights.h5"), "--epochs", "0",
                          "--output-dir", str(tmp_path / "run")])


# --- the real corpora (the mirror) --------------------------------------------------------------


@pytest.mark.real_data
def test_mirror_anki_counts_and_a_deterministic_split(data_dir):
    corpus = load_pair("spa-eng", data_dir)
    total = len(corpus.train) + len(corpus.validation) + len(corpus.test)
    assert total == 116_586
    assert len(corpus.test) == pytest.approx(0.05 * total, rel=0.1)
    again = load_pair("spa-eng", data_dir)
    np.testing.assert_array_equal(corpus.test.sources, again.test.sources)
    # Every translation of a test sentence is in the test split.
    test_sources = set(corpus.test.sources)
    assert not test_sources & set(corpus.train.sources) and not test_sources & set(corpus.validation.sources)


@pytest.mark.real_data
def test_mirror_multi30k_counts(data_dir):
    corpus = load_pair("de-en", data_dir)
    assert (len(corpus.train), len(corpus.validation), len(corpus.test)) == (29_000, 1_014, 1_000)
    assert corpus.test.sources[0].startswith("Ein Mann mit einem orangefarbenen Hut")
    assert corpus.test.targets[0].startswith("A man in an orange hat")


@pytest.mark.real_data
@pytest.mark.slow  # learning an 8,000-subword vocabulary: 15-60 s
def test_mirror_multi30k_references_survive_the_tokenizer_round_trip(data_dir):
    corpus = load_pair("de-en", data_dir)
    tokenizer = SubwordTokenizer(learn_vocabulary(corpus.train.targets, vocab_size=8000, lowercase=False),
                                 lowercase=False)
    assert tokenizer.vocab_size == 8000
    references = list(corpus.test.targets)
    ids, _ = tokenizer.tokenize(tf.constant(references))
    back = [t.decode() for t in tokenizer.detokenize(ids).numpy()]
    assert corpus_scores(back, references)["bleu"] >= 99.9
    assert sum(b != r.strip() for b, r in zip(back, references)) <= 2
