"""Running a task's `main` from the command line: user errors become one line and exit code 2."""

from __future__ import annotations

import os
import sys


def run(main, argv=None):
    """Calls `main(argv)`; a `ZooError` or `ValueError` prints `error: ...` and exits 2,
    Ctrl-C exits 130 (the run resumes when started again)."""
    from zoo.errors import ZooError

    try:
        main(argv)
    except (ZooError, ValueError) as e:
        if os.environ.get("ZOO_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume from the last finished epoch.", file=sys.stderr)
        sys.exit(130)
