"""Tests of the class rebalancing weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsup_color.core.bins import Q
from selfsup_color.core.rebalance import MIN_MIXED_MASS, effective_sample_size, rebalance_weights


def numpy_weights(p: np.ndarray, lam: float) -> np.ndarray:
    """Independent reference: the paper's formula, written out in numpy."""
    p = p / p.sum()
    w = 1.0 / np.maximum((1.0 - lam) * p + lam / len(p), MIN_MIXED_MASS)
    return w / np.sum(p * w)


def test_reference_prior_statistics(reference_prior: torch.Tensor) -> None:
    w = rebalance_weights(reference_prior, 0.5)
    assert w.dtype == torch.float64 and w.shape == (Q,)
    assert round(float(w.min()), 3) == 0.097
    assert round(float(w.max()), 2) == 6.17
    assert round(float(w.mean()), 2) == 5.17
    assert round(float(np.median(w.numpy())), 2) == 6.00
    assert float((reference_prior * w).sum()) == pytest.approx(1.0, abs=1e-10)


def test_lam_one_gives_ones(reference_prior: torch.Tensor) -> None:
    w = rebalance_weights(reference_prior, 1.0)
    torch.testing.assert_close(w, torch.ones(Q, dtype=torch.float64), rtol=1e-12, atol=0)


@pytest.mark.parametrize("lam", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_numpy_on_random_priors(lam: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(Q, 0.3))
    p[rng.choice(Q, 20, replace=False)] = 0.0  # empty bins, as in a small data set
    p /= p.sum()
    w = rebalance_weights(torch.from_numpy(p), lam)
    np.testing.assert_allclose(w.numpy(), numpy_weights(p, lam), rtol=1e-12)
    assert np.isfinite(w.numpy()).all()
    assert float(np.sum(p * w.numpy())) == pytest.approx(1.0, abs=1e-12)


def test_float32_in_float32_out(reference_prior: torch.Tensor) -> None:
    w32 = rebalance_weights(reference_prior.float())
    assert w32.dtype == torch.float32
    np.testing.assert_allclose(w32.numpy(), numpy_weights(reference_prior.numpy(), 0.5), rtol=1e-6)


def test_rare_bins_weigh_more(reference_prior: torch.Tensor) -> None:
    w = rebalance_weights(reference_prior)
    order = torch.argsort(reference_prior)
    assert bool((w[order][1:] <= w[order][:-1]).all())


@pytest.mark.parametrize(
    ("prior", "lam", "message"),
    [
        (torch.full((Q - 1,), 1.0 / (Q - 1), dtype=torch.float64), 0.5, "one entry per bin"),
        (torch.full((1, Q), 1.0 / Q, dtype=torch.float64), 0.5, "one entry per bin"),
        (torch.full((Q,), 2.0 / Q, dtype=torch.float64), 0.5, "sum to 1"),
        (torch.full((Q,), 1.0 / Q).index_fill(0, torch.tensor([0]), -0.1), 0.5, "non-negative"),
        (torch.full((Q,), 1.0 / Q).index_fill(0, torch.tensor([0]), float("nan")), 0.5, "NaN"),
        (torch.full((Q,), 1.0 / Q, dtype=torch.float64), 1.5, "lam"),
        (torch.full((Q,), 1.0 / Q, dtype=torch.float64), -0.1, "lam"),
        (torch.full((Q,), 1.0 / Q, dtype=torch.float64), float("nan"), "lam"),
    ],
)
def test_bad_inputs_raise(prior: torch.Tensor, lam: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rebalance_weights(prior, lam)


def test_integer_prior_raises() -> None:
    one_hot = torch.zeros(Q, dtype=torch.int64)
    one_hot[0] = 1
    with pytest.raises(TypeError, match="floating point"):
        rebalance_weights(one_hot)


def test_effective_sample_size_matches_kish_formula() -> None:
    rng = np.random.default_rng(0)
    w = rng.exponential(size=(5, 40))
    expected = w.sum(1) ** 2 / (w**2).sum(1)
    assert np.allclose(effective_sample_size(torch.from_numpy(w), dim=1).numpy(), expected, rtol=1e-12)
    assert float(effective_sample_size(torch.ones(7))) == pytest.approx(7.0)
    assert float(effective_sample_size(torch.tensor([0.0, 3.0, 0.0]))) == pytest.approx(1.0)
    # Rebalanced pixels drawn from the prior itself are worth 1 / E_p[w^2] of as many equal ones.
    p = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    w = 1.0 / (0.5 * p + 0.5 / 3)
    w = w / (p * w).sum()
    pixels = torch.cat([w[i].repeat(int(1000 * p[i])) for i in range(3)])
    assert float(effective_sample_size(pixels)) / 1000 == pytest.approx(
        float(1 / (p * w * w).sum()), rel=1e-9
    )


@pytest.mark.parametrize(
    "bad", [torch.tensor([1.0, -1.0]), torch.tensor([1.0, float("nan")]), torch.ones(3).long()]
)
def test_effective_sample_size_rejects_bad_weights(bad: torch.Tensor) -> None:
    with pytest.raises((TypeError, ValueError)):
        effective_sample_size(bad)
