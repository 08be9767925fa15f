"""Text classifiers over token ids: an embedding, (bidirectional) LSTMs, then pooling.

Every builder returns an uncompiled functional model from int32 token ids `[batch, time]` (0 is
padding and is masked; 1 is the out-of-vocabulary token) to float32 logits. With
`bigram_vocab_size`, the ids are `[batch, time, 2]`: each word's id and the id of the bigram it
ends, whose embeddings are summed (as fastText adds n-gram features, but read by an LSTM). Tokenization lives
outside the model, in `zoo.text`, because it needs TensorFlow string ops. Pure Keras 3.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from zoo.models.layers import LSTM
from zoo.registry import register_model

POOLINGS = ("last", "max", "mean", "attention")


@keras.saving.register_keras_serializable(package="zoo")
class MaskedPooling(layers.Layer):
    """Pools `[batch, time, features]` over the unmasked time steps: max, mean or attention.

    Attention pooling (Yang et al., 2016, without the word-level context projection's bias)
    scores each step with a small tanh MLP, softmaxes the scores over the valid steps and
    returns the weighted sum. A sequence with no valid step pools to zeros, never NaN.
    """

    def __init__(self, mode="max", attention_units=64, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("max", "mean", "attention"):
            raise ValueError(f"mode must be 'max', 'mean' or 'attention'. Received: mode={mode!r}")
        self.mode = mode
        self.attention_units = attention_units
        self.supports_masking = True

    def build(self, input_shape):
        if self.mode == "attention":
            self.hidden = layers.Dense(self.attention_units, activation="tanh", name="hidden")
            self.hidden.build(input_shape)
            self.score = layers.Dense(1, use_bias=False, name="score")
            self.score.build((*input_shape[:-1], self.attention_units))

    def call(self, x, mask=None):
        valid = ops.ones(ops.shape(x)[:2], dtype="bool") if mask is None else ops.cast(mask, "bool")
        valid_f = ops.cast(ops.expand_dims(valid, -1), x.dtype)
        any_valid = ops.cast(ops.any(valid, axis=1, keepdims=True), x.dtype)
        if self.mode == "max":
            lowest = ops.cast(-1e4 if x.dtype == "float16" else -1e9, x.dtype)
            return ops.max(ops.where(ops.expand_dims(valid, -1), x, lowest), axis=1) * any_valid
        if self.mode == "mean":
            return ops.sum(x * valid_f, axis=1) / ops.maximum(ops.sum(valid_f, axis=1), 1.0)
        scores = ops.squeeze(self.score(self.hidden(x)), -1)
        scores = ops.where(valid, ops.cast(scores, "float32"), -1e9)
        weights = ops.softmax(scores, axis=1) * ops.cast(valid, "float32")
        return ops.sum(x * ops.cast(ops.expand_dims(weights, -1), x.dtype), axis=1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "attention_units": self.attention_units}


def _check(*, vocab_size, bigram_vocab_size, num_classes, embedding_dim, units, dropout, recurrent_dropout, embedding_dropout, pooling):
    if vocab_size < 3:
        raise ValueError(f"vocab_size must be >= 3 (padding, OOV and a word). Received: vocab_size={vocab_size}")
    if bigram_vocab_size and bigram_vocab_size < 3:
        raise ValueError(f"bigram_vocab_size must be 0 (no bigrams) or >= 3. Received: bigram_vocab_size={bigram_vocab_size}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2. Received: num_classes={num_classes}")
    if embedding_dim < 1:
        raise ValueError(f"embedding_dim must be positive. Received: embedding_dim={embedding_dim}")
    if not units or any(int(u) < 1 for u in units):
        raise ValueError(f"units must be one or more positive layer sizes. Received: units={units!r}")
    for name, value in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout),
                        ("embedding_dropout", embedding_dropout)):
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1). Received: {name}={value}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}. Received: pooling={pooling!r}")


def _lstm_classifier(*, name, vocab_size, bigram_vocab_size, num_classes, embedding_dim, units, bidirectional,
                     dropout, recurrent_dropout, embedding_dropout, pooling, attention_units, use_cudnn):
    units = (units,) if isinstance(units, int) else tuple(units)
    _check(vocab_size=vocab_size, bigram_vocab_size=bigram_vocab_size, num_classes=num_classes, embedding_dim=embedding_dim, units=units,
           dropout=dropout, recurrent_dropout=recurrent_dropout, embedding_dropout=embedding_dropout, pooling=pooling)
    tokens = keras.Input(shape=(None, 2) if bigram_vocab_size else (None,), dtype="int32", name="tokens")
    words = tokens[..., 0] if bigram_vocab_size else tokens
    x = layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")(words)
    if bigram_vocab_size:
        bigrams = layers.Embedding(bigram_vocab_size, embedding_dim, mask_zero=True, name="bigram_embedding")
        x = layers.Add(name="word_and_bigram")([x, bigrams(tokens[..., 1])])
    if embedding_dropout:
        # Drops whole embedding channels for the whole sequence (spatial dropout), as in AWD-LSTM.
        x = layers.SpatialDropout1D(embedding_dropout, name="embedding_dropout")(x)
    for i, n in enumerate(units):
        last = i == len(units) - 1
        rnn = LSTM(int(n), return_sequences=not (last and pooling == "last"), dropout=dropout,
                   recurrent_dropout=recurrent_dropout, use_cudnn=use_cudnn, name=f"lstm_{i + 1}")
        x = layers.Bidirectional(rnn, name=f"bilstm_{i + 1}")(x) if bidirectional else rnn(x)
    if pooling != "last":
        x = MaskedPooling(pooling, attention_units=attention_units, name=f"{pooling}_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    logits = layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model(tokens, logits, name=name)


@register_model("lstm", domain="text")
def lstm(*, vocab_size=20000, bigram_vocab_size=0, num_classes=2, embedding_dim=128, units=(128,), dropout=0.0, recurrent_dropout=0.0,
         embedding_dropout=0.0, pooling="last", attention_units=64, use_cudnn="auto"):
    """A unidirectional LSTM classifier (one or more stacked layers).

    Args:
        vocab_size: embedding rows, padding (0) and OOV (1) included.
        bigram_vocab_size: rows of a bigram embedding added to the word's (0: words only; the
            input is then `[batch, time, 2]`, see `zoo.text.Tokenizer`).
        num_classes: output logits.
        embedding_dim: embedding size.
        units: LSTM sizes, one per stacked layer (an int for one layer).
        dropout: input dropout of each LSTM and dropout before the classifier.
        recurrent_dropout: dropout of the recurrent state (disables cuDNN kernels).
        embedding_dropout: spatial dropout of embedding channels.
        pooling: "last" (final state), "max", "mean" or "attention" over the masked sequence.
        attention_units: hidden size of attention pooling.
        use_cudnn: "auto", True or False; exports always trace the portable kernel.
    """
    return _lstm_classifier(name="lstm", vocab_size=vocab_size, bigram_vocab_size=bigram_vocab_size, num_classes=num_classes, embedding_dim=embedding_dim,
                            units=units, bidirectional=False, dropout=dropout, recurrent_dropout=recurrent_dropout,
                            embedding_dropout=embedding_dropout, pooling=pooling, attention_units=attention_units,
                            use_cudnn=use_cudnn)


@register_model("bilstm", domain="text")
def bilstm(*, vocab_size=20000, bigram_vocab_size=0, num_classes=2, embedding_dim=128, units=(64, 64), dropout=0.0, recurrent_dropout=0.0,
           embedding_dropout=0.0, pooling="max", attention_units=64, use_cudnn="auto"):
    """Stacked bidirectional LSTMs (the keras.io IMDB example's network, with pooling choices).

    Arguments as `lstm`; each layer's output is the concatenation of both directions.
    """
    return _lstm_classifier(name="bilstm", vocab_size=vocab_size, bigram_vocab_size=bigram_vocab_size,
                            num_classes=num_classes,
                            embedding_dim=embedding_dim, units=units, bidirectional=True, dropout=dropout,
                            recurrent_dropout=recurrent_dropout, embedding_dropout=embedding_dropout, pooling=pooling,
                            attention_units=attention_units, use_cudnn=use_cudnn)
