"""Keyword spotters that take raw waveforms: the log-mel spectrogram is computed inside the model.

Every builder returns an uncompiled functional model from float32 waveforms `[batch, samples]`
(mono, at `sample_rate`, in [-1, 1]) to float32 logits. The front end is shared and pure
Keras 3 (`keras.ops`, no TensorFlow), so it runs on any backend:

    waveform -> LogMelSpectrogram (STFT, Slaney mel filterbank, dB; matches librosa)
             -> UtteranceNormalization (zero mean, unit variance per clip)
             -> SpecAugment (random time and frequency masks, training only)
             -> [batch, frames, mel bins, 1]

then a CNN, a DS-CNN or a CRNN. Decoding, resampling and pad/trim live outside the model, in
`zoo.audio`, because they need variable-length inputs.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from zoo.models.layers import LSTM, BatchNormalization
from zoo.registry import register_model

# --- mel filterbank (numpy, the same as librosa.filters.mel) --------------------------------


def hz_to_mel(frequencies, htk=False):
    """Hertz -> mel. Slaney's scale (librosa's default: linear below 1 kHz, log above) or HTK's."""
    f = np.asarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(mels, htk=False):
    """Mel -> Hertz, the inverse of `hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(*, sample_rate, fft_length, num_mel_bins, fmin=0.0, fmax=None, htk=False, norm="slaney"):
    """Triangular mel filters, `[fft_length // 2 + 1, num_mel_bins]` float32.

    The same matrix (transposed) as `librosa.filters.mel(sr=sample_rate, n_fft=fft_length,
    n_mels=num_mel_bins, fmin=fmin, fmax=fmax, htk=htk, norm=norm)`; `norm="slaney"` scales each
    triangle to unit area, `None` leaves peaks at 1.
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"Need 0 <= fmin < fmax <= sample_rate / 2. Received: fmin={fmin}, fmax={fmax}, "
                         f"sample_rate={sample_rate}")
    if norm not in ("slaney", None):
        raise ValueError(f"norm must be 'slaney' or None. Received: norm={norm!r}")
    fft_freqs = np.linspace(0, sample_rate / 2, fft_length // 2 + 1)
    mel_freqs = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), num_mel_bins + 2), htk)
    fdiff = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_freqs[2:] - mel_freqs[:-2]))[:, None]
    return weights.T.astype(np.float32)


# --- front-end layers ---------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="zoo")
class LogMelSpectrogram(layers.Layer):
    """Waveforms `[batch, samples]` -> log-mel spectrograms `[batch, frames, num_mel_bins]` in dB.

    Computes what `librosa.power_to_db(librosa.feature.melspectrogram(y=x, sr=sample_rate,
    n_fft=fft_length, win_length=frame_length, hop_length=frame_step, n_mels=num_mel_bins,
    fmin=fmin, fmax=fmax), ref=1.0, amin=amin, top_db=top_db)` computes for each clip: a
    centred STFT with zero padding and a periodic Hann window, the power spectrum, the Slaney mel
    filterbank, then 10 log10. Unlike `keras.layers.MelSpectrogram`, `top_db` clips relative to
    each clip's own maximum, so a clip's features never depend on the rest of its batch.
    `frames = 1 + samples // frame_step`. Always computed in float32 (also under mixed precision).
    """

    def __init__(self, *, sample_rate=16000, fft_length=512, frame_length=None, frame_step=160, num_mel_bins=40,
                 fmin=20.0, fmax=None, top_db=80.0, amin=1e-10, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        frame_length = frame_length or fft_length
        if not 0 < frame_length <= fft_length:
            raise ValueError(f"Need 0 < frame_length <= fft_length. Received: frame_length={frame_length}, "
                             f"fft_length={fft_length}")
        if frame_step < 1 or num_mel_bins < 1:
            raise ValueError(f"frame_step and num_mel_bins must be positive. Received: frame_step={frame_step}, "
                             f"num_mel_bins={num_mel_bins}")
        self.sample_rate, self.fft_length, self.frame_length, self.frame_step = sample_rate, fft_length, frame_length, frame_step
        self.num_mel_bins, self.fmin, self.fmax, self.top_db, self.amin = num_mel_bins, fmin, fmax, top_db, amin
        self._filterbank = mel_filterbank(sample_rate=sample_rate, fft_length=fft_length, num_mel_bins=num_mel_bins,
                                          fmin=fmin, fmax=fmax)

    def call(self, waveforms):
        x = ops.cast(waveforms, "float32")
        pad = self.fft_length // 2
        x = ops.pad(x, [[0, 0], [pad, pad]])  # librosa's center=True with pad_mode="constant"
        real, imag = ops.stft(x, sequence_length=self.frame_length, sequence_stride=self.frame_step,
                              fft_length=self.fft_length, window="hann", center=False)
        power = ops.square(real) + ops.square(imag)
        mel = ops.matmul(power, ops.convert_to_tensor(self._filterbank))
        db = 10.0 * ops.log10(ops.maximum(mel, self.amin))
        if self.top_db is not None:
            db = ops.maximum(db, ops.max(db, axis=(1, 2), keepdims=True) - self.top_db)
        return db

    def compute_output_shape(self, input_shape):
        samples = input_shape[-1]
        frames = None if samples is None else 1 + samples // self.frame_step
        return (input_shape[0], frames, self.num_mel_bins)

    def get_config(self):
        return {**super().get_config(), "sample_rate": self.sample_rate, "fft_length": self.fft_length,
                "frame_length": self.frame_length, "frame_step": self.frame_step, "num_mel_bins": self.num_mel_bins,
                "fmin": self.fmin, "fmax": self.fmax, "top_db": self.top_db, "amin": self.amin}


@keras.saving.register_keras_serializable(package="zoo")
class UtteranceNormalization(layers.Layer):
    """Zero mean and unit variance over each clip's whole spectrogram (per utterance).

    A silent clip (a constant spectrogram) becomes all zeros rather than NaN: the variance has
    `epsilon` added before the square root.
    """

    def __init__(self, epsilon=1e-6, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, x):
        axes = tuple(range(1, len(x.shape)))
        mean = ops.mean(x, axis=axes, keepdims=True)
        var = ops.mean(ops.square(x - mean), axis=axes, keepdims=True)
        return (x - mean) / ops.sqrt(var + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="zoo")
class SpecAugment(layers.Layer):
    """SpecAugment's masks (Park et al., 2019) on `[batch, frames, bins]`, during training only.

    Each clip gets `time_masks` bands of 0..`time_mask_width` consecutive frames and
    `freq_masks` bands of 0..`freq_mask_width` consecutive bins set to zero (the mean, after
    `UtteranceNormalization`), at random positions. At inference it is the identity.
    """

    def __init__(self, *, time_masks=2, time_mask_width=10, freq_masks=2, freq_mask_width=5, seed=None, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        for name, value in (("time_masks", time_masks), ("time_mask_width", time_mask_width),
                            ("freq_masks", freq_masks), ("freq_mask_width", freq_mask_width)):
            if int(value) != value or value < 0:
                raise ValueError(f"{name} must be a non-negative integer. Received: {name}={value!r}")
        self.time_masks, self.time_mask_width = int(time_masks), int(time_mask_width)
        self.freq_masks, self.freq_mask_width = int(freq_masks), int(freq_mask_width)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _bands(self, batch, count, width, size):
        # [batch, size] booleans: True inside any of `count` random bands of 0..width positions.
        width = min(width, size)
        w = ops.floor(keras.random.uniform((batch, count), seed=self.seed_generator) * (width + 1))
        start = ops.floor(keras.random.uniform((batch, count), seed=self.seed_generator) * (size - w + 1))
        pos = ops.cast(ops.arange(size), "float32")[None, None, :]
        inside = ops.logical_and(pos >= start[..., None], pos < (start + w)[..., None])
        return ops.any(inside, axis=1)

    def call(self, x, training=None):
        if not training or not (self.time_masks * self.time_mask_width or self.freq_masks * self.freq_mask_width):
            return x
        batch = ops.shape(x)[0]
        frames, bins = x.shape[1], x.shape[2]
        masked = ops.zeros((batch, frames, bins), dtype="bool")
        if self.time_masks and self.time_mask_width:
            masked = ops.logical_or(masked, self._bands(batch, self.time_masks, self.time_mask_width, frames)[:, :, None])
        if self.freq_masks and self.freq_mask_width:
            masked = ops.logical_or(masked, self._bands(batch, self.freq_masks, self.freq_mask_width, bins)[:, None, :])
        return ops.where(masked, ops.zeros_like(x), x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "time_masks": self.time_masks, "time_mask_width": self.time_mask_width,
                "freq_masks": self.freq_masks, "freq_mask_width": self.freq_mask_width, "seed": self.seed}


def frontend_settings(sample_rate, window_ms, hop_ms):
    """STFT sizes for a window and hop in milliseconds: (fft_length, frame_length, frame_step);
    the FFT is the next power of two at or above the window."""
    frame_length = int(round(sample_rate * window_ms / 1000))
    frame_step = int(round(sample_rate * hop_ms / 1000))
    if frame_length < 2 or frame_step < 1:
        raise ValueError(f"window_ms and hop_ms are too short for sample_rate={sample_rate}. "
                         f"Received: window_ms={window_ms}, hop_ms={hop_ms}")
    return 2 ** math.ceil(math.log2(frame_length)), frame_length, frame_step


def _frontend(*, sample_rate, num_samples, num_mel_bins, window_ms, hop_ms, fmin, fmax, time_masks, time_mask_width,
              freq_masks, freq_mask_width):
    """The waveform input and the normalized, augmented `[batch, frames, bins, 1]` spectrogram."""
    if sample_rate < 1000 or num_samples < 1:
        raise ValueError(f"sample_rate must be >= 1000 Hz and num_samples positive. "
                         f"Received: sample_rate={sample_rate}, num_samples={num_samples}")
    fft_length, frame_length, frame_step = frontend_settings(sample_rate, window_ms, hop_ms)
    inputs = keras.Input(shape=(num_samples,), dtype="float32", name="waveform")
    x = LogMelSpectrogram(sample_rate=sample_rate, fft_length=fft_length, frame_length=frame_length,
                          frame_step=frame_step, num_mel_bins=num_mel_bins, fmin=fmin, fmax=fmax, name="log_mel")(inputs)
    x = UtteranceNormalization(name="normalize")(x)
    x = SpecAugment(time_masks=time_masks, time_mask_width=time_mask_width, freq_masks=freq_masks,
                    freq_mask_width=freq_mask_width, name="spec_augment")(x)
    x = layers.Reshape((*x.shape[1:], 1), name="add_channel")(x)
    return inputs, x


def _logits(x, num_classes):
    # float32 so that softmax and the loss stay in full precision under mixed_float16/bfloat16.
    return layers.Dense(num_classes, dtype="float32", name="logits")(x)


def _bn_relu(x, name, relu_name=None, momentum=0.99):
    """BatchNorm `name` (or `name`_bn when `relu_name` is None, the ReLU then `name`_relu) and ReLU
    after a convolution."""
    bn_name, relu_name = (name, relu_name) if relu_name else (f"{name}_bn", f"{name}_relu")
    return layers.ReLU(name=relu_name)(BatchNormalization(momentum=momentum, name=bn_name)(x))


def _check_bn_momentum(bn_momentum):
    if not 0 <= bn_momentum < 1:
        raise ValueError(f"bn_momentum must be in [0, 1). Received: bn_momentum={bn_momentum}")


def _check_dropout(dropout):
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout}")


# --- builders -------------------------------------------------------------------------------
# The front-end arguments are the same in every builder: sample_rate and num_samples fix the
# input; num_mel_bins, window_ms, hop_ms, fmin and fmax the spectrogram; time_masks,
# time_mask_width (frames), freq_masks and freq_mask_width (mel bins) SpecAugment.


@register_model("speech_cnn", domain="speech")
def speech_cnn(*, num_classes=12, sample_rate=16000, num_samples=16000, num_mel_bins=40, window_ms=30.0, hop_ms=10.0,
               fmin=20.0, fmax=None, time_masks=2, time_mask_width=10, freq_masks=2, freq_mask_width=5,
               widths=(32, 64, 128), dropout=0.2, bn_momentum=0.99):
    """A small CNN on the log-mel spectrogram.

    One group per entry of `widths`: two 3x3 convolutions with BatchNorm and ReLU, then a 2x2
    max pool (on every group but the last); global average pooling, dropout, a linear classifier.

    Args:
        widths: filters of each group (at least one group).
        dropout: dropout rate before the classifier.
        bn_momentum: of the BatchNormalization layers' moving statistics (0.9 settles them within
            a few dozen steps: for datasets of a few batches).
    """
    widths = tuple(widths)
    if not widths or min(widths) < 1:
        raise ValueError(f"widths must be one or more positive integers. Received: widths={widths}")
    _check_dropout(dropout)
    _check_bn_momentum(bn_momentum)
    inputs, x = _frontend(sample_rate=sample_rate, num_samples=num_samples, num_mel_bins=num_mel_bins,
                          window_ms=window_ms, hop_ms=hop_ms, fmin=fmin, fmax=fmax, time_masks=time_masks,
                          time_mask_width=time_mask_width, freq_masks=freq_masks, freq_mask_width=freq_mask_width)
    for i, filters in enumerate(widths, start=1):
        for j in (1, 2):
            x = _bn_relu(layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"group{i}_conv{j}")(x),
                         f"group{i}_bn{j}", f"group{i}_relu{j}", bn_momentum)
        if i < len(widths) and min(x.shape[1], x.shape[2]) >= 2:
            x = layers.MaxPooling2D(2, name=f"group{i}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, _logits(x, num_classes), name="speech_cnn")


@register_model("ds_cnn", domain="speech")
def ds_cnn(*, num_classes=12, sample_rate=16000, num_samples=16000, num_mel_bins=40, window_ms=30.0, hop_ms=10.0,
           fmin=20.0, fmax=None, time_masks=2, time_mask_width=10, freq_masks=2, freq_mask_width=5,
           filters=64, blocks=4, first_kernel=(10, 4), first_strides=(2, 2), dropout=0.2, bn_momentum=0.99):
    """DS-CNN, the depthwise-separable CNN of "Hello Edge" (Zhang et al., 2017).

    A `first_kernel` convolution with `first_strides`, then `blocks` depthwise-separable blocks
    (3x3 depthwise conv, BN, ReLU, 1x1 pointwise conv, BN, ReLU) at `filters` channels, global
    average pooling, dropout and a linear classifier. `filters=64, blocks=4` is about DS-CNN-S
    (about 25k parameters), `filters=172` DS-CNN-M and `filters=276, blocks=5` DS-CNN-L.

    Args:
        filters: channels of every layer.
        blocks: depthwise-separable blocks.
        first_kernel, first_strides: (time, frequency) kernel and strides of the first convolution.
        dropout: dropout rate before the classifier.
        bn_momentum: of the BatchNormalization layers' moving statistics (0.9 settles them within
            a few dozen steps: for datasets of a few batches).
    """
    if filters < 1 or blocks < 0:
        raise ValueError(f"filters must be positive and blocks non-negative. Received: filters={filters}, blocks={blocks}")
    _check_dropout(dropout)
    _check_bn_momentum(bn_momentum)
    inputs, x = _frontend(sample_rate=sample_rate, num_samples=num_samples, num_mel_bins=num_mel_bins,
                          window_ms=window_ms, hop_ms=hop_ms, fmin=fmin, fmax=fmax, time_masks=time_masks,
                          time_mask_width=time_mask_width, freq_masks=freq_masks, freq_mask_width=freq_mask_width)
    x = _bn_relu(layers.Conv2D(filters, tuple(first_kernel), strides=tuple(first_strides), padding="same",
                               use_bias=False, name="conv1")(x), "conv1", momentum=bn_momentum)
    for i in range(1, blocks + 1):
        x = _bn_relu(layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"block{i}_dw")(x), f"block{i}_dw",
                     momentum=bn_momentum)
        x = _bn_relu(layers.Conv2D(filters, 1, use_bias=False, name=f"block{i}_pw")(x), f"block{i}_pw",
                     momentum=bn_momentum)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, _logits(x, num_classes), name="ds_cnn")


@register_model("crnn", domain="speech")
def crnn(*, num_classes=12, sample_rate=16000, num_samples=16000, num_mel_bins=40, window_ms=30.0, hop_ms=10.0,
         fmin=20.0, fmax=None, time_masks=2, time_mask_width=10, freq_masks=2, freq_mask_width=5,
         conv_filters=(32, 64), rnn_units=(64, 64), rnn="gru", bidirectional=False, dropout=0.2, bn_momentum=0.99):
    """A convolutional recurrent network: convolutions over time and frequency, then an RNN over time.

    Each entry of `conv_filters` is a 3x3 convolution with BN and ReLU followed by a 2x2 max
    pool (halving time and frequency); the feature maps are flattened per frame and read by a
    stack of GRU or LSTM layers of `rnn_units`; the last one's final state feeds dropout and a
    linear classifier.

    Args:
        conv_filters: filters of each convolution (at least one).
        rnn_units: units of each recurrent layer (at least one).
        rnn: "gru" or "lstm".
        bidirectional: read the frames in both directions.
        dropout: dropout rate before the classifier.
        bn_momentum: of the BatchNormalization layers' moving statistics (0.9 settles them within
            a few dozen steps: for datasets of a few batches).
    """
    conv_filters, rnn_units = tuple(conv_filters), tuple(rnn_units)
    if not conv_filters or min(conv_filters) < 1 or not rnn_units or min(rnn_units) < 1:
        raise ValueError(f"conv_filters and rnn_units must be one or more positive integers. "
                         f"Received: conv_filters={conv_filters}, rnn_units={rnn_units}")
    if rnn not in ("gru", "lstm"):
        raise ValueError(f"rnn must be 'gru' or 'lstm'. Received: rnn={rnn!r}")
    _check_dropout(dropout)
    _check_bn_momentum(bn_momentum)
    inputs, x = _frontend(sample_rate=sample_rate, num_samples=num_samples, num_mel_bins=num_mel_bins,
                          window_ms=window_ms, hop_ms=hop_ms, fmin=fmin, fmax=fmax, time_masks=time_masks,
                          time_mask_width=time_mask_width, freq_masks=freq_masks, freq_mask_width=freq_mask_width)
    for i, filters in enumerate(conv_filters, start=1):
        x = _bn_relu(layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x), f"conv{i}",
                     momentum=bn_momentum)
        if min(x.shape[1], x.shape[2]) >= 2:
            x = layers.MaxPooling2D(2, name=f"conv{i}_pool")(x)
    x = layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]), name="frames")(x)
    cell = layers.GRU if rnn == "gru" else LSTM
    for i, units in enumerate(rnn_units, start=1):
        layer = cell(units, return_sequences=i < len(rnn_units), name=f"{rnn}{i}")
        x = layers.Bidirectional(layer, name=f"bi{rnn}{i}")(x) if bidirectional else layer(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, _logits(x, num_classes), name="crnn")


def spectrogram_examples(model, waveforms, labels, class_names, *, training=False):
    """One clip per label (the first of each) through a speech model's front end.

    Returns the `[n, frames, bins]` spectrograms (normalized, and with SpecAugment's masks when
    `training`), their label names and the seconds between frames, for `zoo.plots.plot_spectrograms`.
    """
    labels = np.asarray(labels)
    picks = [int(np.flatnonzero(labels == c)[0]) for c in range(len(class_names)) if np.any(labels == c)]
    last = "spec_augment" if training else "normalize"
    frontend = keras.Model(model.input, model.get_layer(last).output)
    specs = keras.ops.convert_to_numpy(frontend(np.asarray(waveforms)[picks], training=training))
    log_mel = model.get_layer("log_mel")
    return specs, [class_names[labels[i]] for i in picks], log_mel.frame_step / log_mel.sample_rate
