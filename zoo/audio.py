"""Waveform ops in TensorFlow: WAV decoding, downmix, resampling, pad/trim and augmentation.

These run in `tf.data` pipelines and inside exported SavedModels (the `serve_wav` signature
decodes and resamples in the graph), so a served model needs nothing but TensorFlow. The model
itself (log-mel spectrogram, normalization, SpecAugment) is pure Keras: `zoo.models.speech`.
"""

from __future__ import annotations

import math

import tensorflow as tf


def downmix(audio):
    """`[samples, channels]` -> mono `[samples]`, the mean of the channels."""
    return tf.reduce_mean(audio, axis=-1)


def fix_length(x, num_samples: int):
    """Pads with zeros or trims the last axis to `num_samples`, keeping the clip centred.

    Works on one clip `[n]` or a batch `[batch, n]`. Centring (rather than padding at the end)
    keeps short utterances, such as FSDD digits, in the middle of the window the model sees.
    """
    x = tf.convert_to_tensor(x)
    n = tf.shape(x)[-1]
    start = tf.maximum(n - num_samples, 0) // 2
    x = x[..., start:start + num_samples]
    missing = num_samples - tf.shape(x)[-1]
    left = missing // 2
    paddings = tf.concat([tf.zeros([tf.rank(x) - 1, 2], tf.int32), [[left, missing - left]]], axis=0)
    x = tf.pad(x, paddings)
    return tf.ensure_shape(x, [*x.shape[:-1], num_samples])


def _kaiser(u, beta):
    # Kaiser window on u in [-1, 1], zero outside.
    inside = tf.abs(u) <= 1.0
    arg = beta * tf.sqrt(tf.maximum(1.0 - u * u, 0.0))
    return tf.where(inside, tf.math.bessel_i0(arg) / tf.math.bessel_i0(tf.constant(beta, u.dtype)), tf.zeros_like(u))


def resample(x, rate_in, rate_out, *, length=None, zero_crossings=16, kaiser_beta=8.6):
    """Band-limited resampling of one clip `[n]` from `rate_in` to `rate_out` Hz, in-graph.

    Each output sample is a Kaiser-windowed sinc interpolation of its `2 * zero_crossings`
    (more when downsampling) nearest input samples, low-passed at the lower of the two Nyquist
    frequencies, so any ratio works (8 kHz <-> 16 kHz, 44.1 kHz -> 16 kHz) and nothing aliases.
    The rates may be tensors (as `tf.audio.decode_wav` returns them).

    Args:
        x: float32 `[n]`.
        rate_in, rate_out: sample rates in Hz (ints or int tensors).
        length: if given and the resampled clip is longer, only its centred `length` samples are
            computed (as `fix_length` would keep them), which bounds memory on long files.
        zero_crossings: half-width of the interpolation kernel in zero crossings of the sinc.
        kaiser_beta: shape of the Kaiser window (8.6: about -80 dB side lobes).

    Returns:
        float32 `[round(n * rate_out / rate_in)]`, or `[length]` when that is shorter.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    rate_in = tf.cast(rate_in, tf.float64)
    rate_out = tf.cast(rate_out, tf.float64)
    n = tf.shape(x)[0]
    ratio = rate_out / rate_in
    m = tf.cast(tf.round(tf.cast(n, tf.float64) * ratio), tf.int32)
    first, count = 0, m
    if length is not None:
        first = tf.maximum(m - length, 0) // 2
        count = tf.minimum(m, length)
    # Positions of the output samples on the input's time axis (float64: exact for long clips).
    t = tf.cast(tf.range(first, first + count), tf.float64) / ratio
    base = tf.floor(t)
    cutoff = tf.minimum(ratio, 1.0)  # fraction of the input band kept
    half = tf.cast(tf.math.ceil(zero_crossings / cutoff), tf.int32)  # taps on each side
    k = tf.range(-half + 1, half + 1)
    idx = tf.cast(base, tf.int32)[:, None] + k[None, :]
    d = (t - base)[:, None] - tf.cast(k, tf.float64)[None, :]  # distance from each tap, in input samples
    arg = tf.cast(d * cutoff, tf.float32)
    sinc = tf.where(tf.abs(arg) < 1e-6, tf.ones_like(arg), tf.sin(math.pi * arg) / (math.pi * arg))
    kernel = tf.cast(cutoff, tf.float32) * sinc * _kaiser(arg / zero_crossings, kaiser_beta)
    valid = (idx >= 0) & (idx < n)
    taps = tf.where(valid, tf.gather(x, tf.clip_by_value(idx, 0, tf.maximum(n - 1, 0))), 0.0)
    return tf.reduce_sum(taps * kernel, axis=1)


def load_waveform(contents, *, sample_rate: int, num_samples: int):
    """WAV file bytes -> float32 `[num_samples]` mono at `sample_rate`, in [-1, 1].

    Decodes 16-bit PCM with `tf.audio.decode_wav`, averages the channels, resamples when the
    file's rate differs, then pads or trims (centred). A file that does not decode, or holds no
    samples, raises `tf.errors.InvalidArgumentError`.
    """
    audio, rate = tf.audio.decode_wav(contents)
    tf.debugging.assert_positive(tf.shape(audio)[0], message="the WAV file holds no audio samples")
    mono = downmix(audio)
    mono = tf.cond(tf.equal(rate, sample_rate), lambda: mono,
                   lambda: resample(mono, rate, sample_rate, length=num_samples))
    return fix_length(mono, num_samples)


def time_shift(x, max_shift: int):
    """Shifts each clip of a batch `[batch, n]` by a random whole number of samples in
    [-max_shift, max_shift], filling with zeros (no wrap-around)."""
    if max_shift <= 0:
        return x
    b, n = tf.shape(x)[0], tf.shape(x)[1]
    shift = tf.random.uniform([b], -max_shift, max_shift + 1, dtype=tf.int32)
    src = tf.range(n)[None, :] - shift[:, None]
    shifted = tf.gather(x, tf.clip_by_value(src, 0, n - 1), axis=1, batch_dims=1)
    return tf.where((src >= 0) & (src < n), shifted, tf.zeros_like(shifted))


def mix_noise(x, noise, *, prob: float, volume: float):
    """Adds a random clip of `noise` `[k, n]` to each clip of `x` `[batch, n]` with probability
    `prob`, scaled by a uniform gain in [0, volume], and clips the sum to [-1, 1] (as the
    Speech Commands reference pipeline does with its background-noise clips)."""
    if noise is None or prob <= 0 or volume <= 0:
        return x
    noise = tf.convert_to_tensor(noise, tf.float32)
    b = tf.shape(x)[0]
    pick = tf.random.uniform([b], 0, tf.shape(noise)[0], dtype=tf.int32)
    gain = tf.random.uniform([b], 0.0, volume) * tf.cast(tf.random.uniform([b]) < prob, tf.float32)
    return tf.clip_by_value(x + gain[:, None] * tf.gather(noise, pick), -1.0, 1.0)


def serving_endpoints(model, *, sample_rate: int, num_samples: int):
    """The arguments of `zoo.export.export_saved_model` for a waveform classifier.

    `serve` (and `serving_default`) takes `float32[None, num_samples]` waveforms at
    `sample_rate`; `serve_wav` takes `string[None]` WAV file contents at any rate, mono or
    multi-channel, of any length, and decodes, downmixes, resamples and pads/trims them in the
    graph. Both return `float32[None, num_classes]` label probabilities.
    """
    import keras

    def serve(waveforms):
        return keras.ops.softmax(model(waveforms, training=False))

    def serve_wav(wav_bytes):
        waveforms = tf.map_fn(lambda c: load_waveform(c, sample_rate=sample_rate, num_samples=num_samples),
                              wav_bytes, fn_output_signature=tf.TensorSpec([num_samples], tf.float32))
        return serve(waveforms)

    return dict(
        input_signature=[tf.TensorSpec([None, num_samples], tf.float32, name="waveforms")],
        serve_fn=serve,
        extra_signatures={"serve_wav": (serve_wav, [tf.TensorSpec([None], tf.string, name="wav_bytes")])},
    )


def serving_metadata(*, sample_rate: int, num_samples: int, num_classes: int) -> dict:
    """The model-card fields that describe `serving_endpoints`' signatures."""
    return {
        "sample_rate": sample_rate,
        "num_samples": num_samples,
        "signatures": {
            "serve": {"input": {"name": "waveforms", "dtype": "float32", "shape": [None, num_samples],
                                "meaning": f"mono waveforms at {sample_rate} Hz in [-1, 1]"}},
            "serving_default": "the same as serve",
            "serve_wav": {"input": {"name": "wav_bytes", "dtype": "string", "shape": [None],
                                    "meaning": "contents of 16-bit PCM WAV files, any rate and channel count; "
                                               f"downmixed, resampled to {sample_rate} Hz and padded or trimmed "
                                               f"(centred) to {num_samples} samples in the graph"}},
        },
        "output": {"dtype": "float32", "shape": [None, num_classes], "meaning": "label probabilities"},
    }
