"""zoo.cpu: TensorFlow's oneDNN kernels on x86-64 CPUs where TensorFlow leaves them off."""

import os
import subprocess
import sys

import pytest

from zoo import cpu

ZEN3 = "fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni vaes"
HASWELL_LESS = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx"


@pytest.mark.parametrize("machine, flags, wanted", [
    ("x86_64", ZEN3, True),
    ("AMD64", ZEN3, True),
    ("x86_64", ZEN3 + " avx512f avx512_vnni avx512_bf16", True),  # TensorFlow turns it on there anyway
    ("x86_64", HASWELL_LESS, False),  # no AVX2: not measured
    ("aarch64", "fp asimd sve bf16", False),  # oneDNN with Arm's library: TensorFlow's choice stays
    ("x86_64", "", False),  # /proc/cpuinfo unreadable
])
def test_onednn_wanted_on_x86_64_with_avx2(machine, flags, wanted):
    assert cpu.onednn_wanted(frozenset(flags.split()), machine) is wanted


@pytest.fixture
def before_tensorflow(monkeypatch):
    """As if TensorFlow were not imported yet, on a CPU that wants oneDNN."""
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.delenv(cpu.ONEDNN_VARIABLE, raising=False)
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset(ZEN3.split()))
    monkeypatch.setattr(cpu.platform, "machine", lambda: "x86_64")
    return monkeypatch


def test_use_onednn_sets_the_variable_before_tensorflow(before_tensorflow):
    assert cpu.use_onednn() is True
    assert os.environ[cpu.ONEDNN_VARIABLE] == "1"


def test_use_onednn_keeps_the_users_choice(before_tensorflow):
    before_tensorflow.setenv(cpu.ONEDNN_VARIABLE, "0")
    assert cpu.use_onednn() is False
    assert os.environ[cpu.ONEDNN_VARIABLE] == "0"


def test_use_onednn_does_nothing_once_tensorflow_is_imported(before_tensorflow):
    before_tensorflow.setitem(sys.modules, "tensorflow", object())
    assert cpu.use_onednn() is False
    assert cpu.ONEDNN_VARIABLE not in os.environ


def test_use_onednn_does_nothing_where_not_wanted(before_tensorflow):
    before_tensorflow.setattr(cpu.platform, "machine", lambda: "aarch64")
    assert cpu.use_onednn() is False
    assert cpu.ONEDNN_VARIABLE not in os.environ


def _tensorflow_onednn(env):
    code = ("import zoo, tensorflow\n"
            "from tensorflow.python.util import _pywrap_util_port as port\n"
            "print(port.IsMklEnabled())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()[-1] == "True"


@pytest.mark.slow
@pytest.mark.skipif(not cpu.onednn_wanted(), reason="not an x86-64 CPU with AVX2")
def test_import_zoo_turns_tensorflows_onednn_on():
    env = {k: v for k, v in os.environ.items() if k != cpu.ONEDNN_VARIABLE}
    assert _tensorflow_onednn(env) is True
    assert _tensorflow_onednn({**env, cpu.ONEDNN_VARIABLE: "0"}) is False


ONEDNN_TYPE_NOTE = "oneDNN supports DT_"


def _stderr_of_graphs_with_other_types(absorb):
    # A boolean and an int64 op of the kinds the zoo's runs hold (a transposed mask, token ids),
    # in a graph function and in a tf.data pipeline.
    code = ("import zoo, tensorflow as tf\n"
            f"{'from zoo.logs import absorb_onednn_type_note; absorb_onednn_type_note()' if absorb else ''}\n"
            "tf.function(lambda m: tf.transpose(tf.logical_not(m)))(tf.zeros([4, 5], tf.bool))\n"
            "for _ in tf.data.Dataset.from_tensors(tf.zeros([4, 5], tf.int64)).map(tf.transpose): pass\n")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", cpu.ONEDNN_VARIABLE)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stderr


@pytest.mark.slow
def test_the_onednn_type_note_is_absorbed_before_a_run():
    if ONEDNN_TYPE_NOTE not in _stderr_of_graphs_with_other_types(absorb=False):
        pytest.skip("TensorFlow writes no oneDNN type note on this CPU")
    assert ONEDNN_TYPE_NOTE not in _stderr_of_graphs_with_other_types(absorb=True)


def test_the_training_log_notes_tensorflow_imported_before_zoo(before_tensorflow):
    before_tensorflow.setitem(sys.modules, "tensorflow", object())
    before_tensorflow.setattr(cpu, "tensorflow_onednn", lambda: False)
    assert "imported before zoo" in cpu.onednn_note()
    before_tensorflow.setenv(cpu.ONEDNN_VARIABLE, "0")  # the user's choice: nothing to note
    assert cpu.onednn_note() is None


def test_no_note_where_oneDNN_runs_or_is_not_wanted(before_tensorflow):
    before_tensorflow.setitem(sys.modules, "tensorflow", object())
    before_tensorflow.setattr(cpu, "tensorflow_onednn", lambda: True)
    assert cpu.onednn_note() is None
    before_tensorflow.setattr(cpu, "tensorflow_onednn", lambda: False)
    before_tensorflow.setattr(cpu.platform, "machine", lambda: "aarch64")
    assert cpu.onednn_note() is None


def test_tensorflow_onednn_reads_the_imported_tensorflow(monkeypatch):
    import tensorflow  # noqa: F401  (imported by the conftest already)
    from tensorflow.python.util import _pywrap_util_port

    assert cpu.tensorflow_onednn() is bool(_pywrap_util_port.IsMklEnabled())
    monkeypatch.delitem(sys.modules, "tensorflow")
    assert cpu.tensorflow_onednn() is None  # and does not import it
    assert "tensorflow" not in sys.modules
