"""Int8 LiteRT (TensorFlow Lite) exports of the pretrained classifiers, each with its model card.

    python -m zoo.export_lite speech_commands --int8 --per-tensor --separate-frontend  # -> ..._int8/
    python -m zoo.export_lite cifar10 --int8                      # -> saved_models/cifar10_int8/
    python -m zoo.predict speech_commands_int8 clip.wav           # the same predictor, on LiteRT

Converts the entry's `serve` signature (raw inputs -> probabilities, preprocessing and any
test-time augmentation inside) with TensorFlow's converter at a fixed batch of one, the shape
microcontroller runtimes need. Full-integer post-training quantization: int8 weights (per output
channel, or one scale a tensor with --per-tensor) and int8 activations, calibrated on
`--examples` examples drawn from the entry's TRAINING split, never its test split. The input and
output keep the entry's types (uint8 images or float32 waveforms in, float32 probabilities out).

An audio classifier's log-mel front end stays float32 in the same file: its power spectrum spans
about 100 dB and its logarithm needs more than int8's 48 dB, so quantizing it costs most of the
accuracy. The converter leaves those layers' ops float (selective quantization) and one
QUANTIZE op hands the normalized spectrogram to the int8 network; the mel filterbank, mostly
zeros, is stored sparse. With --separate-frontend the front end is a float model of its own,
`frontend.tflite` (waveform -> normalized log-mel features, cut from the model rebuilt from its
card), and `model.tflite` is the int8 network alone; `zoo.load` runs one after the other.
Tensor names, which no kernel reads, are stripped from both.

Then the card (`metadata.json`) is measured: size, ops (by the type they compute in), input,
output and quantization parameters, accuracy on the float entry's test split through
`zoo.pretrained.evaluate` with top-1 agreement with the float entry, and latency of one input
on this CPU (median and p90 of 200 calls, one thread). The entry is `<name>_int8/` holding
`model.tflite` (and `frontend.tflite`), `metadata.json` and the `SHA256SUMS` manifest, which
`zoo.load` checks.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import shlex
import subprocess
import time
from pathlib import Path

import numpy as np

from zoo.errors import ZooError

# Keras layers of the speech builders that stay float32 (zoo.models.speech: the front end).
FLOAT_LAYERS = {"audio_classifier": ("log_mel", "normalize", "spec_augment", "add_channel")}
# The last layer of the speech builders' front end: --separate-frontend cuts the model there.
FRONTEND_END = "normalize"
REPRESENTATIVE_EXAMPLES = 300
LATENCY_CALLS = 200


# --- conversion -------------------------------------------------------------------------------


def batch_one(signature):
    """A SavedModel signature of one input (a concrete function) at a batch of one: the converter
    then folds the shape arithmetic of framing and reshapes into constants, and the model fits
    runtimes without dynamic shapes."""
    import tensorflow as tf

    ((key, spec),) = signature.structured_input_signature[1].items()
    one = tf.TensorSpec([1, *spec.shape[1:]], spec.dtype, name=key)
    return tf.function(lambda x: signature(**{key: x}), input_signature=[one]).get_concrete_function()


def keras_serving_function(model, serve, tensor_spec):
    """`serve` (raw inputs -> outputs, using `model`'s variables) at a batch of one, through a
    temporary SavedModel written as `zoo.export` writes the entries: the converter then reads
    the variables as it does for the entries (Keras variables captured directly are left as
    resource reads that calibration cannot run).

    Returns:
        (concrete function, the loaded SavedModel that owns its variables).
    """
    import tempfile

    import tensorflow as tf

    from zoo.export import export_saved_model

    # LiteRT's builtin ops have no lists of tensors, which Keras' RNN loop uses; unrolled over
    # its fixed number of frames, a recurrent layer is plain matrix products.
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if hasattr(layer, "unroll"):
            layer.unroll = True
    with tempfile.TemporaryDirectory() as tmp:
        path = export_saved_model(model, Path(tmp) / "saved_model", input_signature=[tensor_spec], serve_fn=serve,
                                  metadata={})
        loaded = tf.saved_model.load(str(path))  # variables restored in memory: the directory may go
    return batch_one(loaded.signatures["serve"]), loaded


def serving_function(entry):
    """The concrete function to convert for a loaded image or audio entry, at a batch of one.

    The entry's own `serve` signature, unless its graph computes in float16 or bfloat16 (trained
    under mixed precision: LiteRT has no such kernels). Then the model is rebuilt in float32 from
    the card (`model`, `model_kwargs`, the task's test-time augmentation and normalization) with
    the SavedModel's variables, and checked against the entry on a few inputs.

    Returns:
        (concrete function, the object owning its variables, how it was made, in words).
    """
    card = entry.metadata
    policy = (card.get("training") or {}).get("resolved", {}).get("dtype_policy", "float32")
    if "float16" not in policy:
        return batch_one(entry.model.signatures["serve"]), entry.model, "the float entry's `serve` signature"
    if entry.kind != "image_classifier":
        raise ZooError(f"{entry.path}: computes in {policy}, and only image classifiers can be rebuilt in float32 "
                       "for LiteRT; export it again with --precision float32.")
    return _rebuild_image_classifier(entry, policy)


def rebuild_float32(entry, **input_kwargs):
    """The entry's Keras model rebuilt in float32 from its card (`model`, `model_kwargs`) with
    the SavedModel's variables (the ExportArchive keeps them, named by their Keras paths).

    Args:
        entry: a loaded SavedModel entry (`zoo.load`).
        **input_kwargs: the builder's input arguments the card does not hold in `model_kwargs`
            (`input_shape` for images, `sample_rate` and `num_samples` for audio).

    Raises:
        ZooError: the saved variables do not match the rebuilt model's.
    """
    import keras

    from zoo.registry import build_model

    card = entry.metadata
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        model = build_model(card["model"], num_classes=len(entry.labels), **input_kwargs,
                            **(card.get("model_kwargs") or {}))
    finally:
        keras.config.set_dtype_policy(previous)
    saved = {v.name.split(":")[0]: v for v in getattr(entry.model, "_all_variables", [])}
    missing = [v.path for v in model.weights if v.path not in saved]
    if missing or len(saved) != len(model.weights):
        raise ZooError(f"{entry.path}: the SavedModel's variables do not match a rebuilt {card['model']} "
                       f"(missing: {', '.join(missing[:5]) or 'none'}; {len(saved)} saved, {len(model.weights)} "
                       "built).")
    for v in model.weights:
        v.assign(saved[v.path].numpy())
    return model


def split_frontend(entry):
    """An audio entry's model rebuilt in float32 (`rebuild_float32`) and cut where the float
    front end ends (after the `FRONTEND_END` layer): (front end, classifier) Keras models, the
    first taking waveforms to normalized log-mel features, the second those features to logits.
    Checked against the entry on a few waveforms.

    Raises:
        ZooError: the rebuild does not reproduce the entry.
    """
    import keras

    card = entry.metadata
    model = rebuild_float32(entry, sample_rate=int(card.get("sample_rate", 16000)), num_samples=entry.num_samples)
    waveforms = (0.1 * np.random.default_rng(0).normal(size=(4, entry.num_samples))).astype(np.float32)
    rebuilt = keras.ops.convert_to_numpy(keras.ops.softmax(model(waveforms, training=False)))
    if np.abs(rebuilt - entry.probabilities(waveforms)).max() > 1e-4:
        raise ZooError(f"{entry.path}: the float32 rebuild of {card['model']} does not reproduce the entry.")
    return cut_frontend(model)


def cut_frontend(model):
    """(front end, classifier): a speech builder's model cut after its `FRONTEND_END` layer,
    the first taking waveforms to normalized log-mel features, the second those to logits."""
    import keras

    features = model.get_layer(FRONTEND_END).output
    # SpecAugment, between the cut and the convolutions, is the identity at inference.
    return keras.Model(model.input, features, name="frontend"), keras.Model(features, model.output, name="classifier")


def convert_separate(frontend_model, classifier, representative, input_spec, *, per_channel=True):
    """(`frontend.tflite`, `model.tflite`) flatbuffers of `cut_frontend`'s two models: the front
    end in float32, the classifier (softmax added) in int8, calibrated on the converted front
    end's features of `representative` (training waveforms without the batch axis).

    Args:
        input_spec: the waveforms' `tf.TensorSpec` (its name is the front end's input name).
        per_channel: as for `quantize_int8`.
    """
    import keras
    import tensorflow as tf

    from zoo.lite import LiteModel

    frontend = convert_float(*keras_serving_function(frontend_model, lambda x: frontend_model(x, training=False),
                                                     input_spec))
    # Calibrated on what the int8 model will receive: the converted front end's features.
    (features,) = LiteModel(frontend).run(representative).values()
    concrete_fn, owner = keras_serving_function(classifier, lambda x: keras.ops.softmax(classifier(x, training=False)),
                                                tf.TensorSpec([None, *features.shape[1:]], tf.float32, name="features"))
    return frontend, quantize_int8(concrete_fn, owner, features, per_channel=per_channel)


def _rebuild_image_classifier(entry, policy):
    import keras
    import tensorflow as tf

    from zoo.models.vision import with_flip_tta
    from zoo.pipeline import normalize_images

    card = entry.metadata
    config = card["training"]["config"]
    (spec,) = entry.specs["serve"]["inputs"].values()
    model = rebuild_float32(entry, input_shape=tuple(spec["shape"][1:]))
    classifier = with_flip_tta(model, config.get("tta_shift", 0)) if config.get("tta") else model
    mean, std = card["preprocessing"]["mean"], card["preprocessing"]["std"]

    def serve(images):
        return keras.ops.softmax(classifier(normalize_images(images, mean, std), training=False))

    images = np.random.default_rng(0).integers(0, 256, (8, *spec["shape"][1:]), dtype=np.uint8)
    rebuilt, original = keras.ops.convert_to_numpy(serve(images)), entry.probabilities(images)
    # bfloat16 keeps 8 bits of mantissa: the entry's own probabilities are that coarse.
    if np.abs(rebuilt - original).max() > 0.05 or (rebuilt.argmax(1) != original.argmax(1)).mean() > 0.25:
        raise ZooError(f"{entry.path}: the float32 rebuild of {card['model']} does not reproduce the entry "
                       f"(largest probability difference {np.abs(rebuilt - original).max():.3f}).")
    name = next(iter(entry.specs["serve"]["inputs"]))
    fn, loaded = keras_serving_function(model, serve, tf.TensorSpec([None, *spec["shape"][1:]], spec["dtype"], name=name))
    return fn, loaded, (f"rebuilt in float32 (the entry computes in {policy}) from the card's model and model_kwargs, "
                       "with the SavedModel's variables, its normalization and test-time augmentation")


def quantize_int8(concrete_fn, trackable, representative, *, float_layers=(), per_channel=True) -> bytes:
    """A full-integer (int8) `.tflite` flatbuffer of a batch-of-one concrete function.

    Args:
        concrete_fn: from `batch_one` or `keras_serving_function`.
        trackable: the loaded SavedModel that owns the function's variables.
        representative: examples of the input without the batch axis (training data), to
            calibrate the activations' ranges.
        float_layers: Keras layer names whose ops stay float32 (matched in the converted
            tensors' names, which carry the layers' name scopes).
        per_channel: one weight scale per output channel (the converter's default) rather than
            one per tensor.

    Raises:
        ZooError: `float_layers` named but none of their ops found.
    """
    import tensorflow as tf
    from tensorflow.lite.python.convert import mlir_sparsify

    def dataset():
        for x in representative:
            yield [np.asarray(x)[None]]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete_fn], trackable)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    # Int8 kernels where an op has one, float kernels for the rest (the front end's RFFT, LOG...).
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    converter._experimental_disable_per_channel = not per_channel  # no public switch for per-tensor weights
    if not float_layers:
        content = converter.convert()
    else:
        # Selective quantization as TF documents it: the debugger calibrates once, then
        # re-quantizes with the front end's nodes on its deny list.
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset)
        pattern = re.compile(rf"(^|/)({'|'.join(map(re.escape, float_layers))})(_\d+)?/")
        names = _tensor_names(debugger.calibrated_model)
        denied = sorted({n for n in names if pattern.search(n)})
        if not denied:
            raise ZooError(f"None of the layers {', '.join(float_layers)} is in the converted model: cannot keep them "
                           "float.")
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denied)
        content = debugger.get_nondebug_quantized_model()
    # Sparse constants (the mel filterbank is 95% zeros) stored compressed; the public switch,
    # Optimize.EXPERIMENTAL_SPARSITY, empties the model when calibration runs on its own.
    return bytes(mlir_sparsify(content))


def convert_float(concrete_fn, trackable) -> bytes:
    """A float32 `.tflite` flatbuffer of a batch-of-one concrete function (the audio front end
    of --separate-frontend), its sparse constants stored compressed as `quantize_int8` does."""
    import tensorflow as tf
    from tensorflow.lite.python.convert import mlir_sparsify

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete_fn], trackable)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return bytes(mlir_sparsify(converter.convert()))


def strip_names(content: bytes) -> bytes:
    """The flatbuffer without its tensor and subgraph names, which no kernel reads: they are
    the converter's TensorFlow node paths, about 5% of a small int8 model (the converter has no
    switch for it). Signatures keep their input and output names, which the runners use."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(content, 0)
    for subgraph in model.subgraphs:
        subgraph.name = None
        for tensor in subgraph.tensors:
            tensor.name = None
    builder = flatbuffers.Builder(len(content))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _tensor_names(content: bytes) -> list[str]:
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAs(content, 0)
    return [model.Subgraphs(s).Tensors(t).Name().decode() for s in range(model.SubgraphsLength())
            for t in range(model.Subgraphs(s).TensorsLength())]


def representative_examples(card, data_dir=None, *, examples=REPRESENTATIVE_EXAMPLES, seed=0):
    """`examples` inputs drawn at random (`numpy.random.default_rng(seed)`) from the training
    split of the entry's task, and the selection in words for the card."""
    from zoo.pretrained import task_info

    task = task_info(card)
    if task is None or task.train_data is None:
        raise ZooError(f"No training data recipe for task {card.get('task')!r}: add train_data to "
                       "zoo.pretrained.TASKS.")
    inputs, _, _ = task.train_data(card, data_dir)
    keep = np.sort(np.random.default_rng(seed).permutation(len(inputs))[:examples])
    return inputs[keep], (f"numpy.random.default_rng({seed}).permutation({len(inputs)})[:{examples}], sorted: "
                          "indices into the training split in the loader's order")


# --- measurements -----------------------------------------------------------------------------


def latency(content, example, *, calls=LATENCY_CALLS, threads=1) -> dict:
    """Milliseconds per `invoke()` of the model on one input (after 10 warm-up calls): median
    and 90th percentile of `calls` calls, on `threads` threads. `content` is a flatbuffer or a
    list of them run in turn (a front end, then the model): a call then times every model's
    `invoke()` and the hand-over of each output to the next model's input."""
    from zoo.lite import interpreter_class, make_interpreter

    interpreters = [make_interpreter(c, num_threads=threads) for c in ([content] if isinstance(content, bytes)
                                                                        else content)]
    ins = [i.get_input_details()[0] for i in interpreters]
    outs = [i.get_output_details()[0]["index"] for i in interpreters]
    interpreters[0].set_tensor(ins[0]["index"], np.asarray(example, dtype=ins[0]["dtype"]).reshape(ins[0]["shape"]))
    times = []
    for i in range(calls + 10):
        start = time.perf_counter()
        for k, interpreter in enumerate(interpreters):
            if k:
                interpreters[k].set_tensor(ins[k]["index"], interpreters[k - 1].get_tensor(outs[k - 1]))
            interpreter.invoke()
        if i >= 10:
            times.append((time.perf_counter() - start) * 1000)
    cls = interpreter_class()
    return {"median_ms": round(float(np.median(times)), 3), "p90_ms": round(float(np.percentile(times, 90)), 3),
            "calls": calls, "threads": threads, "batch": 1, "cpu": cpu_model(),
            "interpreter": f"{cls.__module__}.{cls.__name__} ({_interpreter_version(cls)})"}


def _interpreter_version(cls) -> str:
    from importlib.metadata import PackageNotFoundError, version

    package = "ai-edge-litert" if cls.__module__.startswith("ai_edge_litert") else "tensorflow"
    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        return package


def cpu_model() -> str:
    """The CPU's model name as `lscpu` gives it (else `platform.processor()`), with the core count."""
    import os

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration, subprocess.SubprocessError):
        name = platform.processor() or platform.machine()
    return f"{name}, {os.cpu_count()} logical CPUs"


def tensor_bytes(content: bytes) -> dict:
    """Bytes of the model's constant tensors and of its activations (every other tensor): the
    Python interpreter does not report its arena, whose peak lies between the largest
    activation and their sum (the planner reuses memory between tensors that do not overlap)."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(content, 0)
    sizes = {v: np.dtype(k.lower()).itemsize for k, v in vars(schema.TensorType).items()
             if not k.startswith("_") and k.lower() in ("float32", "int8", "uint8", "int32", "int64", "int16",
                                                         "float16", "bool", "complex64")}
    constants, activations = 0, []
    for subgraph in model.subgraphs:
        for t in subgraph.tensors:
            data = model.buffers[t.buffer].data
            if data is not None and len(data):
                constants += len(data)
            elif t.type in sizes and t.shape is not None:
                activations.append(int(np.prod(t.shape)) * sizes[t.type])
    return {"constants": constants, "activations_sum": int(sum(activations)),
            "largest_activation": int(max(activations, default=0)),
            "arena": "not reported by the Python interpreter: between largest_activation and activations_sum"}


def quantization_summary(content: bytes) -> dict:
    """The quantized boundaries of the model: the scale and zero point at which values enter
    the int8 part (QUANTIZE outputs) and leave it (DEQUANTIZE inputs), and the weights' scheme."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(content, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = [names.get(max(c.builtinCode, c.deprecatedBuiltinCode)) for c in model.operatorCodes]
    boundaries, channels = [], set()

    def params(t):
        q = t.quantization
        return {"scale": [float(s) for s in q.scale][:1][0], "zero_point": int(q.zeroPoint[0])}

    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            name = codes[op.opcodeIndex]
            if name == "QUANTIZE":
                boundaries.append({"op": "QUANTIZE", "into_int8": params(subgraph.tensors[op.outputs[0]])})
            elif name == "DEQUANTIZE":
                boundaries.append({"op": "DEQUANTIZE", "out_of_int8": params(subgraph.tensors[op.inputs[0]])})
            elif name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 1:
                weights = subgraph.tensors[op.inputs[1]]
                if weights.type == schema.TensorType.INT8 and weights.quantization is not None:
                    channels.add(len(weights.quantization.scale) > 1)
    scheme = {frozenset(): "none", frozenset({True}): "per-channel", frozenset({False}): "per-tensor"}
    return {"boundaries": boundaries, "weights": scheme.get(frozenset(channels), "mixed")}


# --- the entry --------------------------------------------------------------------------------


def export_lite(name, *, int8=True, data_dir=None, models_dir=None, examples=REPRESENTATIVE_EXAMPLES,
                per_channel=True, separate_frontend=False, force=False, command=None) -> Path:
    """Writes `<models_dir>/<name>_int8/` (model.tflite, metadata.json, SHA256SUMS) from the
    pretrained entry `name`, measured as the module docstring says; returns its path.

    Args:
        name: a pretrained image or audio classifier entry (or its path).
        int8: full-integer quantization (the only export so far; False is refused).
        data_dir: the dataset mirror (default `ZOO_DATA_DIR`) for the training examples that
            calibrate the quantization and the test split the card's accuracy is measured on.
        models_dir: where to write the entry (default: beside the source entry).
        examples: training examples for calibration.
        per_channel: per-channel weight scales (False: one per tensor, smaller quantization
            parameters).
        separate_frontend: (audio) the float log-mel front end in `frontend.tflite` and the
            int8 network alone in `model.tflite`, chained by `zoo.load`'s predictor.
        force: replace an existing entry.
        command: the command line recorded in the card (default: rebuilt from the arguments).

    Raises:
        ZooError: not int8, a kind without a .tflite export (texts, translations), a separate
            front end for images, an existing entry without `force`, or a model that does not
            convert.
    """
    from zoo.export import atomic_directory
    from zoo.jsonutil import dumps_strict
    from zoo.lite import FRONTEND_FILE, LITE_FILE, interpreter_class, op_counts
    from zoo.pretrained import CARD, LITE_KINDS, check_tolerance, evaluate, load, resolve
    from zoo.publish import card_signatures, validate_card
    from zoo.safety import MANIFEST, sha256, write_manifest
    from zoo.train import package_versions

    if not int8:
        raise ZooError("Only the int8 export exists: pass --int8.")
    float_entry = load(name)
    source = resolve(name)
    card = float_entry.metadata
    if float_entry.kind not in LITE_KINDS:
        raise ZooError(f"{name}: a {float_entry.kind}; the LiteRT export takes image and audio classifiers "
                       f"({', '.join(LITE_KINDS)}): LiteRT's builtin ops have no string processing.")
    if separate_frontend and float_entry.kind != "audio_classifier":
        raise ZooError(f"{name}: a {float_entry.kind}; --separate-frontend takes audio classifiers (their float "
                       "log-mel front end).")
    lite_name = f"{card.get('name', source.name)}_int8"
    dest = Path(models_dir or source.parent) / lite_name
    if dest.exists() and not force:
        raise ZooError(f"{dest} exists: pass --force to replace it.")

    representative, selection = representative_examples(card, data_dir, examples=examples)
    frontend = None
    if separate_frontend:
        import tensorflow as tf

        (input_name, input_spec), = float_entry.specs["serve"]["inputs"].items()
        frontend, content = convert_separate(
            *split_frontend(float_entry), representative,
            tf.TensorSpec([None, *input_spec["shape"][1:]], input_spec["dtype"], name=input_name),
            per_channel=per_channel)
        frontend = strip_names(frontend)
        converted_from = (f"{card['model']} rebuilt in float32 from the card with the float entry's variables, cut "
                          f"after its `{FRONTEND_END}` layer: the front end converted in float32, the rest in int8")
    else:
        concrete_fn, owner, converted_from = serving_function(float_entry)
        content = quantize_int8(concrete_fn, owner, representative,
                                float_layers=FLOAT_LAYERS.get(float_entry.kind, ()), per_channel=per_channel)
    content = strip_names(content)
    tta = (card.get("preprocessing") or {}).get("tta")
    # What the float card says of the model and its data; the test split is drawn from `training`.
    lite_card = {"name": lite_name, "kind": float_entry.kind, "task": card["task"], "format": "tflite",
                 "labels": float_entry.labels, "dataset": card.get("dataset"),
                 **{k: card[k] for k in ("sample_rate", "num_samples") if k in card}}
    same = {k: card.get(k) for k in ("preprocessing", "model", "model_kwargs", "parameters", "training")}

    with atomic_directory(dest) as tmp:
        (tmp / LITE_FILE).write_bytes(content)
        if frontend:
            (tmp / FRONTEND_FILE).write_bytes(frontend)
        (tmp / CARD).write_text(json.dumps({**lite_card, **same}))
        write_manifest(tmp)
        lite = load(tmp)
        result = evaluate(lite, data_dir)  # the whole test split: this card has no check yet
        check = card.get("check") or {}
        examples_checked = check.get("examples") or result["examples"]
        specs = lite.specs["serve"]
        lite_card.update({
            "metric": {"name": result["metric"], "value": result["value"], "examples": result["examples"],
                       "measured": "by zoo.pretrained.evaluate with the LiteRT interpreter on the whole test split of "
                                   "the float entry" + (f", with {tta} test-time augmentation (inside the .tflite "
                                                        "model, as in the float entry)" if tta else ""),
                       "float_value": card["metric"]["value"],
                       "float_top1_agreement": _agreement(float_entry, lite, data_dir)},
            "check": {"metric": result["metric"], "examples": examples_checked, "of": result["of"],
                      "selection": check.get("selection") or "all of the test split, in the loader's order",
                      "tolerance": check_tolerance(result["metric"], result["value"], examples_checked, result["of"]),
                      "how": "zoo.pretrained.evaluate on the mirror (ZOO_DATA_DIR) in a fresh process; "
                             "tests/test_lite.py, real_data marker"},
            "inputs": _SEPARATE_INPUTS if frontend else _INPUTS[float_entry.kind],
            "signatures": card_signatures({"serve": specs}, {"signatures": {"serve": card["signatures"]["serve"]}},
                                          float_entry.kind),
            "quantization": {
                "method": "full-integer post-training quantization (TFLiteConverter, Optimize.DEFAULT, representative "
                          "dataset): int8 weights and activations, int32 biases",
                "converted_from": converted_from,
                **quantization_summary(content),
                "float_part": (_SEPARATE_FLOAT_PART if frontend else
                               _FLOAT_PART.get(float_entry.kind, "none: every op with an int8 kernel is int8")),
                "representative_dataset": {"split": "train", "examples": len(representative), "selection": selection},
                "quantization_aware_training": (
                    "none: post-training int8 is within a point of the float entry"
                    if result["value"] >= card["metric"]["value"] - 0.01 else
                    "recommended: post-training int8 loses more than a point; this export does not run it"),
            },
            "ops": op_counts(content),
            "size_bytes": len(content),
            **(_separate_files(frontend, content, representative[0]) if frontend else {}),
            "tensor_bytes": tensor_bytes(content),
            "latency": {**latency([frontend, content] if frontend else content, representative[0]),
                        **({"of": f"{FRONTEND_FILE} then {LITE_FILE}, on one clip"} if frontend else {})},
            **same,
            "source": {"entry": card.get("name", source.name), "manifest_sha256": sha256(source / MANIFEST),
                       "metric": card["metric"], "command": card.get("command")},
            "requires": ["tensorflow, or ai-edge-litert alone for the model file (pip install keras-zoo[lite])"],
            "load": {"zoo": f"zoo.load({lite_name!r})",
                     "litert": "from ai_edge_litert.interpreter import Interpreter; "
                               + (f"Interpreter('saved_models/{lite_name}/{FRONTEND_FILE}').get_signature_runner() "
                                  "gives the features that " if frontend else "")
                               + f"Interpreter('saved_models/{lite_name}/{LITE_FILE}').get_signature_runner()"
                               + (" takes" if frontend else ""),
                     "check_files": f"cd saved_models/{lite_name} && sha256sum -c {MANIFEST}"},
            "command": command or _command(name, examples=examples, per_channel=per_channel,
                                           separate_frontend=separate_frontend),
            "versions": {**package_versions(), "interpreter": _interpreter_version(interpreter_class())},
            "exported": datetime.date.today().isoformat(),
        })
        (tmp / CARD).write_text(dumps_strict(validate_card(lite_card, f"The card of {lite_name}"), indent=2,
                                             ensure_ascii=False) + "\n")
        write_manifest(tmp)
    return dest


_INPUTS = {
    "image_classifier": "image files are decoded, centre-cropped and resized by zoo.load's predictor (as for the float "
                        "entry); the .tflite model takes one uint8 RGB image [1, height, width, 3] and normalizes it "
                        "inside",
    "audio_classifier": "WAV files are decoded, downmixed, resampled and padded or trimmed (centred) in Python by "
                        "zoo.load's predictor (zoo.audio.load_waveform, what the float entry's serve_wav does in its "
                        "graph); the .tflite model takes one float32 waveform [1, samples] in [-1, 1]",
}
_FLOAT_PART = {
    "audio_classifier": "the log-mel front end (framing, Hann window, RFFT, power, mel filterbank, log, per-clip "
                        "normalization) stays float32 inside the same .tflite file; one QUANTIZE op hands the "
                        "normalized spectrogram to the int8 network",
}


_SEPARATE_INPUTS = ("WAV files are decoded, downmixed, resampled and padded or trimmed (centred) in Python by "
                    "zoo.load's predictor (zoo.audio.load_waveform, what the float entry's serve_wav does in its "
                    "graph); frontend.tflite (float32) takes one float32 waveform [1, samples] in [-1, 1] to the "
                    "normalized log-mel features [1, frames, mel bins] that model.tflite (int8) classifies")
_SEPARATE_FLOAT_PART = ("the log-mel front end (framing, Hann window, RFFT, power, mel filterbank, log, per-clip "
                        "normalization) is a float32 model of its own, frontend.tflite; model.tflite is the int8 "
                        "network alone, with float32 features in (one QUANTIZE op) and probabilities out")


def _separate_files(frontend: bytes, content: bytes, waveform) -> dict:
    """The card's account of the two files of a --separate-frontend export."""
    from zoo.lite import FRONTEND_FILE, LITE_FILE, LiteModel, op_counts

    def spec(model):
        serve = model.specs["serve"]
        return {"input": next(iter(serve["inputs"].values())), "output": next(iter(serve["outputs"].values()))}

    return {
        "size_note": f"size_bytes is {LITE_FILE}'s, the int8 model, which the size target refers to; the float front "
                     f"end {FRONTEND_FILE} is {len(frontend):,} bytes more",
        "files": {FRONTEND_FILE: {"size_bytes": len(frontend), "computes_in": "float32", **spec(LiteModel(frontend)),
                                  "ops": op_counts(frontend)},
                  LITE_FILE: {"size_bytes": len(content), "computes_in": "int8", **spec(LiteModel(content)),
                              "ops": op_counts(content)}},
        "latency_model": {**latency(content, next(iter(LiteModel(frontend)(waveform[None]).values()))),
                          "of": f"{LITE_FILE} alone, on the features of one clip"},
    }


def _agreement(float_entry, lite, data_dir) -> float:
    """How often the int8 model's top-1 label is the float entry's, on the whole test split."""
    from zoo.pretrained import task_info

    inputs, _, _ = task_info(float_entry.metadata).test_data(float_entry.metadata, data_dir)
    return float(np.mean(float_entry.probabilities(inputs).argmax(1) == lite.probabilities(inputs).argmax(1)))


def _command(name, *, examples, per_channel, separate_frontend=False) -> str:
    args = ["python", "-m", "zoo.export_lite", str(name), "--int8"]
    if examples != REPRESENTATIVE_EXAMPLES:
        args += ["--examples", str(examples)]
    if not per_channel:
        args.append("--per-tensor")
    if separate_frontend:
        args.append("--separate-frontend")
    return shlex.join(args)


def main(argv=None) -> Path:
    from zoo.config import check_number

    parser = argparse.ArgumentParser(prog="python -m zoo.export_lite", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:5]))
    parser.add_argument("name", metavar="NAME", help="a pretrained image or audio classifier entry, e.g. cifar10")
    parser.add_argument("--int8", action="store_true", help="full-integer int8 quantization (required)")
    parser.add_argument("--examples", type=int, default=REPRESENTATIVE_EXAMPLES,
                        help=f"training examples that calibrate the quantization (default {REPRESENTATIVE_EXAMPLES})")
    parser.add_argument("--per-tensor", action="store_true",
                        help="one weight scale a tensor instead of one a channel (smaller file)")
    parser.add_argument("--separate-frontend", action="store_true",
                        help="audio: the float log-mel front end in frontend.tflite, model.tflite the int8 network "
                             "alone")
    parser.add_argument("--data-dir", default=None, help="the dataset mirror (default: ZOO_DATA_DIR)")
    parser.add_argument("--models-dir", default=None, help="where to write NAME_int8/ (default: beside NAME)")
    parser.add_argument("--force", action="store_true", help="replace an existing entry")
    args = parser.parse_args(argv)
    if not args.int8:
        parser.error("pass --int8: the int8 export is the only one")
    check_number("--examples", args.examples, gt=0)
    dest = export_lite(args.name, data_dir=args.data_dir, models_dir=args.models_dir, examples=args.examples,
                       per_channel=not args.per_tensor, separate_frontend=args.separate_frontend, force=args.force)
    card = json.loads((dest / "metadata.json").read_text())
    metric, lat = card["metric"], card["latency"]
    print(f"{dest}: {card['size_bytes']:,} bytes, {metric['name']} {metric['value']:.4f} (float "
          f"{metric['float_value']:.4f}, top-1 agreement {metric['float_top1_agreement']:.2%}), latency median "
          f"{lat['median_ms']} ms, p90 {lat['p90_ms']} ms ({lat['threads']} thread).")
    return dest


if __name__ == "__main__":
    from zoo.cli import run as _run

    _run(main)
