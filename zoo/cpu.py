"""The CPU, read before TensorFlow starts: its feature flags, and whether TensorFlow's oneDNN
kernels should be on.

TensorFlow 2.21's x86-64 Linux wheels turn their oneDNN kernels on by themselves only where the
CPU has AVX-512 VNNI, AVX-512 BF16, AVX-VNNI or AMX (`DefaultOneDnnPolicy`, tensorflow/core/util/
port.cc); elsewhere (AMD Zen 2 and Zen 3, Intel client CPUs and older servers) convolutions,
matrix products and batch norms run Eigen's kernels unless TF_ENABLE_ONEDNN_OPTS=1 is set before
TensorFlow is imported. On a 2-core AMD EPYC (Zen 3, AVX2) oneDNN trained the `fast` preset's
network 1.67x, the speech DS-CNN 1.91x, the sentiment BiLSTM 1.54x and the translation LSTMs 1.12x
faster than Eigen (bench/README.md, "CPUs without AVX-512"), so `import zoo` sets
TF_ENABLE_ONEDNN_OPTS=1 on x86-64 CPUs with AVX2 unless it is set already (0 keeps Eigen's
kernels) or TensorFlow is already imported (the variable is read once, at its import).
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from pathlib import Path

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


@functools.lru_cache(maxsize=None)
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset:
    """The CPU's feature flags as Linux lists them in /proc/cpuinfo (empty where it cannot be read)."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def onednn_wanted(flags=None, machine: str | None = None) -> bool:
    """Whether the zoo wants TensorFlow's oneDNN kernels on this CPU: an x86-64 one with AVX2 (where
    TensorFlow turns them on by itself, asking for them changes nothing). Other architectures keep
    TensorFlow's own choice: oneDNN there (Arm's Compute Library) was not measured."""
    machine = (platform.machine() if machine is None else machine).lower()
    flags = cpu_flags() if flags is None else flags
    return machine in ("x86_64", "amd64") and "avx2" in flags


def use_onednn() -> bool:
    """Sets TF_ENABLE_ONEDNN_OPTS=1 unless it is set, where `onednn_wanted`, before TensorFlow's
    first import (nothing happens once TensorFlow is imported). Returns whether it set it."""
    if ONEDNN_VARIABLE in os.environ or "tensorflow" in sys.modules or not onednn_wanted():
        return False
    os.environ[ONEDNN_VARIABLE] = "1"
    return True


def tensorflow_onednn() -> bool | None:
    """Whether the imported TensorFlow runs its oneDNN kernels (None where it cannot tell, or
    TensorFlow is not imported: this does not import it)."""
    if "tensorflow" not in sys.modules:
        return None
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


def onednn_note() -> str | None:
    """A line for the training log where this CPU wants oneDNN but the TensorFlow in use runs
    Eigen's kernels without being asked to (it was imported before zoo, the variable unset); None
    otherwise."""
    if ONEDNN_VARIABLE in os.environ or "tensorflow" not in sys.modules or not onednn_wanted():
        return None
    if tensorflow_onednn() is not False:
        return None
    return (f"Note: TensorFlow runs Eigen's kernels, not oneDNN's, on this CPU: it was imported before zoo. "
            f"The zoo's networks trained 1.1-1.9x faster with oneDNN's on a CPU like this one; `import zoo` "
            f"first, or set {ONEDNN_VARIABLE}=1, to use them.")
