"""Distribution strategies: one GPU or the CPU, all local GPUs, or several workers from TF_CONFIG."""

from __future__ import annotations

import json
import os

from zoo.errors import ZooError

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
        try:
            cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
        except (ValueError, AttributeError) as e:
            raise ZooError(f"TF_CONFIG in the environment is not a JSON object ({e}): fix or unset it.") from None
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
        raise ZooError("--distribute multiworker needs TF_CONFIG (cluster and task) in the environment.")
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


def worker_index() -> int:
    return int(json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index", 0))


def patch_keras_for_multiworker(model, strategy) -> None:
    """Works around Keras 3 failing `fit` under MultiWorkerMirroredStrategy (keras-team/keras#20585).

    Keras builds the model from a batch it all-reduces with `strategy.reduce(MEAN)`, and it
    reduces scalar metrics along axis 0; both fail across workers. Build from the local replica's
    batch instead, and reduce scalars with axis=None. A no-op for other strategies.
    """
    import types

    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(
                    lambda x: strategy.experimental_local_results(x)[0]
                    if isinstance(x, tf.distribute.DistributedValues) else x, next(it))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = types.MethodType(_maybe_symbolic_build, model)
    if getattr(tf_trainer.reduce_per_replica, "_zoo_patched", False):
        return
    original = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None) if tf_trainer._is_per_replica_instance(v) else v,
                values)
        return original(values, strategy, reduction)

    reduce_per_replica._zoo_patched = True
    tf_trainer.reduce_per_replica = reduce_per_replica


def strategy_name(strategy) -> str:
    """The user-facing name: MultiWorkerMirroredStrategy rather than its CollectiveAllReduce class."""
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "MirroredStrategy"
    return "default (one device)"
