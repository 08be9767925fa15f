"""Model builders. Importing this package registers every builder with `zoo.registry`."""

from zoo.models import speech, text, vision  # noqa: F401
