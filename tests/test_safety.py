"""zoo.safety against a model author who edits the files: checkpoint ops that TF would run at
load time (a resource initializer hidden behind the saver), SavedModels that TF loads the TF1
way, and manifests that must cover every file but themselves."""

import shutil
from pathlib import Path

import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from zoo import safety
from zoo.cli import run as run_cli
from zoo.errors import ZooError
from zoo.pretrained import load
from zoo.safety import MANIFEST, disallowed_ops, tf1_loader_reason, verify_manifest, write_manifest

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "saved_models"


def save_model_whose_initializer_writes(path, prefix):
    """A SavedModel with a resource whose initializer, which `tf.saved_model.load` runs, writes
    a checkpoint to `prefix` (`prefix.index`, `prefix.data-...`)."""

    class Resource(tf.saved_model.experimental.TrackableResource):
        def _create_resource(self):
            return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="")

        def _initialize(self):
            save = tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=["x"], shape_and_slices=[""],
                                     tensors=[tf.constant(1.0)])
            with tf.control_dependencies([save]):
                return tf.raw_ops.AssignVariableOp(resource=self.resource_handle, value=tf.constant(1.0))

    class Model(tf.Module):
        def __init__(self):
            super().__init__()
            self.resource = Resource()
            self.v = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def serve(self, x):
            return x * self.v

    model = Model()
    tf.saved_model.save(model, str(path), signatures={"serve": model.serve})
    write_manifest(path)


def edit_saved_model(path, edit):
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    result = edit(proto)
    (path / "saved_model.pb").write_bytes(proto.SerializeToString())
    write_manifest(path)  # the author's manifest matches the edited files
    return result


def hide_initializer_behind_the_saver(proto):
    """Drops the TF1 init op (its signature, its node and the calls it runs) and names the
    resource initializer in a function-valued attribute of the saver's restore node, so that
    only the saver seems to reach it. Returns the initializer's name."""
    meta_graph = proto.meta_graphs[0]
    init = meta_graph.signature_def.pop("__saved_model_init_op").outputs["__saved_model_init_op"].name.split(":")[0]
    nodes = {n.name: n for n in meta_graph.graph_def.node}
    dropped = {init} | {name.lstrip("^").split(":")[0] for name in nodes[init].input}
    kept = [n for n in meta_graph.graph_def.node if n.name not in dropped]
    del meta_graph.graph_def.node[:]
    meta_graph.graph_def.node.extend(kept)
    (initializer,) = [f for f in meta_graph.object_graph_def.concrete_functions if "_initializer_" in f]
    restore = next(n for n in meta_graph.graph_def.node if n.name == meta_graph.saver_def.restore_op_name)
    restore.attr["_x"].func.name = initializer
    return initializer


def written(prefix):
    return sorted(p.name for p in prefix.parent.glob(prefix.name + ".*"))


def test_a_resource_initializer_hidden_behind_the_saver_is_refused(tmp_path, capsys, monkeypatch):
    prefix, path = tmp_path / "chosen", tmp_path / "model"
    save_model_whose_initializer_writes(path, prefix)
    initializer = edit_saved_model(path, hide_initializer_behind_the_saver)
    verify_manifest(path)
    assert disallowed_ops(path) == {"SaveV2": [initializer]}
    with pytest.raises(ZooError, match=rf"ops outside the zoo's allow-list: SaveV2 \(in {initializer}\)"):
        load(path)
    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    run_cli(safety.main, [str(path)])
    assert capsys.readouterr().out.strip().endswith("refused: SaveV2 (1 place)")
    assert written(prefix) == []
    # What the refusal prevented: TF's own loader runs the initializer and writes the files.
    tf.saved_model.load(str(path))
    assert written(prefix) == ["chosen.data-00000-of-00001", "chosen.index"]


def drop_object_graph(proto):
    proto.meta_graphs[0].ClearField("object_graph_def")


def add_a_second_meta_graph(proto):
    proto.meta_graphs.add().CopyFrom(proto.meta_graphs[0])
    proto.meta_graphs[1].meta_info_def.tags[:] = ["other"]


@pytest.mark.parametrize("edit, reason", [(drop_object_graph, "it has no object graph"),
                                          (add_a_second_meta_graph, "it has 2 MetaGraphs, not one")])
def test_a_saved_model_that_tf_loads_the_tf1_way_is_refused(edit, reason, tmp_path, capsys, monkeypatch):
    prefix, path = tmp_path / "chosen", tmp_path / "model"
    save_model_whose_initializer_writes(path, prefix)
    edit_saved_model(path, edit)
    assert tf1_loader_reason(path).startswith(reason)
    # The TF1 loader runs the saver's restore function: its checkpoint ops are no longer exempt.
    assert {"SaveV2", "RestoreV2"} <= set(disallowed_ops(path))
    with pytest.raises(ZooError, match=rf"{reason}.*load it the TF1 way, which runs its saver_def's restore op"):
        load(path)
    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    run_cli(safety.main, [str(path)])
    assert f"refused: loads the TF1 way ({reason}" in capsys.readouterr().out
    assert written(prefix) == []
    if edit is drop_object_graph:  # TF's TF1 path runs the init op, hence the initializer
        tf.saved_model.load(str(path))
        assert written(prefix) == ["chosen.data-00000-of-00001", "chosen.index"]


@pytest.mark.parametrize("name", sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / "saved_model.pb").is_file()))
def test_shipped_entries_load_the_tf2_way(name):
    assert tf1_loader_reason(SHIPPED_DIR / name) is None


# --- manifests ---------------------------------------------------------------------------------


def test_a_manifest_in_a_subfolder_is_an_ordinary_file_of_the_entry(tmp_path):
    path = Path(shutil.copytree(SHIPPED_DIR / "spoken_digits", tmp_path / "spoken_digits"))
    (path / "variables" / MANIFEST).write_text("")
    with pytest.raises(ZooError, match=r"not in the manifest: variables/SHA256SUMS"):
        load(path)
    write_manifest(path)
    assert f"  variables/{MANIFEST}\n" in (path / MANIFEST).read_text()
    verify_manifest(path)
    (path / "variables" / MANIFEST).write_text("0" * 64 + "  anything\n")
    with pytest.raises(ZooError, match=r"changed: variables/SHA256SUMS"):
        verify_manifest(path)
