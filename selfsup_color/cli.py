"""The ``selfsup-color`` command (pretraining CLI; filled in by the pretraining work)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point; pretraining subcommands are not implemented yet."""
    print(
        "selfsup-color: pretraining commands are not implemented yet (see the pretraining issue).",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
