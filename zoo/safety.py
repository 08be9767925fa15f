"""What `zoo.load` checks before it runs a model: the sha256 manifest of an entry's files, and the
op types of a SavedModel's graph against an allow-list.

A SavedModel is a program: `tf.saved_model.load` runs its initializers, and every signature is a
graph of TensorFlow ops, which can read and write files (`ReadFile`, `WriteFile`,
`MatchingFiles`, `SaveV2` to any path) and more. `saved_model_cli scan` flags three ops
(`ReadFile`, `WriteFile`, `PrintV2`); the zoo is stricter and only runs graphs made of the ops
its own models use (`ALLOWED_OPS`), so an op that is not there is refused, whatever it does.
Two ops get a closer look instead of a blanket yes or no: the checkpoint ops (`SaveV2`,
`RestoreV2`, ...) and `PrintV2`, which passes only when it prints to the console (it can also
append to a file).

Every SavedModel carries functions that save and restore its variables with checkpoint ops,
named by its `saver_def`. What runs them decides whether they are harmless, so the rule follows
what `tf.saved_model.load` does (TensorFlow's `saved_model/load.py`):

- A file with one MetaGraph that has an object graph loads the TF2 way. The loader turns every
  function the object graph names into a callable; at load time it runs each resource's
  `_create_resource` and `_initialize` (and `_destroy_resource` when the resource goes away) and
  the restore functions of objects with `saveable_objects`, and restores variables with
  `RestoreV2` ops that it builds itself from the `variables/` path. It never runs the
  `saver_def`'s nodes, the init op, nor any node of the `graph_def`.
- Any other file (no object graph, or several MetaGraphs) loads the TF1 way
  (`load_v1_in_v2`), which runs the `saver_def`'s restore op and the init op: the zoo refuses it.

So a checkpoint op passes only in a function that the `saver_def`'s nodes reach and nothing TF
could run reaches: no function the object graph names, no signature, no other node of the
graph, no gradient. Library functions that nothing reaches count as callable too. All of that
is read from the file, and any reference it adds only makes more of it callable, so the file
cannot claim the exemption for code that TF would run.

    python -m zoo.safety DIR [DIR ...]      # audit SavedModels: every op, and what would be refused
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from zoo.errors import ZooError

MANIFEST = "SHA256SUMS"

# The union of the op types in the shipped models, in toy exports of every registered builder
# (float32 and mixed_bfloat16, flip and shift TTA, each pooling and RNN variant), of the sentiment task
# (tokenizer, lookup table) and of the translation exporter (WordPiece, beam search), plus the
# forms the same Python code takes in other TF versions (PartitionedCall, StatelessWhile, ...).
# `tests/test_registry.py` exports every registered model and checks its ops against this set,
# so a new builder that needs a new op fails there first; add the op here if it is harmless.
ALLOWED_OPS = frozenset({
    # arithmetic and reductions
    "Abs", "AddN", "AddV2", "All", "Any", "ArgMax", "ArgMin", "BesselI0", "Ceil", "Cos", "Cumsum", "Equal",
    "Erf", "Erfc", "Exp", "Floor", "FloorDiv", "FloorMod", "Greater", "GreaterEqual", "Imag", "Less", "LessEqual",
    "Log", "LogicalAnd", "LogicalNot", "LogicalOr", "Max", "Maximum", "Mean", "Min", "Minimum", "Mul", "Neg",
    "NotEqual", "Pow", "Prod", "Real", "RealDiv", "Reciprocal", "Round", "Rsqrt", "Sign", "Sin", "Sqrt", "Square",
    "SquaredDifference", "Sub", "Sum", "UnsortedSegmentSum",
    # tensors: shapes, slicing, gathering
    "BroadcastTo", "Cast", "ConcatV2", "Const", "DenseBincount", "EnsureShape", "ExpandDims", "Fill", "GatherNd",
    "GatherV2", "Identity", "IdentityN", "OnesLike", "MirrorPad", "Pack", "Pad", "PadV2", "Range", "Rank", "Reshape",
    "ReverseV2", "Select", "SelectV2", "Shape", "Size", "Slice", "Split", "SplitV", "Squeeze", "StopGradient",
    "StridedSlice", "Tile", "TopKV2", "Transpose", "Unpack", "Where", "ZerosLike",
    # neural network layers
    "BatchMatMulV2", "BatchMatMulV3", "BiasAdd", "Conv2D", "DepthwiseConv2dNative", "LogSoftmax", "MatMul", "MaxPool",
    "Relu", "Sigmoid", "Softmax", "Tanh",
    # signal processing (the log-mel front end) and WAV decoding from bytes
    "DecodeWav", "RFFT",
    # images: header reads (Add joins strings there), decoding from bytes, resizing (zoo.images.image_serving)
    "Add", "DecodeImage", "DecodeRaw", "ExtractJpegShape", "ScaleAndTranslate",
    # control flow, function calls, lists, assertions
    "Assert", "If", "NoOp", "PartitionedCall", "Placeholder", "StatefulPartitionedCall", "StatelessIf",
    "StatelessWhile", "TensorListFromTensor", "TensorListGetItem", "TensorListReserve", "TensorListSetItem",
    "TensorListStack", "While",
    # variables (read and assigned in memory)
    "AssignVariableOp", "DisableCopyOnRead", "ReadVariableOp", "VarHandleOp", "VarIsInitializedOp",
    # stateless randomness (dropout branches traced with the model)
    "StatelessRandomGetKeyCounter", "StatelessRandomUniformV2",
    # strings
    "RegexReplace", "StaticRegexFullMatch", "StaticRegexReplace", "StringFormat", "StringJoin", "StringSplitV2",
    "StringStrip", "Substr", "UnicodeTranscode",
    # ragged tensors
    "RaggedGather", "RaggedRange", "RaggedTensorToTensor",
    # lookup tables filled from constants in the graph (not InitializeTableFromTextFile: it reads a file)
    "HashTableV2", "LookupTableFindV2", "LookupTableImportV2", "LookupTableSizeV2",
    # tensorflow_text (registered by `import tensorflow_text`)
    "CaseFoldUTF8", "FastWordpieceTokenizeWithOffsets", "NormalizeUTF8", "TFText>FastWordpieceDetokenize",
    # printing: only to the console, see CONSOLE_STREAMS
    "PrintV2",
})
# Ops that tensorflow_text registers: a graph that uses one needs `import tensorflow_text` to load.
TEXT_OPS = frozenset({"CaseFoldUTF8", "FastWordpieceTokenizeWithOffsets", "NormalizeUTF8",
                      "TFText>FastWordpieceDetokenize"})
# File-system ops every SavedModel has in the functions that save and restore its variables
# (`saver_def`); allowed there and nowhere else.
CHECKPOINT_OPS = frozenset({"MergeV2Checkpoints", "RestoreV2", "SaveV2", "ShardedFilename"})
# PrintV2's `output_stream` values that do not write a file (absent: the default, stderr).
CONSOLE_STREAMS = frozenset({"", "stderr", "stdout", "log(info)", "log(warning)", "log(error)"})


# --- manifest ---------------------------------------------------------------------------------


def entry_files(path) -> list[str]:
    """The files under `path` other than its own manifest (`path/SHA256SUMS`; a file of that
    name in a subfolder is an ordinary file), as sorted POSIX paths relative to it."""
    path = Path(path)
    files = (p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file() or p.is_symlink())
    return sorted(f for f in files if f != MANIFEST)


def sha256(file) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(path) -> Path:
    """Writes `path/SHA256SUMS`, one `<sha256>  <file>` line a file (the format of `sha256sum`,
    so `cd path && sha256sum -c SHA256SUMS` checks it too)."""
    path = Path(path)
    lines = [f"{sha256(path / f)}  {f}\n" for f in entry_files(path)]
    (path / MANIFEST).write_text("".join(lines))
    return path / MANIFEST


def verify_manifest(path) -> None:
    """A `ZooError` unless the files under `path` are exactly those its `SHA256SUMS` lists, with
    those hashes: a changed, missing or extra file is named.

    Raises:
        ZooError: no manifest, an unreadable line, or files that do not match it.
    """
    path = Path(path)
    manifest = path / MANIFEST
    if not manifest.is_file():
        raise ZooError(f"{path} has no {MANIFEST} manifest, so its files cannot be checked: publish it with "
                       "`python -m zoo.publish`, or pass trust=True (--trust) if you trust where it came from.")
    expected = {}
    for number, line in enumerate(manifest.read_text().splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            raise ZooError(f"{manifest}, line {number}: not a `<sha256>  <file>` line: {line[:80]!r}.")
        expected[name] = digest
    present = set(entry_files(path))
    problems = [f"missing: {', '.join(sorted(set(expected) - present))}" if set(expected) - present else "",
                f"not in the manifest: {', '.join(sorted(present - set(expected)))}" if present - set(expected) else ""]
    changed = sorted(f for f in set(expected) & present
                     if (path / f).is_symlink() or sha256(path / f) != expected[f])
    problems.append(f"changed: {', '.join(changed)}" if changed else "")
    problems = [p for p in problems if p]
    if problems:
        raise ZooError(f"{path}: the files do not match {MANIFEST} ({'; '.join(problems)}). Refusing to load a "
                       "model that is not what was published; restore it from git or publish it again.")


# --- ops --------------------------------------------------------------------------------------


def _called_functions(node) -> list[str]:
    """The library functions a node calls: its op itself, or function-valued attributes
    (`f` of PartitionedCall, `body`/`cond` of While, branches of If and Case)."""
    names = [node.op]
    for attr in node.attr.values():
        if attr.HasField("func"):
            names.append(attr.func.name)
        names += [f.name for f in attr.list.func]
    return names


def _read_saved_model(path):
    from tensorflow.core.protobuf import saved_model_pb2

    if not (Path(path) / "saved_model.pb").is_file():
        raise ZooError(f"{path}: not a SavedModel directory (no saved_model.pb).")
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    return proto


def _loads_the_tf1_way(proto) -> bool:
    # The test `tf.saved_model.load` makes before it picks its TF2 loader over `load_v1_in_v2`.
    return not (len(proto.meta_graphs) == 1 and proto.meta_graphs[0].HasField("object_graph_def"))


def tf1_loader_reason(path) -> str | None:
    """Why `tf.saved_model.load` would load the SavedModel at `path` the TF1 way, which runs the
    `saver_def`'s restore op and the init op; None when it loads it the TF2 way.

    Args:
        path: a SavedModel directory.
    """
    proto = _read_saved_model(path)
    if not _loads_the_tf1_way(proto):
        return None
    if len(proto.meta_graphs) != 1:
        return f"it has {len(proto.meta_graphs)} MetaGraphs, not one"
    return "it has no object graph (a TF1 SavedModel)"


def _tensor_nodes(info) -> list[str]:
    """The graph nodes a signature's TensorInfo names (dense, sparse or composite)."""
    kind = info.WhichOneof("encoding")
    if kind == "name":
        names = [info.name]
    elif kind == "coo_sparse":
        names = [info.coo_sparse.values_tensor_name, info.coo_sparse.indices_tensor_name,
                 info.coo_sparse.dense_shape_tensor_name]
    elif kind == "composite_tensor":
        return [n for component in info.composite_tensor.components for n in _tensor_nodes(component)]
    else:
        names = []
    return [name.lstrip("^").split(":")[0] for name in names if name]


def _roots(meta_graph, tf1: bool) -> tuple[set, set]:
    """What TF can run in `meta_graph`, as (graph node names, library function names): every
    node but the `saver_def`'s (all of them when it loads the TF1 way), every node a signature
    names, every function the object graph names, every gradient function."""
    graph, saver = meta_graph.graph_def, meta_graph.saver_def
    saver_nodes = set() if tf1 else {name.lstrip("^").split(":")[0]
                                     for name in (saver.save_tensor_name, saver.restore_op_name) if name}
    nodes = {n.name for n in graph.node if n.name not in saver_nodes}
    nodes |= {n for signature in meta_graph.signature_def.values()
              for info in [*signature.inputs.values(), *signature.outputs.values()] for n in _tensor_nodes(info)}
    objects = meta_graph.object_graph_def
    # Resources' _create_resource/_initialize/_destroy_resource and saveable objects'
    # save/restore functions are function nodes of the object graph, so they are among these.
    functions = set(objects.concrete_functions)
    for node in objects.nodes:
        functions.update(node.function.concrete_functions)
        if node.bare_concrete_function.concrete_function_name:
            functions.add(node.bare_concrete_function.concrete_function_name)
        if node.captured_tensor.concrete_function:
            functions.add(node.captured_tensor.concrete_function)
    functions |= {g.gradient_func for g in graph.library.gradient}
    functions |= {g.gradient_func for g in graph.library.registered_gradients}
    functions |= set(meta_graph.meta_info_def.function_aliases)
    return nodes, functions


def disallowed_ops(path) -> dict:
    """The ops of the SavedModel at `path` that `zoo.load` refuses, each with where it is
    (`{op: [function or "graph", ...]}`); empty when the model passes.

    Every node of the graph and of every library function is checked against `ALLOWED_OPS`;
    checkpoint ops pass only in functions that the `saver_def`'s nodes reach and nothing else
    that TF can run does (see the module docstring), and `PrintV2` only with a console
    `output_stream`. A model that TF would load the TF1 way gets no checkpoint exemption (and
    `check_saved_model_ops` refuses it anyway).

    Args:
        path: a SavedModel directory.
    """
    proto = _read_saved_model(path)
    tf1 = _loads_the_tf1_way(proto)
    found = {}
    for meta_graph in proto.meta_graphs:
        graph = meta_graph.graph_def
        library = {f.signature.name: f for f in graph.library.function}
        root_nodes, root_functions = _roots(meta_graph, tf1)

        def reachable(names):
            seen, todo = set(), [n for n in names if n in library]
            while todo:
                name = todo.pop()
                if name not in seen:
                    seen.add(name)
                    todo += [c for node in library[name].node_def for c in _called_functions(node) if c in library]
            return seen

        saver_only = reachable([c for n in graph.node if n.name not in root_nodes for c in _called_functions(n)])
        # Whatever else is in the library counts as callable, even if nothing reaches it.
        callable_ = reachable([c for n in graph.node if n.name in root_nodes for c in _called_functions(n)]
                              + list(root_functions) + [f for f in library if f not in saver_only])
        saver_only -= callable_
        # The saver's own nodes never run in TF2 but are checked all the same (checkpoint ops pass).
        places = [("graph" if n.name in root_nodes else "saver_def", n) for n in graph.node]
        places += [(f.signature.name, n) for f in library.values() for n in f.node_def]
        for where, node in places:
            if node.op in library:
                continue  # a call: the function's own nodes are checked
            ok = node.op in ALLOWED_OPS or (node.op in CHECKPOINT_OPS and (where in saver_only or where == "saver_def"))
            if node.op == "PrintV2":
                stream = node.attr["output_stream"].s if "output_stream" in node.attr else b""
                ok = stream.decode() in CONSOLE_STREAMS
            if not ok:
                found.setdefault(node.op, [])
                if where not in found[node.op]:
                    found[node.op].append(where)
    return found


def check_saved_model_ops(path) -> None:
    """A `ZooError` if `tf.saved_model.load` would load the SavedModel at `path` the TF1 way, or
    naming the ops if it uses any that `zoo.load` refuses.

    Args:
        path: a SavedModel directory.

    Raises:
        ZooError: a TF1-style SavedModel, or ops outside the allow-list.
    """
    reason = tf1_loader_reason(path)
    if reason:
        raise ZooError(f"{path}: {reason}, so tf.saved_model.load would load it the TF1 way, which runs its "
                       "saver_def's restore op and its init op, code the zoo does not check. Refusing to load it; "
                       "re-save it with tf.saved_model.save, or pass trust=True (--trust) only if you trust where "
                       "it came from.")
    bad = disallowed_ops(path)
    if bad:
        listed = ", ".join(f"{op} (in {', '.join(where[:2])}{', ...' if len(where) > 2 else ''})"
                           for op, where in sorted(bad.items()))
        raise ZooError(f"{path}: the graph uses ops outside the zoo's allow-list: {listed}. They can touch files, "
                       "processes or the network, or are simply not ops the zoo's models use. Refusing to load it; "
                       "pass trust=True (--trust) only if you trust where it came from.")


def disallowed_lite_ops(content: bytes) -> list[str]:
    """The ops of a `.tflite` flatbuffer that `zoo.load` refuses: custom ops. Builtin LiteRT ops
    only compute on tensors; a custom op is code the interpreter looks up by name, and a
    `Flex...` one runs a TensorFlow op (any of them, `ReadFile` and `WriteFile` included)
    through the Flex delegate that TensorFlow's interpreter links in.

    Args:
        content: the `.tflite` file's bytes.
    """
    from zoo.lite import lite_ops

    return sorted({name for name, _ in lite_ops(content) if name.startswith(("CUSTOM:", "UNKNOWN:"))})


def check_lite_ops(content: bytes, path) -> None:
    """A `ZooError` naming `path` if the `.tflite` model `content` does not parse or uses ops
    that `zoo.load` refuses (`disallowed_lite_ops`).

    Raises:
        ZooError: not a flatbuffer, or custom ops.
    """
    try:
        bad = disallowed_lite_ops(content)
    except ZooError as e:
        raise ZooError(f"{path}: {e}") from None
    if bad:
        raise ZooError(f"{path}: the model uses ops outside LiteRT's builtin set: {', '.join(bad)}. Custom and Flex "
                       "(TensorFlow) ops can run code the zoo does not check. Refusing to load it; pass trust=True "
                       "(--trust) only if you trust where it came from.")


def main(argv=None):
    import argparse

    from zoo.export import saved_model_ops

    parser = argparse.ArgumentParser(prog="python -m zoo.safety", description=__doc__.split("\n")[0])
    parser.add_argument("saved_models", nargs="+", metavar="DIR")
    args = parser.parse_args(argv)
    for path in args.saved_models:
        bad = disallowed_ops(path)
        refused = [f"{op} ({len(where)} place{'s' * (len(where) > 1)})" for op, where in sorted(bad.items())]
        reason = tf1_loader_reason(path)
        if reason:
            refused.insert(0, f"loads the TF1 way ({reason})")
        refused = ", ".join(refused)
        print(f"{path}: {len(saved_model_ops(path))} op types; {f'refused: {refused}' if refused else 'all allowed'}")


if __name__ == "__main__":
    from zoo.cli import run as _run

    _run(main)
