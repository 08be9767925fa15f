"""Model builders. Importing this package registers every builder with `zoo.registry`."""

from zoo.models import vision  # noqa: F401
