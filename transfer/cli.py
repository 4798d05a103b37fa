"""The ``selfsup-transfer`` command (transfer evaluations; filled in by the transfer work)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point; transfer subcommands are not implemented yet."""
    print(
        "selfsup-transfer: transfer commands are not implemented yet (see the transfer issue).",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
