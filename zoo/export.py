"""Export to a SavedModel that takes raw inputs, with a metadata.json model card beside it.

TensorFlow-only code: builders stay backend-agnostic, export wraps them in a `tf.function`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import keras

from zoo.errors import ZooError
from zoo.jsonutil import dumps_strict


def export_saved_model(model, path, *, input_signature, serve_fn, metadata: dict, extra_signatures=None, track=(),
                       weights_dtype: str = "float32"):
    """Writes a SavedModel whose `serve` (and `serving_default`) signature is `serve_fn`.

    The SavedModel is written to a temporary directory beside `path` and renamed into place, so a
    crash never leaves a half-written model at `path`. RNN layers are traced without cuDNN
    kernels (`portable_rnns`), and the result is checked for GPU-only ops.

    Args:
        model: the Keras model whose variables `serve_fn` uses.
        path: the SavedModel directory to create (replaced if it exists).
        input_signature: a list of `tf.TensorSpec` for `serve_fn`.
        serve_fn: raw inputs -> outputs, all preprocessing inside.
        metadata: written to `path/metadata.json` (parameter count and sizes are added).
        extra_signatures: optional {name: (fn, input_signature)} endpoints.
        track: resources `serve_fn` uses besides Keras variables (lookup tables, `tf.Module`s
            holding them), so that the SavedModel stores them.
        weights_dtype: "float16" stores the model's float32 weights rounded to float16, half the
            size (`stored_weights`); computation stays float32. "int8" records that the model was
            quantized (`reduce_precision(model, "int8")`): its int8 variables are stored as they are.

    Raises:
        ZooError: if a weight of `model` or a metric of `metadata["metrics"]` is NaN or infinite
            (training diverged); nothing is written then.
        ValueError: if a signature's graph uses cuDNN-only ops (a SavedModel traced on a GPU
            that would not load on a CPU).
    """
    from zoo.evaluate import show_progress

    path = Path(path)
    check_finite(path, weights=non_finite_weights(model), metrics=non_finite_metrics(metadata.get("metrics") or {}))
    if show_progress():  # tracing a beam search or TTA graph takes a while without output
        print(f"Exporting {path} ...", flush=True)
    with atomic_directory(path) as tmp:
        # Trace RNNs with the kernels every device has: a model trained on a GPU still loads on a CPU.
        portable_rnns(model)
        archive = keras.export.ExportArchive()
        if weights_dtype == "int8":
            if not any(v.dtype == "int8" for v in model.variables):
                raise ValueError("weights_dtype='int8' needs a quantized model: call reduce_precision(model, 'int8') "
                                 "first (the model has no Embedding or Dense layer to quantize).")
        elif weights_dtype != "float32":
            store, reading = stored_weights(model, weights_dtype)
            track = (*track, store)
            serve_fn = reading(serve_fn)
            extra_signatures = {name: (reading(fn), sig) for name, (fn, sig) in (extra_signatures or {}).items()}
        for resource in track:
            archive.track(resource)
        # No archive.track(model): add_endpoint tracks what serve_fn uses, and tracking the
        # model as well stores every variable twice (Keras 3.15).
        archive.add_endpoint("serve", serve_fn, input_signature=input_signature)
        for name, (fn, signature) in (extra_signatures or {}).items():
            archive.add_endpoint(name, fn, input_signature=signature)
        archive.write_out(str(tmp), verbose=False)
        check_portable(tmp)
        metadata = {**metadata, "parameters": int(model.count_params()), "weights_dtype": weights_dtype,
                    "size_bytes": sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())}
        (tmp / "metadata.json").write_text(dumps_strict(metadata, indent=2, default=str) + "\n")
    return path


def tensor(dtype: str, shape, meaning: str) -> dict:
    """A signature's input or output as every model card describes it."""
    return {"dtype": dtype, "shape": list(shape), "meaning": meaning}


def classifier_outputs(num_classes: int) -> dict:
    """The outputs of every classifier's signatures: `probabilities` and `label`."""
    return {"probabilities": tensor("float32", [None, num_classes], "class probabilities, in the order of labels"),
            "label": tensor("string", [None], "the most probable label")}


def non_finite_weights(model) -> list:
    """The paths of `model`'s floating-point variables that hold a NaN or an infinity."""
    import numpy as np

    bad = []
    for v in model.variables:
        value = keras.ops.convert_to_numpy(v)
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            bad.append(v.path)
    return bad


def non_finite_metrics(metrics: dict, prefix: str = "") -> list:
    """The names of the metrics (`a.b` inside nested dicts) that are NaN or infinite floats."""
    import math

    bad = []
    for name, value in metrics.items():
        if isinstance(value, dict):
            bad += non_finite_metrics(value, f"{prefix}{name}.")
        elif isinstance(value, float) and not math.isfinite(value):
            bad.append(f"{prefix}{name}")
    return bad


def check_finite(what, *, weights=(), metrics=()) -> None:
    """A `ZooError` naming `what` if `weights` or `metrics` (names of the non-finite ones, as
    `non_finite_weights` and `non_finite_metrics` list them) is not empty: a model that
    diverged is neither exported nor published.

    Args:
        what: the SavedModel or entry refused, named in the message.
        weights: names of the weights that hold NaN or infinite values.
        metrics: names of the metrics that are NaN or infinite.
    """
    def names(items):
        items = list(items)
        return ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")

    parts = [f"weights {names(weights)}" if weights else "", f"metrics {names(metrics)}" if metrics else ""]
    if weights or metrics:
        raise ZooError(f"{what}: refused, not finite (NaN or infinite): {'; '.join(p for p in parts if p)}. Training "
                       "diverged: lower the learning rate (--learning-rate) and train again.")


def stored_weights(model, dtype: str):
    """Copies of `model`'s float32 weights in `dtype`, and a wrapper for functions to read them.

    Returns a `tf.Module` holding the copies (to track in the export) and `reading(fn)`, which
    runs `fn` in a `keras.StatelessScope` that maps each float32 variable of the model to its
    copy cast back to float32. Functions traced that way capture only the copies, so the
    SavedModel stores the weights in `dtype`; other variables (integer seeds) are stored as they
    are. Round the model itself first (`round_weights`) to evaluate exactly what is stored.

    Raises:
        ZooError: a weight beyond the range of `dtype`.
    """
    import functools

    import numpy as np
    import tensorflow as tf

    floats = [v for v in model.variables if v.dtype == "float32"]
    limit = float(np.finfo(dtype).max)
    too_big = [v.path for v in floats if float(np.max(np.abs(keras.ops.convert_to_numpy(v)), initial=0)) > limit]
    if too_big:
        raise ZooError(f"Weights beyond the range of {dtype} (+-{limit:g}): {', '.join(too_big[:5])}. Export them "
                       "in float32 (--export-weights float32).")
    store = tf.Module()
    # Named by the Keras path, as the float32 variables would be: zoo.finetune maps them back by name.
    store.weights = [tf.Variable(tf.cast(v.value, dtype), trainable=False, name=v.path) for v in floats]

    def reading(fn):
        # A tf.function is traced anew inside the wrapper: called as one, it would be a nested
        # function capturing the wrapper's tensors, which a SavedModel cannot store.
        fn = getattr(fn, "python_function", fn)

        @functools.wraps(fn)
        def wrapped(*args):
            mapping = [(v, tf.cast(w, "float32")) for v, w in zip(floats, store.weights)]
            with keras.StatelessScope(state_mapping=mapping):
                return fn(*args)

        return wrapped

    return store, reading


def reduce_precision(model, dtype: str):
    """Gives `model` in place the weights a SavedModel exported with `weights_dtype=dtype` stores:
    float16 rounds every float32 weight (`round_weights`); int8 quantizes the Embedding and Dense
    layers with Keras' `Model.quantize("int8")` (int8 values with a float32 scale per output
    channel or embedding row; other layers stay float32)."""
    import warnings

    if dtype == "int8":
        with warnings.catch_warnings():
            # One warning per layer Keras cannot quantize (LSTM cells, pooling...): they stay float32.
            warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
            model.quantize("int8")
        return model
    if dtype != "float32":
        round_weights(model, dtype)
    return model


def round_weights(model, dtype: str):
    """Rounds `model`'s float32 weights to the precision of `dtype` in place (they stay float32):
    the model then computes what a SavedModel that stores its weights in `dtype` computes."""
    for v in model.variables:
        if v.dtype == "float32":
            v.assign(keras.ops.cast(keras.ops.cast(v, dtype), "float32"))
    return model


@contextlib.contextmanager
def atomic_directory(path):
    """Yields a new empty directory beside `path` to fill; when the block ends it replaces `path`
    (a crash never leaves a half-written directory there), and on an exception it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def saved_model_ops(path) -> set:
    """Every op type in a SavedModel's graphs, the functions of its library included."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    ops = set()
    for meta_graph in proto.meta_graphs:
        ops |= {n.op for n in meta_graph.graph_def.node}
        ops |= {n.op for f in meta_graph.graph_def.library.function for n in f.node_def}
    return ops


def check_portable(path) -> None:
    """A `ValueError` if the SavedModel at `path` uses ops that only GPUs have (cuDNN RNNs)."""
    bad = sorted(op for op in saved_model_ops(path) if op.startswith("Cudnn"))
    if bad:
        raise ValueError(f"{path} uses GPU-only ops {bad}: set use_cudnn=False on the model's RNN layers "
                         "(zoo.export.portable_rnns) before exporting.")


def portable_rnns(model):
    """Sets `use_cudnn=False` on every RNN layer of `model` (inside wrappers too), so that what is
    traced next uses the kernels every device has. Weights are the same either way."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if hasattr(layer, "use_cudnn"):
            layer.use_cudnn = False
    return model
