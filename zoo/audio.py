"""Waveform ops in TensorFlow: WAV decoding, downmix, resampling, pad/trim and augmentation;
and the reading of audio files of any format before the graph (`read_audio`, `fit_clip`).

The ops run in `tf.data` pipelines and inside exported SavedModels (the `serve_wav` signature
decodes and resamples in the graph), so a served model needs nothing but TensorFlow. The model
itself (log-mel spectrogram, normalization, SpecAugment) is pure Keras: `zoo.models.speech`.
Files that the graph cannot decode (WAV of another sample width than 16-bit PCM, FLAC, OGG) are
read with `soundfile` (libsndfile, as librosa reads them) and resampled with the same `resample`,
so training and serving see the same waveforms.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from zoo.errors import DataError


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


# The sample rates a WAV file may declare. Resampling works on `rate_in / rate_out` input samples
# per output sample, so a header claiming 1e9 Hz would make it hold gigabytes; real recordings
# lie between telephone-grade 8 kHz (1 kHz leaves room for odd sensors) and 384 kHz studio audio.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000
# Elements (output samples x taps) of the blocks that resampling computes at a time: about 4 MiB
# of float32 each, so memory stays flat whatever the clip's length and the rates.
_BLOCK_ELEMENTS = 1 << 20


def wav_sample_rate(contents: bytes) -> int | None:
    """The sample rate that WAV file bytes declare, read from the header without decoding, or
    None if there is no `fmt ` chunk right after `RIFF....WAVE` (where `tf.audio.decode_wav`
    requires it, so such bytes do not decode at all)."""
    if len(contents) < 28 or contents[:4] != b"RIFF" or contents[8:16] != b"WAVEfmt ":
        return None
    return int.from_bytes(contents[24:28], "little")


def is_pcm16_wav(contents: bytes) -> bool:
    """Whether WAV file bytes declare 16-bit PCM samples in a `fmt ` chunk right after
    `RIFF....WAVE`: what `tf.audio.decode_wav` (and so `serve_wav`) decodes; other files are read
    with `read_audio`."""
    return (wav_sample_rate(contents) is not None and len(contents) >= 36
            and int.from_bytes(contents[20:22], "little") == 1 and int.from_bytes(contents[34:36], "little") == 16)


def check_sample_rate(rate, what: str = "the sample rate is"):
    """`rate` as an int64 tensor, behind an assertion that it lies in [MIN_SAMPLE_RATE,
    MAX_SAMPLE_RATE] Hz: whatever uses the result runs only if it does. A rate outside raises
    `tf.errors.InvalidArgumentError` with a message that gives `what`, the rate and the range.

    Args:
        rate: a sample rate in Hz (int or int tensor, such as `tf.audio.decode_wav` returns).
        what: the message's words before the rate.
    """
    rate = tf.cast(rate, tf.int64)
    accepted = f"Hz; accepted: {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"
    ok = (rate >= MIN_SAMPLE_RATE) & (rate <= MAX_SAMPLE_RATE)
    if tf.executing_eagerly():  # the same words on one line (Assert's eager message splits them over three)
        if not ok:
            raise tf.errors.InvalidArgumentError(None, None, f"{what} {int(rate)} {accepted}")
        return rate
    with tf.control_dependencies([tf.debugging.Assert(ok, [what, rate, accepted])]):
        return tf.identity(rate)


def _gcd(a, b):
    a, _ = tf.while_loop(lambda a, b: b > 0, lambda a, b: (b, a % b), (a, b))
    return a


def _kaiser(u, beta):
    # Kaiser window on u in [-1, 1], zero outside.
    inside = tf.abs(u) <= 1.0
    arg = beta * tf.sqrt(tf.maximum(1.0 - u * u, 0.0))
    return tf.where(inside, tf.math.bessel_i0(arg) / tf.math.bessel_i0(tf.constant(beta, u.dtype)), tf.zeros_like(u))


def _in_blocks(fn, start, count, block):
    # fn(indices [block]) for indices start, start + 1, ... in blocks of `block`, one block at a
    # time (parallel_iterations=1: blocks in flight together would multiply the memory), at least
    # one block; the results are concatenated along the first axis, `count` rows or more.
    blocks = tf.maximum((count + block - 1) // block, 1)
    out = tf.map_fn(lambda b: fn(start + b * block + tf.range(block)), tf.range(blocks),
                    fn_output_signature=tf.float32, parallel_iterations=1)
    return tf.reshape(out, tf.concat([[-1], tf.shape(out)[2:]], axis=0))


def resample(x, rate_in, rate_out, *, length=None, zero_crossings=16, kaiser_beta=8.6):
    """Band-limited resampling of one clip `[n]` from `rate_in` to `rate_out` Hz, in-graph.

    Each output sample is a Kaiser-windowed sinc interpolation of its `2 * zero_crossings`
    (more when downsampling) nearest input samples, low-passed at the lower of the two Nyquist
    frequencies, so any ratio works (8 kHz <-> 16 kHz, 44.1 kHz -> 16 kHz) and nothing aliases.
    The rates may be tensors (as `tf.audio.decode_wav` returns them).

    The filters come from the rates' ratio in lowest terms, `up / down` (44.1 kHz -> 16 kHz:
    160 / 441): output sample `j` sits at input position `j * down / up`, so only `up` distinct
    filters exist (polyphase). They and the output are computed in blocks of bounded size, so
    memory depends neither on the clip's length nor on anything but the bounded rates.

    Args:
        x: float32 `[n]`.
        rate_in, rate_out: sample rates in Hz (ints or int tensors), each within
            [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] (`check_sample_rate`).
        length: if given and the resampled clip is longer, only its centred `length` samples are
            computed (as `fix_length` would keep them).
        zero_crossings: half-width of the interpolation kernel in zero crossings of the sinc.
        kaiser_beta: shape of the Kaiser window (8.6: about -80 dB side lobes).

    Returns:
        float32 `[round(n * rate_out / rate_in)]`, or `[length]` when that is shorter.

    Raises:
        tf.errors.InvalidArgumentError: a rate outside [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE].
    """
    x = tf.convert_to_tensor(x, tf.float32)
    rate_in = check_sample_rate(rate_in, "resample: rate_in is")
    rate_out = check_sample_rate(rate_out, "resample: rate_out is")
    g = _gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    n = tf.shape(x, out_type=tf.int64)[0]
    ratio = tf.cast(rate_out, tf.float64) / tf.cast(rate_in, tf.float64)
    m = tf.cast(tf.round(tf.cast(n, tf.float64) * ratio), tf.int64)
    first, count = tf.constant(0, tf.int64), m
    if length is not None:
        first = tf.maximum(m - length, 0) // 2
        count = tf.minimum(m, length)
    cutoff = tf.minimum(ratio, 1.0)  # fraction of the input band kept
    half = tf.cast(tf.math.ceil(zero_crossings / cutoff), tf.int64)  # taps on each side
    k = tf.range(-half + 1, half + 1)
    block = tf.maximum(_BLOCK_ELEMENTS // (2 * half), 1)
    # Output j's filter depends only on j mod up; `phases` rows, row i for outputs first + i (mod up).
    phases = tf.minimum(up, count)

    def filters(j):
        frac = tf.cast(j * down % up, tf.float64) / tf.cast(up, tf.float64)  # j's offset past its input sample
        d = frac[:, None] - tf.cast(k, tf.float64)[None, :]  # distance from each tap, in input samples
        arg = tf.cast(d * cutoff, tf.float32)
        sinc = tf.where(tf.abs(arg) < 1e-6, tf.ones_like(arg), tf.sin(math.pi * arg) / (math.pi * arg))
        return tf.cast(cutoff, tf.float32) * sinc * _kaiser(arg / zero_crossings, kaiser_beta)

    def outputs(bank):
        def block_of(j):
            idx = (j * down // up)[:, None] + k[None, :]
            kernel = tf.gather(bank, tf.minimum((j - first) % up, phases - 1))
            valid = (idx >= 0) & (idx < n)
            taps = tf.where(valid, tf.gather(x, tf.clip_by_value(idx, 0, n - 1)), 0.0)
            return tf.reduce_sum(taps * kernel, axis=1)
        return _in_blocks(block_of, first, count, block)[:count]

    # Nothing to compute for an empty result (and x may be empty: nothing to gather from).
    return tf.cond(count > 0, lambda: outputs(_in_blocks(filters, first, phases, block)), lambda: tf.zeros([0]))


def load_waveform(contents, *, sample_rate: int, num_samples: int):
    """WAV file bytes -> float32 `[num_samples]` mono at `sample_rate`, in [-1, 1].

    Decodes 16-bit PCM with `tf.audio.decode_wav`, averages the channels, resamples when the
    file's rate differs, then pads or trims (centred). A file that does not decode, holds no
    samples or declares a rate outside [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] raises
    `tf.errors.InvalidArgumentError`.
    """
    audio, rate = tf.audio.decode_wav(contents)
    # Checked before anything else: resampling's cost grows with the rate the header declares.
    rate = check_sample_rate(rate, "the WAV file declares a sample rate of")
    tf.debugging.assert_positive(tf.shape(audio)[0], message="the WAV file holds no audio samples")
    mono = downmix(audio)
    mono = tf.cond(tf.equal(rate, sample_rate), lambda: mono,
                   lambda: resample(mono, rate, sample_rate, length=num_samples))
    return fix_length(mono, num_samples)


# --- files of any format, before the graph ----------------------------------------------------

@dataclass
class DecodedAudio:
    """One decoded file: mono float32 `samples` in [-1, 1] at its own `rate`, how many `channels`
    were downmixed, its container `format` ("wav", "flac", "ogg") and `subtype` ("PCM_16",
    "PCM_24", "FLOAT", "VORBIS"...)."""

    samples: np.ndarray
    rate: int
    channels: int
    format: str
    subtype: str


def read_audio(source, name=None) -> DecodedAudio:
    """Decodes an audio file with `soundfile`: WAV of any PCM width (8/16/24/32-bit) or float,
    FLAC, OGG; the channels are averaged (downmixed to mono).

    Args:
        source: a path, or the file's bytes.
        name: what error messages call it (default: the path).

    Raises:
        DataError naming the file: missing, empty, undecodable, holding no samples, or declaring a
        rate outside [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] (checked before the samples are read).
    """
    import soundfile as sf

    name = source if name is None and isinstance(source, (str, os.PathLike)) else name
    if isinstance(source, (str, os.PathLike)):
        if not Path(source).is_file():
            raise DataError(f"{name}: no such file.")
        contents = Path(source).read_bytes()
    else:
        contents = bytes(source)
    if not contents:
        raise DataError(f"{name}: not a readable audio file (empty file).")
    def check_rate(rate, fmt):
        if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise DataError(f"{name}: the {fmt} file declares a sample rate of {rate} Hz; accepted: "
                            f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz.")

    declared = wav_sample_rate(contents)  # libsndfile refuses some (0 Hz) without saying why
    if declared is not None:
        check_rate(declared, "WAV")
    try:
        with sf.SoundFile(io.BytesIO(contents)) as f:
            fmt, subtype, rate = f.format.lower(), f.subtype, f.samplerate
            # Checked before the samples are read: resampling's cost grows with the declared rate.
            audio = f.read(dtype="float32", always_2d=True) if MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE else None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        reason = (getattr(e, "error_string", None) or str(e) or type(e).__name__).splitlines()[0][:200]
        raise DataError(f"{name}: not a readable audio file (WAV, FLAC, OGG or MP3; {reason}).") from None
    if audio is None:
        check_rate(rate, fmt.upper())
    if not len(audio):
        raise DataError(f"{name}: the {fmt.upper()} file holds no audio samples.")
    mono = audio[:, 0] if audio.shape[1] == 1 else audio.mean(axis=1, dtype=np.float32)
    return DecodedAudio(np.ascontiguousarray(mono), int(rate), int(audio.shape[1]), fmt, subtype)


def resample_numpy(x, rate_in: int, rate_out: int, *, length=None, zero_crossings=16, kaiser_beta=8.6) -> np.ndarray:
    """`resample` in NumPy, for clips loaded for training: the same filters and the same output
    (within float32 rounding, about 1e-6), 10-40x faster on a CPU than the graph op run eagerly,
    which loading thousands of clips calls once a clip. Serving keeps the graph op.

    Args:
        x: float32 `[n]`; the other arguments as `resample`'s (plain ints).
    """
    x = np.asarray(x, dtype=np.float32)
    for rate in (rate_in, rate_out):
        if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise ValueError(f"resample_numpy: the sample rate is {rate} Hz; expected {MIN_SAMPLE_RATE} to "
                             f"{MAX_SAMPLE_RATE} Hz.")
    g = math.gcd(int(rate_in), int(rate_out))
    up, down = rate_out // g, rate_in // g
    n = len(x)
    ratio = rate_out / rate_in
    m = int(np.round(n * ratio))
    first, count = 0, m
    if length is not None:
        first, count = max(m - length, 0) // 2, min(m, length)
    if count <= 0 or n == 0:
        return np.zeros(0 if count <= 0 else count, np.float32)
    cutoff = min(ratio, 1.0)
    half = int(math.ceil(zero_crossings / cutoff))
    k = np.arange(-half + 1, half + 1, dtype=np.int64)
    phases = min(up, count)
    j = first + np.arange(phases, dtype=np.int64)
    frac = (j * down % up).astype(np.float64) / up
    arg = ((frac[:, None] - k[None, :]) * cutoff).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        sinc = np.where(np.abs(arg) < 1e-6, np.float32(1), np.sin(np.float32(math.pi) * arg) / (np.float32(math.pi) * arg))
    u = arg / np.float32(zero_crossings)
    window = np.where(np.abs(u) <= 1, np.i0(kaiser_beta * np.sqrt(np.maximum(1 - u.astype(np.float64) ** 2, 0)))
                      / np.i0(kaiser_beta), 0).astype(np.float32)
    bank = (np.float32(cutoff) * sinc * window).astype(np.float32)
    out = np.empty(count, np.float32)
    block = max(_BLOCK_ELEMENTS // (2 * half), 1)
    for start in range(0, count, block):  # bounded memory, as `resample`
        j = first + np.arange(start, min(start + block, count), dtype=np.int64)
        idx = (j * down // up)[:, None] + k[None, :]
        taps = np.where((idx >= 0) & (idx < n), x[np.clip(idx, 0, n - 1)], np.float32(0))
        out[start:start + len(j)] = np.einsum("ij,ij->i", taps, bank[np.minimum((j - first) % up, phases - 1)])
    return out


def fit_clip(samples, rate: int, *, sample_rate: int, num_samples: int) -> np.ndarray:
    """A mono clip at `rate` -> float32 `[num_samples]` at `sample_rate`: resampled as `resample`
    does (`resample_numpy`; only the centred `num_samples` computed) and padded or trimmed centred, as
    `load_waveform` does in the graph."""
    x = np.asarray(samples, dtype=np.float32)
    if rate != sample_rate:
        x = resample_numpy(x, rate, sample_rate, length=num_samples)
    start = max(len(x) - num_samples, 0) // 2  # the centring of `fix_length`
    x = x[start:start + num_samples]
    missing = num_samples - len(x)
    return np.pad(x, (missing // 2, missing - missing // 2)) if missing else x


def resampled_length(n: int, rate_in: int, rate_out: int) -> int:
    """How many samples `resample` makes of `n` (before any centring to a length)."""
    return n if rate_in == rate_out else int(round(n * rate_out / rate_in))


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


def serving_endpoints(model, *, sample_rate: int, num_samples: int, class_names=None):
    """The arguments of `zoo.export.export_saved_model` for a waveform classifier.

    `serve` (and `serving_default`) takes `float32[None, num_samples]` waveforms at
    `sample_rate`; `serve_wav` takes `string[None]` WAV file contents at any rate from
    MIN_SAMPLE_RATE to MAX_SAMPLE_RATE (another is an `InvalidArgumentError`), mono or
    multi-channel, of any length, and decodes, downmixes, resamples and pads/trims them in the
    graph. Both return `float32[None, num_classes]` label probabilities: the one output, or with
    `class_names` the named outputs `probabilities` and `label` (`string[None]`, the most
    probable class name).

    Args:
        model: the Keras model, waveforms -> logits.
        sample_rate, num_samples: what the model takes.
        class_names: the name of each class, in label order; None for the single output.
    """
    import keras

    def serve(waveforms):
        probabilities = keras.ops.softmax(model(waveforms, training=False))
        if class_names is None:
            return probabilities
        names = tf.constant([str(c) for c in class_names])
        return {"probabilities": probabilities, "label": tf.gather(names, tf.argmax(probabilities, axis=-1))}

    def serve_wav(wav_bytes):
        waveforms = tf.map_fn(lambda c: load_waveform(c, sample_rate=sample_rate, num_samples=num_samples),
                              wav_bytes, fn_output_signature=tf.TensorSpec([num_samples], tf.float32))
        return serve(waveforms)

    return dict(
        input_signature=[tf.TensorSpec([None, num_samples], tf.float32, name="waveforms")],
        serve_fn=serve,
        extra_signatures={"serve_wav": (serve_wav, [tf.TensorSpec([None], tf.string, name="wav_bytes")])},
    )


def serving_metadata(*, sample_rate: int, num_samples: int, num_classes: int, class_names=None) -> dict:
    """The model-card fields that describe `serving_endpoints`' signatures, in the schema of
    every card (`zoo.export.tensor`): `probabilities` and `label` out when `class_names` is given
    (as `serving_endpoints` then returns them), else the single unnamed probabilities."""
    from zoo.export import classifier_outputs, tensor

    outputs = classifier_outputs(num_classes) if class_names is not None else {
        "output_0": tensor("float32", [None, num_classes], "label probabilities")}
    waveforms = {"inputs": {"waveforms": tensor("float32", [None, num_samples],
                                                f"mono waveforms at {sample_rate} Hz in [-1, 1]")}, "outputs": outputs}
    wav = {"inputs": {"wav_bytes": tensor("string", [None], "contents of 16-bit PCM WAV files, any channel count and "
                                          f"any rate from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz; downmixed, "
                                          f"resampled to {sample_rate} Hz and padded or trimmed (centred) to "
                                          f"{num_samples} samples in the graph")}, "outputs": outputs}
    return {"sample_rate": sample_rate, "num_samples": num_samples,
            "signatures": {"serve": waveforms, "serving_default": waveforms, "serve_wav": wav}}
