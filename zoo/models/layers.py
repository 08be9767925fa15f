"""Layers the builders share: Keras' own, made faster to train on a CPU.

Each is the Keras layer it subclasses (same arguments, weights, saved configuration and results
within float rounding) and runs on any backend:

- `BatchNormalization` trains through TensorFlow's fused kernel on the TensorFlow backend: one
  op forward and one backward instead of the dozen elementwise ops Keras 3 writes out.
- `LSTM` takes the input projection out of the time loop where no cuDNN kernel runs it, and
  trains on the TensorFlow backend with the recurrence's gradient written out.
- `GELU` trains with one XLA-compiled kernel each way on the TensorFlow backend.

Wherever the faster path does not apply they are Keras' layers unchanged.
"""

from __future__ import annotations

import functools
import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
def gelu(x):
    """The exact GELU, `x * Phi(x)`, as `0.5 x (1 + erf(x / sqrt(2)))`.

    The same function as `keras.activations.gelu(x, approximate=False)`, written with erf because
    TensorFlow's `tf.nn.gelu` goes through erfc, with which airbench trained at 0.89x the rate on
    a CPU in bfloat16 (bench/README.md); JAX's exact GELU is this formula.
    """
    return 0.5 * x * (1.0 + ops.erf(x * (1.0 / math.sqrt(2.0))))


@functools.lru_cache(maxsize=None)
def _compiled_gelu():
    """`gelu` for TensorFlow, its forward and its backward each one XLA-compiled function: one
    fused loop over the tensor each way instead of a kernel per elementwise op."""
    import tensorflow as tf

    @tf.function(jit_compile=True)
    def forward(x):
        return gelu(x)

    @tf.function(jit_compile=True)
    def backward(x, upstream):
        x32 = tf.cast(x, "float32")
        derivative = 0.5 * (1.0 + tf.math.erf(x32 * (1.0 / math.sqrt(2.0)))) + x32 * tf.exp(
            -0.5 * x32 * x32) * (1.0 / math.sqrt(2.0 * math.pi))
        return upstream * tf.cast(derivative, x.dtype)

    @tf.custom_gradient
    def compiled(x):
        return forward(x), lambda upstream: backward(x, upstream)

    return compiled


@keras.saving.register_keras_serializable(package="zoo")
class GELU(keras.layers.Layer):
    """The exact GELU (`gelu`) as a layer. In training on the TensorFlow backend its forward and
    backward are each one XLA-compiled function (TensorFlow's graph runs each elementwise op of
    the formula and of its gradient as a separate pass over the tensor); inference, and every
    other backend, call `gelu`, so exported graphs hold no XLA code. Measured on a 2-core Xeon
    (`python bench/peer_cpu.py --ab zoo,graph-gelu`): airbench's training step 1.00-1.11x
    faster in mixed_bfloat16, 1.02-1.05x in float32."""

    def call(self, inputs, training=None):
        if training and keras.backend.backend() == "tensorflow":
            return _compiled_gelu()(inputs)
        return gelu(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="zoo")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization`, trained with TensorFlow's fused kernel where it applies.

    The fused path (`FusedBatchNormV3`, oneDNN's kernel on CPUs) is taken in training mode on the
    TensorFlow backend for 4D channels-last inputs without a mask, renorm or synchronized
    statistics; it normalizes by the batch's biased variance and updates the moving statistics by
    Keras' rule (`moving = moving * momentum + batch * (1 - momentum)`, biased variance), so the
    outputs, gradients and moving statistics are Keras' within float rounding. Inference is
    Keras' code, so exported graphs do not change.

    Measured on a 2-core Xeon (bench/README.md, `python bench/peer_cpu.py --ab zoo,keras-bn`):
    airbench's training step 1.08-1.17x faster in mixed_bfloat16 and 1.06x in float32, the
    DS-CNN's 1.7x in float32.
    """

    def _fused(self, inputs, training, mask):
        return (training and self.trainable and mask is None and not self.renorm and not self.synchronized
                and keras.backend.backend() == "tensorflow" and len(inputs.shape) == 4
                and self.axis in (-1, 3))

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # only on the TensorFlow backend

        channels = inputs.shape[-1]
        gamma = ops.cast(self.gamma, "float32") if self.scale else tf.ones([channels], "float32")
        beta = ops.cast(self.beta, "float32") if self.center else tf.zeros([channels], "float32")
        outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=gamma, offset=beta, mean=tf.zeros([0]), variance=tf.zeros([0]),
            epsilon=self.epsilon, is_training=True, data_format="NHWC")
        # The kernel returns the Bessel-corrected batch variance; Keras averages the biased one.
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), "float32")
        variance = variance * ((count - 1.0) / tf.maximum(count, 1.0))
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return ops.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable(package="zoo")
class LSTM(keras.layers.LSTM):
    """`keras.layers.LSTM`, with the input projection taken out of the time loop and, in training
    on TensorFlow, the recurrence's gradient written out.

    Keras' LSTM cell multiplies each time step's input by `kernel` inside the loop (where no
    cuDNN kernel takes over, as on CPUs). This layer projects the whole sequence at once,
    `inputs @ kernel + bias`, one large matrix product forward and backward, and loops only over
    the recurrent part, as PyTorch's and cuDNN's LSTMs do. In training on the TensorFlow backend,
    with Keras' default activations, the loop runs with a hand-written gradient
    (`_tf_lstm_recurrence`: the backward loop carries only the states' gradients, the recurrent
    kernel's gradient is one matrix product after it); inference and other backends run Keras'
    loop. Same arguments, weights, saved configuration and results (within float rounding); with
    `recurrent_dropout` or on cuDNN it is Keras' layer unchanged. Measured on a 2-core Xeon
    (`python bench/peer_cpu.py --nets bilstm --ab zoo,autodiff-lstm`): see bench/README.md.
    """

    # Training on TensorFlow runs `_tf_lstm_recurrence` (its gradient written out); False: Keras'
    # loop under automatic differentiation (bench/peer_cpu.py's `autodiff-lstm` compares the two).
    _written_gradient = True

    def inner_loop(self, sequences, initial_state, mask, training=False):
        from keras.src import backend  # Keras' own RNN loop and cuDNN test, as keras.layers.LSTM uses them

        cell = self.cell
        cudnn = self.use_cudnn in ("auto", True) and getattr(backend, "cudnn_ok", lambda *a: False)(
            cell.activation, cell.recurrent_activation, self.unroll, cell.use_bias)
        if cudnn or self.recurrent_dropout or not self.use_bias or self.unroll:
            return super().inner_loop(sequences, initial_state, mask, training=training)

        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if training and cell.dropout:
            # The cell's dropout mask is drawn once per call (RNN.call), the same at every step.
            sequences = sequences * ops.expand_dims(cell.get_dropout_mask(sequences[:, 0, :]), axis=1)
        dtype = sequences.dtype
        projected = ops.matmul(sequences, ops.cast(cell.kernel, dtype)) + ops.cast(cell.bias, dtype)
        recurrent_kernel = ops.cast(cell.recurrent_kernel, dtype)

        default_activations = (cell.activation is keras.activations.tanh
                               and cell.recurrent_activation is keras.activations.sigmoid)
        if training and self._written_gradient and keras.backend.backend() == "tensorflow" and default_activations:
            return _tf_lstm_recurrence(projected, initial_state, recurrent_kernel, mask, self.go_backwards,
                                       self.zero_output_for_mask, self.return_sequences)

        def step(z_x, states):
            h, c = states
            z = z_x + ops.matmul(h, recurrent_kernel)
            z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
            c = cell.recurrent_activation(z_f) * c + cell.recurrent_activation(z_i) * cell.activation(z_c)
            h = cell.recurrent_activation(z_o) * cell.activation(c)
            return h, [h, c]

        return backend.rnn(step, projected, list(initial_state), go_backwards=self.go_backwards, mask=mask,
                           unroll=False, input_length=sequences.shape[1],
                           zero_output_for_mask=self.zero_output_for_mask, return_all_outputs=self.return_sequences)


def _tf_lstm_recurrence(projected, initial_state, recurrent_kernel, mask, go_backwards, zero_output_for_mask,
                        return_all_outputs):
    """The LSTM's recurrence over `projected` (`inputs @ kernel + bias`, [batch, time, 4 units]) on
    TensorFlow, with its gradient written out: `keras.src.backend.rnn`'s results (last output,
    outputs, [h, c]; masks, `go_backwards` and `zero_output_for_mask` as it treats them) for
    Keras' default activations (tanh, sigmoid).

    Automatic differentiation of the time loop keeps every intermediate of every step in tensor
    lists and computes, at every step of its backward loop, the recurrent kernel's share of the
    gradient (a matrix product, and a sum into the total) and the gradient of each elementwise op,
    each a kernel launch. Here the forward loop keeps three tensors a step (the gates' inputs and
    the states), the backward loop carries only what is sequential (the states' gradients: a few
    elementwise ops on [batch, units] and one matrix product a step), the activations' derivatives
    are computed for all steps at once before it, and the recurrent kernel's gradient after it as
    one matrix product over all steps, as cuDNN's and oneDNN's LSTM primitives do.
    """
    import tensorflow as tf

    masks = None
    if mask is not None:
        masks = tf.transpose(tf.cast(mask, tf.bool), [1, 0])[..., None]  # [time, batch, 1], in loop order
        if go_backwards:
            masks = tf.reverse(masks, [0])
    h0, c0 = (tf.convert_to_tensor(s) for s in initial_state)
    outputs, h, c = _lstm_recurrence_fn(masks is not None, bool(zero_output_for_mask), bool(go_backwards))(
        projected, masks if masks is not None else tf.zeros([0], tf.bool), h0, c0, recurrent_kernel)
    last = outputs[-1]
    return last, tf.transpose(outputs, [1, 0, 2]) if return_all_outputs else last[:, None], [h, c]


@functools.lru_cache(maxsize=None)
def _lstm_recurrence_fn(masked, zero_output_for_mask, go_backwards):
    """The recurrence of `_tf_lstm_recurrence` as a function with a custom gradient: (x [batch,
    time, 4 units], masks [time, batch, 1] in loop order, h0, c0, recurrent_kernel) -> (outputs
    [time, batch, units] in loop order, h, c)."""
    import tensorflow as tf

    @tf.custom_gradient
    def recurrence(x, masks, h0, c0, kernel):
        steps = tf.shape(x)[1]
        units = h0.shape[-1]

        def body(t, h, c, zs, hs, cs):
            z = tf.gather(x, steps - 1 - t if go_backwards else t, axis=1) + tf.matmul(h, kernel)
            i, f, _, o = tf.split(tf.sigmoid(z), 4, axis=-1)
            c_raw = f * c + i * tf.tanh(z[:, 2 * units:3 * units])
            h_raw = o * tf.tanh(c_raw)
            if masked:
                m = tf.gather(masks, t)
                h_raw, c_raw = tf.where(m, h_raw, h), tf.where(m, c_raw, c)
            return t + 1, h_raw, c_raw, zs.write(t, z), hs.write(t, h_raw), cs.write(t, c_raw)

        array = lambda: tf.TensorArray(x.dtype, size=steps)  # noqa: E731
        _, h, c, zs, hs, cs = tf.while_loop(lambda t, *_: t < steps, body,
                                            (tf.constant(0), h0, c0, array(), array(), array()),
                                            maximum_iterations=steps)
        zs, hs, cs = zs.stack(), hs.stack(), cs.stack()  # the gates' inputs and the states, in loop order
        # Each output is the state h where the step is not masked. Where it is, Keras' loop repeats
        # the previous output (zeros before the first unmasked step) or, with zero_output_for_mask,
        # gives zeros: as the state h carries over masked steps, that is h where any step so far
        # was unmasked, or h where this one is.
        if not masked:
            seen = None
        elif zero_output_for_mask:
            seen = masks
        else:
            seen = tf.cumsum(tf.cast(masks, tf.int32), axis=0) > 0
        outputs = hs if seen is None else tf.where(seen, hs, tf.zeros_like(hs))

        def grad(d_outputs, d_h, d_c):
            zeros = tf.zeros_like(h0)
            d_h = zeros if d_h is None else d_h
            d_c = zeros if d_c is None else d_c
            # Everything that is not sequential, for all steps at once.
            s = tf.sigmoid(zs)
            i, f, o = s[..., :units], s[..., units:2 * units], s[..., 3 * units:]
            g = tf.tanh(zs[..., 2 * units:3 * units])
            c_prev = tf.concat([c0[None], cs[:-1]], axis=0)
            tanh_c = tf.tanh(f * c_prev + i * g)
            # d z = [d c_raw, d c_raw, d c_raw, d h_raw] * factors, through c_raw = f c + i g and h_raw = o tanh(c_raw).
            factors = tf.concat([g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g), tanh_c * o * (1 - o)], -1)
            d_tanh = o * (1 - tanh_c * tanh_c)
            d_states = (tf.zeros_like(hs) if d_outputs is None else
                        d_outputs if seen is None else tf.where(seen, d_outputs, tf.zeros_like(d_outputs)))

            def back(t, d_h, d_c, d_zs):
                d_h = d_h + tf.gather(d_states, t)
                d_h_raw, d_c_in = d_h, d_c
                if masked:  # a masked step passes the states' gradients through unchanged
                    m = tf.gather(masks, t)
                    d_h_raw, d_c_in = tf.where(m, d_h, zeros), tf.where(m, d_c, zeros)
                d_c_raw = d_c_in + d_h_raw * tf.gather(d_tanh, t)
                d_z = tf.concat([d_c_raw, d_c_raw, d_c_raw, d_h_raw], axis=-1) * tf.gather(factors, t)
                d_h_prev = tf.matmul(d_z, kernel, transpose_b=True)
                d_c_prev = d_c_raw * tf.gather(f, t)
                if masked:
                    d_h_prev, d_c_prev = d_h_prev + (d_h - d_h_raw), d_c_prev + (d_c - d_c_in)
                return t - 1, d_h_prev, d_c_prev, d_zs.write(t, d_z)

            _, d_h0, d_c0, d_zs = tf.while_loop(lambda t, *_: t >= 0, back, (steps - 1, d_h, d_c, array()),
                                                maximum_iterations=steps)
            d_zs = d_zs.stack()
            h_prev = tf.concat([h0[None], hs[:-1]], axis=0)
            d_kernel = tf.matmul(tf.reshape(h_prev, [-1, units]), tf.reshape(d_zs, [-1, 4 * units]), transpose_a=True)
            d_x = tf.transpose(d_zs, [1, 0, 2])
            return (tf.reverse(d_x, [1]) if go_backwards else d_x), None, d_h0, d_c0, d_kernel

        return (outputs, h, c), grad

    return recurrence
