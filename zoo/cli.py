"""Running a task's `main` from the command line: user errors become one line and exit code 2."""

from __future__ import annotations

import json
import math
import os
import sys


def check_utf8(argv) -> None:
    """A `ZooError` naming the first argument of `argv` that is not valid UTF-8.

    Python hands such an argument over with its bad bytes as lone surrogates, which every later
    print, log line, JSON file or TensorFlow string would fail to encode, far from the cause.
    """
    from zoo.errors import ZooError

    for i, arg in enumerate(argv):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            what = f"argument {i + 1}"
            if arg.startswith("--") and "=" in arg:
                what += f" ({arg.split('=', 1)[0]}=...)"
            elif i and argv[i - 1].startswith("-"):
                what += f" (after {argv[i - 1]})"
            raise ZooError(f"{what} is not valid UTF-8: {os.fsencode(arg)!r}. Rename the file or directory, or "
                           "pass a UTF-8 name.") from None


def run(main, argv=None):
    """Calls `main(argv)` (default: the command line's arguments). A `ZooError` (a user error:
    bad input, flag or data, raised on purpose) prints `error: ...` and exits 2; argparse exits 2
    on bad flags by itself; any other exception is a bug and prints its traceback (exit 1).
    Ctrl-C exits 130 (the run resumes when started again). With ZOO_DEBUG set, a `ZooError`
    prints its traceback too."""
    from zoo.errors import ZooError

    try:
        check_utf8(sys.argv[1:] if argv is None else argv)
        main(argv)
    except ZooError as e:
        if os.environ.get("ZOO_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume from the last finished epoch.", file=sys.stderr)
        sys.exit(130)


def finite_or_none(value):
    """`value` with every float that is NaN or infinite (NumPy's too) replaced by None, in nested
    dicts, lists and tuples: what strict JSON can hold."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "dtype") and getattr(value, "shape", None) == () and value.dtype.kind == "f":
        return float(value) if math.isfinite(float(value)) else None
    return value


def dumps_strict(value, **kwargs) -> str:
    """`json.dumps` that every JSON parser reads: non-finite floats become null (`finite_or_none`),
    never the `NaN` or `Infinity` Python writes by default."""
    return json.dumps(finite_or_none(value), allow_nan=False, **kwargs)
