"""Exact k-nearest-bin search over the Q ab bins, built for speed on any device.

The ab plane is cut into square cells. For every cell a table lists the only bins that can be among
the k nearest of any point inside it: bin j qualifies when its smallest distance to the cell is at most
the k-th smallest *largest* distance from the cell to any bin (at least k bins are always that close).
A query gathers its cell's candidates (at most ``M``, padded with a far sentinel), packs each squared
distance (float bits, monotone for non-negative floats) with the candidate's code into one int64 key,
and orders the keys with a pruned sorting network of ``min``/``max`` ops. Keys are unique, so ties in
distance are broken by bin index, as a stable sort of a brute-force search would. Points outside the
table (far outside the gamut) fall back to a brute-force search in float64.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from .bins import GRID, Q, ab_bins

TABLE_LOW = -128.0
"""Lower edge of the tabulated ab square (both a and b); every sRGB colour lies inside."""
TABLE_CELLS = 256
"""Cells per axis; with ``CELL_SIZE`` 1 the table covers [-128, 128) x [-128, 128)."""
CELL_SIZE = 1.0

# A candidate code packs the bin index and the bin's lattice coordinates (a / GRID, b / GRID), each
# offset by 64 into 7 bits: code = index << 14 | (ia + 64) << 7 | (ib + 64).
_COORD_BITS = 7
_COORD_OFFSET = 64
_COORD_MASK = (1 << _COORD_BITS) - 1
_SENTINEL_CODE = (Q << (2 * _COORD_BITS)) | (_COORD_MASK << _COORD_BITS) | _COORD_MASK  # at (630, 630)
_LOW32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Comparator:
    """One compare-exchange: min goes to wire ``low``, max to ``high``; unneeded outputs are skipped."""

    low: int
    high: int
    keep_min: bool
    keep_max: bool


def batcher_network(n: int) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sort network for ``n`` wires (padded to a power of two)."""
    size = 1
    while size < n:
        size *= 2
    pairs: list[tuple[int, int]] = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    # Wires >= n hold +inf padding: every comparator touching them is a no-op.
    return [(a, b) for a, b in pairs if b < n]


@functools.cache
def selection_network(n: int, k: int) -> tuple[Comparator, ...]:
    """Comparators that leave the ``k`` smallest of ``n`` values sorted on wires ``0..k-1``."""
    live = set(range(min(k, n)))
    kept: list[Comparator] = []
    for low, high in reversed(batcher_network(n)):
        keep_min, keep_max = low in live, high in live
        if keep_min or keep_max:
            kept.append(Comparator(low, high, keep_min, keep_max))
            live |= {low, high}
    return tuple(reversed(kept))


def sort_smallest(keys: list[Tensor], k: int) -> list[Tensor]:
    """The ``k`` smallest of the same-shaped tensors ``keys``, elementwise, in ascending order."""
    wires = list(keys)
    for c in selection_network(len(wires), k):
        x, y = wires[c.low], wires[c.high]
        if c.keep_min:
            wires[c.low] = torch.minimum(x, y)
        if c.keep_max:
            wires[c.high] = torch.maximum(x, y)
    return wires[:k]


def _box_distances(low: Tensor, size: float, centres: Tensor) -> tuple[Tensor, Tensor]:
    """Smallest and largest distance from square cells (lower corners ``low``, C x 2) to the centres."""
    d_low = low[:, None, :] - centres[None]  # cell edge minus centre, C x Q x 2
    d_high = d_low + size
    nearest = torch.clamp(torch.maximum(d_low, -d_high), min=0.0)
    farthest = torch.maximum(d_low.abs(), d_high.abs())
    return nearest.norm(dim=-1), farthest.norm(dim=-1)


@functools.lru_cache(maxsize=8)
def candidate_table(k: int) -> Tensor:
    """``TABLE_CELLS**2 x M`` int32 candidate codes per cell (row-major a, b), sentinel-padded, on CPU."""
    centres = ab_bins(dtype=torch.float64)
    edges = TABLE_LOW + CELL_SIZE * torch.arange(TABLE_CELLS, dtype=torch.float64)
    low = torch.cartesian_prod(edges, edges)
    lattice = (centres / GRID).round().long() + _COORD_OFFSET
    codes = (torch.arange(Q) << (2 * _COORD_BITS)) | (lattice[:, 0] << _COORD_BITS) | lattice[:, 1]
    chunks = []
    for chunk in low.split(8192):
        nearest, farthest = _box_distances(chunk, CELL_SIZE, centres)
        bound = farthest.kthvalue(k, dim=1).values + 1e-9
        # Non-candidates become the sentinel, which sorts last (its index field is Q).
        chunks.append(torch.where(nearest <= bound[:, None], codes, _SENTINEL_CODE).sort(dim=1).values)
    table = torch.cat(chunks)
    width = int((table != _SENTINEL_CODE).sum(dim=1).max())
    table = table[:, :width].to(torch.int32).contiguous()
    return table


class KnnTables(NamedTuple):
    """Per-cell candidates of the table search: packed codes and their bin centres, all C x M."""

    codes: Tensor
    centre_a: Tensor
    centre_b: Tensor


def _decode_centre(code: Tensor, shift: int) -> Tensor:
    return (((code >> shift) & _COORD_MASK) - _COORD_OFFSET).to(torch.float32) * GRID


@functools.lru_cache(maxsize=16)
def knn_tables(k: int, device: torch.device | None = None) -> KnnTables:
    """The cached search tables for ``k`` neighbours on ``device`` (CPU when None)."""
    codes = candidate_table(k).to(device)
    return KnnTables(codes, _decode_centre(codes, _COORD_BITS), _decode_centre(codes, 0))


def table_search(a: Tensor, b: Tensor, tables: KnnTables, k: int) -> tuple[Tensor, Tensor]:
    """k nearest bins of points inside the table: (int64 indices, float32 excess), both k x ...

    The excess of a neighbour is its squared distance minus that of the nearest.

    ``a`` and ``b`` are float32 tensors of one shape. Pure tensor ops with no host sync, so it runs
    unchanged under ``torch.compile`` (which fuses it into one loop).
    """
    ia = ((a - TABLE_LOW) / CELL_SIZE).floor().clamp(0, TABLE_CELLS - 1).to(torch.int32)
    ib = ((b - TABLE_LOW) / CELL_SIZE).floor().clamp(0, TABLE_CELLS - 1).to(torch.int32)
    cell = (ia * TABLE_CELLS + ib).reshape(-1)
    da = a.reshape(-1, 1) - tables.centre_a.index_select(0, cell)
    db = b.reshape(-1, 1) - tables.centre_b.index_select(0, cell)
    dist2 = da.square() + db.square()
    codes = tables.codes.index_select(0, cell).to(torch.int64)
    keys = (dist2.view(torch.int32).to(torch.int64) << 32) | codes
    # One candidate per row, pixels contiguous: fast elementwise min/max in eager mode.
    best = torch.stack(sort_smallest(list(keys.t().contiguous().unbind(0)), k))
    index = (best & _LOW32) >> (2 * _COORD_BITS)
    dist2 = (best >> 32).to(torch.int32).view(torch.float32)
    return index.view(k, *a.shape), (dist2 - dist2[:1]).view(k, *a.shape)


def brute_force_search(ab: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """k nearest bins of P x 2 points by exhaustive float64 search: (indices, excess), P x k."""
    centres = ab_bins(ab.device, torch.float64)
    d2 = (ab.double()[:, None, :] - centres[None]).square().sum(-1)
    order = d2.argsort(dim=1, stable=True)[:, :k]
    best = d2.gather(1, order)
    return order, best - best[:, :1]


def knn_bins(ab: Tensor, k: int, assume_in_table: bool = False) -> tuple[Tensor, Tensor]:
    """The k nearest bins of each pixel of N x 2 x H x W ab, nearest first.

    Returns ``(indices, excess)``: N x k x H x W int64 bin indices and float32 squared distances
    minus the nearest one's (computed in float64 for points outside the table, so the Gaussian
    weights stay exact however far away they are).
    ``assume_in_table`` skips the out-of-table check (which costs one device sync); set it only
    when every a and b lies in [-128, 128), e.g. for ab converted from sRGB.
    """
    if not 1 <= k <= Q:
        raise ValueError(f"k must be in [1, {Q}], got {k}")
    a, b = ab.float().unbind(1)
    index, excess = table_search(a, b, knn_tables(k, ab.device), k)  # k x N x H x W
    if not assume_in_table:
        high = TABLE_LOW + TABLE_CELLS * CELL_SIZE
        outside = (a < TABLE_LOW) | (a >= high) | (b < TABLE_LOW) | (b >= high)
        where = outside.nonzero(as_tuple=True)
        if where[0].numel():
            idx, d2 = brute_force_search(ab.permute(0, 2, 3, 1)[where], k)
            index[(slice(None), *where)] = idx.t()
            excess[(slice(None), *where)] = d2.t().float()
    return index.movedim(0, 1).contiguous(), excess.movedim(0, 1).contiguous()
