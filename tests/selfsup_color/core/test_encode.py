"""Soft encoding and nearest-bin search against a brute-force k-NN over all 313 bins."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from selfsup_color import Q, ab_bins, nearest_bin, soft_encode, soft_encode_sparse
from selfsup_color.core.knn import candidate_table, select_smallest, sort_smallest

from .reference import brute_force_knn, brute_force_soft_encode, dense_points, near_ties, to_points

BINS = ab_bins(dtype=torch.float64).numpy()


def random_ab(rng: torch.Generator, n: int, size: int, low: float, high: float) -> torch.Tensor:
    return torch.rand(n, 2, size, size, generator=rng) * (high - low) + low


def assert_matches_brute_force(
    ab: torch.Tensor, k: int = 10, sigma: float = 5.0, max_tie_share: float = 1e-3
) -> None:
    points = to_points(ab)
    ours = dense_points(soft_encode(ab, k=k, sigma=sigma))
    ref = brute_force_soft_encode(points, BINS, k, sigma)
    # A point within float32 rounding of a tie between the k-th and (k+1)-th bin may take either.
    ties = near_ties(points, BINS, k)
    assert ties.mean() <= max_tie_share
    assert np.abs(ours - ref)[~ties].max() < 1e-4


@pytest.mark.parametrize(("low", "high"), [(-110.0, 110.0), (-150.0, 150.0), (-130.0, -126.0)])
def test_soft_encode_matches_brute_force(low: float, high: float, rng: torch.Generator) -> None:
    assert_matches_brute_force(random_ab(rng, 4, 48, low, high))


def test_soft_encode_far_outside_the_gamut(rng: torch.Generator) -> None:
    ab = random_ab(rng, 2, 16, -1e4, 1e4)
    ab[0, :, 0, :4] = torch.tensor([[1e6, -1e6, 300.0, -128.0], [1e6, 1e6, -300.0, 128.0]])
    assert_matches_brute_force(ab)


def test_lattice_points_and_cell_edges_match_exactly_with_ties_by_index() -> None:
    # Exact lattice points have exact distance ties: both sides break them by bin index.
    a, b = torch.meshgrid(torch.arange(-130.0, 131.0, 2.5), torch.arange(-130.0, 131.0, 2.5), indexing="ij")
    ab = torch.stack((a, b))[None]
    ours = dense_points(soft_encode(ab))
    ref = brute_force_soft_encode(to_points(ab), BINS)
    assert np.abs(ours - ref).max() < 1e-4
    # Just off the lattice and the cell edges: near-ties (within float32 rounding) may go either way.
    assert_matches_brute_force(torch.cat([ab + 1e-4, ab - 1e-4, ab + 0.01]), max_tie_share=0.1)


@pytest.mark.parametrize("k", [1, 2, 5, 16])
def test_other_neighbour_counts(k: int, rng: torch.Generator) -> None:
    assert_matches_brute_force(random_ab(rng, 2, 24, -120.0, 120.0), k=k)


def test_sparse_form_is_normalised_distinct_and_equals_dense(rng: torch.Generator) -> None:
    ab = random_ab(rng, 3, 10, -100.0, 100.0)
    sparse = soft_encode_sparse(ab)
    assert sparse.index.shape == sparse.weight.shape == (3, 10, 10, 10)
    assert sparse.index.dtype == torch.int64
    assert torch.allclose(sparse.weight.sum(1), torch.ones(3, 10, 10))
    assert (sparse.index.sort(dim=1).values.diff(dim=1) > 0).all()  # k distinct bins per pixel
    dense = soft_encode(ab)
    assert dense.shape == (3, Q, 10, 10)
    assert torch.equal(sparse.to_dense(), dense)
    index, _ = brute_force_knn(to_points(ab), BINS, 10)
    ours = np.sort(sparse.index.permute(0, 2, 3, 1).reshape(-1, 10).numpy(), axis=1)
    assert np.array_equal(ours, np.sort(index, axis=1))


def test_nearest_bin_matches_brute_force_argmin(rng: torch.Generator) -> None:
    ab = random_ab(rng, 2, 32, -200.0, 200.0)
    expected = brute_force_knn(to_points(ab), BINS, 1)[0][:, 0]
    assert np.array_equal(nearest_bin(ab).reshape(-1).numpy(), expected)


def test_batch_of_one_and_half_precision(rng: torch.Generator) -> None:
    ab = random_ab(rng, 1, 8, -100.0, 100.0)
    for dtype in (torch.float16, torch.bfloat16):
        low = ab.to(dtype)
        ours = dense_points(soft_encode(low))
        ref = brute_force_soft_encode(to_points(low.float()), BINS)
        ties = near_ties(to_points(low.float()), BINS, 10)
        assert np.abs(ours - ref)[~ties].max() < 1e-4


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        soft_encode(torch.full((1, 2, 2, 2), float("nan")))
    with pytest.raises(ValueError, match="N x 2 x H x W"):
        soft_encode(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="k must be"):
        soft_encode(torch.zeros(1, 2, 2, 2), k=0)
    with pytest.raises(ValueError, match="sigma"):
        soft_encode(torch.zeros(1, 2, 2, 2), sigma=0.0)


def test_sorting_network_sorts_every_size(rng: torch.Generator) -> None:
    for n, k in itertools.product(range(1, 18), range(1, 18)):
        if k > n:
            continue
        values = torch.randint(0, 6, (n, 200), generator=rng)  # many duplicates
        got = torch.stack(sort_smallest(list(values.unbind(0)), k))
        assert torch.equal(got, values.sort(dim=0).values[:k]), (n, k)


def test_candidate_table_is_small() -> None:
    # The search cost scales with the widest row: keep it far below Q.
    assert candidate_table(10).shape[1] <= 14
    assert candidate_table(1).shape[1] <= 4


def test_select_smallest_returns_the_k_smallest_set_and_the_minimum(rng: torch.Generator) -> None:
    for n, k in itertools.product(range(1, 18), range(1, 18)):
        if k > n:
            continue
        values = torch.randperm(n * 50, generator=rng)[: n * 40].view(n, 40).float()  # distinct keys
        chosen, smallest = select_smallest(list(values.unbind(0)), k)
        assert torch.equal(torch.stack(chosen).sort(dim=0).values, values.sort(dim=0).values[:k]), (n, k)
        assert torch.equal(smallest, values.min(dim=0).values)
