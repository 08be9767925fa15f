"""KerasTuner searches over each task's search space: `python -m tuning.search TASK` (search.py)."""
