"""Image files in TensorFlow: the size a header declares, read before decoding, and the cap on it.

A PNG header can declare 100000x100000 pixels in a 100-byte file, and decoding allocates what the
header declares (30 GB there; a real 4000x4000 photo already takes about 1 GB through
`zoo.pretrained.read_image`). Both the predictor's reader and the image-folder loader read the
header first (`image_header_size`) and decode only files within `MAX_IMAGE_PIXELS`.
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
