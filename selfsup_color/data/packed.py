"""File paths packed into one bytes object and one array of offsets.

A Python list of a million paths is a million objects: every DataLoader worker that reads them
touches their reference counts, and the fork's copy-on-write then copies every page they sit on
(hundreds of MiB per worker). Two objects stay two objects, whatever the number of paths.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterable, Sequence
from itertools import accumulate
from pathlib import Path
from typing import overload


class PackedPaths(Sequence[str]):
    """An immutable sequence of paths (as ``str``), stored as one ``bytes`` plus offsets."""

    def __init__(self, paths: Iterable[str | Path]) -> None:
        encoded = [os.fsencode(path) for path in paths]
        self._offsets = array("q", accumulate(map(len, encoded), initial=0))
        self._bytes = b"".join(encoded)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        i = range(len(self))[index]  # IndexError and negative indices as for a list
        return os.fsdecode(self._bytes[self._offsets[i] : self._offsets[i + 1]])
