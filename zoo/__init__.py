"""Keras Zoo: model builders, data pipelines, training, export and loading shared by every task;
`zoo.load(name)` for the pretrained models in `saved_models/`."""

from zoo.cpu import use_onednn
from zoo.logs import quiet_startup

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) buries the output; its warnings
# stay. TF_CPP_MIN_LOG_LEVEL=0 shows everything.
quiet_startup()
# oneDNN's kernels on x86-64 CPUs that TensorFlow leaves on Eigen's (zoo.cpu);
# TF_ENABLE_ONEDNN_OPTS=0 keeps Eigen's.
use_onednn()

__version__ = "0.1.0"

from zoo.registry import build_model, list_models, register_model  # noqa: E402

__all__ = ["build_model", "list_models", "load", "register_model", "__version__"]


def __getattr__(name):
    # zoo.load, imported on first use: `python -m zoo.safety` and friends then run their module
    # once, rather than after `import zoo` has already imported it.
    if name == "load":
        from zoo.pretrained import load

        return load
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
