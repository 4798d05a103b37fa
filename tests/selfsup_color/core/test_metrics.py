"""Tests of selfsup_color.core.metrics against independent plain-numpy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsup_color.core.bins import Q, ab_bins
from selfsup_color.core.metric_modules import PSNR, AuC, Colourfulness, RebalancedAuC
from selfsup_color.core.metrics import (
    ab_distance_histogram,
    auc,
    auc_from_histogram,
    colourfulness,
    psnr,
    rebalanced_auc,
)

T = 150


# ---------------------------------------------------------------- numpy references


def np_distances(pred: torch.Tensor, true: torch.Tensor) -> np.ndarray:
    """Per-pixel L2 ab distance, flattened in N, H, W order, in float64."""
    p = pred.double().numpy()
    t = true.double().numpy()
    return np.sqrt(((p - t) ** 2).sum(axis=1)).reshape(-1)


def np_auc(d: np.ndarray, w: np.ndarray | None = None, max_t: int = T) -> float:
    """Fraction (weighted) of pixels with d <= t for t = 0..max_t, trapezoid-integrated / max_t."""
    w = np.ones_like(d) if w is None else w
    curve = []
    for t in range(max_t + 1):
        within = 0.0
        for di, wi in zip(d, w, strict=True):
            if di <= t:
                within += wi
        curve.append(within / w.sum())
    y = np.asarray(curve)
    return float((y[1:] + y[:-1]).sum() / 2 / max_t)  # the trapezoidal rule, unit steps


def np_nearest_bin(true: torch.Tensor, centres: np.ndarray) -> np.ndarray:
    """Brute-force argmin over the bin centres, flattened in N, H, W order."""
    ab = true.double().numpy().transpose(0, 2, 3, 1).reshape(-1, 2)
    out = np.empty(len(ab), dtype=np.int64)
    for i, v in enumerate(ab):
        out[i] = np.argmin(((centres - v) ** 2).sum(axis=1))
    return out


def np_prior_weights(prior: np.ndarray) -> np.ndarray:
    floor = prior[prior > 0].min()
    return 1.0 / np.maximum(prior, floor)


def np_colourfulness(rgb: torch.Tensor) -> np.ndarray:
    out = []
    for img in rgb.double().numpy() * 255.0:
        r, g, b = img
        rg = r - g
        yb = 0.5 * (r + g) - b
        sigma = np.sqrt(np.std(rg) ** 2 + np.std(yb) ** 2)
        mu = np.sqrt(np.mean(rg) ** 2 + np.mean(yb) ** 2)
        out.append(sigma + 0.3 * mu)
    return np.array(out)


def np_psnr(pred: torch.Tensor, true: torch.Tensor, data_range: float = 1.0) -> np.ndarray:
    out = []
    for p, t in zip(pred.double().numpy(), true.double().numpy(), strict=True):
        out.append(10.0 * np.log10(data_range**2 / np.mean((p - t) ** 2)))
    return np.array(out)


# ---------------------------------------------------------------- data


def random_ab(gen: torch.Generator, shape=(3, 2, 8, 9), scale=60.0, dtype=torch.float64):
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1).mul(scale).to(dtype)


def random_rgb(gen: torch.Generator, shape=(4, 3, 10, 12), dtype=torch.float64):
    return torch.rand(shape, generator=gen, dtype=torch.float64).to(dtype)


@pytest.fixture()
def synthetic_prior(rng: torch.Generator) -> torch.Tensor:
    """A random unnormalised prior with a few zero bins (near the gray axis and elsewhere)."""
    p = torch.rand(Q, generator=rng, dtype=torch.float64) ** 3 + 1e-4
    p[[0, 5, 150, 160, 312]] = 0.0
    return p


# ---------------------------------------------------------------- histogram and AuC


def test_histogram_buckets_integer_distances_exactly() -> None:
    # offsets with distances 0, 3, 5, 10, 150, 150.5, 151, 2.5 and sqrt(2) ~ 1.41
    offsets = [(0, 0), (3, 0), (3, 4), (6, 8), (150, 0), (150.5, 0), (0, 151), (0, 2.5), (1, 1)]
    true = torch.zeros(1, 2, 1, len(offsets), dtype=torch.float64)
    pred = true.clone()
    pred[0, :, 0, :] = torch.tensor(offsets, dtype=torch.float64).T
    hist = ab_distance_histogram(pred, true)
    assert hist.dtype == torch.float64 and hist.shape == (T + 2,)
    d = np_distances(pred, true)
    expected = np.zeros(T + 2)
    for di in d:
        expected[min(int(np.ceil(di)), T + 1)] += 1
    np.testing.assert_array_equal(hist.numpy(), expected)
    # cumsum[t] counts exactly the pixels with d <= t (d = 3.0 counts at t = 3, not only at 4)
    cum = hist.cumsum(0).numpy()
    for t in range(T + 1):
        assert cum[t] == sum(1 for di in d if di <= t)
    assert auc(pred, true).item() == pytest.approx(np_auc(d), abs=1e-12)


def test_histogram_weights(rng: torch.Generator) -> None:
    pred, true = random_ab(rng), random_ab(rng)
    w = torch.rand(3, 8, 9, generator=rng, dtype=torch.float64)
    hist = ab_distance_histogram(pred, true, w, max_threshold=40)
    expected = np.zeros(42)
    for di, wi in zip(np_distances(pred, true), w.numpy().reshape(-1), strict=True):
        expected[min(int(np.ceil(di)), 41)] += wi
    np.testing.assert_allclose(hist.numpy(), expected, rtol=1e-12)


def test_auc_perfect_prediction_is_one(rng: torch.Generator) -> None:
    true = random_ab(rng)
    assert auc(true, true).item() == 1.0
    assert auc(true.float(), true.float()).item() == 1.0


@pytest.mark.parametrize("scale", [5.0, 40.0, 120.0])
def test_auc_matches_numpy_reference(rng: torch.Generator, scale: float) -> None:
    true = random_ab(rng, scale=60.0)
    pred = true + random_ab(rng, scale=scale)
    got = auc(pred, true)
    assert got.dtype == torch.float64 and got.shape == ()
    assert got.item() == pytest.approx(np_auc(np_distances(pred, true)), abs=1e-12)


def test_auc_float32_and_small_threshold(rng: torch.Generator) -> None:
    true = random_ab(rng, dtype=torch.float32)
    pred = random_ab(rng, dtype=torch.float32)
    d = np_distances(pred, true)
    assert auc(pred, true).item() == pytest.approx(np_auc(d), abs=1e-6)
    assert auc(pred, true, max_threshold=20).item() == pytest.approx(np_auc(d, max_t=20), abs=1e-6)


def test_auc_from_histogram_is_trapezoid_of_cumulative_fraction() -> None:
    hist = torch.tensor([2.0, 1.0, 0.0, 3.0, 4.0], dtype=torch.float64)  # max_threshold = 3
    c = np.cumsum(hist.numpy())[:-1] / hist.sum().item()
    expected = (c[0] / 2 + c[1] + c[2] + c[3] / 2) / 3
    assert auc_from_histogram(hist).item() == pytest.approx(expected, abs=1e-15)
    assert auc_from_histogram(torch.tensor([1.0, 0.0, 0.0])).item() == 1.0
    assert auc_from_histogram(torch.tensor([0.0, 0.0, 1.0])).item() == 0.0


def test_nan_prediction_counts_as_miss() -> None:
    true = torch.zeros(1, 2, 1, 2, dtype=torch.float64)
    pred = true.clone()
    pred[0, 0, 0, 1] = float("nan")
    hist = ab_distance_histogram(pred, true)
    assert hist[0].item() == 1 and hist[-1].item() == 1 and hist.sum().item() == 2
    assert auc(pred, true).item() == pytest.approx(0.5)


def test_gray_baseline(rng: torch.Generator) -> None:
    true = random_ab(rng, scale=80.0)
    gray = torch.zeros_like(true)
    got = auc(gray, true).item()
    assert got < 1.0
    assert got == pytest.approx(np_auc(np_distances(gray, true)), abs=1e-12)


# ---------------------------------------------------------------- rebalanced AuC


def check_rebalanced(pred, true, prior: torch.Tensor, centres: np.ndarray) -> None:
    w = np_prior_weights(prior.numpy())[np_nearest_bin(true, centres)]
    expected = np_auc(np_distances(pred, true), w)
    got = rebalanced_auc(pred, true, prior)
    assert got.dtype == torch.float64 and got.shape == ()
    assert got.item() == pytest.approx(expected, abs=1e-10)


def test_rebalanced_auc_synthetic_prior(rng: torch.Generator, synthetic_prior) -> None:
    true = random_ab(rng, scale=90.0)
    pred = true + random_ab(rng, scale=50.0)
    check_rebalanced(pred, true, synthetic_prior, ab_bins(dtype=torch.float64).numpy())
    check_rebalanced(torch.zeros_like(true), true, synthetic_prior, ab_bins().double().numpy())


def test_rebalanced_auc_zero_prior_bin_gets_rarest_weight(synthetic_prior) -> None:
    centres = ab_bins(dtype=torch.float64)
    true = torch.stack([centres[0], centres[7]]).T.reshape(1, 2, 1, 2)  # bin 0 has prior 0
    pred = true.clone()
    pred[0, 0, 0, 1] += 200.0  # the pixel of bin 7 is a miss, the zero-prior pixel a hit
    p = synthetic_prior
    w0, w7 = 1 / p[p > 0].min().item(), 1 / p[7].item()
    hist = ab_distance_histogram(pred, true, torch.tensor([[[w0, w7]]], dtype=torch.float64))
    assert rebalanced_auc(pred, true, p).item() == pytest.approx(auc_from_histogram(hist).item())
    assert 0.0 < rebalanced_auc(pred, true, p).item() < 1.0


def test_rebalanced_auc_reference_prior(rng, reference_prior, reference_bins) -> None:
    true = random_ab(rng, scale=70.0)
    pred = true + random_ab(rng, scale=30.0)
    check_rebalanced(pred, true, reference_prior, reference_bins)
    check_rebalanced(torch.zeros_like(true), true, reference_prior, reference_bins)


def test_rebalancing_penalises_gray_on_rare_colours(reference_prior) -> None:
    # mostly near-gray ground truth with a few saturated pixels: predicting gray scores well on
    # the plain AuC but the rebalanced AuC weights the (rare) saturated misses up.
    gen = torch.Generator().manual_seed(1)
    true = random_ab(gen, shape=(2, 2, 10, 10), scale=4.0)
    true[:, 0, :2, :] = 70.0
    true[:, 1, :2, :] = 60.0
    gray = torch.zeros_like(true)
    assert rebalanced_auc(gray, true, reference_prior) < auc(gray, true) - 0.2


def test_rebalanced_auc_uniform_prior_and_scale_invariance(rng, synthetic_prior) -> None:
    true = random_ab(rng)
    pred = true + random_ab(rng, scale=20.0)
    uniform = torch.full((Q,), 1.0 / Q, dtype=torch.float64)
    assert rebalanced_auc(pred, true, uniform).item() == pytest.approx(auc(pred, true).item())
    a = rebalanced_auc(pred, true, synthetic_prior).item()
    assert rebalanced_auc(pred, true, synthetic_prior * 7.0).item() == pytest.approx(a)


# ---------------------------------------------------------------- colourfulness and PSNR


def test_colourfulness_matches_numpy_reference(rng: torch.Generator) -> None:
    rgb = random_rgb(rng)
    got = colourfulness(rgb)
    assert got.shape == (4,) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), np_colourfulness(rgb), rtol=1e-10)
    np.testing.assert_allclose(colourfulness(rgb.float()).numpy(), np_colourfulness(rgb.float()), rtol=1e-5)


def test_colourfulness_gray_and_saturation(rng: torch.Generator) -> None:
    gray = random_rgb(rng, shape=(2, 1, 6, 6)).expand(2, 3, 6, 6)
    assert colourfulness(gray).tolist() == [0.0, 0.0]
    rgb = random_rgb(rng)
    luma = rgb.mean(dim=1, keepdim=True)
    desaturated = luma + 0.5 * (rgb - luma)
    full, half = colourfulness(rgb), colourfulness(desaturated)
    assert bool((half < full).all())
    torch.testing.assert_close(half, 0.5 * full)  # rg and yb are linear in the chroma


def test_psnr_matches_numpy_reference(rng: torch.Generator) -> None:
    true = random_rgb(rng)
    pred = (true + 0.1 * torch.randn(true.shape, generator=rng, dtype=torch.float64)).clamp(0, 1)
    got = psnr(pred, true)
    assert got.shape == (4,) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), np_psnr(pred, true), rtol=1e-12)
    np.testing.assert_allclose(
        psnr(pred * 255, true * 255, data_range=255).numpy(), np_psnr(pred, true), rtol=1e-10
    )


def test_psnr_identical_is_100(rng: torch.Generator) -> None:
    true = random_rgb(rng)
    assert psnr(true, true).tolist() == pytest.approx([100.0] * 4)
    assert psnr(true * 255, true * 255, data_range=255.0).tolist() == pytest.approx([100.0] * 4)


# ---------------------------------------------------------------- half precision


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(rng: torch.Generator, dtype: torch.dtype) -> None:
    true_ab = random_ab(rng, dtype=torch.float32)
    pred_ab = true_ab + random_ab(rng, scale=20.0, dtype=torch.float32)
    ph, th = pred_ab.to(dtype), true_ab.to(dtype)
    # computed in float32 on the rounded values ...
    assert auc(ph, th).item() == auc(ph.float(), th.float()).item()
    # ... and close to the float32 result
    assert auc(ph, th).item() == pytest.approx(auc(pred_ab, true_ab).item(), abs=2e-3)

    rgb = random_rgb(rng, dtype=torch.float32)
    noisy = (rgb + 0.05 * torch.randn(rgb.shape, generator=rng)).clamp(0, 1)
    c = colourfulness(rgb.to(dtype))
    assert c.dtype == torch.float32
    torch.testing.assert_close(c, colourfulness(rgb.to(dtype).float()))
    torch.testing.assert_close(c, colourfulness(rgb), rtol=2e-2, atol=0.0)
    p = psnr(noisy.to(dtype), rgb.to(dtype))
    assert p.dtype == torch.float32
    torch.testing.assert_close(p, psnr(noisy, rgb), rtol=0.0, atol=0.2)


# ---------------------------------------------------------------- errors


def test_errors(rng: torch.Generator, synthetic_prior) -> None:
    ab = random_ab(rng)
    with pytest.raises(ValueError, match=r"\(3, 2, 8, 9\) and \(3, 2, 8, 8\)"):
        auc(ab, ab[..., :8])
    with pytest.raises(ValueError, match="N x 2 x H x W"):
        auc(random_rgb(rng), random_rgb(rng))
    with pytest.raises(ValueError, match="N x 2 x H x W"):
        auc(ab[0], ab[0])
    with pytest.raises(TypeError, match="floating"):
        auc(ab.long(), ab.long())
    with pytest.raises(ValueError, match="pixel_weights"):
        ab_distance_histogram(ab, ab, torch.ones(3, 8))
    with pytest.raises(ValueError, match="max_threshold"):
        auc(ab, ab, max_threshold=0)
    with pytest.raises(ValueError, match="prior"):
        rebalanced_auc(ab, ab, synthetic_prior[:-1])
    with pytest.raises(ValueError, match=r"\(3, 2, 8, 9\) and \(3, 2, 8, 8\)"):
        rebalanced_auc(ab, ab[..., :8], synthetic_prior)
    with pytest.raises(ValueError, match="hist"):
        auc_from_histogram(torch.ones(2))
    rgb = random_rgb(rng)
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        colourfulness(rgb[:, :2])
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        psnr(ab, ab)
    with pytest.raises(ValueError, match="pred_rgb and true_rgb"):
        psnr(rgb, rgb[:2])
    with pytest.raises(ValueError, match="data_range"):
        psnr(rgb, rgb, data_range=0)
    with pytest.raises(ValueError, match="prior"):
        RebalancedAuC(torch.zeros(Q))
    with pytest.raises(ValueError, match="prior"):
        RebalancedAuC(-synthetic_prior)


# ---------------------------------------------------------------- Metric classes


def batches(gen: torch.Generator, kind: str, n: int = 3):
    if kind == "ab":
        out = []
        for _ in range(n):
            true = random_ab(gen, shape=(2, 2, 6, 7), scale=80.0)
            out.append((true + random_ab(gen, shape=(2, 2, 6, 7), scale=30.0), true))
        return out
    return [(random_rgb(gen, shape=(2, 3, 6, 7)), random_rgb(gen, shape=(2, 3, 6, 7))) for _ in range(n)]


def cat(pairs):
    return torch.cat([p for p, _ in pairs]), torch.cat([t for _, t in pairs])


CASES = [
    ("auc", lambda prior: AuC(), lambda p, t, prior: auc(p, t)),
    ("rebalanced", RebalancedAuC, rebalanced_auc),
    ("psnr", lambda prior: PSNR(), lambda p, t, prior: psnr(p, t).mean()),
    ("colour", lambda prior: Colourfulness(), lambda p, t, prior: colourfulness(p).mean()),
]


def update(metric, pair) -> None:
    if isinstance(metric, Colourfulness):
        metric.update(pair[0])
    else:
        metric.update(*pair)


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric:UserWarning")  # merged only
@pytest.mark.parametrize(("name", "make", "functional"), CASES, ids=[c[0] for c in CASES])
def test_metric_accumulation_equals_functional(rng, synthetic_prior, name, make, functional):
    data = batches(rng, "rgb" if name in ("psnr", "colour") else "ab")
    expected = functional(*cat(data), synthetic_prior).item()

    metric = make(synthetic_prior)
    for pair in data:
        update(metric, pair)
    assert metric.compute().item() == pytest.approx(expected, rel=1e-12)

    # simulated distributed run: one metric per "rank", merged (states summed)
    ranks = [make(synthetic_prior), make(synthetic_prior)]
    update(ranks[0], data[0])
    update(ranks[1], data[1])
    update(ranks[1], data[2])
    ranks[0].merge_state(ranks[1])
    assert ranks[0].compute().item() == pytest.approx(expected, rel=1e-12)

    summed = make(synthetic_prior)
    summed.merge_state({k: v.clone() for k, v in metric.metric_state.items()})
    assert summed.compute().item() == pytest.approx(expected, rel=1e-12)

    metric.reset()
    update(metric, data[0])
    assert metric.compute().item() == pytest.approx(functional(*data[0], synthetic_prior).item())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_metric_states_stay_float64_under_module_casts(synthetic_prior, dtype: torch.dtype) -> None:
    metric = RebalancedAuC(synthetic_prior, max_threshold=10)
    host = torch.nn.ModuleDict({"m": metric, "p": PSNR(), "a": AuC(max_threshold=10)})
    host.to(dtype)  # as Lightning's "bf16-true" and "16-true" cast the module
    n = 701  # more pixels than bfloat16 or float16 count exactly
    ab = torch.zeros(1, 2, 1, n)
    metric.update(ab, ab)
    host["a"].update(ab, ab)
    images = torch.rand(n, 3, 1, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    host["p"].update(images, images.flip(0))
    assert host["a"].hist.dtype == torch.float64 and host["a"].hist[0].item() == n
    centres = ab_bins(dtype=torch.float64).numpy()
    weighted = n * np_prior_weights(synthetic_prior.numpy())[np_nearest_bin(ab[..., :1], centres)[0]]
    assert metric.hist.dtype == torch.float64 and metric.hist[0].item() == pytest.approx(weighted, rel=1e-12)
    assert metric.compute().item() == 1.0 and host["a"].compute().item() == 1.0
    assert host["p"].count.item() == n and host["p"].total.dtype == torch.float64
    assert host["p"].compute().item() == pytest.approx(psnr(images, images.flip(0)).mean().item(), rel=1e-12)
    assert metric.bin_weights.dtype == torch.float64
    assert "bin_weights" not in metric.state_dict()
    host["a"].reset()  # the defaults are float64 again too
    assert host["a"].hist.dtype == torch.float64


def test_metric_states_sync_in_float64_after_a_module_cast() -> None:
    # A rank that saw no batch still holds the cast states; every rank must send float64.
    metric = PSNR().to(torch.bfloat16)
    sent = []

    def gather(tensor: torch.Tensor, group: object = None) -> list[torch.Tensor]:
        sent.append(tensor.dtype)
        return [tensor, tensor]

    metric.sync(dist_sync_fn=gather, distributed_available=lambda: True)
    assert sent == [torch.float64, torch.float64]


def test_metric_forward_returns_batch_value(rng) -> None:
    data = batches(rng, "ab")
    metric = AuC()
    first = metric(*data[0])
    assert first.item() == pytest.approx(auc(*data[0]).item())
    metric(*data[1])
    assert metric.compute().item() == pytest.approx(auc(*cat(data[:2])).item())


def test_metric_classes_load_lazily_from_the_package() -> None:
    import selfsup_color

    assert selfsup_color.AuC is AuC and selfsup_color.PSNR is PSNR
