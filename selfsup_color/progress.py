"""Progress bars for the toolkit's long loops: on rank zero only, on stderr, quiet in logs.

Every loop that may run for minutes (the prior pass, feature caching, evaluation, colorization, the kNN
callback) wraps its iterable in :func:`progress_bar`, or updates one by hand. A bar is drawn when:

* this process is global rank zero (Lightning's ``rank_zero_only.rank``, set by every strategy), and
* stderr is a terminal, so redirected logs and batch jobs stay clean, unless
  ``SELFSUP_COLOR_PROGRESS`` says otherwise: ``1`` draws bars even into a file, ``0`` never draws them.

``progress_bar(..., enabled=...)`` overrides the environment for callers that decide themselves.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from lightning.pytorch.utilities import rank_zero_only
from tqdm import tqdm

T = TypeVar("T")

PROGRESS_ENV = "SELFSUP_COLOR_PROGRESS"
"""``1`` or ``on`` forces bars, ``0`` or ``off`` hides them, unset or ``auto``: on a terminal only."""


def show_progress(enabled: bool | None = None) -> bool:
    """Whether this process draws bars: never off rank zero; else ``enabled``, else the environment.

    ``enabled=None`` reads :data:`PROGRESS_ENV` and falls back to "stderr is a terminal".
    """
    if getattr(rank_zero_only, "rank", 0) != 0:
        return False
    if enabled is not None:
        return enabled
    setting = os.environ.get(PROGRESS_ENV, "auto").strip().lower()
    if setting in ("1", "on", "true", "yes"):
        return True
    if setting in ("0", "off", "false", "no"):
        return False
    if setting not in ("", "auto"):
        raise ValueError(f"{PROGRESS_ENV}={setting!r}: use 1 (always), 0 (never) or auto (on a terminal)")
    return sys.stderr.isatty()


def progress_bar(
    iterable: Iterable[T] | None = None,
    total: int | None = None,
    desc: str | None = None,
    unit: str = "it",
    enabled: bool | None = None,
    leave: bool = True,
) -> tqdm:
    """A tqdm bar over ``iterable`` (or one to ``update`` by hand), drawn only where :func:`show_progress`.

    ``total`` defaults to ``len(iterable)`` when it has one. Use ``leave=False`` inside loops that
    already have a bar (a callback under Lightning's bar), so the inner bar vanishes when done.
    """
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        leave=leave,
        dynamic_ncols=True,
        disable=not show_progress(enabled),
    )
