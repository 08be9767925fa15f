"""Writes CIFAR-10 (read by the registry from --data-dir / ZOO_DATA_DIR) as Keras image folders,
`OUT/train/<class>/*.png` and `OUT/test/<class>/*.png`: the layout a user's own photos come in,
for comparing `tasks.vision.classify --data OUT` with `tasks.vision.cifar10` on the same images.

    python bench/write_image_folders.py /tmp/cifar10_folders [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None):
    import tensorflow as tf

    from zoo.data.images import load_cifar10

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    data = load_cifar10(args.data_dir)
    out = Path(args.out)
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        for name in data.class_names:
            (out / split / name).mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(x, y)):
            tf.io.write_file(str(out / split / data.class_names[label] / f"{i:05d}.png"), tf.io.encode_png(image))
        print(f"{split}: {len(x)} images")


if __name__ == "__main__":
    main()
