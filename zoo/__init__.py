"""Keras Zoo: model builders, data pipelines, training, export and loading shared by every task."""

import os

# TensorFlow's C++ start-up chatter (CUDA probing, CPU feature notes) buries the progress bars;
# set TF_CPP_MIN_LOG_LEVEL yourself to see it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from zoo.registry import build_model, list_models, register_model  # noqa: E402

__all__ = ["build_model", "list_models", "register_model", "__version__"]
