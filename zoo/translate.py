"""Translation with a `zoo.models.seq2seq` model: teacher-forcing batches, greedy and beam-search
decoding in the graph, sacreBLEU / chrF evaluation, attention heatmaps, and the export of a
SavedModel that maps source sentences to translated sentences.

    teacher_forcing_dataset   length-bucketed batches ((source, decoder input), decoder target)
    MaskedAccuracy            token accuracy that ignores padding
    compile_translator        the optimizer of the config, masked smoothed cross-entropy, accuracy
    Translator                text -> ids -> encoder -> decoding loop -> ids -> text, all in the graph
    translate_corpus          a list of sentences through a `Translator`, in length-sorted batches
    corpus_scores             sacreBLEU BLEU and chrF on detokenized text
    BleuCallback              the BLEU of greedy translations of a fixed sample in the logs after each epoch
    export_translator         the `string[None] -> string[None]` SavedModel

TensorFlow-only code (the decoding loop is a `tf.while_loop`); the builders stay pure Keras.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras
import numpy as np

from zoo.errors import ZooError
from zoo.subword import END_ID, PAD_ID, RESERVED_TOKENS, START_ID

NEG = -1e9  # the log-probability of a forbidden token (finite, so sums never become NaN)
BUCKETS = (8, 12, 16, 20, 24, 32, 48, 64, 96, 128)


# --- training ---------------------------------------------------------------------------------


def tokenize_all(tokenizer, texts, *, batch_size=8192):
    """Every sentence of `texts` (a sequence of str) -> `[START] ... [END]` ids, untruncated, as a
    list of int32 numpy arrays."""
    import tensorflow as tf

    out = []
    texts = list(texts)
    for start in range(0, len(texts), batch_size):
        ids, _ = tokenizer.tokenize(tf.constant(texts[start:start + batch_size]))
        out.extend(np.split(ids.flat_values.numpy(), np.cumsum(ids.row_lengths().numpy())[:-1]))
    return out


def teacher_forcing_dataset(source_ids, target_ids, *, batch_size, max_source_tokens, max_target_tokens,
                            shuffle=False, seed=0):
    """Batches for teacher forcing: `((source, target[:-1]), target[1:])`, padded with 0.

    Pairs longer than `max_source_tokens` or `max_target_tokens` (ids, `[START]`/`[END]`
    included) are left out. Sentences of similar length are batched together (buckets up to
    128 ids), so little of a batch is padding.

    Returns:
        (dataset, pairs kept).
    """
    import tensorflow as tf

    from zoo.pipeline import bucketed_batches

    keep = [i for i, (s, t) in enumerate(zip(source_ids, target_ids))
            if len(s) <= max_source_tokens and len(t) <= max_target_tokens]
    if not keep:
        raise ZooError(f"No sentence pair fits --max-source-tokens {max_source_tokens} and "
                       f"--max-target-tokens {max_target_tokens}: raise them.")
    def flat(seqs):  # all ids in one tensor, and where each sentence starts and ends
        ends = np.cumsum([len(seqs[i]) for i in keep])
        return tf.constant(np.concatenate([seqs[i] for i in keep]).astype("int32")), ends - [len(seqs[i]) for i in keep], ends

    (src, src_start, src_end), (tgt, tgt_start, tgt_end) = flat(source_ids), flat(target_ids)
    ds = tf.data.Dataset.from_tensor_slices((src_start, src_end, tgt_start, tgt_end))
    if shuffle:
        ds = ds.shuffle(len(keep), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda a, b, c, d: (src[a:b], tgt[c:d]), num_parallel_calls=tf.data.AUTOTUNE)
    boundaries = [b + 1 for b in BUCKETS if b < max(max_source_tokens, max_target_tokens)]
    ds = ds.bucket_by_sequence_length(
        lambda s, t: tf.maximum(tf.shape(s)[0], tf.shape(t)[0]), boundaries, [batch_size] * (len(boundaries) + 1),
        padding_values=(PAD_ID, PAD_ID))
    lengths = [max(len(source_ids[i]), len(target_ids[i])) for i in keep]
    ds = ds.apply(tf.data.experimental.assert_cardinality(bucketed_batches(lengths, boundaries, batch_size)))
    ds = ds.map(lambda s, t: ((s, t[:, :-1]), t[:, 1:]), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE), len(keep)


@keras.saving.register_keras_serializable(package="zoo")
class MaskedAccuracy(keras.metrics.Metric):
    """The fraction of non-padding target tokens whose argmax prediction is right."""

    def __init__(self, ignore_class=PAD_ID, name="accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_class = ignore_class
        self._direction = "up"  # what ModelCheckpoint and EarlyStopping read to maximize it
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.cast(y_true, "int32")
        keep = keras.ops.not_equal(y_true, self.ignore_class)
        right = keras.ops.logical_and(keep, keras.ops.equal(keras.ops.cast(keras.ops.argmax(y_pred, axis=-1), "int32"),
                                                            y_true))
        self.correct.assign_add(keras.ops.sum(keras.ops.cast(right, "float32")))
        self.count.assign_add(keras.ops.sum(keras.ops.cast(keep, "float32")))

    def result(self):
        return keras.ops.divide_no_nan(self.correct, self.count)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "ignore_class": self.ignore_class}


def compile_translator(model, cfg, run, *, steps_per_epoch: int):
    """Compiles a seq2seq model: the config's optimizer and schedule, cross-entropy with
    `cfg.label_smoothing` averaged over non-padding tokens, token accuracy."""
    from zoo.losses import SparseCategoricalCrossentropyWithSmoothing
    from zoo.train import make_training_optimizer

    model.compile(optimizer=make_training_optimizer(cfg, steps_per_epoch=steps_per_epoch),
                  loss=SparseCategoricalCrossentropyWithSmoothing(cfg.label_smoothing, ignore_class=PAD_ID),
                  metrics=[MaskedAccuracy()], jit_compile=run.jit_compile)
    return model


# --- decoding ---------------------------------------------------------------------------------


def length_penalty(lengths, alpha):
    """GNMT's length penalty ((5 + length) / 6) ** alpha (Wu et al., 2016); 1 when alpha is 0."""
    import tensorflow as tf

    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


class Translator:
    """Source sentences -> translated sentences with a trained `zoo.models.seq2seq` model.

    Everything is TensorFlow ops, so `translate` traced in a `tf.function` is the whole pipeline
    of the exported SavedModel: normalization and WordPiece tokenization of the source, the
    encoder, a `tf.while_loop` over decoder steps, and detokenization.

    Sources longer than `max_source_tokens` subwords are cut to it (`truncated` says which);
    an empty (or all-whitespace) source translates to an empty string. Decoding stops at `[END]`
    or after `min(max_output_length, 2 * source ids + 10)` tokens.

    Args:
        model: the training model; its "encoder" and "decoder" sub-models are used.
        source_tokenizer, target_tokenizer: `zoo.subword.SubwordTokenizer`s.
        max_source_tokens: source ids kept, `[START]` and `[END]` included.
        max_output_length: output tokens at most, `[END]` included.
        beam_width: hypotheses kept by beam search (1: greedy).
        alpha: beam search's length penalty exponent (0: rank by total log-probability).
    """

    def __init__(self, model, source_tokenizer, target_tokenizer, *, max_source_tokens=64, max_output_length=64,
                 beam_width=4, alpha=0.6):
        if beam_width < 1 or max_output_length < 1 or alpha < 0:
            raise ValueError(f"Need beam_width >= 1, max_output_length >= 1 and alpha >= 0. Received: "
                             f"beam_width={beam_width}, max_output_length={max_output_length}, alpha={alpha}")
        self.model = model
        self.encoder = model.get_layer("encoder")
        self.decoder = model.get_layer("decoder")
        self.source_tokenizer, self.target_tokenizer = source_tokenizer, target_tokenizer
        self.max_source_tokens, self.max_output_length = max_source_tokens, max_output_length
        self.beam_width, self.alpha = beam_width, alpha
        self.target_vocab_size = int(self.decoder.outputs[0].shape[-1])
        if target_tokenizer.vocab_size != self.target_vocab_size:
            raise ValueError(f"The target vocabulary has {target_tokenizer.vocab_size} tokens but the model outputs "
                             f"{self.target_vocab_size}.")
        self._functions = {}

    # The decoder, one step for a batch of rows.
    def _encode(self, source):
        import tensorflow as tf

        # tf.identity drops the Keras masks the encoder attaches (the decoder gets the mask itself).
        return [tf.identity(x) for x in self.encoder(source, training=False)]

    def _step(self, last, memory, keys, mask, states):
        import tensorflow as tf

        logits, weights, *states = self.decoder([last[:, None], memory, keys, mask, *states], training=False)
        return tf.nn.log_softmax(tf.cast(logits[:, 0], tf.float32)), tf.cast(weights[:, 0], tf.float32), states

    def _limit(self, source):
        import tensorflow as tf

        return tf.minimum(self.max_output_length, 2 * tf.shape(source)[1] + 10)

    def greedy(self, source, encoded=None):
        """Greedy decoding of source ids `[batch, S]` (int32, padded with 0); `encoded` is what
        the encoder made of them, if already computed.

        Returns a dict: `tokens` int32 `[batch, max_output_length]` (`[END]` included, 0 after),
        `log_prob` (the sum over the tokens), `length` (tokens, `[END]` included), `attention`
        `[batch, max_output_length, S]` and `steps` (decoder steps run).
        """
        import tensorflow as tf

        batch, src_len, size = tf.shape(source)[0], tf.shape(source)[1], self.max_output_length
        memory, keys, *states = self._encode(source) if encoded is None else encoded
        mask = tf.not_equal(source, PAD_ID)
        forbidden = tf.constant(np.isin(np.arange(self.target_vocab_size), [PAD_ID, START_ID]))

        def body(t, last, tokens, attention, log_prob, lengths, done, states):
            logp, weights, states = self._step(last, memory, keys, mask, states)
            token = tf.argmax(tf.where(forbidden, NEG, logp), axis=-1, output_type=tf.int32)
            token = tf.where(done, PAD_ID, token)
            log_prob += tf.where(done, 0.0, tf.gather(logp, token, batch_dims=1))
            lengths += tf.cast(~done, tf.int32)
            at_t = tf.equal(tf.range(size), t)
            tokens = tf.where(at_t[None], token[:, None], tokens)
            attention = tf.where(at_t[None, :, None] & ~done[:, None, None], weights[:, None, :], attention)
            return t + 1, token, tokens, attention, log_prob, lengths, done | tf.equal(token, END_ID), states

        limit = self._limit(source)
        steps, _, tokens, attention, log_prob, lengths, _, _ = tf.while_loop(
            lambda t, last, tokens, attention, log_prob, lengths, done, states: (t < limit) & ~tf.reduce_all(done),
            body, [tf.constant(0), tf.fill([batch], START_ID), tf.zeros([batch, size], tf.int32),
                   tf.zeros([batch, size, src_len]), tf.zeros([batch]), tf.zeros([batch], tf.int32),
                   tf.zeros([batch], tf.bool), states])
        return dict(tokens=tokens, log_prob=log_prob, length=lengths, attention=attention, steps=steps)

    def beam_search(self, source, *, beam_width=None, alpha=None, encoded=None):
        """Beam search over source ids `[batch, S]`: the `beam_width` best partial translations
        by total log-probability are kept at each step (finished ones stay in the beam with their
        score); the answer is the hypothesis with the best length-penalized score (see
        `length_penalty`). Returns what `greedy` returns, for the chosen hypotheses."""
        import tensorflow as tf

        k = self.beam_width if beam_width is None else beam_width
        alpha = self.alpha if alpha is None else alpha
        vocab, size = self.target_vocab_size, self.max_output_length
        batch, src_len = tf.shape(source)[0], tf.shape(source)[1]
        encoded = self._encode(source) if encoded is None else encoded
        memory, keys, *states = [tf.repeat(x, k, axis=0) for x in encoded]
        mask = tf.repeat(tf.not_equal(source, PAD_ID), k, axis=0)
        forbidden = tf.constant(np.isin(np.arange(vocab), [PAD_ID, START_ID]))
        # A finished hypothesis can only be followed by padding, at no cost.
        after_end = tf.constant(np.where(np.arange(vocab) == PAD_ID, 0.0, NEG).astype("float32"))

        def beams(x):  # [batch * k, ...] <-> [batch, k, ...]
            return tf.reshape(x, tf.concat([[batch, k], tf.shape(x)[1:]], 0))

        def rows(x):
            return tf.reshape(x, tf.concat([[batch * k], tf.shape(x)[2:]], 0))

        def body(t, last, scores, tokens, attention, lengths, done, states):
            logp, weights, states = self._step(last, memory, keys, mask, states)
            logp = beams(tf.where(forbidden, NEG, logp))
            logp = tf.where(done[..., None], after_end, logp)
            scores, index = tf.math.top_k(tf.reshape(scores[..., None] + logp, [batch, k * vocab]), k)
            parent, token = index // vocab, index % vocab
            tokens, attention, lengths, done, weights = (
                tf.gather(x, parent, batch_dims=1) for x in (tokens, attention, lengths, done, beams(weights)))
            states = [rows(tf.gather(beams(s), parent, batch_dims=1)) for s in states]
            at_t = tf.equal(tf.range(size), t)
            tokens = tf.where(at_t[None, None], token[..., None], tokens)
            attention = tf.where(at_t[None, None, :, None] & ~done[..., None, None], weights[:, :, None, :], attention)
            lengths += tf.cast(~done, tf.int32)
            return t + 1, tf.reshape(token, [-1]), scores, tokens, attention, lengths, done | tf.equal(token, END_ID), \
                states

        limit = self._limit(source)
        first = tf.constant([0.0] + [NEG] * (k - 1))  # all beams start equal: expand only one
        steps, _, scores, tokens, attention, lengths, _, _ = tf.while_loop(
            lambda t, last, scores, tokens, attention, lengths, done, states: (t < limit) & ~tf.reduce_all(done),
            body, [tf.constant(0), tf.fill([batch * k], START_ID), tf.tile(first[None], [batch, 1]),
                   tf.zeros([batch, k, size], tf.int32), tf.zeros([batch, k, size, src_len]),
                   tf.zeros([batch, k], tf.int32), tf.zeros([batch, k], tf.bool), states])
        best = tf.argmax(scores / length_penalty(lengths, alpha), axis=1, output_type=tf.int32)
        pick = lambda x: tf.gather(x, best, batch_dims=1)  # noqa: E731
        return dict(tokens=pick(tokens), log_prob=pick(scores), length=pick(lengths), attention=pick(attention),
                    steps=steps)

    def decode(self, source, method="beam"):
        """`greedy` or beam search with the greedy translation as one more candidate, so that
        beam search never returns a translation the model scores below greedy's. Adds `score`,
        the length-penalized log-probability that ranked the candidates."""
        import tensorflow as tf

        encoded = self._encode(source)
        greedy = self.greedy(source, encoded)
        greedy["score"] = greedy["log_prob"] / length_penalty(greedy["length"], self.alpha)
        if method == "greedy" or self.beam_width == 1:
            return greedy
        if method != "beam":
            raise ValueError(f"method must be 'greedy' or 'beam'. Received: method={method!r}")
        beam = self.beam_search(source, encoded=encoded)
        beam["score"] = beam["log_prob"] / length_penalty(beam["length"], self.alpha)
        take_beam = beam["score"] >= greedy["score"]
        out = {}
        for name in ("tokens", "log_prob", "length", "attention", "score"):
            cond = tf.reshape(take_beam, [-1] + [1] * (len(beam[name].shape) - 1))
            out[name] = tf.where(cond, beam[name], greedy[name])
        out["steps"] = tf.maximum(beam["steps"], greedy["steps"])
        return out

    def translate(self, texts, method="beam"):
        """Sentences (`tf.string` `[batch]`) -> a dict of `translation` (`tf.string`), `score`
        (length-penalized log-probability), `log_prob`, `source_tokens` (subwords read, after
        truncation), `truncated` (bool) and, for plots, `source_ids`, `tokens` and `attention`."""
        import tensorflow as tf

        texts = tf.convert_to_tensor(texts, tf.string)
        # An empty batch gets empty outputs (the LSTMs cannot run on zero steps).
        return tf.cond(tf.size(texts) > 0, lambda: self._translate(texts, method), lambda: dict(
            translation=tf.zeros([0], tf.string), score=tf.zeros([0]), log_prob=tf.zeros([0]),
            source_tokens=tf.zeros([0], tf.int32), truncated=tf.zeros([0], tf.bool),
            source_ids=tf.zeros([0, 0], tf.int32), tokens=tf.zeros([0, 0], tf.int32), attention=tf.zeros([0, 0, 0])))

    def _translate(self, texts, method):
        import tensorflow as tf

        ids, truncated = self.source_tokenizer.tokenize(texts, max_tokens=self.max_source_tokens)
        source = ids.to_tensor(default_value=PAD_ID)
        out = self.decode(source, method)
        steps = out["steps"]
        tokens = out["tokens"][:, :steps]
        empty = tf.equal(ids.row_lengths(), 2)  # only [START] [END]: nothing to translate
        translation = tf.where(empty, "", self.target_tokenizer.detokenize(tokens))
        return dict(translation=translation, score=out["score"], log_prob=out["log_prob"],
                    source_tokens=tf.cast(ids.row_lengths() - 2, tf.int32), truncated=truncated, source_ids=source,
                    tokens=tokens, attention=out["attention"][:, :steps])

    def function(self, method="beam"):
        """`translate` as a `tf.function` of `string[None]`, traced once per method."""
        import tensorflow as tf

        if method not in self._functions:
            # No autograph: the loops are explicit tf.while_loops, and converting the code took
            # half of the tracing time.
            self._functions[method] = tf.function(
                lambda texts: self.translate(texts, method), input_signature=[tf.TensorSpec([None], tf.string)],
                autograph=False)
        return self._functions[method]


# --- evaluation ---------------------------------------------------------------------------------


def translate_corpus(translator: Translator, sentences, *, method="beam", batch_size=64, progress=False) -> dict:
    """Translates `sentences` (str) in batches of similar length; `progress` draws a Keras
    progress bar over the sentences.

    Returns a dict: `translations` (str, in the order of `sentences`), `scores`, `truncated`
    (how many sources were cut to `max_source_tokens`) and `seconds`.
    """
    import tensorflow as tf

    sentences = [str(s) for s in sentences]
    order = np.argsort([len(s) for s in sentences], kind="stable")
    fn = translator.function(method)
    translations, scores = [None] * len(sentences), np.zeros(len(sentences))
    truncated = 0
    start = time.perf_counter()
    bar = keras.utils.Progbar(len(order), unit_name="sentence") if progress else None
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        out = fn(tf.constant([sentences[j] for j in idx]))
        for j, text, score in zip(idx, out["translation"].numpy(), out["score"].numpy()):
            translations[j], scores[j] = text.decode("utf-8"), float(score)
        truncated += int(np.sum(out["truncated"].numpy()))
        if bar:
            bar.add(len(idx))
    return dict(translations=translations, scores=scores, truncated=truncated, seconds=time.perf_counter() - start)


def corpus_scores(hypotheses, references) -> dict:
    """sacreBLEU's corpus BLEU and chrF (default settings: 13a tokenization, cased) of detokenized
    hypotheses against one reference each, with the signatures that make them reproducible."""
    import sacrebleu

    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    refs = [[str(r) for r in references]]
    hyps = [str(h) for h in hypotheses]
    b, c = bleu.corpus_score(hyps, refs), chrf.corpus_score(hyps, refs)
    return {"bleu": round(b.score, 2), "chrf": round(c.score, 2), "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature())}


class BleuCallback(keras.callbacks.Callback):
    """Adds `name` (`val_bleu`), the corpus BLEU of the greedy translations of `sources` against
    `references`, to the logs at the end of every epoch: an objective for KerasTuner, checkpoints
    or early stopping. Keep `sources` small (a couple of hundred sentences): they are translated
    after every epoch.

    Args:
        sources, references: sentences (str) and their reference translations, as `corpus_scores` takes them.
        source_tokenizer, target_tokenizer: the model's `zoo.subword.SubwordTokenizer`s.
        name: the key it writes into the logs.
        batch_size: sentences translated at once.
        **translator_kwargs: `Translator` arguments (`max_source_tokens`, `max_output_length`).
    """

    def __init__(self, sources, references, source_tokenizer, target_tokenizer, *, name="val_bleu", batch_size=64,
                 **translator_kwargs):
        super().__init__()
        if len(sources) != len(references) or not len(sources):
            raise ValueError(f"Need as many references as sources, at least one. Received: {len(sources)} sources, "
                             f"{len(references)} references")
        self.sources, self.references = [str(s) for s in sources], [str(r) for r in references]
        self.tokenizers, self.name, self.batch_size = (source_tokenizer, target_tokenizer), name, batch_size
        self.translator_kwargs = translator_kwargs
        self._translator = None

    def on_train_begin(self, logs=None):
        # One translator for the whole fit: its decoding loop is traced once and reads the current weights.
        self._translator = Translator(self.model, *self.tokenizers, beam_width=1, **self.translator_kwargs)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if self._translator is None:
            self.on_train_begin()
        out = translate_corpus(self._translator, self.sources, method="greedy", batch_size=self.batch_size)
        logs[self.name] = corpus_scores(out["translations"], self.references)["bleu"]


def attention_examples(translator: Translator, sentences, *, method="greedy"):
    """For each sentence: (source subwords, output subwords, attention `[output, source]`) of its
    translation, for `zoo.plots.plot_attention`."""
    import tensorflow as tf

    out = translator.function(method)(tf.constant([str(s) for s in sentences]))
    examples = []
    for source, tokens, attention in zip(out["source_ids"].numpy(), out["tokens"].numpy(), out["attention"].numpy()):
        n_src, n_out = int(np.sum(source != PAD_ID)), int(np.sum(tokens != PAD_ID))
        examples.append((translator.source_tokenizer.id_to_token(source[:n_src]),
                         translator.target_tokenizer.id_to_token(tokens[:n_out]), attention[:n_out, :n_src]))
    return examples


# --- export -----------------------------------------------------------------------------------


def export_translator(translator: Translator, path, *, metadata: dict, method="beam", weights_dtype="float32"):
    """Writes a SavedModel of `translator` to `path`, with the vocabularies beside it.

    Signatures (each takes `string[None]` sentences):
        serve (also serving_default): `{"translation": string[None]}`, decoded with `method`.
        greedy, beam: the same with that decoding.
        details: a dict of translation, score, log_prob, source_tokens and truncated, with `method`.

    Loading needs `import tensorflow_text` (its ops) but not `zoo`. An input longer than the
    model reads is cut to `max_source_tokens` subwords and a warning is printed to stderr.
    `weights_dtype` is `zoo.export.export_saved_model`'s (float16: half the size).
    """
    import sys

    import tensorflow as tf

    from zoo.export import export_saved_model

    spec = [tf.TensorSpec([None], tf.string, name="sentences")]

    def run(m, texts):
        # translator.function(m) is traced once (already, if the translator was evaluated): the
        # signatures call it rather than tracing the decoding loop again. Weights stored in another
        # dtype are read through a mapping the signature sets up (zoo.export.stored_weights), which a
        # function traced before cannot see: the decoding is traced into each signature instead.
        out = translator.function(m)(texts) if weights_dtype == "float32" else translator.translate(texts, m)
        tf.cond(tf.reduce_any(out["truncated"]),
                lambda: tf.print("warning: translation input longer than", translator.max_source_tokens - 2,
                                 "subwords was truncated; sentences:", tf.where(out["truncated"])[:, 0],
                                 output_stream=sys.stderr),
                lambda: tf.no_op())
        return out

    # A named output: TF Serving and saved_model_cli show `translation`, not `output_0`.
    strings = {m: tf.function(lambda texts, m=m: {"translation": run(m, texts)["translation"]}, input_signature=spec,
                              autograph=False) for m in ("greedy", "beam")}

    @tf.function(input_signature=spec, autograph=False)
    def details(texts):
        out = run(method, texts)
        return {k: out[k] for k in ("translation", "score", "log_prob", "source_tokens", "truncated")}

    path = export_saved_model(
        translator.model, path, input_signature=spec, serve_fn=strings[method], weights_dtype=weights_dtype,
        extra_signatures={"greedy": (strings["greedy"], spec), "beam": (strings["beam"], spec),
                          "details": (details, spec)},
        metadata={**metadata, "signatures": translator_signatures(method), "decoding": {"serve": method, "beam_width": translator.beam_width,
                                           "length_penalty": translator.alpha,
                                           "max_output_length": translator.max_output_length},
                  "max_source_tokens": translator.max_source_tokens,
                  "truncation": f"sources longer than {translator.max_source_tokens - 2} subwords are cut to that "
                                "(a warning goes to stderr; `details` returns `truncated`)",
                  "empty_input": "an empty or all-whitespace sentence translates to an empty string",
                  "source_vocab_size": translator.source_tokenizer.vocab_size,
                  "target_vocab_size": translator.target_tokenizer.vocab_size,
                  "reserved_tokens": list(RESERVED_TOKENS),
                  "load": "import tensorflow_text  # registers the ops; then tf.saved_model.load(path)"})
    translator.source_tokenizer.save(Path(path) / "source_vocab.txt")
    translator.target_tokenizer.save(Path(path) / "target_vocab.txt")
    return path


def translator_signatures(method: str) -> dict:
    """The card's `signatures` of `export_translator`'s SavedModel, `method` decoding `serve`."""
    from zoo.export import tensor

    sentences = {"sentences": tensor("string", [None], "raw UTF-8 sentences in the source language; normalized and "
                                                      "tokenized in the graph")}

    def translation(how):
        return {"translation": tensor("string", [None], f"the translations ({how} decoding), detokenized")}

    details = {**translation(method),
               "score": tensor("float32", [None], "the length-penalized log-probability the beam search ranks by"),
               "log_prob": tensor("float32", [None], "the log-probability of the translation's subwords"),
               "source_tokens": tensor("int32", [None], "the source's subwords the model read, [START] and [END] "
                                                        "included"),
               "truncated": tensor("bool", [None], "whether the source was cut to max_source_tokens")}
    signatures = {m: {"inputs": sentences, "outputs": translation(m)} for m in ("greedy", "beam")}
    signatures["serve"] = signatures["serving_default"] = signatures[method]
    signatures["details"] = {"inputs": sentences, "outputs": details}
    return signatures


def steps_per_epoch(pairs: int, batch_size: int) -> int:
    return max(1, math.ceil(pairs / batch_size))
