"""Pretrained models: `zoo.load(name)` and the predictors it returns.

    import zoo
    model = zoo.load("cifar10")                        # saved_models/cifar10, or the path of an entry
    model.predict(["cat.png", "dog.jpg"])              # [{"label": "cat", "probability": 0.91, "top_k": [...]}, ...]
    model.metadata["metric"]                           # the model card: metric, dataset, command, ...

An entry is a SavedModel directory holding its model card (`metadata.json`) and a sha256
manifest (`SHA256SUMS`), as `python -m zoo.publish RUN_DIR NAME` writes it into `saved_models/`,
or a LiteRT entry: the same with a `model.tflite` instead of the SavedModel, as
`python -m zoo.export_lite NAME --int8` writes it. Before anything of the model runs, `load`
checks the files against the manifest and the graph's ops against the zoo's allow-list
(`zoo.safety`); `trust=True` skips the op check and accepts an entry without a manifest (or a
bare `.tflite` file). A `.keras` file loads with Keras' `safe_mode` on (no Python code from
the file is run) unless `trust=True`.

Names resolve in `ZOO_MODELS_DIR` if it is set, else in the checkout's `saved_models/` (an
installed wheel has none: point `ZOO_MODELS_DIR` at a clone's `saved_models/`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from zoo.errors import DataError, ZooError
from zoo.lite import FRONTEND_FILE, LiteChain, LiteModel, lite_file
from zoo.logs import absorb_onednn_type_note, filtered_stderr, min_log_level
from zoo.safety import MANIFEST, TEXT_OPS, check_saved_model_ops, verify_manifest

CARD = "metadata.json"
TOP_K = 3


def models_dir() -> Path:
    """Where entry names resolve: `ZOO_MODELS_DIR`, else `saved_models/` beside the `zoo` package."""
    return Path(os.environ.get("ZOO_MODELS_DIR") or Path(__file__).resolve().parents[1] / "saved_models")


def list_models(*, tflite: bool | None = None) -> list[str]:
    """The names of the entries in `models_dir()`: all, or only the `.tflite` ones (`tflite=True`)
    or only the others (`tflite=False`)."""
    root = models_dir()
    names = sorted(p.name for p in root.iterdir() if (p / CARD).is_file()) if root.is_dir() else []
    return [n for n in names if tflite is None or bool(lite_file(root / n)) == tflite]


def resolve(name_or_path) -> Path:
    """The directory (or `.keras` file) of an entry name or path; a `ZooError` listing the known
    names if it is neither."""
    if str(name_or_path) in list_models():  # a name first: a folder called "cifar10" in the cwd is not meant
        return models_dir() / str(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    known = ", ".join(list_models())
    # An installed wheel carries no entries (about 60 MB): say where they come from.
    how = f"Known: {known}." if known else (
        f"No entries in {models_dir()}: set ZOO_MODELS_DIR to a directory of entries, e.g. the saved_models/ "
        "of a clone of the repository or of the unpacked source distribution (a wheel does not carry them).")
    raise ZooError(f"Unknown model {str(name_or_path)!r}: neither an entry of {models_dir()} nor a path. {how}")


def load(name_or_path, *, trust: bool = False) -> "Predictor":
    """Loads a pretrained entry (or any SavedModel directory or `.keras` file) as a predictor.

    Args:
        name_or_path: an entry name (`"cifar10"`, see `list_models()`), the path of an entry or
            SavedModel directory, or the path of a `.keras` file.
        trust: run what the checks would refuse: ops outside the allow-list, a SavedModel
            without a manifest, a `.keras` file that needs `safe_mode=False`. A manifest that
            does not match the files is refused even then.

    Returns:
        A `Predictor` for the entry's kind (`ImageClassifier`, `AudioClassifier`,
        `TextClassifier`, `Translator`; `KerasPredictor` for `.keras` files).

    Raises:
        ZooError: an unknown name, files that do not match the manifest, refused ops or layers.
    """
    path = resolve(name_or_path)
    if path.is_file() and path.suffix == ".keras":
        return KerasPredictor.load(path, trust=trust)
    if lite_file(path):
        return load_lite(path, trust=trust)
    if (path / MANIFEST).exists() or not trust:
        verify_manifest(path)  # first: a missing saved_model.pb is then named as a missing file
    if not (path / "saved_model.pb").is_file():
        raise ZooError(f"{path}: neither a SavedModel directory (no saved_model.pb) nor a .keras file.")
    if not trust:
        check_saved_model_ops(path)
    card = json.loads((path / CARD).read_text()) if (path / CARD).is_file() else {}
    specs = signature_specs(path)
    kind = card.get("kind") or detect_kind(specs)
    if kind not in PREDICTORS:
        raise ZooError(f"{path}: unknown kind {kind!r} in {CARD}. Known: {', '.join(PREDICTORS)}.")
    # Only this one module, never one the card names: it registers the text ops the graph uses.
    if "tensorflow_text" in card.get("requires", ()) or needs_tensorflow_text(path):
        importlib.import_module("tensorflow_text")
    import tensorflow as tf

    absorb_onednn_type_note()  # TensorFlow's oneDNN news (float16 weights, say): not amid predictions
    return PREDICTORS[kind](path, card, tf.saved_model.load(str(path)), specs)


def load_lite(path, *, trust: bool = False) -> "Predictor":
    """A LiteRT entry (a directory with `model.tflite`, and `frontend.tflite` before it where the
    audio front end is a file of its own) or, with `trust`, a bare `.tflite` file, as the
    predictor of its card's kind (else of the kind its input says: uint8 images or float32
    waveforms). The manifest and the ops of every file are checked as `load` does."""
    from zoo.safety import check_lite_ops

    path, file = Path(path), lite_file(path)
    entry = file.parent
    if (entry / MANIFEST).is_file() or not trust:
        if path.is_file() and not (entry / MANIFEST).is_file():
            raise ZooError(f"{path}: a bare .tflite file, with no {MANIFEST} manifest beside it, cannot be checked: "
                           "export it with `python -m zoo.export_lite`, or pass trust=True (--trust) if you trust "
                           "where it came from.")
        verify_manifest(entry)
    # The float front end of an audio entry exported with --separate-frontend, then the model.
    files = [f for f in (entry / FRONTEND_FILE, file) if f.is_file()]
    contents = [f.read_bytes() for f in files]
    if not trust:
        for f, content in zip(files, contents):
            check_lite_ops(content, f)
    card = json.loads((entry / CARD).read_text()) if (entry / CARD).is_file() else {}
    models = [LiteModel(content) for content in contents]
    model = LiteChain(*models) if len(models) == 2 else models[0]
    kind = card.get("kind") or detect_lite_kind(model.specs)
    if kind not in LITE_KINDS:
        raise ZooError(f"{path}: a .tflite entry of kind {kind!r}; zoo.load runs {' and '.join(LITE_KINDS)} ones.")
    return PREDICTORS[kind](path, card, model, model.specs)


def detect_lite_kind(specs) -> str:
    """`image_classifier` (uint8 `[n, height, width, 3]` in) or `audio_classifier` (float32
    `[n, samples]` in) from a `.tflite` model's input."""
    (x,) = specs["serve"]["inputs"].values()
    if x["dtype"] == "uint8" and len(x["shape"]) == 4 and x["shape"][3] == 3:
        return "image_classifier"
    if x["dtype"] == "float32" and len(x["shape"]) == 2:
        return "audio_classifier"
    raise ZooError(f"Cannot tell what kind of model this is from its input {x['dtype']}{x['shape']}: expected uint8 "
                   "images or float32 waveforms.")


def needs_tensorflow_text(path) -> bool:
    from zoo.export import saved_model_ops

    return bool(saved_model_ops(path) & TEXT_OPS)


# --- signatures -------------------------------------------------------------------------------


def signature_specs(path) -> dict:
    """The signatures of a SavedModel, read from `saved_model.pb` without loading it:
    `{name: {"inputs": {key: {"dtype", "shape"}}, "outputs": {...}}}` (None for unknown sizes)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(path) / "saved_model.pb").read_bytes())

    def spec(info):
        shape = None if info.tensor_shape.unknown_rank else [d.size if d.size >= 0 else None
                                                              for d in info.tensor_shape.dim]
        return {"dtype": tf.dtypes.as_dtype(info.dtype).name, "shape": shape}

    return {name: {"inputs": {k: spec(v) for k, v in sorted(sig.inputs.items())},
                   "outputs": {k: spec(v) for k, v in sorted(sig.outputs.items())}}
            for meta_graph in proto.meta_graphs for name, sig in sorted(meta_graph.signature_def.items())
            if not name.startswith("__")}


def detect_kind(specs) -> str:
    """What a SavedModel does, from its `serve` signature: `image_classifier` (uint8 images in),
    `audio_classifier` (with `serve_wav`), `text_classifier` (strings in, `probabilities` or, before
    those, `probability` out) or `translator` (strings in, strings out)."""
    serve = specs.get("serve") or specs.get("serving_default")
    if serve and len(serve["inputs"]) == 1:
        (x,) = serve["inputs"].values()
        outputs = serve["outputs"]
        if x["dtype"] == "uint8" and x["shape"] and len(x["shape"]) == 4:
            return "image_classifier"
        if "serve_wav" in specs and x["dtype"] == "float32":
            return "audio_classifier"
        if x["dtype"] == "string" and {"probabilities", "probability"} & set(outputs) and "label" in outputs:
            return "text_classifier"
        if x["dtype"] == "string" and [o["dtype"] for o in outputs.values()] == ["string"]:
            return "translator"
    raise ZooError(f"Cannot tell what kind of model this is from its signatures {sorted(specs)}: expected a `serve` "
                   "signature of uint8 images, float32 waveforms with `serve_wav`, or strings.")


# --- predictors -------------------------------------------------------------------------------


class Predictor:
    """A loaded entry: `predict(inputs)` for results, `outputs(inputs)` for the raw signature
    outputs (numpy), `metadata` for the model card, `model` for the `tf.saved_model.load` object
    (a `zoo.lite.LiteModel` for `.tflite` entries)."""

    kind = ""
    reads = ""  # what `predict` takes and how it reaches the graph, for the model card
    batch_size = 256

    def __init__(self, path, metadata, model, specs=None):
        self.path, self.metadata, self.model, self.specs = Path(path), metadata, model, specs or {}
        self.name = metadata.get("name", self.path.name)
        self._called = set()  # the signatures called once (their graphs optimized)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r} from {self.path}>"

    def call(self, signature, x) -> dict:
        """One signature on a batch, in batches of `batch_size`: `{output key: numpy array}`."""
        import tensorflow as tf

        if isinstance(self.model, LiteModel):
            return self.model.run(x)  # one signature, `serve`
        fn = self.model.signatures[signature]
        (key,) = fn.structured_input_signature[1]
        # A signature's first call optimizes its graph, which is when TensorFlow logs its
        # information at ERROR level (zoo.logs.startup_lines_to_keep): filtered then, not after.
        first = signature not in self._called
        with filtered_stderr(min_log_level()) if first else contextlib.nullcontext():
            parts = [fn(**{key: tf.constant(x[i:i + self.batch_size])}) for i in range(0, len(x), self.batch_size)]
        self._called.add(signature)
        return {k: np.concatenate([p[k].numpy() for p in parts]) for k in parts[0]}

    def outputs(self, inputs) -> dict:
        raise NotImplementedError

    def predict(self, inputs, *, top_k: int = TOP_K) -> list[dict]:
        raise NotImplementedError

    def example(self):
        """One input of the kind `predict` takes (for smoke tests and latency benchmarks)."""
        raise NotImplementedError

    def keras_model(self):
        """The entry as a trainable, uncompiled `keras.Model` returning logits, its weights the
        SavedModel's (`zoo.finetune.keras_model`); `model.preprocessing` says what its inputs must be."""
        from zoo.finetune import keras_model

        return keras_model(self.path)


class Classifier(Predictor):
    """A predictor whose outputs are probabilities over `labels`."""

    @property
    def labels(self) -> list[str]:
        return list(self.metadata.get("labels") or self.metadata.get("class_names") or [])

    def probabilities(self, inputs) -> np.ndarray:
        """`float32[len(inputs), len(labels)]`: the `probabilities` output of a signature with
        several (`probabilities`, `label`), else its only one."""
        out = self.outputs(inputs)
        if "probabilities" in out:
            return out["probabilities"]
        (probs,) = out.values()
        return probs

    def predict(self, inputs, *, top_k: int = TOP_K) -> list[dict]:
        """For each input: the most probable label, its probability and the `top_k` best labels."""
        probs = self.probabilities(inputs)
        labels = self.labels or [str(i) for i in range(probs.shape[1])]
        results = []
        for p in probs:
            best = [{"label": labels[i], "probability": float(p[i])} for i in np.argsort(-p, kind="stable")[:top_k]]
            results.append({"label": best[0]["label"], "probability": best[0]["probability"], "top_k": best})
        return results


def _as_list(inputs, single=(str, bytes, os.PathLike)):
    return [inputs] if isinstance(inputs, single) else list(inputs)


def _read_file(path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    return path.read_bytes()


def read_image(path, size) -> np.ndarray:
    """An image file (PNG, JPEG, GIF or BMP) -> `uint8[height, width, 3]` RGB at `size`
    (height, width), by `zoo.images.resize_to`: centre-cropped to that aspect ratio, then resized
    with antialiasing. A file whose header declares more than `zoo.images.MAX_IMAGE_PIXELS` pixels
    is refused undecoded."""
    import tensorflow as tf

    from zoo.images import check_image_header, resize_to

    contents = _read_file(path)
    check_image_header(contents, path)
    try:
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    except tf.errors.InvalidArgumentError:
        raise DataError(f"{path}: not a decodable image (PNG, JPEG, GIF or BMP).") from None
    return resize_to(image, size).numpy()


def read_wav(path) -> bytes:
    """The bytes of a 16-bit PCM WAV file; a `DataError` naming the file if it is not one."""
    return check_wav(_read_file(path), path)


def check_wav(contents: bytes, name) -> bytes:
    """`contents` if they are a 16-bit PCM WAV file with samples at a rate within
    [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] (`zoo.audio`); else a `DataError` naming `name` (a path,
    or which input). Checked here rather than left to the graph: the SavedModels exported before
    `serve_wav` checked the rate itself resample at any rate the header declares."""
    import tensorflow as tf

    from zoo.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, wav_sample_rate

    def check_rate(rate):
        if rate is not None and not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise DataError(f"{name}: the WAV file declares a sample rate of {rate} Hz; accepted: "
                            f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz.")

    if contents[:4] != b"RIFF" or contents[8:12] != b"WAVE":
        raise DataError(f"{name}: not a WAV file (no RIFF/WAVE header).")
    check_rate(wav_sample_rate(contents))  # before decoding, which may refuse the header for another reason
    try:
        audio, rate = tf.audio.decode_wav(contents)
    except tf.errors.InvalidArgumentError as e:
        raise DataError(f"{name}: not a readable 16-bit PCM WAV file ({e.message.splitlines()[0][:200]}).") from None
    check_rate(int(rate))  # the rate the graph will see, however the header put it
    if audio.shape[0] == 0:
        raise DataError(f"{name}: the WAV file holds no audio samples.")
    return contents


class ImageClassifier(Classifier):
    """Images in: file paths (decoded, centre-cropped and resized to the model's size) or uint8
    RGB arrays of any size, `[N, height, width, 3]` or one `[height, width, 3]` (or a list of them),
    resized the same way (`zoo.images.resize_to`): inside the graph by `serve_any_size` where the
    entry has it, else here before `serve`."""

    kind = "image_classifier"
    reads = ("image files (PNG, JPEG, GIF, BMP) or uint8 RGB arrays of any size: decoded, centre-cropped to the model's "
             "aspect ratio and resized (bilinear, antialiased) as the training images were; the SavedModel's "
             "serve_any_size and serve_image_bytes do the same in the graph, and normalize")

    @property
    def image_size(self) -> tuple:
        (x,) = self.specs["serve"]["inputs"].values()
        return tuple(x["shape"][1:3])

    def prepare(self, inputs) -> np.ndarray:
        """A uint8 batch `[N, height, width, 3]`: at the model's size, or one other size for all
        (a batch of arrays as given, which `outputs` resizes)."""
        if isinstance(inputs, np.ndarray) and inputs.ndim in (3, 4):
            images = inputs[None] if inputs.ndim == 3 else inputs
        else:
            items = [read_image(x, self.image_size) if isinstance(x, (str, os.PathLike)) else np.asarray(x)
                     for x in _as_list(inputs, (str, os.PathLike))]
            if len({x.shape for x in items}) > 1:  # arrays of several sizes: each to the model's
                items = [self.resize(x) for x in items]
            images = np.stack(items)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise ZooError(f"{self.name} takes uint8 RGB images of {self.image_size[0]}x{self.image_size[1]} "
                           f"(0-255); received {images.dtype}{list(images.shape)}. Other sizes are resized; pass "
                           "file paths to have them decoded.")
        return images

    def resize(self, images) -> np.ndarray:
        """uint8 images (one, or a batch of one size) at the model's size, by `zoo.images.resize_to`."""
        from zoo.images import resize_to

        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim not in (3, 4) or images.shape[-1] != 3:
            return images  # refused, with the shape received, by prepare
        return resize_to(images, self.image_size).numpy()

    def outputs(self, inputs) -> dict:
        images = self.prepare(inputs)
        if images.shape[1:3] == self.image_size:
            return self.call("serve", images)
        if "serve_any_size" in self.specs and not isinstance(self.model, LiteModel):
            return self.call("serve_any_size", images)
        return self.call("serve", self.resize(images))

    def example(self):
        return np.random.default_rng(0).integers(0, 256, (1, *self.image_size, 3), dtype=np.uint8)


class AudioClassifier(Classifier):
    """Audio in: file paths or file bytes, or `float32[N, num_samples]` waveforms at the model's
    rate (`serve`). Files may be WAV of any sample width (8/16/24/32-bit PCM, float), FLAC, OGG or MP3,
    of any channel count and any rate from 1 to 384 kHz: 16-bit PCM WAV files go to `serve_wav`,
    which decodes, resamples and pads or trims them in the graph; other files are decoded with
    `soundfile` here and prepared the same way (`zoo.audio.read_audio`, `fit_clip`) for `serve`.
    Models with named outputs return `probabilities` and `label`."""

    kind = "audio_classifier"
    reads = ("audio files (WAV of any PCM or float width, FLAC, OGG) or waveforms: decoded, downmixed, resampled and "
             "padded or trimmed (centred) to the model's rate and length; 16-bit PCM WAV bytes go to `serve_wav`, "
             "which does the same in the graph; `serve` takes waveforms at the model's rate")

    @property
    def sample_rate(self) -> int:
        return int(self.metadata.get("sample_rate", 16000))

    @property
    def num_samples(self) -> int:
        (x,) = self.specs["serve"]["inputs"].values()
        return int(x["shape"][1])

    def outputs(self, inputs) -> dict:
        from zoo.audio import fit_clip, is_pcm16_wav, read_audio

        items = _as_list(inputs) if not isinstance(inputs, np.ndarray) else None
        if items is not None and items and all(isinstance(x, np.ndarray) for x in items):
            inputs = np.stack(items)
        if isinstance(inputs, np.ndarray) and inputs.dtype != object:
            waveforms = np.asarray(inputs, dtype=np.float32)
            waveforms = waveforms[None] if waveforms.ndim == 1 else waveforms
            if waveforms.ndim != 2 or waveforms.shape[1] != self.num_samples:
                raise ZooError(f"{self.name} takes waveforms of {self.num_samples} samples at {self.sample_rate} Hz; "
                               f"received shape {list(inputs.shape)}. Pass audio files to have them resampled and "
                               "padded or trimmed.")
            return self.call("serve", waveforms)
        items = _as_list(inputs)
        names = [f"input {i + 1}" if isinstance(x, bytes) else x for i, x in enumerate(items)]
        contents = [x if isinstance(x, bytes) else _read_file(x) for x in items]
        if "serve_wav" in self.specs and all(is_pcm16_wav(c) for c in contents):
            return self.call("serve_wav", np.array([check_wav(c, n) for c, n in zip(contents, names)], dtype=object))
        # Decoded here: other formats, and .tflite models, which take waveforms only.
        clips = [read_audio(c, n) for c, n in zip(contents, names)]
        return self.call("serve", np.stack([fit_clip(c.samples, c.rate, sample_rate=self.sample_rate,
                                                     num_samples=self.num_samples) for c in clips]))

    def example(self):
        import tensorflow as tf

        t = np.arange(self.sample_rate) / self.sample_rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None]
        return [tf.audio.encode_wav(tone, self.sample_rate).numpy()]


def _texts(inputs, name) -> np.ndarray:
    texts = [x.encode("utf-8") if isinstance(x, str) else bytes(x) for x in _as_list(inputs, (str, bytes))]
    for i, text in enumerate(texts):
        if not text.strip():
            raise ZooError(f"Input {i + 1} is an empty string: {name} needs some text.")
    return np.array(texts, dtype=object)


class TextClassifier(Classifier):
    """Texts in (str or UTF-8 bytes); `serve` returns `probabilities` over the labels (entries
    exported before that return the `probability` of the last of two labels)."""

    kind = "text_classifier"
    reads = "raw UTF-8 strings: normalization, tokenization and truncation are in the graph"

    def outputs(self, inputs) -> dict:
        return self.call("serve", _texts(inputs, self.name))

    def probabilities(self, inputs) -> np.ndarray:
        out = self.outputs(inputs)
        if "probabilities" in out:
            return out["probabilities"].astype(np.float32)
        if len(self.labels) > 2:
            # Such an export (a --text-folder of 3+ classes) kept only the last class's probability.
            raise ZooError(f"{self.name}: its `serve` returns the probability of one of {len(self.labels)} classes "
                           "only; export it again to serve `probabilities` over all of them.")
        p = out["probability"].astype(np.float32)
        return np.stack([1 - p, p], axis=1)

    def example(self):
        return ["A wonderful film: the actors are great and the story moved me."]


class Translator(Predictor):
    """Sentences in (str), translations out."""

    kind = "translator"
    reads = ("raw UTF-8 sentences: normalization, subword tokenization, decoding and detokenization are in the "
             "graph")
    batch_size = 64  # beam search keeps beam_width hypotheses a sentence

    def outputs(self, inputs) -> dict:
        return self.call("serve", _texts(inputs, self.name))

    def predict(self, inputs, *, top_k: int = TOP_K) -> list[dict]:
        (out,) = self.outputs(inputs).values()
        return [{"translation": t.decode("utf-8")} for t in out]

    def example(self):
        return [self.metadata.get("example_input") or "hello"]


class KerasPredictor(Predictor):
    """A `.keras` file: `predict(arrays)` returns what `model.predict` does."""

    kind = "keras"

    @classmethod
    def load(cls, path, *, trust=False):
        import keras

        absorb_onednn_type_note()
        try:
            model = keras.saving.load_model(path, safe_mode=not trust)
        except ValueError as e:
            if trust or "safe_mode" not in str(e):
                raise
            raise ZooError(f"{path}: refused by Keras safe_mode ({str(e).splitlines()[0][:300]}). Pass trust=True "
                           "(--trust) only if you trust where it came from.") from None
        return cls(path, {"name": Path(path).stem, "format": "keras"}, model)

    def outputs(self, inputs) -> dict:
        return {"output": np.asarray(self.model.predict(inputs, verbose=0))}

    def predict(self, inputs, *, top_k: int = TOP_K) -> list[dict]:
        return [{"output": row.tolist()} for row in self.outputs(inputs)["output"]]


PREDICTORS = {c.kind: c for c in (ImageClassifier, AudioClassifier, TextClassifier, Translator)}
LITE_KINDS = ("image_classifier", "audio_classifier")


# --- evaluation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskInfo:
    """What the model card says about a task's data, and how to score an entry on it.

    Attributes:
        short: the dataset in a few words, for tables.
        dataset: the dataset, as the card names it.
        test_split: which examples the recorded metric was measured on.
        license: the dataset's license or terms.
        metric: the test metric the card records and the check measures again.
        check_examples: how many test examples the real-data test scores again (None: all).
        test_data: `(card, data_dir) -> (inputs, targets, labels)` of the test split in the
            loader's order: inputs as the predictor takes them, then label ids and label names
            (classifiers) or reference translations and None (translators).
        example: an input for demonstrations and latency benchmarks.
        train_data: the same as `test_data` for the training split (the representative
            examples of int8 quantization, `zoo.export_lite`); None where no export needs it.
    """

    short: str
    dataset: str
    test_split: str
    license: str
    metric: str = "test_accuracy"
    check_examples: int | None = None
    test_data: Callable | None = None
    example: str | None = None
    train_data: Callable | None = None


def _config(card, key, default=None):
    return card.get("training", {}).get("config", {}).get(key, default)


def task_config(card, data_dir=None):
    """The configuration of the run a card (or a run's metadata with its `training` config)
    was made by, as its task's `Config`, reading its data from `data_dir`: the settings that
    choose the data and draw its splits are the run's, so its test split is the run's."""
    import dataclasses

    from zoo.config import apply_overrides

    module = importlib.import_module(f"tasks.{card['task']}")
    names = {f.name for f in dataclasses.fields(module.Config)}
    saved = {k: v for k, v in card.get("training", {}).get("config", {}).items() if k in names}
    saved["data_dir"] = data_dir
    root = data_dir or os.environ.get("ZOO_DATA_DIR")
    if root and isinstance(saved.get("data"), str) and saved["data"].startswith("$ZOO_DATA_DIR/"):
        saved["data"] = str(Path(root) / saved["data"][len("$ZOO_DATA_DIR/"):])  # as zoo.publish records it
    if "num_samples" in card and "sample_rate" in card:  # the clip length the model takes
        saved.update(sample_rate=card["sample_rate"], clip_seconds=card["num_samples"] / card["sample_rate"])
    return apply_overrides(module.Config(), saved, f"the training config of {card.get('name', card['task'])}")


def _recipe_split(split):
    # The task's dataset through the registry, with the settings of the card's run.
    def read(card, data_dir):
        from zoo.datasets import load_dataset

        cfg = task_config(card, data_dir)
        module = importlib.import_module(f"tasks.{card['task']}")
        data = load_dataset(cfg.data, module.RECIPE.kind, cfg)
        part = getattr(data, split)
        return part.x, part.labels, data.class_names

    return read


def _translation_test(card, data_dir):
    # The translation task's loader and splits (tasks.text.translation); references are
    # case-folded when the model was trained to output case-folded text, as the task scores them.
    from zoo.data.translation import load_pair

    corpus = load_pair(_config(card, "pair"), data_dir, validation_split=_config(card, "validation_split", 0.05),
                       test_split=_config(card, "test_split", 0.05))
    references = [r.lower() if _config(card, "lowercase_target") else r for r in corpus.test.targets]
    return corpus.test.sources, np.array(references, dtype=object), None


TRANSLATION_TASKS = {
    # Translation: one task, a card per language pair (`--pair`, in the run's config).
    "text.translation:spa-eng": TaskInfo(
        short="Tatoeba spa-eng",
        dataset="Tatoeba Spanish-English sentence pairs (manythings.org Anki export, 116,586 pairs in the mirror), "
                "split 90/5/5 by a hash of the source sentence",
        test_split="the 5% test split by source hash", license="CC BY 2.0 FR (tatoeba.org, manythings.org/anki)",
        metric="test_bleu", test_data=_translation_test, example="¿Dónde está la estación?"),
    "text.translation:de-en": TaskInfo(
        short="Multi30K de-en",
        dataset="Multi30K task 1 (Elliott et al., 2016): German-English image descriptions, official splits",
        test_split="test_2016_flickr, 1,000 sentences",
        license="non-commercial research and educational use (derived from Flickr30K)",
        metric="test_bleu", test_data=_translation_test, example="Ein Mann fährt mit dem Fahrrad die Straße entlang."),
}




def task_info(card) -> TaskInfo | None:
    """What a model card (or a run's metadata with its `training` config) says about its task's
    data, and how to score it: from the dataset registry (`zoo.datasets`) for the recipes' tasks,
    by language pair for translation. None for a task that is neither."""
    task = card.get("task")
    if task == "text.translation":
        return TRANSLATION_TASKS.get(f"{task}:{_config(card, 'pair')}")
    try:
        module = importlib.import_module(f"tasks.{task}") if task else None
    except ImportError:
        return None
    if module is None or not hasattr(module, "RECIPE"):
        return None
    from zoo.datasets import get_dataset, list_datasets

    spec = _config(card, "data") or module.Config().data
    if spec in list_datasets(module.RECIPE.kind):
        info = get_dataset(spec)
        dataset, short, test_split, license, check = (info.description, info.short or info.name, info.test_split,
                                                      info.license, info.check_examples)
    else:
        dataset = short = str(spec)
        test_split = (f"the dataset's own test split, else {_config(card, 'test_split', 0.1):.0%} of each class, "
                      f"drawn with seed {_config(card, 'seed', 0)}")
        license, check = "the data's own", None
    return TaskInfo(short=short, dataset=dataset, test_split=test_split, license=license, check_examples=check,
                    test_data=_recipe_split("test"), train_data=_recipe_split("train"))


def check_subset(n: int, examples: int | None) -> np.ndarray:
    """The indices of the test examples a check scores: all `n`, or `examples` of them drawn by
    `numpy.random.default_rng(0).permutation(n)[:examples]`, sorted."""
    if examples is None or examples >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).permutation(n)[:examples])


def check_tolerance(metric: str, value: float, examples: int, of: int) -> float:
    """How far a re-measured metric may be from the recorded one. Accuracy: 0.005 for numerical
    differences, plus 4 binomial standard deviations when only `examples` of `of` are scored.
    BLEU: 0.5 points on the whole split (batching can flip a rare beam-search tie)."""
    if metric == "test_bleu":
        if examples < of:
            raise ZooError("A BLEU check scores the whole test split: corpus BLEU on a subset is a different number.")
        return 0.5
    sampling = 4 * math.sqrt(value * (1 - value) / examples) if examples < of else 0.0
    return round(0.005 + sampling, 3)


def evaluate(predictor: Predictor, data_dir=None, *, examples: int | None = None) -> dict:
    """Scores an entry on its task's test split, as its card's `check` says (or on `examples`
    test examples): accuracy for classifiers, sacreBLEU for translators.

    Returns:
        `{"metric", "value", "examples", "of"}`.
    """
    task = task_info(predictor.metadata)
    if task is None or task.test_data is None:
        raise ZooError(f"No evaluation recipe for task {predictor.metadata.get('task')!r}: add one to "
                       "zoo.datasets (register_dataset) or zoo.pretrained.TRANSLATION_TASKS.")
    inputs, targets, class_names = task.test_data(predictor.metadata, data_dir)
    check = predictor.metadata.get("check", {})
    keep = check_subset(len(targets), examples if examples is not None else check.get("examples"))
    if isinstance(predictor, Translator):
        from zoo.translate import corpus_scores

        hypotheses = [r["translation"] for r in predictor.predict(inputs[keep])]
        value = corpus_scores(hypotheses, targets[keep])["bleu"]
    else:
        if list(class_names) != predictor.labels:
            raise DataError(f"The test data's labels {list(class_names)} are not the model's {predictor.labels}.")
        value = float(np.mean(predictor.probabilities(inputs[keep]).argmax(axis=1) == targets[keep]))
    return {"metric": task.metric, "value": value, "examples": len(keep), "of": len(targets)}
