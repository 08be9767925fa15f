"""KerasTuner searches over each task's search space: `python -m tuning.search TASK` (search.py)."""

import zoo  # noqa: F401  (before search.py's `import keras`: zoo quiets TensorFlow's start-up)
