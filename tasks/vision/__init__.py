"""Vision tasks."""
