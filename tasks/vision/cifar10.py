"""CIFAR-10 image classification.

Trains a convolutional network on CIFAR-10 (50,000 training and 10,000 test images, 32x32 RGB,
10 classes), evaluates it on the test set and exports a SavedModel that takes raw
`uint8[None, 32, 32, 3]` images and returns class probabilities.

    python -m tasks.vision.cifar10                    # the `default` preset
    python -m tasks.vision.cifar10 --preset fast      # CPU time-to-accuracy
    python -m tasks.vision.cifar10 --preset seed      # the article's recipe, the baseline
    python -m tasks.vision.cifar10 --model resnet --model-arg depth=56 --epochs 30
    python -m tuning.search vision.cifar10 --preset fast --tuner hyperband   # search around `fast`

Offline, `--data-dir DIR` or `ZOO_DATA_DIR` points at `cifar-10-batches-bin/`,
`cifar-10-batches-py/` or `train/<class>/` + `test/<class>/` image folders; otherwise TFDS
downloads the data. Killing a run and starting the same command again resumes it.

Results on the CIFAR-10 JPEG mirror's test set, with the commands that produced them, are in
the README.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

import numpy as np

from zoo.config import TrainConfig, option, parse_config
from zoo.data import subset_indices
from zoo.data.images import load_cifar10, train_val_split
from zoo.errors import ZooError
from zoo.registry import build_model, list_models
from zoo.train import Experiment, compile_classifier, export_metadata, finish_run, setup_run, train

TASK = "vision.cifar10"
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


@dataclass
class Config(TrainConfig):
    model: str = option("airbench", "registered vision model (see zoo.list_models('vision'))")
    model_kwargs: dict = option({}, "builder argument, repeatable: --model-arg depth=56 --model-arg width=32")
    mean: typing.Any = option(CIFAR10_MEAN, "normalization mean, a scalar or per channel, in [0, 1] units",
                               ge=0, le=1)
    std: typing.Any = option(CIFAR10_STD, "normalization std, a scalar or per channel", gt=0)
    crop_padding: int = option(4, "random crop with this much zero padding (0 turns it off)", ge=0)
    flip: bool = option(True, "random horizontal flips")
    cutout: int = option(0, "cutout square size (0 turns it off)", ge=0)
    tta: bool = option(False, "evaluate and export with horizontal-flip test-time augmentation")
    tta_shift: int = option(0, "with --tta, also average the views shifted diagonally by this many pixels (0: off)",
                            (0, 1, 2, 3, 4))
    whiten: bool = option(False, "initialize the model's patch stem to whiten training patches, frozen (airbench)")


PRESETS = {
    # The article's recipe, exactly: the baseline every other preset has to beat.
    "seed": dict(model="seed_cnn", optimizer="momentum", learning_rate=0.001, momentum=0.9, schedule="step",
                 step_epochs=7, step_factor=0.7, batch_size=128, epochs=9, crop_padding=4, flip=True,
                 mean=0.5, std=0.5, precision="float32"),
    # Time-to-accuracy on a 2-core CPU: airbench-style network in bfloat16 (AMX) with a whitened,
    # frozen patch stem, a 20-epoch one-cycle run with label smoothing, trained on all 50,000
    # images (the recipe was fixed on a 10% validation split beforehand), evaluated with flip and
    # 1-pixel shift TTA (airbench's level 2). lr 0.4 won a GPU sweep of this preset (bench/README.md).
    "fast": dict(model="airbench", whiten=True, optimizer="nesterov", learning_rate=0.4, momentum=0.9,
                 weight_decay=5e-3, schedule="onecycle", pct_start=0.25, label_smoothing=0.2, batch_size=256,
                 epochs=20, crop_padding=2, flip=True, tta=True, tta_shift=1, validation_split=0.0,
                 precision="mixed_bfloat16"),
    # Best accuracy: a wider airbench, unscaled logits, 60 epochs with cutout; chosen by a GPU
    # sweep (bench/README.md); flip + 1-pixel shift TTA, chosen on validation (bench/tta_views.py).
    # 2 min on one H200; hours on the 2-core CPU in float32 (bench/throughput.py: 111 images/s).
    "default": dict(model="airbench", model_kwargs={"widths": (128, 384, 384), "logit_scale": 1.0},
                    optimizer="nesterov", learning_rate=0.2, momentum=0.9, weight_decay=5e-3, schedule="onecycle",
                    pct_start=0.2, label_smoothing=0.2, batch_size=256, epochs=60, crop_padding=4, flip=True,
                    cutout=16, tta=True, tta_shift=1, validation_split=0.1),
}


def load_data(cfg):
    """CIFAR-10 from `cfg.data_dir` (else ZOO_DATA_DIR, else TFDS)."""
    return load_cifar10(cfg.data_dir)


def make_datasets(cfg, data):
    """Train/validation split of the training set and the three pipelines."""
    from zoo.pipeline import image_dataset

    (x_train, y_train), (x_val, y_val) = train_val_split(data.x_train, data.y_train, cfg.validation_split, cfg.seed)
    if cfg.subset:
        keep = subset_indices(y_train, cfg.subset, cfg.seed)
        x_train, y_train = x_train[keep], y_train[keep]
    common = dict(batch_size=cfg.batch_size, mean=cfg.mean, std=cfg.std, seed=cfg.seed, deterministic=cfg.deterministic)
    train = image_dataset(x_train, y_train, training=True, crop_padding=cfg.crop_padding, flip=cfg.flip,
                          cutout=cfg.cutout, **common)
    val = image_dataset(x_val, y_val, training=False, **common) if len(x_val) else None
    test = image_dataset(data.x_test, data.y_test, training=False, **common)
    return train, val, test, (x_train, y_val)


def make_model(cfg, run, data, x_train):
    """The model of `cfg`, its stem whitened on `x_train` if `cfg.whiten`, compiled."""
    from zoo.models.vision import init_patch_whitening
    from zoo.pipeline import normalize_images

    with run.strategy.scope():
        model = build_model(cfg.model, num_classes=len(data.class_names), input_shape=data.x_train.shape[1:],
                            **cfg.model_kwargs)
        if cfg.whiten:
            init_patch_whitening(model, normalize_images(x_train[:5000], cfg.mean, cfg.std).numpy())
        compile_classifier(model, cfg, run, steps_per_epoch=int(np.ceil(len(x_train) / cfg.batch_size)))
    return model


def tta_description(cfg):
    """The test-time augmentation of `cfg` in words (None without --tta)."""
    if not cfg.tta:
        return None
    return "horizontal flip" + (f" and {cfg.tta_shift}-pixel diagonal shift" if cfg.tta_shift else "")


def main(argv=None) -> dict:
    """Trains, evaluates and exports; returns the metrics written to `metrics.json`."""
    import keras
    import tensorflow as tf

    from zoo.evaluate import evaluate_classifier, write_classification_report
    from zoo.export import export_saved_model
    from zoo.models.vision import with_flip_tta
    from zoo.pipeline import normalize_images

    cfg = parse_config(Config, PRESETS, argv, prog="python -m tasks.vision.cifar10", description=__doc__.split("\n")[0])
    if cfg.model not in list_models("vision"):
        raise ZooError(f"Unknown vision model {cfg.model!r}. Known: {', '.join(list_models('vision'))}.")
    run = setup_run(cfg, TASK, argv)
    if run.finished is not None:
        return run.finished

    # Data
    data = load_data(cfg)
    train_ds, val_ds, test_ds, (x_train, y_val) = make_datasets(cfg, data)
    print(f"Data: {data.source}; {len(x_train)} train, {len(y_val)} validation, {len(data.y_test)} test images.")

    # Model
    model = make_model(cfg, run, data, x_train)

    # Train
    history, metrics = train(model, train_ds, val_ds, cfg, run, task=TASK, dataset=data.source)

    # Evaluate
    classifier = with_flip_tta(model, cfg.tta_shift) if cfg.tta else model
    split_metrics, matrices = evaluate_classifier(classifier, {"val": (val_ds, y_val), "test": (test_ds, data.y_test)},
                                                  data.class_names)
    metrics.update(split_metrics)
    print(f"Test accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f}"
          f" (CIFAR-10 from {data.source}, {len(data.y_test)} images).")
    if run.chief:
        write_classification_report(run.run_dir, metrics, history, matrices["test"], data.class_names,
                                    title=f"CIFAR-10 test, accuracy {metrics['test_accuracy']:.2%}")

    # Export
    if cfg.export and run.chief:
        mean, std = cfg.mean, cfg.std

        def serve(images):
            return keras.ops.softmax(classifier(normalize_images(images, mean, std), training=False))

        path = export_saved_model(
            classifier, run.run_dir / "saved_model",
            input_signature=[tf.TensorSpec([None, *data.x_train.shape[1:]], tf.uint8, name="images")],
            serve_fn=serve, weights_dtype=cfg.export_weights,
            metadata=export_metadata(
                run, metrics, task=TASK, class_names=list(data.class_names),
                input={"name": "images", "dtype": "uint8", "shape": [None, *data.x_train.shape[1:]],
                       "range": "0-255 RGB, normalization inside the graph"},
                output={"dtype": "float32", "shape": [None, len(data.class_names)], "meaning": "class probabilities"},
                signatures=["serve", "serving_default"],
                dataset=data.source, model=cfg.model, model_kwargs=cfg.model_kwargs,
                preprocessing={"mean": mean, "std": std, "tta": tta_description(cfg)},
            ))
        print(f"SavedModel: {path}")
    return finish_run(run, metrics)


# Tuning: `python -m tuning.search vision.cifar10` searches this space with the data, pipelines
# and model above (the hooks are described in tuning/search.py).

OBJECTIVE = ("val_accuracy", "max")


def search_space(hp) -> dict:
    """Settings to search, as config overrides; the defaults are the `fast` preset's recipe."""
    model = hp.Choice("model", ["airbench", "resnet", "seed_cnn"])
    with hp.conditional_scope("model", ["airbench"]):
        width = hp.Choice("width", [32, 48, 64, 96], default=64)  # the three groups: width, 4 x width, 4 x width
    with hp.conditional_scope("model", ["resnet"]):
        depth, resnet_width = hp.Choice("depth", [20, 32, 44]), hp.Choice("resnet_width", [16, 32])
    with hp.conditional_scope("model", ["airbench", "resnet"]):
        dropout = hp.Float("dropout", 0.0, 0.3, step=0.1)
    if model == "airbench":
        model_kwargs = {"widths": (width, 4 * width, 4 * width), "dropout": dropout}
    elif model == "resnet":
        model_kwargs = {"depth": depth, "width": resnet_width, "dropout": dropout}
    else:
        model_kwargs = {}
    optimizer = hp.Choice("optimizer", ["nesterov", "adamw"])
    with hp.conditional_scope("optimizer", ["nesterov"]):
        sgd_lr = hp.Float("learning_rate", 0.05, 1.0, sampling="log", default=0.4)
    with hp.conditional_scope("optimizer", ["adamw"]):
        adam_lr = hp.Float("adam_learning_rate", 3e-4, 1e-2, sampling="log", default=2e-3)
    schedule = hp.Choice("schedule", ["onecycle", "cosine"])
    with hp.conditional_scope("schedule", ["onecycle"]):
        pct_start = hp.Float("pct_start", 0.1, 0.4, step=0.05, default=0.25)
    return dict(
        model=model, model_kwargs=model_kwargs, whiten=model == "airbench", optimizer=optimizer,
        learning_rate=sgd_lr if optimizer == "nesterov" else adam_lr,
        weight_decay=hp.Float("weight_decay", 5e-4, 2e-2, sampling="log", default=5e-3),
        schedule=schedule, **({"pct_start": pct_start} if schedule == "onecycle" else {}),
        label_smoothing=hp.Float("label_smoothing", 0.0, 0.3, step=0.1, default=0.2),
        batch_size=hp.Choice("batch_size", [128, 256, 512], default=256),
        crop_padding=hp.Int("crop_padding", 0, 4, default=2),
        cutout=hp.Choice("cutout", [0, 8, 12, 16]),
    )


def train_size(cfg, data) -> int:
    """Training images after the validation split: the ones `--subset` samples."""
    return len(train_val_split(data.y_train, data.y_train, cfg.validation_split, cfg.seed)[0][1])


def build_trial(cfg, run, data) -> Experiment:
    train_ds, val_ds, _, (x_train, _) = make_datasets(cfg, data)
    return Experiment(make_model(cfg, run, data, x_train), train_ds, val_ds)


if __name__ == "__main__":
    from zoo.cli import run as _run

    _run(main)
