"""User-facing errors: the CLI prints them as one line and exits non-zero."""


class ZooError(ValueError):
    """An error the user can fix (bad input, bad flag, bad data); shown without a traceback."""


class DataError(ZooError):
    """Missing, empty, truncated or corrupt data. The message names the file."""
