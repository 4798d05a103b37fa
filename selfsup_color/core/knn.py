"""Exact k-nearest-bin search over the Q ab bins, built from plain tensor ops for any device.

The ab plane is cut into unit cells over [-128, 128)^2 (every sRGB colour lies inside). For each cell a
table lists the only bins that can be among the k nearest of a point inside it (at most 14 for k = 10,
see :func:`candidate_table`), padded with a far sentinel, as packed codes: bin index and
lattice coordinates in 23 bits.

A query runs in stages that each fuse well under ``torch.compile``: find the cell, gather its row of
codes, transpose to one contiguous row per candidate slot, then with arithmetic alone compute float32
squared distances and select the k smallest with a pruned min/max network (no sort). A selection key
is the distance widened to float64, exactly, with the code in its low mantissa bits: keys are unique,
order exactly as the float32 distances, carry their bin, and round back to the distance. Exact ties
go to the lower bin index, as a stable brute-force sort does. Points outside the table (far outside
the gamut) fall back to a brute-force float64 search.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from .bins import GRID, Q, ab_bins

TABLE_LOW = -128.0
"""Lower edge of the tabulated ab square (both a and b)."""
TABLE_CELLS = 256
"""Unit cells per axis: the table covers [-128, 128) x [-128, 128)."""


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


_NETWORKS: dict[tuple[int, int], tuple[Comparator, ...]] = {}


def selection_network(n: int, k: int) -> tuple[Comparator, ...]:
    """Comparators that leave the ``k`` smallest of ``n`` values sorted on wires ``0..k-1`` (cached)."""
    if (n, k) not in _NETWORKS:  # a plain dict, which torch.compile traces without warnings
        _NETWORKS[n, k] = _prune(batcher_network(n), min(k, n))
    return _NETWORKS[n, k]


def _prune(network: list[tuple[int, int]], k: int) -> tuple[Comparator, ...]:
    """Drop the comparators that do not affect wires ``0..k-1``; skip unneeded min or max outputs."""
    live = set(range(k))
    kept: list[Comparator] = []
    for low, high in reversed(network):
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


def select_smallest(keys: list[Tensor], k: int) -> tuple[list[Tensor], Tensor]:
    """The ``k`` smallest of ``keys`` (elementwise, in no particular order) and the smallest one.

    Each half is sorted by a pruned network; then the k smallest of both are min(A[i], B[k-1-i])
    (the first half of a bitonic merge), which costs far fewer comparators than sorting everything.
    """
    if len(keys) < k:
        raise ValueError(f"need at least k = {k} keys, got {len(keys)}")
    if len(keys) == 1:
        return list(keys), keys[0]
    half = (len(keys) + 1) // 2
    first = sort_smallest(keys[:half], min(k, half))
    second = sort_smallest(keys[half:], min(k, len(keys) - half))
    chosen = []
    for i in range(k):
        j = k - 1 - i
        if i >= len(first):
            chosen.append(second[j])
        elif j >= len(second):
            chosen.append(first[i])
        else:
            chosen.append(torch.minimum(first[i], second[j]))
    return chosen, torch.minimum(first[0], second[0])


def _box_distances(low: Tensor, centres: Tensor) -> tuple[Tensor, Tensor]:
    """Smallest and largest distance from unit cells (lower corners ``low``, C x 2) to the centres."""
    d_low = low[:, None, :] - centres[None]  # cell edge minus centre, C x Q x 2
    d_high = d_low + 1.0
    nearest = torch.clamp(torch.maximum(d_low, -d_high), min=0.0)
    farthest = torch.maximum(d_low.abs(), d_high.abs())
    return nearest.norm(dim=-1), farthest.norm(dim=-1)


def _dominated(low: Tensor, candidates: Tensor, centres: Tensor, k: int) -> Tensor:
    """C x M: candidates that at least k other candidates beat everywhere in the cell.

    Bin i beats j over a whole (convex) cell when it is strictly closer at its four corners, since
    the sign of d(p, i)^2 - d(p, j)^2 is linear in p. A bin that is ever among the k nearest has all
    the bins that beat it among the candidates too, so counting candidates suffices.
    """
    corners = low[:, None, :] + torch.tensor(
        [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=low.dtype
    )
    padded = torch.cat([centres, torch.full((1, 2), 1e6, dtype=centres.dtype)])
    d2 = (corners[:, :, None, :] - padded[candidates][:, None, :, :]).square().sum(-1)  # C x 4 x M
    beats = (d2[:, :, :, None] < d2[:, :, None, :]).all(dim=1)  # C x M (i) x M (j)
    return beats.sum(dim=1) >= k


@functools.lru_cache(maxsize=8)
def candidate_table(k: int) -> Tensor:
    """``TABLE_CELLS**2 x M`` int64 candidate bins per cell (row-major a, b), index-sorted, Q-padded.

    A bin is a candidate when its smallest distance to the cell is at most the k-th smallest largest
    distance from the cell to any bin, and fewer than k other candidates beat it over the whole cell.
    """
    centres = ab_bins(dtype=torch.float64)
    edges = TABLE_LOW + torch.arange(TABLE_CELLS, dtype=torch.float64)
    chunks = []
    for low in torch.cartesian_prod(edges, edges).split(4096):
        nearest, farthest = _box_distances(low, centres)
        bound = farthest.kthvalue(k, dim=1).values + 1e-9
        # Non-candidates become Q (the padding index), which sorts last.
        rows = torch.where(nearest <= bound[:, None], torch.arange(Q), Q).sort(dim=1).values
        rows = rows[:, : int((rows < Q).sum(dim=1).max())]
        rows = torch.where(_dominated(low, rows, centres, k), Q, rows).sort(dim=1).values
        chunks.append(rows)
    width = max(int((rows < Q).sum(dim=1).max()) for rows in chunks)
    padded = [torch.nn.functional.pad(rows, (0, max(0, width - rows.shape[1])), value=Q) for rows in chunks]
    return torch.cat([rows[:, :width] for rows in padded]).contiguous()


# A candidate code packs the bin index and the bin's lattice coordinates (a / GRID, b / GRID), each
# offset by 64 into 7 bits: code = index << 14 | (ia + 64) << 7 | (ib + 64), 23 bits in all.
_COORD_BITS = 7
_COORD_OFFSET = 64
_COORD_MASK = (1 << _COORD_BITS) - 1
_CODE_BITS = 23
_CODE_MASK = (1 << _CODE_BITS) - 1


@functools.lru_cache(maxsize=16)
def candidate_codes(k: int, device: torch.device | None = None) -> Tensor:
    """The candidate table as packed int32 codes (C x M), padded with a sentinel at (630, 630).

    Cached per ``(k, device)``, so repeated calls do not copy it to the device again.
    """
    if device is not None and torch.device(device).type != "cpu":
        return candidate_codes(k).to(device)
    bins = candidate_table(k)
    centres = torch.cat(
        [ab_bins(dtype=torch.float64), torch.full((1, 2), float(_COORD_MASK - _COORD_OFFSET) * GRID)]
    )
    lattice = (centres / GRID).round().long() + _COORD_OFFSET
    codes = (torch.arange(Q + 1) << (2 * _COORD_BITS)) | (lattice[:, 0] << _COORD_BITS) | lattice[:, 1]
    return codes[bins].to(torch.int32)


def cell_index(a: Tensor, b: Tensor) -> Tensor:
    """Flat table cell of each point (clamped into the table), int64, same shape as ``a``."""
    ia = (a - TABLE_LOW).floor().clamp(0, TABLE_CELLS - 1).long()
    ib = (b - TABLE_LOW).floor().clamp(0, TABLE_CELLS - 1).long()
    return ia * TABLE_CELLS + ib


def gather_codes(cell: Tensor, codes: Tensor) -> Tensor:
    """Packed codes of each point's candidates, P x M (one table row per point: a cheap gather)."""
    return codes[cell.reshape(-1)]


def candidate_major(codes: Tensor) -> Tensor:
    """P x M -> M x P, so that :func:`select_bins` reads each slot contiguously (vectorises).

    A stage of its own: fused with the gather, the transposed gather costs several times more.
    """
    return codes.t().contiguous()


def decode_codes(code: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """int32 code -> (bin index, centre a, centre b) as int32, float32, float32 (exact)."""
    a = ((code >> _COORD_BITS) & _COORD_MASK) - _COORD_OFFSET
    b = (code & _COORD_MASK) - _COORD_OFFSET
    return code >> (2 * _COORD_BITS), a.float() * GRID, b.float() * GRID


def select_bins(a: Tensor, b: Tensor, codes: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """From candidate codes (M x P) to the k nearest bins: arithmetic only, no gather.

    Returns ``(index, excess, nearest)``: k x P int64 bins (no particular order), k x P float32
    squared distances minus the nearest's, and the P nearest bins. A key is the float32 squared
    distance widened to float64 (exactly, leaving 29 zero mantissa bits) with the 23-bit code in its
    lowest bits: keys order exactly as float32 distances, ties going to the lower bin index, and
    rounding a key back to float32 gives its distance exactly.
    """
    a, b = a.reshape(1, -1), b.reshape(1, -1)
    _, centre_a, centre_b = decode_codes(codes)
    dist2 = (a - centre_a).square() + (b - centre_b).square()
    keys = (dist2.double().view(torch.int64) | codes.long()).view(torch.float64)
    chosen, nearest = select_smallest(list(keys.unbind(0)), k)
    chosen_keys = torch.stack(chosen)
    index = (chosen_keys.view(torch.int64) & _CODE_MASK) >> (2 * _COORD_BITS)
    near = (nearest.view(torch.int64) & _CODE_MASK) >> (2 * _COORD_BITS)
    return index, chosen_keys.float() - nearest.float(), near.reshape(-1)


def table_search(a: Tensor, b: Tensor, codes: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """k nearest bins of in-table points (float32 ``a``, ``b`` of one shape S): k x S, k x S, S.

    See :func:`select_bins` for the outputs; ``codes`` is :func:`candidate_codes` for this k.
    """
    index, excess, nearest = select_bins(a, b, candidate_major(gather_codes(cell_index(a, b), codes)), k)
    shape = (k, *a.shape)
    return index.view(shape), excess.view(shape), nearest.view(a.shape)


def brute_force_search(ab: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """k nearest bins of P x 2 points by exhaustive float64 search: (indices, excess), P x k, sorted."""
    centres = ab_bins(ab.device, torch.float64)
    d2 = (ab.double()[:, None, :] - centres[None]).square().sum(-1)
    order = d2.argsort(dim=1, stable=True)[:, :k]
    best = d2.gather(1, order)
    return order, best - best[:, :1]


def knn_bins(ab: Tensor, k: int, assume_in_table: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """The k nearest bins of each pixel of an N x 2 x H x W ab map.

    Returns ``(index, excess, nearest)``: N x k x H x W int64 bin indices (in no particular order),
    float32 squared distances minus the nearest one's (computed in float64 for points outside the
    table, so Gaussian weights stay exact however far away they are), and the N x H x W nearest bin.
    ``assume_in_table`` skips the out-of-table check, which costs one device sync; set it only when
    every a and b lies in [-128, 128), e.g. for ab converted from sRGB.
    """
    if not 1 <= k <= Q:
        raise ValueError(f"k must be in [1, {Q}], got {k}")
    a, b = (x.contiguous() for x in ab.float().unbind(1))
    index, excess, nearest = table_search(a, b, candidate_codes(k, ab.device), k)
    if not assume_in_table:
        high = TABLE_LOW + TABLE_CELLS
        outside = (a < TABLE_LOW) | (a >= high) | (b < TABLE_LOW) | (b >= high)
        where = outside.nonzero(as_tuple=True)
        if where[0].numel():
            idx, d2 = brute_force_search(ab.permute(0, 2, 3, 1)[where], k)
            index[(slice(None), *where)] = idx.t()
            excess[(slice(None), *where)] = d2.t().float()
            nearest[where] = idx[:, 0]
    return index.movedim(0, 1).contiguous(), excess.movedim(0, 1).contiguous(), nearest
