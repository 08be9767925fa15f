"""Fine-tuning: a pretrained entry as the starting point of a new run.

    python -m tasks.speech.classify --data my_words/ --init-from speech_commands
    python -m tasks.vision.classify --data photos/ --init-from cifar10 --freeze backbone --epochs 5

    import zoo
    model = zoo.load("speech_commands").keras_model()     # trainable keras.Model, weights loaded
    model.preprocessing                                    # what its inputs must be (rate, vocabulary...)

An entry's Keras weights are its SavedModel's own variables (`variables/`), read by variable path
(`group1_conv1/kernel`): no second copy of the weights, so `keras_model()` computes what the
SavedModel computes. They are read with `tf.train.load_checkpoint`, which reads tensors and runs
nothing; the files are checked against the entry's manifest (`SHA256SUMS`) first. The builder
and its arguments come from the model card (`model`, `model_kwargs`, and what the recipe derives
from the card: classes, input size, sample rate, vocabulary sizes); a text entry's vocabularies
are files of the entry (`vocabulary.txt`, `bigrams.txt`). Weights stored as int8 (Keras
`Model.quantize`) are dequantized to float32; weights stored as float16 are cast to float32.

Every registered classifier names its last layer `logits`: that is the head. A new run whose
labels are the entry's (in any order) keeps the head, its rows reordered to the new label order;
other labels get a new head.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.errors import ZooError

HEAD = "logits"
FREEZE = ("none", "backbone", "all-but-head")
FREEZE_HELP = ("which weights stay as the entry's (with --init-from): none; backbone (embeddings and convolution "
               "kernels; normalization, recurrent and dense layers train); all-but-head (only the classifier trains)")
VOCABULARY_FILES = ("vocabulary.txt", "bigrams.txt")
RECIPE_OF_KIND = {"image_classifier": "image", "text_classifier": "text", "audio_classifier": "audio"}


@dataclass
class Parent:
    """A pretrained entry as a starting point: its card, its variables (name -> array, float32)
    and what identifies it (name and the sha256 of its manifest)."""

    name: str
    path: Path
    card: dict
    manifest_sha256: str
    variables: dict = field(repr=False)

    @property
    def recipe(self) -> str:
        return recipe_of(self.card)

    @property
    def labels(self) -> list:
        return list(self.card.get("labels") or [])

    @property
    def preprocessing(self) -> dict:
        return dict(self.card.get("preprocessing") or {})

    def vocabularies(self) -> tuple[list, list]:
        """A text entry's word and bigram vocabularies (without `[PAD]` and `[UNK]`)."""
        if not (self.path / VOCABULARY_FILES[0]).is_file():
            raise ZooError(f"{self.name}: no {VOCABULARY_FILES[0]} in {self.path}: a text entry needs its vocabulary "
                           "to be fine-tuned (entries published since fine-tuning exists have it).")
        return read_vocabularies(self.path)

    def lineage(self) -> dict:
        """What a run (and its model card) records of where it started."""
        return {"name": self.name, "manifest_sha256": self.manifest_sha256, "model": self.card.get("model"),
                "labels": self.labels, "metric": (self.card.get("metric") or {}).get("value")}


def recipe_of(card: dict) -> str:
    """The recipe (input kind) of an entry's card: its `recipe`, else the one of its `kind`."""
    return card.get("recipe") or RECIPE_OF_KIND.get(card.get("kind"), "")


def load_parent(name_or_path, *, trust: bool = False) -> Parent:
    """The entry `name_or_path` (a name in `saved_models/` or a path) as a `Parent`, its files
    checked against its manifest.

    Raises:
        ZooError: an unknown name, files that do not match the manifest, a LiteRT entry or a
            SavedModel without the builder configuration or readable variables (nothing to
            fine-tune from), or variables the card's builder does not explain.
    """
    from zoo.pretrained import resolve

    path = resolve(name_or_path)
    return _load_parent(str(path.resolve()), trust)


@functools.lru_cache(maxsize=4)
def _load_parent(path: str, trust: bool) -> Parent:
    from zoo.lite import lite_file
    from zoo.pretrained import CARD
    from zoo.registry import list_models
    from zoo.safety import MANIFEST, sha256, verify_manifest

    path = Path(path)
    if path.is_file():
        raise ZooError(f"{path}: a file; --init-from takes an entry (a directory with a SavedModel, metadata.json and "
                       "SHA256SUMS), e.g. one `python -m zoo.publish` wrote.")
    if (path / MANIFEST).exists() or not trust:
        verify_manifest(path)
    name = path.name
    if lite_file(path):
        raise ZooError(f"{name} is a LiteRT (.tflite) entry: it has no Keras weights to start from. Use the SavedModel "
                       f"entry it was converted from{_lite_source(path)}.")
    card = json.loads((path / CARD).read_text()) if (path / CARD).is_file() else {}
    if not (path / "saved_model.pb").is_file() or not (path / "variables").is_dir():
        raise ZooError(f"{path}: no SavedModel variables to start from.")
    if card.get("kind") not in RECIPE_OF_KIND:
        raise ZooError(f"{name} is a {card.get('kind') or 'model of unknown kind'}: --init-from and keras_model() take "
                       f"classifier entries ({', '.join(RECIPE_OF_KIND)}).")
    if not card.get("model") or card["model"] not in list_models():
        raise ZooError(f"{name}: its model card names no registered builder (model: {card.get('model')!r}), so its "
                       "Keras model cannot be rebuilt.")
    manifest = sha256(path / MANIFEST) if (path / MANIFEST).exists() else None
    return Parent(name, path, card, manifest, dequantized(saved_model_variables(path)))


def _lite_source(path) -> str:
    card_file = Path(path) / "metadata.json"
    source = json.loads(card_file.read_text()).get("source") if card_file.is_file() else None
    name = source.get("entry") if isinstance(source, dict) else source
    return f" ({name})" if isinstance(name, str) else ""


def saved_model_variables(path) -> dict:
    """`{variable path: numpy array}` of the SavedModel at `path`, read from `variables/` without
    running any of its graph.

    The SavedModel's object graph names each variable (Keras 3 names them by path); the
    checkpoint's object graph, node for node the same, gives the key its value is stored under.

    Raises:
        ZooError: a variable whose stored shape is not the one the object graph declares, or two
            variables of one name (nothing to map them by).
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2, trackable_object_graph_pb2

    path = Path(path)
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((path / "saved_model.pb").read_bytes())
    objects = saved.meta_graphs[0].object_graph_def
    reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    checkpoint = trackable_object_graph_pb2.TrackableObjectGraph()
    checkpoint.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    out = {}
    for node_id, node in enumerate(objects.nodes):
        if node.WhichOneof("kind") != "variable":
            continue
        name = node.variable.name.split(":")[0]
        keys = [a.checkpoint_key for a in checkpoint.nodes[node_id].attributes if a.name == "VARIABLE_VALUE"] \
            if node_id < len(checkpoint.nodes) else []
        value = reader.get_tensor(keys[0]) if keys else None
        declared = tuple(d.size for d in node.variable.shape.dim)
        if value is None or tuple(np.shape(value)) != declared:
            raise ZooError(f"{path}: variable {name} is not stored as its object graph declares {list(declared)}.")
        if name in out:
            raise ZooError(f"{path}: two variables are named {name}: its weights cannot be mapped onto a Keras model.")
        out[name] = value
    return out


def dequantized(variables: dict) -> dict:
    """Float32 weights from stored ones: int8 embeddings and Dense kernels (Keras
    `Model.quantize("int8")`: `embeddings / embeddings_scale[:, None]`, `kernel / kernel_scale`)
    dequantized and their scales dropped; float16 cast to float32."""
    out = {}
    for name, value in variables.items():
        prefix, _, leaf = name.rpartition("/")
        if value.dtype == np.int8 and leaf in ("embeddings", "kernel"):
            scale = variables.get(f"{prefix}/{leaf}_scale")
            if scale is None:
                raise ZooError(f"{name}: int8 without its {leaf}_scale: cannot dequantize it.")
            scale = np.asarray(scale, np.float32)
            out[name] = value.astype(np.float32) / (scale[:, None] if leaf == "embeddings" else scale)
        elif leaf in ("embeddings_scale", "kernel_scale") and variables.get(f"{prefix}/{leaf[:-6]}") is not None \
                and variables[f"{prefix}/{leaf[:-6]}"].dtype == np.int8:
            continue
        elif value.dtype == np.float16:
            out[name] = value.astype(np.float32)
        else:
            out[name] = value
    return out


def _is_state(name: str) -> bool:
    # Random-number generator states (dropout, SpecAugment): not weights.
    return "seed_generator" in name.rpartition("/")[0] or name.endswith("seed_generator_state")


def head_mapping(parent_labels, labels) -> list | None:
    """For each of `labels`, its index in `parent_labels` when both are the same set of labels
    (the head is kept, reordered); None when they differ (the head is replaced)."""
    parent_labels, labels = [str(x) for x in parent_labels], [str(x) for x in labels]
    if sorted(parent_labels) != sorted(labels) or len(set(labels)) != len(labels):
        return None
    return [parent_labels.index(x) for x in labels]


def load_weights(model, variables: dict, *, head: list | None, source: str = "the entry") -> dict:
    """Assigns `variables` (name -> array) to `model`'s variables of the same path.

    Args:
        model: the built Keras model (the entry's architecture).
        variables: the parent's float weights (`Parent.variables`).
        head: `head_mapping(...)`: the parent's head row of each class (kept, reordered), or
            None (the head is left as the builder initialized it).
        source: the parent's name, for errors.

    Returns:
        `{"loaded": n, "head": "kept" | "replaced"}`.

    Raises:
        ZooError: a weight of the model the parent lacks or has in another shape, or weights of
            the parent the model has no place for: the architectures differ.
    """
    loaded, missing, wrong, used = 0, [], [], set()
    for v in model.variables:
        name = v.path
        if _is_state(name):
            continue
        is_head = name.startswith(f"{HEAD}/")
        if is_head and head is None:
            used.add(name)
            continue
        if name not in variables:
            missing.append(name)
            continue
        value = np.asarray(variables[name])
        used.add(name)
        if is_head:
            value = value[..., head]
        if tuple(value.shape) != tuple(v.shape):
            wrong.append(f"{name} {list(value.shape)} (model: {list(v.shape)})")
            continue
        v.assign(value.astype(v.dtype))
        loaded += 1
    unused = sorted(n for n in variables if n not in used and not _is_state(n)
                    and not (head is None and n.startswith(f"{HEAD}/")))
    if missing or wrong or unused:
        parts = ([f"{len(wrong)} of another shape: {', '.join(wrong[:3])}"] if wrong else []) + \
                ([f"{len(missing)} the entry lacks: {', '.join(missing[:3])}"] if missing else []) + \
                ([f"{len(unused)} of the entry the model has no place for: {', '.join(unused[:3])}"] if unused else [])
        raise ZooError(f"The weights of {source} do not fit this model ({'; '.join(parts)}): the architecture or its "
                       "input size differs from the entry's.")
    return {"loaded": loaded, "head": "kept" if head is not None else "replaced"}


def build_from_entry(name_or_path, *, name: str | None = None, trust: bool = False, **kwargs):
    """The entry's architecture, built with its builder arguments (`kwargs` override them) and
    its weights loaded: all of them, or all but the head when `num_classes` differs from the
    entry's labels. The model's `preprocessing` says what its inputs must be.

    Raises:
        ZooError: `name` is not the entry's builder, the entry cannot be fine-tuned
            (`load_parent`), or its weights do not fit the model the arguments build.
    """
    from zoo.recipes import get_recipe
    from zoo.registry import build_model

    parent = load_parent(name_or_path, trust=trust)
    if name is not None and name != parent.card["model"]:
        raise ZooError(f"{parent.name} holds the weights of a {parent.card['model']!r} model, not {name!r}.")
    recipe = get_recipe(parent.recipe)
    args = {**(parent.card.get("model_kwargs") or {}), **recipe.builder_args(parent.card), **kwargs}
    model = build_model(parent.card["model"], **args)
    check_head(model)
    same = args.get("num_classes") == len(parent.labels)
    load_weights(model, parent.variables, head=list(range(len(parent.labels))) if same else None, source=parent.name)
    model.preprocessing = {**parent.preprocessing, "inputs": recipe.model_inputs(parent.card),
                           "labels": parent.labels if same else None, "entry": parent.name}
    return model


def keras_model(name_or_path, *, trust: bool = False):
    """The entry `name_or_path` as a trainable, uncompiled `keras.Model` with its weights (head
    included); `model.preprocessing` is its preprocessing spec: what its inputs must be, the
    labels of its outputs (logits), and the card's `preprocessing`."""
    return build_from_entry(name_or_path, trust=trust)


def leaf_layers(model):
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if not layer._flatten_layers(include_self=False, recursive=False)]


def is_feature_extractor(layer) -> bool:
    """Embeddings and convolutions: what `--freeze backbone` keeps."""
    import keras

    kinds = tuple(getattr(keras.layers, n) for n in ("Embedding", "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D",
                                                       "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D"))
    return isinstance(layer, kinds)


def freeze(model, mode: str) -> dict:
    """Freezes part of `model` in place (`FREEZE`); returns `{layer: trainable}` as it was, for
    `unfreeze`. A frozen BatchNormalization runs in inference mode (Keras 3). Compile after."""
    if mode not in FREEZE:
        raise ZooError(f"--freeze {mode!r}: one of {', '.join(FREEZE)}.")
    before = {layer: layer.trainable for layer in model._flatten_layers(include_self=False, recursive=True)}
    if mode == "all-but-head":
        for layer in model.layers:
            if layer.name != HEAD:
                layer.trainable = False
    elif mode == "backbone":
        for layer in leaf_layers(model):
            if is_feature_extractor(layer):
                layer.trainable = False
    return before


def unfreeze(before: dict) -> None:
    # Leaf layers last: a container set trainable sets its layers too.
    for layer, trainable in sorted(before.items(), key=lambda kv: not kv[0]._flatten_layers(include_self=False,
                                                                                            recursive=False)):
        layer.trainable = trainable


def check_head(model) -> None:
    if HEAD not in [layer.name for layer in model.layers]:
        raise ZooError(f"{model.name} has no layer named {HEAD!r}: fine-tuning replaces that layer, the classifier.")


GENERIC_TASKS = {"image": "vision.classify", "text": "text.classify", "audio": "speech.classify"}


def fine_tune_card(card: dict, name: str) -> dict | None:
    """The model card's `fine_tune` field: what rebuilds the entry as a Keras model (builder and
    its arguments, where the weights are, the head, the files of its preprocessing) and how to
    start from it; None for an entry that cannot (not a classifier of a registered builder)."""
    from zoo.recipes import get_recipe
    from zoo.registry import list_models

    recipe = recipe_of(card)
    if not recipe or card.get("format") == "tflite" or card.get("model") not in list_models() or not card.get("labels"):
        return None  # LiteRT entries hold no trainable weights: their SavedModel entry does
    args = {**(card.get("model_kwargs") or {}), **get_recipe(recipe).builder_args(card)}
    return {"builder": card["model"], "arguments": {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()},
            "weights": "variables/ of the SavedModel, read by variable path (zoo.finetune.saved_model_variables)",
            "head": HEAD, **({"files": list(VOCABULARY_FILES)} if recipe == "text" else {}),
            "keras_model": f"zoo.load({name!r}).keras_model()",
            "command": f"python -m tasks.{GENERIC_TASKS[recipe]} --data DATA --init-from {name}"}


def vocabularies_from_graph(path, card: dict) -> tuple[list, list]:
    """A text entry's word and bigram vocabularies, read from the string constants its lookup
    tables are built from (`zoo.text.Tokenizer`): for entries published before the vocabularies
    were files of the entry. Nothing of the graph is run."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    pp = card.get("preprocessing") or {}
    sizes = {"words": int(pp["vocab_size"]) - 2, "bigrams": int(pp.get("bigram_vocab_size") or 0) - 2}
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0].graph_def
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    found = {}
    for node in nodes:
        if node.op == "Const" and node.attr["dtype"].type == tf.string.as_datatype_enum:
            shape = [d.size for d in node.attr["value"].tensor.tensor_shape.dim]
            for kind, size in sizes.items():
                if shape == [size] and size > 0:
                    found.setdefault(kind, []).append(node)
    if len(found.get("words", [])) != 1 or (sizes["bigrams"] > 0 and len(found.get("bigrams", [])) != 1):
        raise ZooError(f"{path}: the vocabularies cannot be told apart in its graph.")
    read = lambda n: [x.decode("utf-8") for x in tf.make_ndarray(n.attr["value"].tensor)]  # noqa: E731
    return read(found["words"][0]), read(found["bigrams"][0]) if sizes["bigrams"] > 0 else []


def read_vocabularies(directory) -> tuple[list, list]:
    """The `vocabulary.txt` and `bigrams.txt` of `directory` (`write_vocabularies`), without
    `[PAD]` and `[UNK]`; a missing file is an empty list."""
    def read(name):
        path = Path(directory) / name
        return path.read_text(encoding="utf-8").split("\n")[2:-1] if path.is_file() else []

    return read(VOCABULARY_FILES[0]), read(VOCABULARY_FILES[1])


def write_vocabularies(directory, vocabulary, bigrams) -> None:
    """`vocabulary.txt` (and `bigrams.txt`): `[PAD]`, `[UNK]`, then one entry a line, id order."""
    for name, words in zip(VOCABULARY_FILES, (vocabulary, bigrams)):
        if words:
            (Path(directory) / name).write_text("\n".join(["[PAD]", "[UNK]", *words]) + "\n", encoding="utf-8")
