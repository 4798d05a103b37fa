"""Decoding bin logits to ab (annealed mean, mean, mode) against an independent numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsup_color import DEFAULT_TEMPERATURE, Q, ab_bins, annealed_mean, expected_ab, mode

BINS = ab_bins(dtype=torch.float64).numpy()  # Q x 2 centres in class order


def numpy_annealed_mean(logits: torch.Tensor, T: float = 1.0) -> np.ndarray:
    """float64 numpy: softmax(logits / T) over the Q bins, averaged over the bin centres."""
    x = logits.double().numpy() / T
    x = x - x.max(axis=1, keepdims=True)
    p = np.exp(x)
    p /= p.sum(axis=1, keepdims=True)
    return np.einsum("nqhw,qc->nchw", p, BINS)


def numpy_mode(logits: torch.Tensor) -> np.ndarray:
    """float64 numpy: the centre of the argmax bin, N x 2 x H x W."""
    return BINS[logits.double().numpy().argmax(axis=1)].transpose(0, 3, 1, 2)


def random_logits(
    rng: torch.Generator, n: int = 2, h: int = 4, w: int = 5, scale: float = 3.0
) -> torch.Tensor:
    return torch.randn(n, Q, h, w, generator=rng, dtype=torch.float64) * scale


def peaked_logits(rng: torch.Generator, n: int, h: int, w: int, height: float) -> torch.Tensor:
    """Random logits with one random bin per pixel raised by ``height``."""
    logits = torch.randn(n, Q, h, w, generator=rng, dtype=torch.float64)
    peak = torch.randint(0, Q, (n, 1, h, w), generator=rng)
    return logits.scatter_add(1, peak, torch.full((n, 1, h, w), height, dtype=torch.float64))


def test_default_temperature_is_the_papers() -> None:
    assert DEFAULT_TEMPERATURE == 0.38


@pytest.mark.parametrize("T", [1.0, DEFAULT_TEMPERATURE, 2.5])
def test_annealed_mean_matches_numpy(T: float, rng: torch.Generator) -> None:
    logits = random_logits(rng)
    ours = annealed_mean(logits, T)
    assert ours.dtype == torch.float64 and ours.shape == (2, 2, 4, 5)
    np.testing.assert_allclose(ours.numpy(), numpy_annealed_mean(logits, T), rtol=1e-10, atol=1e-10)
    # float32 logits: the same up to float32 rounding.
    ours32 = annealed_mean(logits.float(), T)
    assert ours32.dtype == torch.float32
    np.testing.assert_allclose(ours32.numpy(), numpy_annealed_mean(logits, T), rtol=1e-4, atol=1e-3)


def test_default_temperature_is_used(rng: torch.Generator) -> None:
    logits = random_logits(rng)
    torch.testing.assert_close(annealed_mean(logits), annealed_mean(logits, DEFAULT_TEMPERATURE))
    assert not torch.allclose(annealed_mean(logits), annealed_mean(logits, 1.0))


def test_t1_is_expected_ab_of_softmax(rng: torch.Generator) -> None:
    logits = random_logits(rng)
    probs = torch.softmax(logits, dim=1)
    torch.testing.assert_close(annealed_mean(logits, 1.0), expected_ab(probs), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        expected_ab(probs).numpy(), numpy_annealed_mean(logits), rtol=1e-10, atol=1e-10
    )


def test_mode_is_centre_of_argmax(rng: torch.Generator) -> None:
    logits = random_logits(rng, n=3, h=5, w=7)
    ours = mode(logits)
    assert ours.shape == (3, 2, 5, 7)
    np.testing.assert_array_equal(ours.double().numpy(), numpy_mode(logits))
    # Every decoded value is one of the bin centres (integers on the grid of 10).
    assert bool((ours.remainder(10) == 0).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_mode_other_dtypes(dtype: torch.dtype, rng: torch.Generator) -> None:
    logits = peaked_logits(rng, 2, 3, 4, height=20.0).to(dtype)  # a clear winner survives rounding
    np.testing.assert_array_equal(mode(logits).double().numpy(), numpy_mode(logits.double()))


def test_small_temperature_approaches_mode(rng: torch.Generator) -> None:
    logits = random_logits(rng, n=4, h=8, w=8)
    top2 = logits.topk(2, dim=1).values
    gap = (top2[:, 0] - top2[:, 1]).numpy()
    clear = gap > 0.25  # runner-up weight <= exp(-25) at T = 0.01
    assert clear.mean() > 0.5
    diff = np.abs(annealed_mean(logits, 0.01).numpy() - numpy_mode(logits)).max(axis=1)
    assert diff[clear].max() < 1e-3
    # Near-ties blend the tied centres, but never leave the range of the bins.
    assert np.abs(annealed_mean(logits, 0.01).numpy()).max() <= 110.0
    # At T = 1 the same logits decode far from the mode: the check above is not vacuous.
    far = np.abs(annealed_mean(logits, 1.0).numpy() - numpy_mode(logits)).max(axis=1)
    assert far[clear].mean() > 10.0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_very_peaked_logits_decode_to_that_centre(dtype: torch.dtype, rng: torch.Generator) -> None:
    logits = peaked_logits(rng, 2, 6, 6, height=1000.0)
    expected = numpy_mode(logits)
    for T in (DEFAULT_TEMPERATURE, 1.0):
        out = annealed_mean(logits.to(dtype), T)
        np.testing.assert_array_equal(out.double().numpy(), expected)
    np.testing.assert_array_equal(mode(logits.to(dtype)).double().numpy(), expected)


def test_annealed_mean_lies_between_mean_and_mode(rng: torch.Generator) -> None:
    logits = peaked_logits(rng, 4, 8, 8, height=3.0) * 1.5
    the_mode = numpy_mode(logits)
    dist_mean = np.linalg.norm(annealed_mean(logits, 1.0).numpy() - the_mode, axis=1)
    dist_annealed = np.linalg.norm(annealed_mean(logits, DEFAULT_TEMPERATURE).numpy() - the_mode, axis=1)
    assert dist_annealed.mean() <= dist_mean.mean()
    # Clearly in between on average: much closer to the mode than the mean is, yet not the mode itself.
    assert dist_annealed.mean() < 0.8 * dist_mean.mean()
    assert dist_annealed.mean() > 0.5
    # And closer as T decreases.
    dist_cold = np.linalg.norm(annealed_mean(logits, 0.1).numpy() - the_mode, axis=1)
    assert dist_cold.mean() < dist_annealed.mean()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_logits_give_float32(dtype: torch.dtype, rng: torch.Generator) -> None:
    logits = random_logits(rng, n=2, h=3, w=5).to(dtype)
    out = annealed_mean(logits)
    assert out.dtype == torch.float32 and out.shape == (2, 2, 3, 5)
    assert bool(torch.isfinite(out).all())
    # Computed in float32 from the rounded logits.
    torch.testing.assert_close(out, annealed_mean(logits.float()), rtol=1e-6, atol=1e-5)
    expected = numpy_annealed_mean(logits.double(), DEFAULT_TEMPERATURE)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-3)


def test_half_precision_large_logits_stay_finite(rng: torch.Generator) -> None:
    # logits / T overflows float16 (max 65504) unless it is computed in float32.
    logits = (random_logits(rng, scale=1.0) * 10000).clamp(-65000, 65000).half()
    assert float(logits.abs().max()) > 30000
    out = annealed_mean(logits, 0.1)
    assert out.dtype == torch.float32 and bool(torch.isfinite(out).all())
    np.testing.assert_allclose(out.numpy(), numpy_mode(logits.double()), atol=1e-3)


@pytest.mark.parametrize("T", [0.0, -0.38, -1.0])
def test_nonpositive_temperature_raises(T: float, rng: torch.Generator) -> None:
    with pytest.raises(ValueError, match="temperature"):
        annealed_mean(random_logits(rng), T)


def test_wrong_shapes_raise(rng: torch.Generator) -> None:
    logits = random_logits(rng)
    for bad in (logits[:, :312], torch.cat([logits, logits[:, :1]], dim=1), logits[0]):
        with pytest.raises(ValueError, match="logits"):
            annealed_mean(bad)
        with pytest.raises(ValueError, match="logits"):
            mode(bad)
