"""Export to a SavedModel that takes raw inputs, with a metadata.json model card beside it.

TensorFlow-only code: builders stay backend-agnostic, export wraps them in a `tf.function`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import keras


def export_saved_model(model, path, *, input_signature, serve_fn, metadata: dict, extra_signatures=None):
    """Writes a SavedModel whose `serve` (and `serving_default`) signature is `serve_fn`.

    The SavedModel is written to a temporary directory beside `path` and renamed into place, so a
    crash never leaves a half-written model at `path`.

    Args:
        model: the Keras model whose variables `serve_fn` uses.
        path: the SavedModel directory to create (replaced if it exists).
        input_signature: a list of `tf.TensorSpec` for `serve_fn`.
        serve_fn: raw inputs -> outputs, all preprocessing inside.
        metadata: written to `path/metadata.json` (parameter count and sizes are added).
        extra_signatures: optional {name: (fn, input_signature)} endpoints.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        archive = keras.export.ExportArchive()
        # No archive.track(model): add_endpoint tracks what serve_fn uses, and tracking the
        # model as well stores every variable twice (Keras 3.15).
        archive.add_endpoint("serve", serve_fn, input_signature=input_signature)
        for name, (fn, signature) in (extra_signatures or {}).items():
            archive.add_endpoint(name, fn, input_signature=signature)
        archive.write_out(str(tmp), verbose=False)
        metadata = {**metadata, "parameters": int(model.count_params()),
                    "size_bytes": sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())}
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str) + "\n")
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
    return path
