"""LiteRT (TensorFlow Lite) models: reading a `.tflite` file and running it.

`zoo.load` uses this for entries that hold a `model.tflite` (written by `zoo.export_lite`):
the same predictors as for SavedModels, on top of `LiteModel` instead of `model.signatures`.

The interpreter is `ai_edge_litert`'s when it is installed (`pip install keras-zoo[lite]`):
TensorFlow 2.21 still ships `tf.lite.Interpreter` but deprecates it in its favour. Without it,
TensorFlow's own interpreter runs the same files.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from zoo.errors import ZooError

LITE_FILE = "model.tflite"
# An audio entry may keep its float log-mel front end in a file of its own, so that
# `model.tflite` is the int8 network alone (zoo.export_lite --separate-frontend).
FRONTEND_FILE = "frontend.tflite"


def interpreter_class():
    """`ai_edge_litert.interpreter.Interpreter` if installed, else `tf.lite.Interpreter`."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter


def make_interpreter(content: bytes, *, num_threads: int | None = None):
    """An interpreter for the flatbuffer `content`, its tensors allocated."""
    with warnings.catch_warnings():
        # tf.lite.Interpreter's deprecation notice, on every construction: the fallback is deliberate.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        interpreter = interpreter_class()(model_content=content, num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def lite_file(path) -> Path | None:
    """The `.tflite` file of an entry directory (`model.tflite`) or the path itself if it is
    a `.tflite` file; None otherwise."""
    path = Path(path)
    if path.is_file() and path.suffix == ".tflite":
        return path
    return path / LITE_FILE if (path / LITE_FILE).is_file() else None


# --- the flatbuffer ---------------------------------------------------------------------------


def _schema():
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated


def _builtin_names() -> dict:
    schema = _schema()
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def _read_model(content: bytes):
    schema = _schema()
    try:
        if not schema.Model.ModelBufferHasIdentifier(content, 0):
            raise ValueError("no TFL3 identifier")
        return schema.Model.GetRootAs(content, 0)
    except Exception as e:  # a flatbuffer that does not parse raises whatever its reader hits
        raise ZooError(f"not a TensorFlow Lite flatbuffer ({e}).") from None


def _op_name(code, names) -> str:
    # Builtin codes above 127 live in builtin_code; deprecated_builtin_code holds the rest.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if names.get(builtin) == "CUSTOM":
        return f"CUSTOM:{(code.CustomCode() or b'').decode('utf-8', 'replace')}"
    return names.get(builtin, f"UNKNOWN:{builtin}")


def lite_ops(content: bytes) -> list[tuple[str, str]]:
    """Every operator of every subgraph as (op name, the type of its first input): e.g.
    `("CONV_2D", "INT8")`, `("RFFT2D", "FLOAT32")`. Custom ops read `CUSTOM:<code>` (a
    `Flex...` code is a TensorFlow op run through the Flex delegate)."""
    model = _read_model(content)
    names = _builtin_names()
    types = {v: k for k, v in vars(_schema().TensorType).items() if not k.startswith("_")}
    codes = [_op_name(model.OperatorCodes(i), names) for i in range(model.OperatorCodesLength())]
    ops = []
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(o)
            first = next((op.Inputs(i) for i in range(op.InputsLength()) if op.Inputs(i) >= 0), None)
            dtype = types.get(subgraph.Tensors(first).Type(), "?") if first is not None else "-"
            ops.append((codes[op.OpcodeIndex()], dtype))
    return ops


def op_counts(content: bytes) -> dict:
    """`{input type: {op name: count}}` of a model's operators, for its card."""
    counts = {}
    for (name, dtype), n in sorted(Counter(lite_ops(content)).items()):
        counts.setdefault(dtype.lower(), {})[name] = n
    return counts


# --- running ----------------------------------------------------------------------------------


def _spec(detail) -> dict:
    shape = [None if d < 0 else int(d) for d in detail.get("shape_signature", detail["shape"])]
    scale, zero_point = detail["quantization"]
    spec = {"dtype": np.dtype(detail["dtype"]).name, "shape": shape}
    if scale:
        spec["quantization"] = {"scale": float(scale), "zero_point": int(zero_point)}
    return spec


class LiteModel:
    """A `.tflite` model with one signature, run example by example (the zoo's exports have a
    fixed batch of one, as microcontroller runtimes need); `run(x)` takes a batch.

    Attributes:
        content: the flatbuffer.
        specs: `{"serve": {"inputs": {name: spec}, "outputs": {name: spec}}}` as
            `zoo.pretrained.signature_specs` gives for SavedModels, with `quantization`
            (scale, zero point) on quantized inputs and outputs.
    """

    def __init__(self, content: bytes, *, num_threads: int | None = None):
        self.content = content
        self.interpreter = make_interpreter(content, num_threads=num_threads)
        signatures = self.interpreter.get_signature_list()
        if len(signatures) != 1:
            raise ZooError(f"A zoo .tflite model has one signature; this one has {sorted(signatures) or 'none'}.")
        self.signature = next(iter(signatures))
        self.runner = self.interpreter.get_signature_runner(self.signature)
        inputs, outputs = self.runner.get_input_details(), self.runner.get_output_details()
        if len(inputs) != 1:
            raise ZooError(f"A zoo .tflite model takes one input; this one takes {sorted(inputs)}.")
        (self.input_name, detail), = inputs.items()
        self.input_dtype = np.dtype(detail["dtype"])
        self.specs = {"serve": {"inputs": {k: _spec(v) for k, v in inputs.items()},
                                "outputs": {k: _spec(v) for k, v in outputs.items()}}}

    def __call__(self, x) -> dict:
        """One example with its batch axis of 1: `{output name: numpy array}`."""
        return self.runner(**{self.input_name: np.ascontiguousarray(x, dtype=self.input_dtype)})

    def run(self, x) -> dict:
        """A batch `x`, one example at a time: `{output name: numpy array of len(x)}`."""
        parts = [self(x[i:i + 1]) for i in range(len(x))]
        if not parts:
            return {k: np.zeros([0, *v["shape"][1:]], v["dtype"]) for k, v in self.specs["serve"]["outputs"].items()}
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class LiteChain(LiteModel):
    """Two `.tflite` models run one after the other, as one `LiteModel`: a float front end
    (waveforms -> normalized log-mel features) whose single output feeds the int8 `model`.

    Attributes:
        frontend, model: the two `LiteModel`s; `content` is the int8 model's flatbuffer.
        specs: the front end's input and the model's outputs.
    """

    def __init__(self, frontend: LiteModel, model: LiteModel):
        (out_name, out), = frontend.specs["serve"]["outputs"].items()
        (in_name, into), = model.specs["serve"]["inputs"].items()
        if (out["dtype"], out["shape"]) != (into["dtype"], into["shape"]):
            raise ZooError(f"The front end's output {out_name} {out['dtype']}{out['shape']} does not fit the model's "
                           f"input {in_name} {into['dtype']}{into['shape']}.")
        self.frontend, self.model, self.content = frontend, model, model.content
        self.input_name, self.input_dtype = frontend.input_name, frontend.input_dtype
        self.specs = {"serve": {"inputs": frontend.specs["serve"]["inputs"],
                                "outputs": model.specs["serve"]["outputs"]}}

    def __call__(self, x) -> dict:
        (features,) = self.frontend(x).values()
        return self.model(features)
