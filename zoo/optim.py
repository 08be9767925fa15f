"""Optimizers by name and learning-rate schedules, pure Keras 3."""

from __future__ import annotations

import math

import keras
from keras import ops

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "adagrad", "adafactor")
SCHEDULES = ("constant", "step", "cosine", "onecycle")


@keras.saving.register_keras_serializable(package="zoo")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Multiplies the learning rate by `factor` every `step_size` steps (staircase)."""

    def __init__(self, initial_learning_rate, step_size, factor):
        self.initial_learning_rate = initial_learning_rate
        self.step_size = step_size
        self.factor = factor

    def __call__(self, step):
        k = ops.floor(ops.cast(step, "float32") / self.step_size)
        return self.initial_learning_rate * ops.power(self.factor, k)

    def get_config(self):
        return dict(initial_learning_rate=self.initial_learning_rate, step_size=self.step_size, factor=self.factor)


@keras.saving.register_keras_serializable(package="zoo")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle (Smith, 2018): linear warm-up from max/div to max over `pct_start` of the
    steps, then cosine annealing to max/final_div."""

    def __init__(self, max_learning_rate, total_steps, pct_start=0.25, div=25.0, final_div=1e4):
        self.max_learning_rate = max_learning_rate
        self.total_steps = total_steps
        self.pct_start = pct_start
        self.div = div
        self.final_div = final_div

    def __call__(self, step):
        step = ops.cast(step, "float32")
        up = max(1.0, self.pct_start * self.total_steps)
        down = max(1.0, self.total_steps - up)
        lo, hi, end = self.max_learning_rate / self.div, self.max_learning_rate, self.max_learning_rate / self.final_div
        warm = lo + (hi - lo) * step / up
        t = ops.clip((step - up) / down, 0.0, 1.0)
        anneal = end + (hi - end) * 0.5 * (1.0 + ops.cos(math.pi * t))
        return ops.where(step < up, warm, anneal)

    def get_config(self):
        return dict(max_learning_rate=self.max_learning_rate, total_steps=self.total_steps,
                    pct_start=self.pct_start, div=self.div, final_div=self.final_div)


def make_schedule(name, learning_rate, *, steps_per_epoch, epochs, step_epochs=7, step_factor=0.7,
                  warmup_epochs=0.0, pct_start=0.25):
    """A learning rate or schedule.

    Args:
        name: constant, step (x `step_factor` every `step_epochs` epochs), cosine (cosine decay to
            0 after `warmup_epochs` of linear warm-up) or onecycle (`pct_start` of the run warming up).
        learning_rate: the base (peak) learning rate.
        steps_per_epoch, epochs: the length of training, to convert epochs into steps.
    """
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}. Received: {name!r}")
    total = max(1, int(steps_per_epoch * epochs))
    if name == "constant":
        return learning_rate
    if name == "step":
        return StepDecay(learning_rate, step_size=max(1, int(step_epochs * steps_per_epoch)), factor=step_factor)
    if name == "onecycle":
        return OneCycle(learning_rate, total_steps=total, pct_start=pct_start)
    warmup = int(warmup_epochs * steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else learning_rate,
        decay_steps=max(1, total - warmup),
        warmup_target=learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def is_norm_offset(variable) -> bool:
    """Whether `variable` is a normalization layer's offset (`beta`, as Keras names it in
    BatchNormalization, LayerNormalization and GroupNormalization)."""
    return variable.name == "beta"


@keras.saving.register_keras_serializable(package="zoo")
class SGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD` that steps normalization offsets (`beta`) with `offset_lr_scale`
    times the learning rate, airbench's (Jordan, 2024) 64x "bias scaler": under batch norm the
    offsets are the only thing that moves a feature's threshold, and at the weights' learning
    rate they hardly move in a short run. Weight decay stays the weights' own (`weight_decay` x
    the learning rate, unscaled), as there.
    """

    def __init__(self, *args, offset_lr_scale=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.offset_lr_scale = float(offset_lr_scale)

    def build(self, variables):
        super().build(variables)
        self._lr_scales = [self.offset_lr_scale if is_norm_offset(v) else 1.0 for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        scale = self._lr_scales[self._get_variable_index(variable)]
        super().update_step(gradient, variable, learning_rate * scale if scale != 1.0 else learning_rate)

    def get_config(self):
        return {**super().get_config(), "offset_lr_scale": self.offset_lr_scale}


def make_optimizer(name, learning_rate, *, momentum=0.9, weight_decay=None, clipnorm=None, clipvalue=None,
                   offset_lr_scale=1.0):
    """An optimizer by name.

    Args:
        name: sgd, momentum (SGD with momentum), nesterov, adam, adamw, adagrad or adafactor.
        learning_rate: a float or a schedule.
        momentum: for momentum and nesterov.
        weight_decay: decoupled weight decay (all Keras optimizers apply it the AdamW way).
        clipnorm, clipvalue: gradient clipping by norm (per variable) or by value.
        offset_lr_scale: learning-rate multiplier for normalization offsets (`SGD` above); sgd,
            momentum and nesterov only.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}. Received: {name!r}")
    if clipnorm is not None and clipvalue is not None:
        raise ValueError("Set clipnorm or clipvalue, not both.")
    if offset_lr_scale != 1.0 and name not in ("sgd", "momentum", "nesterov"):
        raise ValueError(f"offset_lr_scale is for sgd, momentum and nesterov. Received: optimizer={name!r}, "
                         f"offset_lr_scale={offset_lr_scale}")
    common = dict(learning_rate=learning_rate, weight_decay=weight_decay or None, clipnorm=clipnorm, clipvalue=clipvalue)
    if name in ("sgd", "momentum", "nesterov"):
        sgd = dict(momentum=momentum if name != "sgd" else 0.0, nesterov=name == "nesterov", **common)
        return SGD(offset_lr_scale=offset_lr_scale, **sgd) if offset_lr_scale != 1.0 else keras.optimizers.SGD(**sgd)
    if name == "adamw":
        common["weight_decay"] = weight_decay if weight_decay is not None else 0.004
        return keras.optimizers.AdamW(**common)
    return {"adam": keras.optimizers.Adam, "adagrad": keras.optimizers.Adagrad,
            "adafactor": keras.optimizers.Adafactor}[name](**common)
