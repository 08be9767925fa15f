"""`tf.data` input pipelines. Augmentation runs in-graph on whole batches (vectorized), which
keeps the pipeline well ahead of training on a 2-core CPU (see bench/throughput.py)."""

from __future__ import annotations

import tensorflow as tf


def normalize_images(images, mean, std):
    """uint8 images -> float32 (x / 255 - mean) / std; `mean` and `std` are scalars or per channel."""
    x = tf.cast(images, tf.float32) / 255.0
    return (x - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def augment_images(images, *, crop_padding=4, flip=True, cutout=0, seed=None):
    """Random crop with zero padding, horizontal flip and cutout on a batch of NHWC images.

    Args:
        images: a batch `[B, H, W, C]` of any dtype.
        crop_padding: pixels of zero padding on each side before a random crop back to H x W.
        flip: flip each image left-right with probability 1/2.
        cutout: side of a square zeroed at a random position (0 turns it off).
        seed: an op-level seed for deterministic runs.
    """
    shape = tf.shape(images)
    b, h, w = shape[0], shape[1], shape[2]
    rng = tf.random.Generator.from_seed(seed) if seed is not None else None

    def uniform(maxval):
        if rng is not None:
            return rng.uniform([b], 0, maxval, dtype=tf.int32)
        return tf.random.uniform([b], 0, maxval, dtype=tf.int32)

    if crop_padding:
        p = crop_padding
        padded = tf.pad(images, [[0, 0], [p, p], [p, p], [0, 0]])
        rows = uniform(2 * p + 1)[:, None] + tf.range(h)[None, :]
        cols = uniform(2 * p + 1)[:, None] + tf.range(w)[None, :]
        images = tf.gather(padded, rows, axis=1, batch_dims=1)
        images = tf.gather(images, cols, axis=2, batch_dims=1)
    if flip:
        coin = tf.equal(uniform(2), 1)[:, None, None, None]
        images = tf.where(coin, tf.reverse(images, axis=[2]), images)
    if cutout:
        # A cutout x cutout square centred at a random pixel (clipped at the borders).
        top = uniform(h)[:, None, None] - cutout // 2
        left = uniform(w)[:, None, None] - cutout // 2
        yy = tf.range(h)[None, :, None]
        xx = tf.range(w)[None, None, :]
        inside = (yy >= top) & (yy < top + cutout) & (xx >= left) & (xx < left + cutout)
        images = tf.where(inside[..., None], tf.zeros_like(images), images)
    return images


def image_dataset(
    images,
    labels,
    *,
    batch_size,
    training,
    mean=0.5,
    std=0.5,
    crop_padding=4,
    flip=True,
    cutout=0,
    seed=None,
    deterministic=False,
    drop_remainder=False,
):
    """Builds the pipeline: slices -> cache -> shuffle -> batch -> augment -> normalize -> prefetch.

    Args:
        images: uint8 `[N, H, W, C]` array.
        labels: int `[N]` array.
        batch_size: global batch size.
        training: shuffle and augment when True; evaluation pipelines are neither.
        mean, std: normalization constants (scalars or per channel, in [0, 1] units).
        crop_padding, flip, cutout: augmentation, see `augment_images`.
        seed: seeds shuffling and augmentation.
        deterministic: fix the element order of training pipelines (slower, reproducible);
            evaluation pipelines always keep the order of `images`.
    """
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).cache()
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=tf.data.AUTOTUNE)

    def prepare(x, y):
        if training:
            x = augment_images(x, crop_padding=crop_padding, flip=flip, cutout=cutout, seed=None)
        return normalize_images(x, mean, std), y

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Evaluation pipelines keep their order: predictions are matched to labels by position.
    options.deterministic = deterministic or not training
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def audio_dataset(
    waveforms,
    labels,
    *,
    batch_size,
    training,
    time_shift=0,
    noise=None,
    noise_prob=0.0,
    noise_volume=0.0,
    seed=None,
    deterministic=False,
):
    """Builds a waveform pipeline: slices -> cache -> shuffle -> batch -> augment -> prefetch.

    The model computes its own spectrogram (and SpecAugment), so this yields raw waveforms.

    Args:
        waveforms: float32 `[N, samples]` array in [-1, 1].
        labels: int `[N]` array.
        batch_size: global batch size.
        training: shuffle and augment when True; evaluation pipelines are neither.
        time_shift: shift each training clip by up to +-this many samples (zero fill).
        noise: float32 `[K, samples]` background-noise clips to mix in, or None.
        noise_prob, noise_volume: mix a noise clip into a training clip with this probability,
            scaled by a uniform gain in [0, noise_volume] (see `zoo.audio.mix_noise`).
        seed: seeds shuffling.
        deterministic: fix the element order of training pipelines (evaluation keeps it always).
    """
    from zoo.audio import mix_noise, time_shift as shift

    ds = tf.data.Dataset.from_tensor_slices((waveforms, labels)).cache()
    if training:
        ds = ds.shuffle(len(waveforms), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, num_parallel_calls=tf.data.AUTOTUNE)
    if training and (time_shift or (noise is not None and noise_prob > 0 and noise_volume > 0)):
        noise = None if noise is None else tf.constant(noise, tf.float32)

        def augment(x, y):
            x = shift(x, time_shift)
            return mix_noise(x, noise, prob=noise_prob, volume=noise_volume), y

        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic or not training
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def bucketed_batches(lengths, boundaries, batch_size) -> int:
    """How many batches `Dataset.bucket_by_sequence_length(..., boundaries, [batch_size] * ...)`
    makes of sequences of `lengths`: each bucket emits its full batches and then its remainder,
    in any order. Set it with `assert_cardinality` and Keras knows an epoch's steps (no "input ran
    out of data" warning after the first epoch)."""
    import numpy as np

    per_bucket = np.bincount(np.searchsorted(boundaries, lengths, side="right"), minlength=len(boundaries) + 1)
    return int(np.sum(-(-per_bucket // batch_size)))


def text_dataset(
    token_ids,
    labels,
    *,
    batch_size,
    training,
    bucket_width=0,
    max_length=None,
    seed=None,
    deterministic=False,
):
    """Builds a token-id pipeline: ragged slices -> cache -> shuffle -> batch -> prefetch.

    Training batches can group sequences of similar length (`tf.data` bucketing), padded only to
    the longest in the batch, instead of padding everything to `max_length`.

    Args:
        token_ids: a list of int arrays `[tokens]` or `[tokens, features]` (see
            `zoo.text.Tokenizer.tokenize_all`), each at least one token long.
        labels: int `[N]` array.
        batch_size: global batch size.
        training: shuffle (and bucket, if asked) when True; evaluation pipelines keep the order of
            `token_ids` and pad each batch to its longest sequence.
        bucket_width: training batches come from buckets of lengths this wide (0: no bucketing).
        max_length: without bucketing, pad training batches to this length (None: the longest in
            the batch); with bucketing, the upper end of the last bucket.
        seed: seeds shuffling.
        deterministic: fix the element order of training pipelines (evaluation keeps it always).
    """
    import numpy as np

    lengths = np.array([len(t) for t in token_ids], dtype="int64")
    flat = np.concatenate(token_ids).astype("int32") if len(token_ids) else np.zeros([0], "int32")
    features = list(flat.shape[1:])  # [2] for (word, bigram) ids
    ragged = tf.RaggedTensor.from_row_lengths(flat, lengths)
    ds = tf.data.Dataset.from_tensor_slices((ragged, np.asarray(labels)))
    # Rows of a ragged tensor slice into 1-D ragged tensors of ragged rank 0: make them dense.
    ds = ds.map(lambda x, y: (x.to_tensor() if isinstance(x, tf.RaggedTensor) else x, y)).cache()
    if training:
        ds = ds.shuffle(len(token_ids), seed=seed, reshuffle_each_iteration=True)
    if training and bucket_width:
        longest = int(max_length or lengths.max())
        boundaries = list(range(bucket_width + 1, longest + 1, bucket_width))
        ds = ds.bucket_by_sequence_length(
            lambda x, y: tf.shape(x)[0], bucket_boundaries=boundaries,
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1))
        ds = ds.apply(tf.data.experimental.assert_cardinality(bucketed_batches(lengths, boundaries, batch_size)))
    else:
        ds = ds.padded_batch(batch_size, padded_shapes=([max_length if training else None, *features], []))
    options = tf.data.Options()
    options.deterministic = deterministic or not training
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
