"""`python -m zoo.models`: the builders, tasks and pretrained entries (zoo.catalog)."""

from zoo.catalog import main
from zoo.cli import run

run(main)
