"""Running a task's `main` from the command line: user errors become one line and exit code 2."""

from __future__ import annotations

import os
import sys

from zoo.jsonutil import dumps_strict, finite_or_none  # noqa: F401 (their old home)


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


# --- console scripts (setup.cfg): the `python -m` commands under short names ---------------------


def _script(module: str, argv=None):
    import importlib

    run(lambda args: importlib.import_module(module).main(args), argv)


def train(argv=None):
    """`zoo-train TASK [FLAGS]`: runs `python -m tasks.TASK [FLAGS]`, e.g. `zoo-train vision.cifar10
    --preset fast`; without a task, or with `--help`, lists the tasks."""
    import importlib

    from zoo.errors import ZooError

    argv = sys.argv[1:] if argv is None else list(argv)

    def main(argv):
        from zoo.catalog import task_names

        names = task_names()
        if argv and argv[0] in ("-h", "--help"):
            print(f"usage: zoo-train TASK [FLAGS]   (zoo-train TASK --help: the task's flags and presets)\n"
                  f"tasks: {', '.join(names)}")
            return None
        if not argv or argv[0] not in names:
            given = f"Unknown task {argv[0]!r}" if argv else "No task given"
            raise ZooError(f"{given}: zoo-train TASK [FLAGS]. Known tasks: {', '.join(names)}.")
        return importlib.import_module(f"tasks.{argv[0]}").main(argv[1:])

    run(main, argv)


def predict(argv=None):
    """`zoo-predict`: `python -m zoo.predict`."""
    _script("zoo.predict", argv)


def tune(argv=None):
    """`zoo-tune`: `python -m tuning.search`."""
    _script("tuning.search", argv)


def publish(argv=None):
    """`zoo-publish`: `python -m zoo.publish`."""
    _script("zoo.publish", argv)


def models(argv=None):
    """`zoo-models`: `python -m zoo.models`, the builders, tasks and pretrained entries."""
    _script("zoo.catalog", argv)
