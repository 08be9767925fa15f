"""Distribution strategies: one GPU or the CPU, all local GPUs, or several workers from TF_CONFIG."""

from __future__ import annotations

import json
import os

DISTRIBUTIONS = ("auto", "none", "mirrored", "multiworker")


def get_strategy(distribute: str = "auto"):
    """Returns a `tf.distribute.Strategy`; build and compile the model inside its `scope()`.

    auto: MultiWorkerMirroredStrategy when TF_CONFIG names several workers, MirroredStrategy
    when there are several local GPUs, else the default strategy.
    """
    import tensorflow as tf

    if distribute not in DISTRIBUTIONS:
        raise ValueError(f"distribute must be one of {', '.join(DISTRIBUTIONS)}. Received: {distribute!r}")
    if distribute == "auto":
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
        if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
            distribute = "multiworker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            distribute = "mirrored"
        else:
            distribute = "none"
    if distribute == "none":
        return tf.distribute.get_strategy()
    if distribute == "mirrored":
        return tf.distribute.MirroredStrategy()
    if "TF_CONFIG" not in os.environ:
        raise ValueError("distribute=multiworker needs TF_CONFIG (cluster and task) in the environment.")
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy=None) -> bool:
    """True on the worker that writes outputs (the only one outside multi-worker training)."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = tf_config.get("task", {})
    if not task:
        return True
    if "chief" in tf_config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and task.get("index", 0) == 0
