"""Image classification on your own images.

Trains an image classifier on any folder of class folders (`photos/<class>/*.jpg`, any sizes and
formats; with or without `train/` and `test/`), a registered dataset or `tfds:NAME`, evaluates it
on the test split and exports a SavedModel that takes uint8 RGB images at the model's size
(`serve`) or at any size (`serve_any_size`, resized inside the graph) and returns class
probabilities and labels.

    python -m tasks.vision.classify --data photos/                      # 64x64 unless the photos share a size
    python -m tasks.vision.classify --data photos/ --image-size 96 --epochs 60
    python -m tasks.vision.classify --data tfds:oxford_flowers102       # online
    python -m tasks.vision.classify --data cifar10 --preset fast        # the same as tasks.vision.cifar10
    python -m tasks.vision.classify --data photos/ --init-from cifar10  # fine-tune the cifar10 entry (new head)
    python -m tasks.vision.classify --data photos/ --init-from cifar10 --freeze backbone --head-epochs 5
    python -m zoo.publish runs/vision.classify-default my_photos        # then zoo.load("my_photos")

Images are resized to `--image-size` (shorter side fit, then centre crop: the aspect is kept, the
long side's borders are cut); grayscale, palette and RGBA images become RGB. Without a `test/`
folder, `--test-split` of each class is held out for testing and `--validation-split` for
validation, stratified and the same on every run with the same `--seed`. The normalization is the
training images' mean and std unless `--mean`/`--std` say otherwise. Killing a run and starting
the same command again resumes it. With `--init-from ENTRY` the run starts from a pretrained
entry: its architecture, weights, image size (unless `--image-size`) and normalization.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.vision.cifar10 import PRESETS as CIFAR10_PRESETS
from zoo.recipes.image import IMAGE, ImageConfig

TASK = "vision.classify"
RECIPE = IMAGE


@dataclass
class Config(ImageConfig):
    pass


# `default` is for a folder of a few hundred to a few thousand photos: the airbench network,
# SGD with Nesterov momentum at a batch of 64, a one-cycle schedule long enough for small data,
# label smoothing and flip test-time augmentation. No whitened stem (CIFAR-10's `fast` has one):
# on 120 generated photos of three colours it left the network's inference-mode outputs the same
# for every image (33% of 12 test photos after 40 epochs; 100% without it after 20). `fast` and
# `seed` are CIFAR-10's (tasks.vision.cifar10), for data of that size.
PRESETS = {
    "default": dict(model="airbench", optimizer="nesterov", learning_rate=0.1, momentum=0.9, weight_decay=5e-3,
                    schedule="onecycle", pct_start=0.25, label_smoothing=0.2, batch_size=64, epochs=40, flip=True,
                    tta=True),
    "fast": CIFAR10_PRESETS["fast"],
    "seed": CIFAR10_PRESETS["seed"],
}


def main(argv=None) -> dict:
    """Trains, evaluates and exports; returns the metrics written to `metrics.json`."""
    return IMAGE.main(argv, Config, PRESETS, task=TASK, doc=__doc__)


# Tuning: `python -m tuning.search vision.classify --data photos/` (hooks: tuning/search.py).
OBJECTIVE = ("val_accuracy", "max")
load_data, train_size, build_trial, search_space = IMAGE.tuning_hooks()


if __name__ == "__main__":
    from zoo.cli import run as _run

    _run(main)
