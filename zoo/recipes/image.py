"""The image classification recipe: uint8 RGB images of one size in memory, augmented in tf.data
(random crop with padding, flips, cutout), normalized in the model's graph, exported as a
SavedModel that takes images at the model's size (`serve`) or at any size (`serve_any_size`,
resized inside the graph the way the training images were: shorter side fit, centre crop).

Datasets: any registered image dataset (`python -m zoo.models` lists them), a folder of class
folders at any sizes, or `tfds:NAME`. Tasks: `tasks.vision.classify` (any data) and
`tasks.vision.cifar10` (CIFAR-10 and its tuned presets).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

import numpy as np

from zoo.config import FineTuneOptions, TrainConfig, option
from zoo.data import subset_indices
from zoo.recipes import Recipe, register_recipe

ImageSize = typing.Any  # None, an int (square) or (height, width)


@dataclass
class ImageConfig(FineTuneOptions, TrainConfig):
    """What the image recipe takes: the data, the model, augmentation and test-time augmentation."""

    data: typing.Optional[str] = option(None, "the dataset: a registered name (python -m zoo.models), a folder of class "
                                              "folders (<class>/*.jpg, with or without train/ and test/), or tfds:NAME")
    image_size: ImageSize = option(None, "images are resized to this (an int or (height, width)), shorter side fit "
                                         "then centre crop (default: the data's own size if uniform, else 64)", ge=8,
                                   le=1024)
    test_split: float = option(0.1, "fraction held out for testing when the data has no test split", ge=0, lt=1)
    validation_split: float = option(0.1, "fraction of the training set held out for validation", ge=0, lt=1)
    model: str = option("airbench", "registered vision model (see python -m zoo.models)")
    model_kwargs: dict = option({}, "builder argument, repeatable: --model-arg depth=56 --model-arg width=32")
    mean: typing.Any = option(None, "normalization mean, a scalar or per channel, in [0, 1] units (default: the "
                                    "training images' own)", ge=0, le=1)
    std: typing.Any = option(None, "normalization std, a scalar or per channel (default: the training images' own)",
                             gt=0)
    crop_padding: typing.Optional[int] = option(None, "random crop with this much zero padding (0 turns it off; "
                                                      "default: an eighth of the image's shorter side)", ge=0)
    flip: bool = option(True, "random horizontal flips")
    cutout: int = option(0, "cutout square size (0 turns it off)", ge=0)
    tta: bool = option(False, "evaluate and export with horizontal-flip test-time augmentation")
    tta_shift: int = option(0, "with --tta, also average the views shifted diagonally by this many pixels (0: off)",
                            (0, 1, 2, 3, 4))
    whiten: bool = option(False, "initialize the model's patch stem to whiten training patches, frozen (airbench)")

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.image_size, (list, tuple)) and len(self.image_size) != 2:
            from zoo.errors import ZooError

            raise ZooError(f"--image-size must be one int or (height, width). Received: --image-size {self.image_size}")


def image_size_of(data) -> tuple:
    return tuple(int(d) for d in data.train.x.shape[1:3])


def normalization(cfg, data) -> tuple:
    """The mean and std of `cfg`, or the training images' own per channel (in [0, 1] units)."""
    if cfg.mean is not None and cfg.std is not None:
        return cfg.mean, cfg.std
    x = data.train.x[np.random.default_rng(0).permutation(len(data.train))[:5000]].astype(np.float32) / 255
    mean = tuple(round(float(m), 4) for m in x.mean(axis=(0, 1, 2)))
    std = tuple(round(max(float(s), 1e-3), 4) for s in x.std(axis=(0, 1, 2)))
    return (cfg.mean if cfg.mean is not None else mean), (cfg.std if cfg.std is not None else std)


def crop_padding_of(cfg, data) -> int:
    return cfg.crop_padding if cfg.crop_padding is not None else max(1, min(image_size_of(data)) // 8)


def tta_description(cfg):
    """The test-time augmentation of `cfg` in words (None without --tta)."""
    if not cfg.tta:
        return None
    return "horizontal flip" + (f" and {cfg.tta_shift}-pixel diagonal shift" if cfg.tta_shift else "")


class ImageRecipe(Recipe):
    kind = "image"
    family = "vision"
    noun = "images"
    predictor = "image_classifier"
    reserved = ("num_classes", "input_shape")
    reserved_hint = " (use --image-size)"

    def datasets(self, cfg, data):
        from zoo.pipeline import image_dataset

        train = data.train
        if cfg.subset:
            train = train.take(subset_indices(train.labels, cfg.subset, cfg.seed))
        mean, std = normalization(cfg, data)
        common = dict(batch_size=cfg.batch_size, mean=mean, std=std, seed=cfg.seed, deterministic=cfg.deterministic)
        out = {"train": image_dataset(train.x, train.labels, training=True, crop_padding=crop_padding_of(cfg, data),
                                      flip=cfg.flip, cutout=cfg.cutout, **common),
               "val": (image_dataset(data.validation.x, data.validation.labels, training=False, **common),
                       data.validation.labels) if len(data.validation) else None,
               "test": (image_dataset(data.test.x, data.test.labels, training=False, **common), data.test.labels),
               "train_images": train.x}
        return out, len(train)

    def build(self, cfg, data):
        from zoo.registry import build_model

        return build_model(cfg.model, num_classes=len(data.class_names), input_shape=(*image_size_of(data), 3),
                           **cfg.model_kwargs)

    def prepare_model(self, cfg, model, data, datasets):
        if cfg.whiten and not any(layer.name == "stem_conv" for layer in model.layers):
            # A preset's whitening is for airbench's patch stem; another --model trains without it.
            print(f"--whiten: {cfg.model} has no patch stem (stem_conv) to whiten; trained without.")
        elif cfg.whiten:
            from zoo.models.vision import init_patch_whitening
            from zoo.pipeline import normalize_images

            mean, std = normalization(cfg, data)
            # A random sample: the first images of a folder dataset are all of its first classes.
            images = datasets["train_images"]
            sample = np.sort(np.random.default_rng(cfg.seed).permutation(len(images))[:5000])
            init_patch_whitening(model, normalize_images(images[sample], mean, std).numpy())

    def classifier(self, cfg, model):
        from zoo.models.vision import with_flip_tta

        return with_flip_tta(model, cfg.tta_shift) if cfg.tta else model

    def describe(self, cfg, data, n_train):
        h, w = image_size_of(data)
        return super().describe(cfg, data, n_train)[:-1] + f", {h}x{w}."

    def serving(self, cfg, model, classifier, data):
        from zoo.images import image_serving

        mean, std = normalization(cfg, data)
        return image_serving(classifier, image_size=image_size_of(data), mean=mean, std=std,
                             class_names=list(data.class_names))

    def card(self, cfg, data):
        from zoo.images import image_serving_metadata

        mean, std = normalization(cfg, data)
        meta = image_serving_metadata(image_size=image_size_of(data), mean=mean, std=std,
                                      class_names=list(data.class_names))
        meta.setdefault("preprocessing", {})["tta"] = tta_description(cfg)
        return meta

    def builder_args(self, card):
        signature = (card.get("signatures") or card.get("signature_specs") or {})["serve"]
        (images,) = signature["inputs"].values()
        return {"num_classes": len(card["labels"]), "input_shape": (*images["shape"][1:3], 3)}

    def inherit(self, cfg, parent):
        pp = parent.preprocessing
        size = self.builder_args(parent.card)["input_shape"][:2]
        return {"mean": tuple(pp["mean"]), "std": tuple(pp["std"]), "whiten": False,
                "image_size": cfg.image_size if cfg.image_size is not None else tuple(size)}

    def model_inputs(self, card):
        h, w, _ = self.builder_args(card)["input_shape"]
        pp = card.get("preprocessing") or {}
        return (f"float32 images [N, {h}, {w}, 3] (other sizes where the architecture takes them): RGB in [0, 1] "
                f"minus mean {pp.get('mean')}, divided by std {pp.get('std')} (zoo.pipeline.normalize_images)")

    def search_space(self, hp) -> dict:
        """Settings to search, as config overrides; the defaults are CIFAR-10's `fast` recipe."""
        model = hp.Choice("model", ["airbench", "resnet", "seed_cnn"])
        with hp.conditional_scope("model", ["airbench"]):
            width = hp.Choice("width", [32, 48, 64, 96], default=64)  # the three groups: width, 4 x width, 4 x width
        with hp.conditional_scope("model", ["resnet"]):
            depth, resnet_width = hp.Choice("depth", [20, 32, 44]), hp.Choice("resnet_width", [16, 32])
        with hp.conditional_scope("model", ["airbench", "resnet"]):
            dropout = hp.Float("dropout", 0.0, 0.3, step=0.1)
        if model == "airbench":  # batch norms and initialization as `fast` trains them
            model_kwargs = {"widths": (width, 4 * width, 4 * width), "dropout": dropout, "bn_scale": False,
                            "identity_init": True}
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
            offset_lr_scale=64.0 if optimizer == "nesterov" else 1.0,
            weight_decay=hp.Float("weight_decay", 5e-4, 2e-2, sampling="log", default=5e-3),
            schedule=schedule, **({"pct_start": pct_start} if schedule == "onecycle" else {}),
            label_smoothing=hp.Float("label_smoothing", 0.0, 0.3, step=0.1, default=0.2),
            batch_size=hp.Choice("batch_size", [128, 256, 512], default=256),
            crop_padding=hp.Int("crop_padding", 0, 4, default=2),
            cutout=hp.Choice("cutout", [0, 8, 12, 16]),
        )


IMAGE = register_recipe(ImageRecipe())
