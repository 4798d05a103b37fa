"""What every command shares: one strict jsonargparse dialect.

Every verb of ``selfsup-color`` and ``selfsup-transfer`` parses its arguments with :func:`command_parser`:
``--config`` reads YAML (an unknown key fails), ``--print_config`` prints the resolved config, flags are
dotted and underscored (``--process_size``, ``--encoder.ckpt_path``). Flags of older releases still work
for one release through :func:`rename_flags`, with a warning naming the new flag.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from .io import write_text_atomic

DEBUG_FLAG = "--debug"
DEBUG_ENV = "SELFSUP_COLOR_DEBUG"
"""``--debug`` anywhere on a command line, or ``SELFSUP_COLOR_DEBUG=1``: errors raise with their traceback."""
CONFIG_NAME = "config.yaml"
"""The resolved config every command that writes a folder saves in it."""


def command_parser(
    prog: str, description: str | None, parser_class: type[ArgumentParser] = ArgumentParser
) -> ArgumentParser:
    """A strict ``parser_class`` with ``--config`` (YAML, repeatable) and ``--print_config``."""
    parser = parser_class(prog=prog, description=description, exit_on_error=True)
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML config (strict: unknown keys fail)")
    return parser


def rename_flags(argv: Sequence[str], renamed: Mapping[str, str], prog: str) -> list[str]:
    """``argv`` with deprecated flags (``--old v`` or ``--old=v``) renamed, warning once per flag.

    A value of ``renamed`` may end in ``.`` to turn ``--old NAME=VALUE`` into ``--new.NAME VALUE``
    (a repeatable ``NAME=PATH`` flag becoming a mapping).
    """
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        flag, sep, value = items[i].partition("=")
        new = renamed.get(flag)
        if new is None:
            out.append(items[i])
            i += 1
            continue
        use = new.rstrip(".")
        warnings.warn(f"{prog}: {flag} is deprecated; use {use}", FutureWarning, stacklevel=3)
        if not sep and i + 1 < len(items):
            value, i = items[i + 1], i + 1
        elif not sep:
            out.append(use)
            break
        if new.endswith("."):
            name, eq, path = value.partition("=")
            if not eq or not name or not path:
                raise SystemExit(f"{prog}: {flag} expects NAME=PATH (e.g. ours=last.ckpt), got {value!r}")
            out += [f"{new}{name}", path]
        else:
            out += [new, value]
        i += 1
    return out


def parse(parser: ArgumentParser, argv: Sequence[str], renamed: Mapping[str, str] | None = None) -> Namespace:
    """Parse ``argv`` (after renaming deprecated flags); exits with the parser's message on bad input."""
    return parser.parse_args(rename_flags(argv, renamed or {}, parser.prog))


def save_config(parser: ArgumentParser, config: Namespace, folder: Path) -> Path:
    """Write the resolved ``config`` to ``<folder>/config.yaml`` (atomically); returns the path."""
    clean = config.clone()
    clean.pop("config", None)
    text = parser.dump(clean, skip_unset=False)
    return write_text_atomic(Path(folder) / CONFIG_NAME, text)


def without_config_key(config: Namespace) -> dict[str, Any]:
    """The parsed values as keyword arguments (``--config`` itself left out)."""
    values = config.as_dict()
    values.pop("config", None)
    return values


def run_command(command: str, main: Callable[[list[str]], int], argv: Sequence[str] | None) -> int:
    """``main(args)`` (``args``: ``argv``, default ``sys.argv[1:]``, without ``--debug``); an exception ends
    it with one line on stderr naming the error, and exit code 1, unless ``--debug`` or
    ``SELFSUP_COLOR_DEBUG=1`` asks for the traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in args or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return main([a for a in args if a != DEBUG_FLAG])
    except Exception as error:
        if debug:
            raise
        text = str(error).strip().replace("\n", " ") or "(no message)"
        print(f"{command}: error: {type(error).__name__}: {text}", file=sys.stderr)
        print(f"{command}: for the traceback, add {DEBUG_FLAG} or set {DEBUG_ENV}=1", file=sys.stderr)
        return 1


def split_verb(argv: Sequence[str] | None, usage: Callable[[], str]) -> tuple[str, list[str]] | int:
    """``(verb, its arguments)`` of ``argv`` (default ``sys.argv[1:]``), or an exit code after printing
    ``usage()``: 0 for ``--help``, 2 for no verb at all."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    return args[0], args[1:]


def command_usage(command: str, doc: str, summaries: Mapping[str, str]) -> str:
    """The ``--help`` of a command of several verbs: its docstring, then one line per verb."""
    width = max(map(len, summaries)) + 2
    lines = [doc.strip(), "", f"usage: {command} VERB [--config FILE] [--print_config] [options]", ""]
    lines += [f"  {verb:<{width}}{summary}" for verb, summary in summaries.items()]
    lines += ["", f"`{command} VERB --help` lists a verb's options."]
    return "\n".join(lines)


def first_paragraph(text: str | None) -> str:
    """The summary of a docstring: its first paragraph on one line."""
    return " ".join((text or "").strip().split("\n\n")[0].split())


def function_parser(prog: str, function: Any, positional: str | None = None) -> ArgumentParser:
    """A :func:`command_parser` with one flag per parameter of ``function`` (types and help from its
    signature and docstring); ``positional`` names a list parameter also given as bare arguments."""
    parser = command_parser(prog, first_paragraph(function.__doc__))
    if positional:
        parser.add_argument(positional, nargs="+", type=str, help="image files, folders, .txt lists, builtin")
    parser.add_function_arguments(function, skip={positional} if positional else None, fail_untyped=True)
    return parser


def run_function(
    prog: str,
    function: Any,
    argv: Sequence[str],
    positional: str | None = None,
    renamed: Mapping[str, str] | None = None,
    config_dir: str | None = "out",
) -> Any:
    """Parse ``argv`` for ``function``, save the resolved config in the folder its ``config_dir``
    argument names (if set), and call it."""
    parser = function_parser(prog, function, positional)
    config = parse(parser, argv, renamed)
    kwargs = without_config_key(config)
    if config_dir and kwargs.get(config_dir):
        save_config(parser, config, Path(kwargs[config_dir]))
    return function(**kwargs)
