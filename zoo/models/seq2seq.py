"""Sequence-to-sequence translators: a bidirectional LSTM encoder and an LSTM decoder with attention.

Every builder returns an uncompiled functional model for teacher forcing:

    [source ids [batch, S], decoder input ids [batch, T]] -> float32 logits [batch, T, target_vocab_size]

Id 0 is padding on both sides (`zoo.subword`). The model is made of two nested functional
models that decoding calls one step at a time (`zoo.translate`):

    encoder: source ids -> memory [batch, S, 2 * encoder_units] (the BiLSTM outputs), keys
             [batch, S, units] (the memory projected once for the attention scores), and the
             decoder's initial state h, c for each decoder layer (a tanh layer on the encoder's
             final forward and backward states)
    decoder: (target ids [batch, T], memory, keys, source mask [batch, S], h1, c1, ...) ->
             (logits [batch, T, V], attention weights [batch, T, S], h1, c1, ...)

The decoder is Luong-style: the attention reads the top LSTM layer's output, so teacher forcing
runs the whole target sequence at once; the context and the LSTM output go through a tanh layer
("attentional hidden state") before the output layer. The attention score is Luong's "general"
(q . W k, `luong_lstm`) or Bahdanau's additive (v . tanh(W q + U k), `bahdanau_lstm`). Padded
source positions are masked in the encoder (the backward LSTM starts at the last real token)
and in the attention. Pure Keras 3: the builders run on any backend.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from zoo.models.layers import LSTM
from zoo.registry import register_model


@keras.saving.register_keras_serializable(package="zoo")
class PaddingMask(layers.Layer):
    """Token ids -> a bool mask, True where the id is not padding (0)."""

    def call(self, ids):
        return ops.not_equal(ids, 0)

    def compute_output_spec(self, ids):
        return keras.KerasTensor(ids.shape, dtype="bool")


def _check(*, source_vocab_size, target_vocab_size, embedding_dim, encoder_units, units, encoder_layers,
           decoder_layers, dropout):
    for name, value in (("source_vocab_size", source_vocab_size), ("target_vocab_size", target_vocab_size),
                        ("embedding_dim", embedding_dim), ("encoder_units", encoder_units), ("units", units),
                        ("encoder_layers", encoder_layers), ("decoder_layers", decoder_layers)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    if min(source_vocab_size, target_vocab_size) < 2:
        raise ValueError(f"Vocabularies need at least 2 ids (padding and a token). Received: "
                         f"source_vocab_size={source_vocab_size}, target_vocab_size={target_vocab_size}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout}")


def _encoder(*, source_vocab_size, embedding_dim, encoder_units, units, encoder_layers, decoder_layers, dropout):
    source = keras.Input(shape=(None,), dtype="int32", name="source")
    x = layers.Embedding(source_vocab_size, embedding_dim, mask_zero=True, name="source_embedding")(source)
    if dropout:
        x = layers.Dropout(dropout, name="source_dropout")(x)
    for i in range(1, encoder_layers + 1):
        last = i == encoder_layers
        lstm = LSTM(encoder_units, return_sequences=True, return_state=last, name=f"encoder_lstm{i}")
        out = layers.Bidirectional(lstm, name=f"encoder_bilstm{i}")(x)
        x = out[0] if last else out
        if dropout:
            x = layers.Dropout(dropout, name=f"encoder_dropout{i}")(x)
    _, h_fwd, c_fwd, h_bwd, c_bwd = out
    memory = x
    keys = layers.Dense(units, use_bias=False, name="attention_keys")(memory)
    h = layers.Concatenate(name="final_h")([h_fwd, h_bwd])
    c = layers.Concatenate(name="final_c")([c_fwd, c_bwd])
    states = []
    for i in range(1, decoder_layers + 1):
        states += [layers.Dense(units, activation="tanh", name=f"init_h{i}")(h),
                   layers.Dense(units, activation="tanh", name=f"init_c{i}")(c)]
    return keras.Model(source, [memory, keys, *states], name="encoder")


def _decoder(*, target_vocab_size, embedding_dim, encoder_units, units, decoder_layers, dropout, attention):
    target = keras.Input(shape=(None,), dtype="int32", name="target")
    memory = keras.Input(shape=(None, 2 * encoder_units), name="memory")
    keys = keras.Input(shape=(None, units), name="keys")
    source_mask = keras.Input(shape=(None,), dtype="bool", name="source_mask")
    states = []
    for i in range(1, decoder_layers + 1):
        states += [keras.Input(shape=(units,), name=f"h{i}"), keras.Input(shape=(units,), name=f"c{i}")]
    x = layers.Embedding(target_vocab_size, embedding_dim, name="target_embedding")(target)
    if dropout:
        x = layers.Dropout(dropout, name="target_dropout")(x)
    new_states = []
    for i in range(1, decoder_layers + 1):
        x, h, c = LSTM(units, return_sequences=True, return_state=True, name=f"decoder_lstm{i}")(
            x, initial_state=states[2 * i - 2:2 * i])
        new_states += [h, c]
        if dropout and i < decoder_layers:
            x = layers.Dropout(dropout, name=f"decoder_dropout{i}")(x)
    query = x
    if attention == "bahdanau":
        q = layers.Dense(units, use_bias=False, name="attention_query")(query)
        context, weights = layers.AdditiveAttention(name="attention")(
            [q, memory, keys], mask=[None, source_mask], return_attention_scores=True)
    else:
        context, weights = layers.Attention(name="attention")(
            [query, memory, keys], mask=[None, source_mask], return_attention_scores=True)
    x = layers.Concatenate(name="context_and_output")([context, query])
    x = layers.Dense(units, activation="tanh", name="attentional_state")(x)
    if dropout:
        x = layers.Dropout(dropout, name="output_dropout")(x)
    # float32 so that softmax and the loss stay in full precision under mixed precision.
    logits = layers.Dense(target_vocab_size, dtype="float32", name="logits")(x)
    return keras.Model([target, memory, keys, source_mask, *states], [logits, weights, *new_states], name="decoder")


def _seq2seq(name, *, attention, source_vocab_size, target_vocab_size, embedding_dim, encoder_units, units,
             encoder_layers, decoder_layers, dropout):
    _check(source_vocab_size=source_vocab_size, target_vocab_size=target_vocab_size, embedding_dim=embedding_dim,
           encoder_units=encoder_units, units=units, encoder_layers=encoder_layers, decoder_layers=decoder_layers,
           dropout=dropout)
    encoder = _encoder(source_vocab_size=source_vocab_size, embedding_dim=embedding_dim, encoder_units=encoder_units,
                       units=units, encoder_layers=encoder_layers, decoder_layers=decoder_layers, dropout=dropout)
    decoder = _decoder(target_vocab_size=target_vocab_size, embedding_dim=embedding_dim, encoder_units=encoder_units,
                       units=units, decoder_layers=decoder_layers, dropout=dropout, attention=attention)
    source = keras.Input(shape=(None,), dtype="int32", name="source")
    target_in = keras.Input(shape=(None,), dtype="int32", name="decoder_input")
    memory, keys, *states = encoder(source)
    logits = decoder([target_in, memory, keys, PaddingMask(name="source_mask")(source), *states])[0]
    return keras.Model([source, target_in], logits, name=name)


# The arguments are the same in every builder: source_vocab_size and target_vocab_size (ids,
# reserved ones included), embedding_dim (both embeddings), encoder_units (each direction of
# each BiLSTM layer), units (decoder LSTMs, attention and attentional state), encoder_layers,
# decoder_layers, and dropout (on embeddings, between LSTM layers and before the output layer).


@register_model("luong_lstm", domain="seq2seq")
def luong_lstm(*, source_vocab_size=8000, target_vocab_size=8000, embedding_dim=256, encoder_units=256, units=512,
               encoder_layers=1, decoder_layers=1, dropout=0.2):
    """BiLSTM encoder, LSTM decoder, Luong's "general" multiplicative attention (Luong et al., 2015)."""
    return _seq2seq("luong_lstm", attention="luong", source_vocab_size=source_vocab_size,
                    target_vocab_size=target_vocab_size, embedding_dim=embedding_dim, encoder_units=encoder_units,
                    units=units, encoder_layers=encoder_layers, decoder_layers=decoder_layers, dropout=dropout)


@register_model("bahdanau_lstm", domain="seq2seq")
def bahdanau_lstm(*, source_vocab_size=8000, target_vocab_size=8000, embedding_dim=256, encoder_units=256, units=512,
                  encoder_layers=1, decoder_layers=1, dropout=0.2):
    """BiLSTM encoder, LSTM decoder, Bahdanau's additive attention score (Bahdanau et al., 2015)
    on the decoder LSTM's output (Luong's placement, so training runs all steps at once)."""
    return _seq2seq("bahdanau_lstm", attention="bahdanau", source_vocab_size=source_vocab_size,
                    target_vocab_size=target_vocab_size, embedding_dim=embedding_dim, encoder_units=encoder_units,
                    units=units, encoder_layers=encoder_layers, decoder_layers=decoder_layers, dropout=dropout)
