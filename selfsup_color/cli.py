"""The ``selfsup-color`` command: one verb per job, one strict YAML dialect.

Every verb takes ``--config FILE`` (YAML; an unknown key fails), dotted ``--key value`` overrides and
``--print_config``. ``fit``, ``validate`` and ``test`` are LightningCLI (the whole Trainer,
``seed_everything``, ``--ckpt_path``); ``quickstart`` is ``fit`` on a packaged recipe plus a report;
``prior``, ``colorize`` and ``evaluate`` are typed functions parsed the same way
(:mod:`selfsup_color.command`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

LIGHTNING_VERBS = {
    "fit": "Pretrain a colorization network (resume with --ckpt_path last).",
    "validate": "Score a checkpoint on the validation images (--ckpt_path).",
    "test": "Score a checkpoint on the test images (--ckpt_path).",
}
FUNCTION_VERBS = ("prior", "colorize", "evaluate")
"""Verbs defined as functions in :mod:`selfsup_color.pretrain.commands`; they read bare image arguments
(``inputs``) except ``prior``."""


def verb_summaries() -> dict[str, str]:
    """Every verb and its one-line summary, in the order ``--help`` lists them."""
    from .command import first_paragraph
    from .pretrain import commands
    from .pretrain.quickstart import quickstart_command

    summaries = dict(LIGHTNING_VERBS)
    summaries["quickstart"] = first_paragraph(quickstart_command.__doc__)
    summaries.update({verb: first_paragraph(getattr(commands, verb).__doc__) for verb in FUNCTION_VERBS})
    return summaries


def usage() -> str:
    from .command import command_usage

    return command_usage("selfsup-color", __doc__, verb_summaries())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: dispatch ``argv`` (default ``sys.argv[1:]``) to its verb; errors end in one line
    (``--debug`` for the traceback)."""
    from .command import run_command

    return run_command("selfsup-color", dispatch, argv)


def dispatch(args: list[str]) -> int:
    """Run the verb ``args[0]`` on the rest of ``args``."""
    from .command import split_verb

    parsed = split_verb(args, usage)
    if isinstance(parsed, int):
        return parsed
    verb, rest = parsed
    if verb in FUNCTION_VERBS:
        from .command import run_function
        from .pretrain import commands

        positional = None if verb == "prior" else "inputs"
        function = getattr(commands, verb)
        return run_function(f"selfsup-color {verb}", function, rest, positional, commands.RENAMED[verb])
    if verb == "quickstart":
        from .pretrain.quickstart import quickstart_command

        return quickstart_command(rest)
    if verb in LIGHTNING_VERBS or verb.startswith("-"):
        from .pretrain.cli import run_lightning_cli

        run_lightning_cli([verb, *rest])
        return 0
    print(f"selfsup-color: unknown verb {verb!r}\n\n{usage()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
