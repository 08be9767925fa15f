"""Train a CIFAR-10 preset on a GPU with Keras 3's JAX backend, where TensorFlow is absent.

The lent GPU machines have JAX but no TensorFlow, so `tf.data` cannot run there. This script
keeps everything else of `python -m tasks.vision.cifar10`: the same Config, presets and flags,
the same builder, optimizer, schedule, loss and validation split. Only the input pipeline is a
NumPy replica of `zoo.pipeline` (pad-and-crop, flip, cutout, normalization) fed through a
`keras.utils.PyDataset`. It writes the trained weights; the CPU then evaluates and exports them
with the task itself:

    KERAS_BACKEND=jax python bench/gpu_train_cifar10.py --preset default --data-dir DIR --output-dir OUT
    python -m tasks.vision.cifar10 --preset default --weights OUT/cifar10.weights.h5 --epochs 0
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tasks.vision.cifar10 import PRESETS, Config  # noqa: E402
from zoo.config import parse_config  # noqa: E402
from zoo.data.images import load_cifar10, train_val_split  # noqa: E402
from zoo.losses import SparseCategoricalCrossentropyWithSmoothing  # noqa: E402
from zoo.registry import build_model  # noqa: E402
from zoo.train import make_training_optimizer  # noqa: E402


class Augmented(keras.utils.PyDataset):
    """NumPy twin of zoo.pipeline.image_dataset for training (shuffle, crop, flip, cutout, normalize)."""

    def __init__(self, x, y, cfg, seed, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.cfg = x, y, cfg
        self.rng = np.random.default_rng(seed)
        self.mean = np.asarray(cfg.mean, np.float32)
        self.std = np.asarray(cfg.std, np.float32)
        self.on_epoch_end()

    def __len__(self):
        return int(np.ceil(len(self.x) / self.cfg.batch_size))

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.x))

    def __getitem__(self, i):
        idx = self.order[i * self.cfg.batch_size:(i + 1) * self.cfg.batch_size]
        x, y = self.x[idx], self.y[idx]
        rng = np.random.default_rng([self.rng.integers(1 << 31), i])
        b, h, w, _ = x.shape
        p = self.cfg.crop_padding
        if p:
            padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
            rows = rng.integers(0, 2 * p + 1, b)[:, None] + np.arange(h)
            cols = rng.integers(0, 2 * p + 1, b)[:, None] + np.arange(w)
            x = padded[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]
        if self.cfg.flip:
            coin = rng.integers(0, 2, b).astype(bool)
            x = np.where(coin[:, None, None, None], x[:, :, ::-1], x)
        if self.cfg.cutout:
            c = self.cfg.cutout
            top = (rng.integers(0, h, b) - c // 2)[:, None, None]
            left = (rng.integers(0, w, b) - c // 2)[:, None, None]
            yy, xx = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
            inside = (yy >= top) & (yy < top + c) & (xx >= left) & (xx < left + c)
            x = np.where(inside[..., None], 0, x)
        return (x.astype(np.float32) / 255.0 - self.mean) / self.std, y


def main(argv=None):
    cfg = parse_config(Config, PRESETS, argv, prog="bench/gpu_train_cifar10.py")
    out = Path(cfg.output_dir or f"runs/gpu-cifar10-{cfg.preset}")
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    policy = cfg.precision if cfg.precision != "auto" else "mixed_bfloat16"
    keras.mixed_precision.set_dtype_policy(policy)
    data = load_cifar10(cfg.data_dir)
    (x_train, y_train), (x_val, y_val) = train_val_split(data.x_train, data.y_train, cfg.validation_split, cfg.seed)
    train = Augmented(x_train, y_train, cfg, cfg.seed, workers=8, use_multiprocessing=False)
    mean, std = np.asarray(cfg.mean, np.float32), np.asarray(cfg.std, np.float32)
    val = ((x_val.astype(np.float32) / 255.0 - mean) / std, y_val)
    model = build_model(cfg.model, num_classes=10, input_shape=(32, 32, 3), **cfg.model_kwargs)
    model.compile(optimizer=make_training_optimizer(cfg, steps_per_epoch=len(train)),
                  loss=SparseCategoricalCrossentropyWithSmoothing(cfg.label_smoothing),
                  metrics=["accuracy"], jit_compile=True)
    print(f"{cfg.model} {cfg.model_kwargs}: {model.count_params():,} parameters, {policy}, "
          f"backend {keras.backend.backend()}, {len(x_train)} train / {len(x_val)} val", flush=True)
    start = time.time()
    history = model.fit(train, validation_data=val if len(x_val) else None, epochs=cfg.epochs,
                        batch_size=cfg.batch_size, verbose=2,
                        callbacks=[keras.callbacks.CSVLogger(str(out / "history.csv"))])
    wall = time.time() - start
    model.save_weights(out / "cifar10.weights.h5")
    summary = {"preset": cfg.preset, "policy": policy, "train_time_s": round(wall, 1),
               "epochs": cfg.epochs, "backend": keras.backend.backend(),
               "final": {k: float(v[-1]) for k, v in history.history.items()}}
    (out / "gpu_train.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
