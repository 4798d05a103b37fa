"""The ``selfsup-color`` command.

``fit``, ``validate`` and ``test`` are LightningCLI subcommands driven by YAML configs (strict: an
unknown key fails; ``--print_config`` prints the full config). ``prior``, ``colorize``,
``evaluate`` and ``quickstart`` are small extra commands, see ``selfsup-color <command> --help``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: dispatch the extra commands, hand everything else to LightningCLI."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in EXTRA_COMMANDS:
        return EXTRA_COMMANDS[args[0]](args[1:])
    from .pretrain.cli import run_lightning_cli

    run_lightning_cli(args)
    return 0


def _prior(args: list[str]) -> int:
    from .pretrain.commands import prior_command

    return prior_command(args)


def _colorize(args: list[str]) -> int:
    from .pretrain.commands import colorize_command

    return colorize_command(args)


def _evaluate(args: list[str]) -> int:
    from .pretrain.commands import evaluate_command

    return evaluate_command(args)


def _quickstart(args: list[str]) -> int:
    from .pretrain.quickstart import quickstart_command

    return quickstart_command(args)


EXTRA_COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "prior": _prior,
    "colorize": _colorize,
    "evaluate": _evaluate,
    "quickstart": _quickstart,
}

if __name__ == "__main__":
    raise SystemExit(main())
