"""Model builders. Importing this package registers every builder with `zoo.registry`."""

from zoo.models import seq2seq, speech, text, vision  # noqa: F401
