"""Image files in TensorFlow: the size a header declares, read before decoding, and the cap on it.

A PNG header can declare 100000x100000 pixels in a 100-byte file, and decoding allocates what the
header declares (30 GB there; a real 4000x4000 photo already takes about 1 GB through
`zoo.pretrained.read_image`). Both the predictor's reader and the image-folder loader read the
header first (`image_header_size`) and decode only files within `MAX_IMAGE_PIXELS`.

An image of another size becomes a model's input one way everywhere (`resize_to`, `RESIZE_POLICY`):
in the data loader, in `zoo.load`'s predictor and inside the exported SavedModel (`image_serving`).
"""

from __future__ import annotations

import tensorflow as tf

from zoo.errors import DataError

# 40 megapixels: above what cameras and phones write by default (12-48 MP), far below what a
# crafted header can claim. Decoding takes 3 bytes a pixel, 120 MB at the cap.
MAX_IMAGE_PIXELS = 40_000_000
FORMATS = "PNG, JPEG, GIF or BMP"


def image_header_size(contents):
    """int64 `[height, width]` that the header of a PNG, JPEG, GIF or BMP file declares, read
    without decoding the image (in-graph: works in `tf.data` and eagerly). `[-1, -1]` if the
    bytes start like none of them. A JPEG whose header does not parse raises
    `tf.errors.InvalidArgumentError`, as decoding it would.
    """
    contents = tf.convert_to_tensor(contents, tf.string)
    # The first 32 bytes, zero-padded: every field below lies within them (JPEG's SOF lies further).
    head = tf.strings.substr(contents + b"\0" * 32, 0, 32)
    b = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)

    def uint(offset, size, big_endian=False):
        order = range(size) if big_endian else reversed(range(size))
        value = tf.constant(0, tf.int64)
        for i in order:
            value = value * 256 + b[offset + i]
        return value

    def signed32(value):
        return tf.where(value >= 2**31, value - 2**32, value)

    magic = [tf.strings.substr(head, 0, len(m)) == m for m in (b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM", b"\xff\xd8\xff")]
    png, gif, bmp, jpeg = magic
    size = tf.where(png, tf.stack([uint(20, 4, True), uint(16, 4, True)]),  # IHDR: width, height
                    tf.where(gif, tf.stack([uint(8, 2), uint(6, 2)]),  # logical screen: width, height
                             tf.where(bmp, tf.stack([tf.abs(signed32(uint(22, 4))), tf.abs(signed32(uint(18, 4)))]),
                                      tf.constant([-1, -1], tf.int64))))  # height < 0: rows stored top-down
    return tf.cond(jpeg, lambda: tf.cast(tf.io.extract_jpeg_shape(contents)[:2], tf.int64), lambda: size)


def check_image_header(contents: bytes, name) -> tuple:
    """`(height, width)` that an image file's header declares; a `DataError` naming `name` if it
    is not a PNG, JPEG, GIF or BMP file or declares more than `MAX_IMAGE_PIXELS` pixels."""
    try:
        height, width = (int(v) for v in image_header_size(contents).numpy())
    except tf.errors.InvalidArgumentError:
        height = width = -1
    if height < 0:
        raise DataError(f"{name}: not a decodable image ({FORMATS}).")
    if height * width > MAX_IMAGE_PIXELS:
        raise DataError(f"{name}: the image declares {width}x{height} pixels ({height * width:,}); "
                        f"the limit is {MAX_IMAGE_PIXELS:,} (zoo.images.MAX_IMAGE_PIXELS).")
    return height, width


def decode_image(contents):
    """A PNG, JPEG, GIF or BMP file's bytes -> uint8 `[height, width, 3]` (the first frame of a GIF),
    in-graph; decoding runs only once the header declares at most `MAX_IMAGE_PIXELS` pixels, else
    `tf.errors.InvalidArgumentError` (`check_image_header` says why, naming the file)."""
    size = image_header_size(contents)
    ok = (size[0] >= 0) & (size[0] * size[1] <= MAX_IMAGE_PIXELS)
    with tf.control_dependencies([tf.debugging.Assert(ok, ["image header: height, width", size])]):
        contents = tf.identity(contents)
    return tf.ensure_shape(tf.io.decode_image(contents, channels=3, expand_animations=False), [None, None, 3])


# --- one resize policy for training data, predictors and SavedModels ----------------------------

# Written into model cards: how an image of another size or aspect becomes the model's input.
RESIZE_POLICY = "centre crop to the target aspect ratio (the shorter side fits), then bilinear resize with antialiasing"


def resize_to(images, size):
    """Images of any size -> `size` (height, width): centre-cropped to that aspect ratio (the
    shorter side fits, the longer one is cut equally at both ends), then resized bilinearly with
    antialiasing; an image already at `size` is returned unchanged. In-graph (eager, `tf.data`
    and SavedModel signatures): the loader, the predictor and the exported graph all resize here,
    so a model sees the same pixels in training and in serving.

    Args:
        images: `[height, width, channels]` or a batch `[n, height, width, channels]` (one size
            for the whole batch), uint8 or float.
        size: the `(height, width)` to return.

    Returns:
        uint8 (rounded) for uint8 input, float32 otherwise, at `size`.
    """
    images = tf.convert_to_tensor(images)
    size = (int(size[0]), int(size[1]))
    out_dtype = tf.uint8 if images.dtype == tf.uint8 else tf.float32
    shape = tf.shape(images, out_type=tf.int64)
    h, w = shape[-3], shape[-2]

    def resized():
        # float64 and round-half-to-even, as Python's round: the crop is the same in numpy and here.
        scale = tf.minimum(tf.cast(h, tf.float64) / size[0], tf.cast(w, tf.float64) / size[1])
        ch = tf.maximum(tf.cast(tf.round(size[0] * scale), tf.int64), 1)
        cw = tf.maximum(tf.cast(tf.round(size[1] * scale), tf.int64), 1)
        top, left = (h - ch) // 2, (w - cw) // 2
        crop = images[..., top:top + ch, left:left + cw, :]
        out = tf.image.resize(crop, size, method="bilinear", antialias=True)
        if out_dtype == tf.uint8:
            out = tf.clip_by_value(tf.round(out), 0, 255)
        return tf.cast(out, out_dtype)

    same = tf.logical_and(tf.equal(h, size[0]), tf.equal(w, size[1]))
    out = tf.cond(same, lambda: tf.cast(images, out_dtype), resized)
    return tf.ensure_shape(out, [*images.shape[:-3], *size, images.shape[-1]])


# --- serving signatures ------------------------------------------------------------------------


def image_serving(classifier, *, image_size, mean, std, class_names, from_logits: bool = True) -> dict:
    """The signatures of an image classifier's SavedModel, as keyword arguments of
    `zoo.export.export_saved_model` (`input_signature`, `serve_fn`, `extra_signatures`).

    Each returns `{"probabilities": float32[n, num_classes], "label": string[n]}` (the class name
    of the most probable class):

    - `serve` (and `serving_default`): uint8 `[n, height, width, 3]` RGB images at `image_size`.
    - `serve_any_size`: uint8 `[n, h, w, 3]` of any size (one size a batch), resized in the graph
      by `resize_to`.
    - `serve_image_bytes`: string `[n]`, PNG, JPEG, GIF or BMP files, each decoded (header checked
      against `MAX_IMAGE_PIXELS` first; grayscale, palette and RGBA become RGB) and resized.

    Args:
        classifier: a Keras model from normalized float32 images `[n, height, width, 3]` to class
            scores.
        image_size: the `(height, width)` the classifier takes.
        mean, std: the normalization the classifier was trained with (`zoo.pipeline.normalize_images`).
        class_names: the label of each class, in output order.
        from_logits: the classifier returns logits (softmax applied here) rather than probabilities.
    """
    import keras

    from zoo.pipeline import normalize_images

    size = (int(image_size[0]), int(image_size[1]))
    names = [str(c) for c in class_names]

    def outputs(images):
        scores = classifier(normalize_images(images, mean, std), training=False)
        probabilities = tf.cast(keras.ops.softmax(scores) if from_logits else scores, tf.float32)
        return {"probabilities": probabilities, "label": tf.gather(tf.constant(names), tf.argmax(probabilities, -1))}

    def serve(images):
        return outputs(images)

    def serve_any_size(images):
        return outputs(resize_to(images, size))

    def serve_image_bytes(files):
        images = tf.map_fn(lambda contents: resize_to(decode_image(contents), size), files,
                           fn_output_signature=tf.TensorSpec([*size, 3], tf.uint8))
        return outputs(images)

    return {
        "input_signature": [tf.TensorSpec([None, *size, 3], tf.uint8, name="images")],
        "serve_fn": serve,
        "extra_signatures": {
            "serve_any_size": (serve_any_size, [tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")]),
            "serve_image_bytes": (serve_image_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")]),
        },
    }


def image_serving_metadata(*, image_size, mean, std, class_names) -> dict:
    """What a model card says about the signatures of `image_serving` and how to feed them:
    `{"signatures": {name: {"inputs", "outputs"}}, "preprocessing": {...}}`.

    Args:
        image_size, mean, std, class_names: as given to `image_serving`.
    """
    from zoo.export import classifier_outputs, tensor

    h, w = (int(v) for v in image_size)
    outputs = classifier_outputs(len(class_names))
    images = "RGB, 0-255; normalization inside the graph"
    signatures = {
        "serve": {"inputs": {"images": tensor("uint8", [None, h, w, 3], images)}, "outputs": outputs},
        "serve_any_size": {"inputs": {"images": tensor("uint8", [None, None, None, 3],
                                                       f"{images}; any size (one a batch), resized to {h}x{w}")},
                           "outputs": outputs},
        "serve_image_bytes": {"inputs": {"image_bytes": tensor("string", [None],
                                                               f"{FORMATS} files, decoded and resized to {h}x{w}")},
                              "outputs": outputs},
    }
    signatures["serving_default"] = signatures["serve"]
    return {"signatures": signatures,
            "preprocessing": {"image_size": [h, w], "resize": RESIZE_POLICY, "mean": mean, "std": std,
                              "color": "RGB (grayscale, palette and RGBA converted)"}}
