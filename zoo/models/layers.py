"""Layers the builders share: Keras' own, made faster to train on a CPU.

Each is the Keras layer it subclasses (same arguments, weights, saved configuration and results
within float rounding) and runs on any backend:

- `BatchNormalization` trains through TensorFlow's fused kernel on the TensorFlow backend: one
  op forward and one backward instead of the dozen elementwise ops Keras 3 writes out.
- `LSTM` takes the input projection out of the time loop where no cuDNN kernel runs it.
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
    """`keras.layers.LSTM`, with the input projection taken out of the time loop.

    Keras' LSTM cell multiplies each time step's input by `kernel` inside the loop (where no
    cuDNN kernel takes over, as on CPUs). This layer projects the whole sequence at once,
    `inputs @ kernel + bias`, one large matrix product forward and backward, and loops only over
    the recurrent part, as PyTorch's and cuDNN's LSTMs do. Same arguments, weights, saved
    configuration and results (within float rounding); with `recurrent_dropout` or on cuDNN it
    is Keras' layer unchanged.
    """

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
