"""zoo.models.layers: the shared layers behave as the Keras layers they stand in for."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.models.layers import BatchNormalization

CHANNELS = 6


def _bn_step(cls, x, **kwargs):
    """One training-mode call of a `cls` layer on `x` under a weighted loss: outputs, the
    gradients of x, gamma and beta, the moving statistics after it, and inference outputs."""
    layer = cls(momentum=0.6, epsilon=1e-3, **kwargs)
    layer.build(x.shape)
    if layer.scale:
        layer.gamma.assign(np.linspace(0.5, 1.5, CHANNELS))
    if layer.center:
        layer.beta.assign(np.linspace(-1.0, 1.0, CHANNELS))
    # A random linear readout: the gradients carry no cancellation (a sum of squares of
    # normalized values would be nearly constant, its input gradient mostly rounding error).
    weights = tf.constant(np.random.default_rng(1).normal(size=x.shape).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(y, "float32") * weights)
    sources = [x] + [v.value for v in layer.trainable_variables]
    grads = tape.gradient(loss, sources)
    return dict(outputs=y, grads=grads, moving_mean=layer.moving_mean.numpy(),
                moving_variance=layer.moving_variance.numpy(), inference=layer(x, training=False))


def _as_float(t):
    return np.asarray(tf.cast(t, "float32"))


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("kwargs", [{}, dict(center=False), dict(scale=False)])
def test_batch_norm_trains_as_keras_does(policy, kwargs):
    keras.mixed_precision.set_dtype_policy(policy)  # the autouse fixture resets it
    x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, (8, 5, 5, CHANNELS)).astype("float32"))
    ours, theirs = _bn_step(BatchNormalization, x, **kwargs), _bn_step(keras.layers.BatchNormalization, x, **kwargs)
    assert ours["outputs"].dtype == theirs["outputs"].dtype == keras.mixed_precision.dtype_policy().compute_dtype
    # bfloat16 outputs may differ by one rounding step (8 bits of mantissa) of values up to ~5.
    atol = 1e-5 if policy == "float32" else 0.04
    np.testing.assert_allclose(_as_float(ours["outputs"]), _as_float(theirs["outputs"]), atol=atol)
    np.testing.assert_allclose(_as_float(ours["inference"]), _as_float(theirs["inference"]), atol=atol)
    np.testing.assert_allclose(ours["moving_mean"], theirs["moving_mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours["moving_variance"], theirs["moving_variance"], rtol=1e-5)
    for a, b in zip(ours["grads"], theirs["grads"]):
        b = _as_float(b)
        np.testing.assert_allclose(_as_float(a), b, rtol=2e-2 if policy == "mixed_bfloat16" else 1e-4,
                                   atol=1e-3 * np.abs(b).max())
    # The moving statistics moved (the comparison above is not between two untouched layers).
    assert np.abs(theirs["moving_mean"]).min() > 0.1


def _op_types(layer, x, training):
    fn = tf.function(lambda t: layer(t, training=training))
    return {op.type for op in fn.get_concrete_function(tf.TensorSpec(x.shape, x.dtype)).graph.get_operations()}


def test_batch_norm_trains_through_the_fused_kernel_and_infers_with_keras_code():
    layer = BatchNormalization()
    x = tf.zeros([2, 3, 3, 4])
    layer.build(x.shape)
    assert "FusedBatchNormV3" in _op_types(layer, x, training=True)
    # Inference stays Keras' code: exported graphs are the same as with keras.layers.BatchNormalization.
    assert _op_types(layer, x, training=False) == _op_types(keras.layers.BatchNormalization.from_config(
        layer.get_config()), x, training=False)
    assert "FusedBatchNormV3" not in _op_types(layer, x, training=False)


@pytest.mark.parametrize("case", ["2d", "channels_first", "frozen", "synchronized"])
def test_batch_norm_falls_back_to_keras_where_the_fused_kernel_does_not_apply(case):
    layer = BatchNormalization(axis=1 if case == "channels_first" else -1, synchronized=case == "synchronized")
    x = tf.ones([4, CHANNELS]) if case == "2d" else tf.ones([2, 3, 3, CHANNELS])
    layer.build(x.shape)
    layer.trainable = case != "frozen"
    assert "FusedBatchNormV3" not in _op_types(layer, x, training=True)
    assert layer(x, training=True).shape == x.shape


def test_batch_norm_saves_as_the_zoos_layer_and_loads_back():
    layer = BatchNormalization(momentum=0.6, epsilon=1e-5, name="bn")
    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"] == "zoo>BatchNormalization"
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is BatchNormalization
    assert (clone.momentum, clone.epsilon, clone.name) == (0.6, 1e-5, "bn")


def _lstm_run(cls, x, mask, training, bidirectional=False, **kwargs):
    """Outputs (and states), and the gradients of a random readout of them with respect to the
    inputs and every weight, of a `cls` layer built with fixed random weights."""
    initial = {"initial_state": kwargs.pop("initial_state")} if "initial_state" in kwargs else {}
    layer = cls(5, seed=7, **kwargs)
    if bidirectional:
        layer = keras.layers.Bidirectional(layer)
    layer.build(x.shape)
    rng = np.random.default_rng(3)
    for w in layer.weights:
        w.assign(rng.normal(0, 0.5, w.shape))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x, mask=mask, training=training, **initial)
        outs = out if isinstance(out, (list, tuple)) else [out]
        readout = [tf.constant(np.random.default_rng(4 + i).normal(size=o.shape).astype("float32")) for i, o in
                   enumerate(outs)]
        loss = sum(tf.reduce_sum(tf.cast(o, "float32") * r) for o, r in zip(outs, readout))
    grads = tape.gradient(loss, [x] + [w.value for w in layer.trainable_weights])
    return [_as_float(o) for o in outs], [_as_float(g) for g in grads]


def _assert_same_lstm_results(ours, theirs, policy):
    """Outputs and gradients of two `_lstm_run`s agree within `policy`'s rounding."""
    tol = dict(atol=1e-5, rtol=1e-4) if policy == "float32" else dict(atol=0.05, rtol=0.05)
    for a, b in zip(ours[0] + ours[1], theirs[0] + theirs[1]):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, **tol)


LSTM_CASES = {
    "last": dict(),
    "sequences+state": dict(return_sequences=True, return_state=True),
    "backwards": dict(return_sequences=True, go_backwards=True),
    "dropout": dict(return_sequences=True, dropout=0.4),
    "bidirectional": dict(return_sequences=True, bidirectional=True),
    "recurrent_dropout": dict(recurrent_dropout=0.3),
}


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("case", LSTM_CASES)
def test_lstm_trains_as_keras_does(policy, case):
    from zoo.models.layers import LSTM

    keras.mixed_precision.set_dtype_policy(policy)
    x = tf.constant(np.random.default_rng(0).normal(size=(3, 6, 4)).astype("float32"))
    mask = tf.constant(np.arange(6)[None, :] < np.array([[6], [4], [1]]))  # padded after 6, 4, 1 steps
    kwargs = LSTM_CASES[case]
    # Dropout masks come from the layer's seed generator: both layers draw the same ones.
    ours = _lstm_run(LSTM, x, mask, training=True, **kwargs)
    theirs = _lstm_run(keras.layers.LSTM, x, mask, training=True, **kwargs)
    _assert_same_lstm_results(ours, theirs, policy)
    assert np.abs(theirs[1][0]).max() > 0.1  # the inputs' gradient is not trivially zero


LSTM_MASKS = {"none": None, "empty row": [[1] * 6, [1, 1, 1, 0, 0, 0], [0] * 6],
              "holes": [[1, 1, 0, 1, 1, 0], [0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1]]}
INITIAL_STATE = [tf.constant(np.random.default_rng(5).normal(size=(3, 5)).astype("float32")) for _ in range(2)]


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("masking", LSTM_MASKS)
@pytest.mark.parametrize("kwargs", [dict(return_sequences=True, return_state=True),
                                    dict(return_sequences=True, return_state=True, go_backwards=True),
                                    dict(return_sequences=True, zero_output_for_mask=True),
                                    dict(return_state=True, initial_state=INITIAL_STATE)],
                         ids=["forwards", "backwards", "zero output", "initial state"])
def test_lstm_masks_as_keras_does(policy, masking, kwargs):
    from zoo.models.layers import LSTM

    keras.mixed_precision.set_dtype_policy(policy)
    x = tf.constant(np.random.default_rng(0).normal(size=(3, 6, 4)).astype("float32"))
    mask = None if LSTM_MASKS[masking] is None else tf.constant(np.array(LSTM_MASKS[masking], bool))
    ours = _lstm_run(LSTM, x, mask, True, **kwargs)
    theirs = _lstm_run(keras.layers.LSTM, x, mask, True, **kwargs)
    _assert_same_lstm_results(ours, theirs, policy)


def test_lstm_loops_over_the_projected_inputs(monkeypatch):
    from keras.src import backend

    from zoo.models.layers import LSTM

    seen = []
    rnn = backend.rnn
    monkeypatch.setattr(backend, "rnn", lambda step, inputs, *a, **k: seen.append(inputs.shape[-1]) or
                        rnn(step, inputs, *a, **k))
    x = tf.zeros([2, 3, 4])
    LSTM(5)(x)
    LSTM(5, recurrent_dropout=0.2)(x, training=True)  # Keras' loop: the cell projects each step
    assert seen == [20, 4]


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_gelu_layer_trains_and_infers_as_the_gelu_formula(policy):
    from zoo.models.layers import GELU, gelu

    keras.mixed_precision.set_dtype_policy(policy)
    layer = GELU()
    x = tf.constant(np.linspace(-6, 6, 2 * 3 * 5 * 7).reshape(2, 3, 5, 7).astype("float32"))
    upstream = tf.constant(np.random.default_rng(0).normal(size=x.shape).astype("float32"))
    results = []
    for fn in (lambda t: layer(t, training=True), lambda t: gelu(tf.cast(t, layer.compute_dtype))):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        results.append((_as_float(y), _as_float(tape.gradient(y, x, output_gradients=tf.cast(upstream, y.dtype)))))
    (y, g), (y_ref, g_ref) = results
    assert layer(x, training=True).dtype == layer.compute_dtype
    atol = 1e-6 if policy == "float32" else 0.03
    np.testing.assert_allclose(y, y_ref, atol=atol)
    np.testing.assert_allclose(g, g_ref, atol=1e-5 if policy == "float32" else 0.05)
    np.testing.assert_allclose(_as_float(layer(x, training=False)), y_ref, atol=atol)


def _xla_calls(fn, x):
    """The ops of `fn`'s graph that call an XLA-compiled function, and the graph's op types."""
    graph = tf.function(fn).get_concrete_function(tf.TensorSpec(x.shape, x.dtype)).graph
    compiled = [op.name for op in graph.get_operations()
                if "_XlaMustCompile" in op.node_def.attr and op.get_attr("_XlaMustCompile")]
    return compiled, {op.type for op in graph.get_operations()}


def test_gelu_layer_compiles_only_in_training():
    from zoo.models.layers import GELU

    layer = GELU()
    x = tf.zeros([2, 4])
    compiled, _ = _xla_calls(lambda t: layer(t, training=True), x)
    assert compiled
    compiled, ops_ = _xla_calls(lambda t: layer(t, training=False), x)
    assert not compiled and "Erf" in ops_  # exported graphs hold plain TensorFlow ops


def test_lstm_trains_through_the_written_gradient_and_infers_through_keras_loop(monkeypatch):
    from zoo.models import layers as zoo_layers

    calls = []
    recurrence = zoo_layers._tf_lstm_recurrence
    monkeypatch.setattr(zoo_layers, "_tf_lstm_recurrence", lambda *a: calls.append(a) or recurrence(*a))
    layer = zoo_layers.LSTM(5)
    x = tf.ones([2, 3, 4])
    layer(x, training=True)
    assert len(calls) == 1
    layer(x, training=False)  # inference (and so exported graphs): Keras' loop
    layer._written_gradient = False
    layer(x, training=True)
    zoo_layers.LSTM(5, activation="relu")(x, training=True)  # not Keras' default activations
    assert len(calls) == 1
