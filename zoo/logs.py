"""A quiet TensorFlow start-up that keeps its warnings.

TensorFlow's C++ libraries log through absl before anything calls `absl::InitializeLog()`, and
such lines go to stderr whatever TF_CPP_MIN_LOG_LEVEL says: the oneDNN note, "Could not find
cuda drivers", "failed call to cuInit", each library printing absl's banner. `quiet_startup`
makes the first `import tensorflow` of the process (Keras' included) run with stderr captured,
probes the devices there too, and writes back the captured lines that TF_CPP_MIN_LOG_LEVEL
lets through (the zoo sets it to 1 unless it is set: warnings and errors stay, INFO goes).
`TF_CPP_MIN_LOG_LEVEL=0` shows everything.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

_ABSL_LINE = re.compile(rb"^([IWEF])\d{4} ")
_LEVELS = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}
_BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# TensorFlow's news, at ERROR level and once a process, that its oneDNN kernels leave an op of
# some type to Eigen's on a CPU without AVX-512 (zoo.cpu turns oneDNN on for such CPUs), such as
# "oneDNN supports DT_BFLOAT16 only on platforms with AVX-512" or "... DT_BOOL ..." (the transposed
# mask of a masked LSTM): logged when the first graph holding such an op is optimized, such as a
# training run's first step or a bfloat16 entry's first call. Nothing is wrong: those ops run on
# Eigen's kernels, as they would without oneDNN.
_EIGEN_FALLBACK = re.compile(rb"oneDNN supports DT_[A-Z0-9_]+ only on platforms with AVX-512")


def min_log_level() -> int:
    """TF_CPP_MIN_LOG_LEVEL as a number (0 if unset or not a number)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def startup_lines_to_keep(text: bytes, level: int) -> bytes:
    """The lines of `text` (TensorFlow's start-up stderr) that log level `level` lets through:
    absl lines (`I0000 ...`, `W...`, `E...`, `F...`) of a lower severity are dropped, and so is
    absl's banner above them; other lines (Python's warnings, tracebacks) are all kept. With no
    CUDA driver on the machine (TF says so in an INFO line), the cuInit failure that follows is
    that same news at ERROR level, and is dropped with it; so is oneDNN's note that Eigen runs ops
    of a type (bfloat16, bool) on a CPU without AVX-512 (information, at ERROR level)."""
    if level <= 0:
        return text
    lines = text.splitlines(keepends=True)
    no_driver = any(b"Could not find cuda drivers" in line for line in lines)
    kept = []
    for line in lines:
        match = _ABSL_LINE.match(line)
        if line.startswith(_BANNER) or (match and _LEVELS[match.group(1)] < level):
            continue
        if no_driver and b"failed call to cuInit" in line:
            continue
        if _EIGEN_FALLBACK.search(line):
            continue
        kept.append(line)
    return b"".join(kept)


@contextlib.contextmanager
def filtered_stderr(level: int):
    """Captures what is written to file descriptor 2 (C++ code included) inside the block, then
    writes back the lines `startup_lines_to_keep` keeps."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no stderr to capture
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            rest = memoryview(startup_lines_to_keep(captured.read(), level))
            while rest:
                rest = rest[os.write(2, rest):]


_type_note_absorbed = False


def absorb_onednn_type_note() -> None:
    """Has TensorFlow write its once-a-process note that oneDNN leaves ops of a type to Eigen's
    kernels ("oneDNN supports DT_BOOL only on platforms with AVX-512. Falling back to ..."), now and
    filtered out, so that it does not come later amid a run's output, at the first graph holding
    such an op (a tokenizer's int64 ids, a masked LSTM's transposed boolean mask, a bfloat16 op).
    Only where TensorFlow runs oneDNN's kernels. It runs a one-op graph (a boolean transpose: oneDNN
    has no boolean kernels), so call it once TensorFlow's devices are configured."""
    global _type_note_absorbed
    from zoo.cpu import tensorflow_onednn

    if _type_note_absorbed or not tensorflow_onednn():
        return
    import tensorflow as tf

    with filtered_stderr(min_log_level()):
        # Not [1, 1]: TensorFlow's graph optimizer removes a transpose that moves nothing.
        tf.function(tf.transpose)(tf.zeros([2, 3], tf.bool))
    _type_note_absorbed = True  # the note is TensorFlow's once a process: later loads and runs skip this


class _QuietLoader(importlib.abc.Loader):
    """TensorFlow's own loader, run inside `filtered_stderr`."""

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with filtered_stderr(min_log_level()):
            self.loader.exec_module(module)
            # CUDA is probed on first use, which logs too: probe it now. Listing physical devices
            # leaves them configurable (memory growth, visible devices).
            module.config.list_physical_devices()


class _QuietFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_startup() -> None:
    """Sets TF_CPP_MIN_LOG_LEVEL to 1 unless it is set, and filters TensorFlow's start-up lines by
    it when TensorFlow is first imported (nothing happens if it already is)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())
