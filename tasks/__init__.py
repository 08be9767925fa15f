"""Runnable tasks: `python -m tasks.<domain>.<task>`; each exposes `main(argv=None) -> dict`."""
