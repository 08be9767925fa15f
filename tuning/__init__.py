"""KerasTuner searches over each task's search space (`python -m tuning.search`): issue 6, not built yet."""
