"""The data a search hands its trial processes, as a file that is data and nothing else.

A task's `load_data` returns numpy arrays (of numbers, or of texts as str or bytes objects),
strings, numbers, lists, tuples, dicts and dataclasses of `zoo` and `tasks` modules. `save` writes that into one `.npz` file: every numeric or string
array as an array of its own, and the structure around them as JSON, so `load` reads it with
`numpy.load(allow_pickle=False)` and rebuilds the dataclasses by calling their constructors.
A file in the search directory can then change the data but never run code; `load` also checks
the sha256 that `save` returned (handed to the trial process outside the directory) and refuses
a file that is not the one the search wrote.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import json
import re
from pathlib import Path

import numpy as np

from zoo.errors import ZooError

STRUCTURE = "structure"  # the JSON member of the file; arrays are "0", "1", ...
# Dataclasses are rebuilt only from these packages: a file never imports a module of its choosing.
PACKAGES = re.compile(r"(zoo|tasks)(\.[A-Za-z_]\w*)*")


def encode(value, arrays: list, where: str = "data"):
    """`value` as JSON, its arrays appended to `arrays` and named by their index; a TypeError
    naming `where` (the path in the data) for what has no pickle-free form."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        arrays.append(np.frombuffer(value, np.uint8))
        return {"bytes": len(arrays) - 1}
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        if value.dtype != object:
            arrays.append(value)
            return {"array": len(arrays) - 1}
        items = value.ravel().tolist()
        for kind in (str, bytes):
            if items and all(type(v) is kind for v in items):
                # Texts: thousands of strings, kept as their concatenated bytes and lengths.
                encoded = [v.encode() for v in items] if kind is str else items
                arrays.extend([np.frombuffer(b"".join(encoded), np.uint8), np.array([len(v) for v in encoded], np.int64)])
                return {"strings": len(arrays) - 2, "str": kind is str, "shape": list(value.shape)}
        items = [encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(items)]
        return {"objects": items, "shape": list(value.shape)}
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype != object and v.dtype == value[0].dtype
                         for v in value):
            # Token ids: thousands of short arrays, kept as one array and its row lengths.
            arrays.extend([np.concatenate(value), np.array([len(v) for v in value], np.int64)])
            return {"rows": len(arrays) - 2, "tuple": isinstance(value, tuple)}
        items = [encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]
        return {"tuple": items} if isinstance(value, tuple) else {"list": items}
    if isinstance(value, dict):
        return {"dict": [[encode(k, arrays, where), encode(v, arrays, f"{where}[{k!r}]")] for k, v in value.items()]}
    if isinstance(value, Path):
        return {"path": str(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        if not PACKAGES.fullmatch(cls.__module__):
            raise TypeError(f"{where}: a {cls.__module__}.{cls.__qualname__}; only dataclasses of the zoo and "
                            "tasks packages can be handed to trial processes (or run the search --in-process).")
        fields = {f.name: encode(getattr(value, f.name), arrays, f"{where}.{f.name}")
                  for f in dataclasses.fields(value)}
        return {"dataclass": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}
    raise TypeError(f"{where}: a {type(value).__module__}.{type(value).__qualname__}, which trial processes can not "
                    "be handed without pickle: return numpy arrays, str, numbers, lists, tuples, dicts and "
                    "dataclasses from load_data (or run the search --in-process).")


def decode(value, arrays):
    """The inverse of `encode`; `arrays` maps the index names to arrays."""
    if not isinstance(value, dict):
        if isinstance(value, list):
            raise ValueError("a bare list in the structure")
        return value
    kind = next(iter(value), None)
    if kind == "array":
        return arrays[str(value["array"])]
    if kind == "bytes":
        return arrays[str(value["bytes"])].tobytes()
    if kind in ("objects", "strings"):
        if kind == "strings":
            flat, lengths = arrays[str(value["strings"])].tobytes(), arrays[str(value["strings"] + 1)]
            ends = np.cumsum(lengths).tolist()
            items = [flat[start:end] for start, end in zip([0, *ends], ends)]
            items = [b.decode() for b in items] if value["str"] else items
        else:
            items = [decode(v, arrays) for v in value["objects"]]
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out.reshape(value["shape"])
    if kind == "rows":
        flat, lengths = arrays[str(value["rows"])], arrays[str(value["rows"] + 1)]
        rows = np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []
        return tuple(rows) if value["tuple"] else rows
    if kind in ("list", "tuple"):
        items = [decode(v, arrays) for v in value[kind]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {decode(k, arrays): decode(v, arrays) for k, v in value["dict"]}
    if kind == "path":
        return Path(value["path"])
    if kind == "dataclass":
        module, _, name = value["dataclass"].partition(":")
        if not PACKAGES.fullmatch(module):
            raise ValueError(f"a dataclass of {module!r}, outside the zoo and tasks packages")
        cls = importlib.import_module(module)
        for part in name.split("."):
            cls = getattr(cls, part)
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ValueError(f"{value['dataclass']} is not a dataclass")
        fields = {k: decode(v, arrays) for k, v in value["fields"].items()}
        init = {f.name for f in dataclasses.fields(cls) if f.init}
        obj = cls(**{k: v for k, v in fields.items() if k in init})
        for k, v in fields.items():
            if k not in init:
                object.__setattr__(obj, k, v)
        return obj
    raise ValueError(f"unknown entry {kind!r} in the structure")


def save(data, path) -> str:
    """Writes `data` (what a task's `load_data` returned) to the `.npz` file `path`.

    Args:
        data: numpy arrays (object arrays of any of these), str, bytes, numbers, None, lists,
            tuples, dicts, paths and dataclasses of the `zoo` and `tasks` packages, nested.
        path: the file to write.

    Returns:
        The file's sha256, which `load` checks.

    Raises:
        TypeError: a value with no pickle-free form, named by its path in `data`.
    """
    arrays = []
    structure = json.dumps(encode(data, arrays), allow_nan=True).encode()
    buffer = io.BytesIO()
    np.savez(buffer, **{STRUCTURE: np.frombuffer(structure, np.uint8)}, **{str(i): a for i, a in enumerate(arrays)})
    raw = buffer.getvalue()
    Path(path).write_bytes(raw)
    return hashlib.sha256(raw).hexdigest()


def load(path, sha256: str):
    """The data `save` wrote to `path`, if the file's sha256 is `sha256`.

    Args:
        path: the `.npz` file.
        sha256: what `save` returned.

    Raises:
        ZooError: a file that is not the one the search wrote, or that does not read back.
    """
    raw = Path(path).read_bytes()  # read once: checked and loaded are the same bytes
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise ZooError(f"{path}: not the data file this search wrote (its sha256 differs). Something else changed "
                       "the search directory; refusing to train on it. Run the search again.")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        return decode(json.loads(arrays.pop(STRUCTURE).tobytes()), arrays)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, ImportError, RecursionError) as e:
        raise ZooError(f"{path}: not a data file of a search ({e}). Run the search again.") from None
