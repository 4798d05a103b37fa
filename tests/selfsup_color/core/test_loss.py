"""The rebalanced cross-entropy and L2 losses against independent references (F.cross_entropy, numpy)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from selfsup_color import (
    Q,
    SoftTargets,
    classification_loss,
    regression_loss,
    rescale_weight_decay,
    soft_encode,
    soft_encode_sparse,
)
from selfsup_color.core.loss import reduce_pixels

REDUCTIONS = ["batch", "mean", "sum", "none"]


class Batch(NamedTuple):
    logits: torch.Tensor  # N x Q x h x w, float64
    sparse: SoftTargets  # N x k x h x w
    dense: torch.Tensor  # N x Q x h x w, float32 (the same numbers as ``sparse``)
    pixel_weight: torch.Tensor  # N x h x w, float32, positive
    nongray: torch.Tensor  # N, bool


def random_targets(
    rng: torch.Generator, n: int, h: int, w: int, k: int = 10
) -> tuple[SoftTargets, torch.Tensor]:
    """k distinct random bins per pixel (in random order) with random weights summing to 1, and the
    same distribution scattered densely in numpy (independently of ``SoftTargets.to_dense``)."""
    # base + j * step (mod the prime Q) for j < k: k distinct bins anywhere in 0..Q-1, in no order.
    base = torch.randint(0, Q, (n, 1, h, w), generator=rng)
    step = torch.randint(1, Q, (n, 1, h, w), generator=rng)
    index = (base + torch.arange(k).view(1, k, 1, 1) * step) % Q
    weight = torch.rand(n, k, h, w, generator=rng) ** 3 + 1e-3
    weight = weight / weight.sum(1, keepdim=True)
    dense = np.zeros((n, Q, h, w), dtype=np.float32)
    np.put_along_axis(dense, index.numpy(), weight.numpy(), axis=1)
    return SoftTargets(index, weight), torch.from_numpy(dense)


def encoded_targets(rng: torch.Generator, n: int, h: int, w: int) -> tuple[SoftTargets, torch.Tensor]:
    """The package's soft encoding (sparse and dense) of random ab in and around the gamut."""
    ab = torch.rand(n, 2, h, w, generator=rng) * 240.0 - 120.0
    return soft_encode_sparse(ab), soft_encode(ab)


def make_batch(
    rng: torch.Generator,
    n: int = 3,
    h: int = 5,
    w: int = 6,
    gray: tuple[int, ...] = (1,),
    encoded: bool = False,
) -> Batch:
    sparse, dense = (encoded_targets if encoded else random_targets)(rng, n, h, w)
    logits = torch.randn(n, Q, h, w, generator=rng, dtype=torch.float64) * 3.0
    pixel_weight = torch.rand(n, h, w, generator=rng) * 5.0 + 0.1
    nongray = torch.ones(n, dtype=torch.bool)
    nongray[list(gray)] = False
    return Batch(logits, sparse, dense, pixel_weight, nongray)


def reduce_reference(per_pixel: torch.Tensor, reduction: str) -> torch.Tensor:
    n, h, w = per_pixel.shape
    if reduction == "none":
        return per_pixel
    if reduction == "sum":
        return per_pixel.sum()
    if reduction == "batch":
        return per_pixel.sum() / n
    return per_pixel.sum() / (n * h * w)


def reference_ce(
    logits: torch.Tensor,
    dense: torch.Tensor,
    pixel_weight: torch.Tensor,
    nongray: torch.Tensor,
    reduction: str,
) -> torch.Tensor:
    """F.cross_entropy with probability targets, weighted and masked by hand."""
    dtype = logits.dtype
    per_pixel = F.cross_entropy(logits, dense.to(dtype), reduction="none")
    per_pixel = per_pixel * pixel_weight.to(dtype) * nongray.to(dtype)[:, None, None]
    return reduce_reference(per_pixel, reduction)


def close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-12, atol: float = 1e-12) -> None:
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


# --- classification loss -----------------------------------------------------------------------


@pytest.mark.parametrize("encoded", [True, False])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sparse_and_dense_targets_agree(reduction: str, encoded: bool, rng: torch.Generator) -> None:
    b = make_batch(rng, encoded=encoded)
    sparse = classification_loss(b.logits, b.sparse, b.pixel_weight, b.nongray, reduction)
    dense = classification_loss(b.logits, b.dense, b.pixel_weight, b.nongray, reduction)
    assert sparse.dtype == dense.dtype == torch.float64
    close(sparse, dense)
    if reduction != "none":
        assert float(sparse) > 0


def test_sparse_bins_in_any_order(rng: torch.Generator) -> None:
    b = make_batch(rng)
    # Shuffle the k neighbours of every pixel independently: index and weight together.
    perm = torch.rand(b.sparse.index.shape, generator=rng).argsort(dim=1)
    shuffled = SoftTargets(b.sparse.index.gather(1, perm), b.sparse.weight.gather(1, perm))
    assert not torch.equal(shuffled.index, b.sparse.index)
    close(
        classification_loss(b.logits, shuffled, b.pixel_weight, b.nongray, "none"),
        classification_loss(b.logits, b.sparse, b.pixel_weight, b.nongray, "none"),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("encoded", [True, False])
def test_matches_cross_entropy_reference(
    reduction: str, sparse: bool, encoded: bool, rng: torch.Generator
) -> None:
    b = make_batch(rng, encoded=encoded)
    targets = b.sparse if sparse else b.dense
    ours = classification_loss(b.logits, targets, b.pixel_weight, b.nongray, reduction)
    ref = reference_ce(b.logits, b.dense, b.pixel_weight, b.nongray, reduction)
    if reduction == "none":
        assert ours.shape == (3, 5, 6)
        assert bool((ours[1] == 0).all())  # the gray image
    close(ours, ref)


def test_reductions_scale_as_documented(rng: torch.Generator) -> None:
    b = make_batch(rng, n=4, h=3, w=7)
    args = (b.logits, b.sparse, b.pixel_weight, b.nongray)
    total = classification_loss(*args, reduction="sum")
    close(classification_loss(*args, reduction="batch") * 4, total)
    close(classification_loss(*args, reduction="mean") * (4 * 3 * 7), total)
    close(classification_loss(*args, reduction="none").sum(), total)
    close(classification_loss(*args), classification_loss(*args, reduction="batch"))  # the default


def test_gradient_is_weighted_softmax_minus_targets(rng: torch.Generator) -> None:
    b = make_batch(rng, n=3, gray=(2,))
    n = b.logits.shape[0]
    # Renormalise in float64 so the targets sum to 1 exactly and d/dx = softmax - z holds exactly.
    dense = b.dense.double()
    dense = dense / dense.sum(1, keepdim=True)
    index = b.sparse.index
    sparse = SoftTargets(index, dense.gather(1, index))

    grads = []
    for targets in (sparse, dense):
        logits = b.logits.clone().requires_grad_(True)
        classification_loss(logits, targets, b.pixel_weight, b.nongray, "batch").backward()
        grads.append(logits.grad)

    wm = (b.pixel_weight.double() * b.nongray.double()[:, None, None])[:, None]
    analytic = wm * (torch.softmax(b.logits, dim=1) - dense) / n

    logits = b.logits.clone().requires_grad_(True)
    reference_ce(logits, dense, b.pixel_weight, b.nongray, "batch").backward()

    for grad in grads:
        close(grad, analytic, rtol=1e-10, atol=1e-14)
        close(grad, logits.grad, rtol=1e-10, atol=1e-14)
    assert float(analytic[:2].abs().max()) > 1e-3
    assert bool((grads[0][2] == 0).all())  # the gray image gets no gradient


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_all_gray_batch_is_zero(n: int, reduction: str, rng: torch.Generator) -> None:
    b = make_batch(rng, n=n, gray=tuple(range(n)))
    assert not bool(b.nongray.any())
    logits = b.logits.clone().requires_grad_(True)
    loss = classification_loss(logits, b.sparse, b.pixel_weight, b.nongray, reduction)
    assert bool(torch.isfinite(loss).all())
    assert bool((loss == 0).all())
    loss.sum().backward()
    assert bool(torch.isfinite(logits.grad).all())
    assert bool((logits.grad == 0).all())


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_batch_of_one(reduction: str, rng: torch.Generator) -> None:
    b = make_batch(rng, n=1, gray=())
    ours = classification_loss(b.logits, b.sparse, b.pixel_weight, b.nongray, reduction)
    close(ours, reference_ce(b.logits, b.dense, b.pixel_weight, b.nongray, reduction))
    if reduction == "batch":
        close(ours, classification_loss(b.logits, b.sparse, b.pixel_weight, b.nongray, "sum"))


def test_gray_image_contributes_nothing(rng: torch.Generator) -> None:
    b = make_batch(rng, n=4, gray=(1, 3))
    colour = b.nongray.nonzero().squeeze(1)
    n, n_colour = 4, 2
    h, w = b.logits.shape[2:]

    def colour_only(reduction: str) -> torch.Tensor:
        targets = SoftTargets(b.sparse.index[colour], b.sparse.weight[colour])
        return classification_loss(b.logits[colour], targets, b.pixel_weight[colour], None, reduction)

    def full(logits: torch.Tensor, reduction: str) -> torch.Tensor:
        return classification_loss(logits, b.sparse, b.pixel_weight, b.nongray, reduction)

    # "batch": full = sum_colour / N, colour alone = sum_colour / N_colour.
    close(full(b.logits, "batch"), colour_only("batch") * n_colour / n)
    # "mean": full = sum_colour / (N h w), colour alone = sum_colour / (N_colour h w): the same factor.
    close(full(b.logits, "mean"), colour_only("mean") * n_colour / n)
    close(full(b.logits, "sum"), colour_only("sum"))
    close(full(b.logits, "none")[colour], colour_only("none"))
    # The gray images' logits do not matter at all.
    scrambled = b.logits.clone()
    scrambled[~b.nongray] = torch.randn(2, Q, h, w, generator=rng, dtype=torch.float64) * 50
    close(full(scrambled, "batch"), full(b.logits, "batch"))
    # ...whereas changing a colour image's logits does (the check above is not vacuous).
    scrambled[colour[0]] += torch.randn(Q, h, w, generator=rng, dtype=torch.float64)
    assert abs(float(full(scrambled, "batch") - full(b.logits, "batch"))) > 1e-3


@pytest.mark.parametrize(("dtype", "rtol"), [(torch.bfloat16, 2e-2), (torch.float16, 2e-3)])
@pytest.mark.parametrize("reduction", ["batch", "mean", "sum"])
def test_half_precision_logits(dtype: torch.dtype, rtol: float, reduction: str, rng: torch.Generator) -> None:
    b = make_batch(rng)
    logits32 = b.logits.float()
    half = logits32.to(dtype)
    loss = classification_loss(half, b.sparse, b.pixel_weight, b.nongray, reduction)
    assert loss.dtype == torch.float32
    assert bool(torch.isfinite(loss))
    ref32 = classification_loss(logits32, b.sparse, b.pixel_weight, b.nongray, reduction)
    torch.testing.assert_close(loss, ref32, rtol=rtol, atol=0)
    # Computed in float32 from the rounded logits: matches float32 on the upcast values closely.
    upcast = classification_loss(half.float(), b.sparse, b.pixel_weight, b.nongray, reduction)
    torch.testing.assert_close(loss, upcast, rtol=1e-6, atol=0)
    # Gradients reach the half-precision logits and are finite.
    half = half.requires_grad_(True)
    classification_loss(half, b.dense, b.pixel_weight, b.nongray, reduction).backward()
    assert half.grad.dtype == dtype and bool(torch.isfinite(half.grad).all())


def test_half_precision_large_logits_stay_finite(rng: torch.Generator) -> None:
    b = make_batch(rng, gray=())
    logits = (b.logits.float() * 3000).half()  # exp of these overflows in any precision without a shift
    loss = classification_loss(logits, b.sparse, b.pixel_weight, b.nongray)
    assert loss.dtype == torch.float32 and bool(torch.isfinite(loss))
    close(loss, classification_loss(logits.float(), b.sparse, b.pixel_weight, b.nongray), rtol=1e-6, atol=0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_defaults_mean_unit_weights_and_all_colour(reduction: str, rng: torch.Generator) -> None:
    b = make_batch(rng, gray=())
    ones = torch.ones_like(b.pixel_weight)
    close(
        classification_loss(b.logits, b.sparse, None, b.nongray, reduction),
        classification_loss(b.logits, b.sparse, ones, b.nongray, reduction),
    )
    close(
        classification_loss(b.logits, b.sparse, b.pixel_weight, None, reduction),
        classification_loss(b.logits, b.sparse, b.pixel_weight, b.nongray, reduction),
    )
    close(
        classification_loss(b.logits, b.sparse, reduction=reduction),
        reference_ce(b.logits, b.dense, ones, b.nongray, reduction),
    )


# --- regression loss ---------------------------------------------------------------------------


def regression_reference(pred, target, pixel_weight, nongray, reduction) -> np.ndarray:
    """numpy float64: 1/2 sum_c (pred - target)^2, weighted, masked and reduced."""
    pred, target = pred.double().numpy(), target.double().numpy()
    per_pixel = 0.5 * ((pred - target) ** 2).sum(1)
    if pixel_weight is not None:
        per_pixel = per_pixel * pixel_weight.double().numpy()
    if nongray is not None:
        per_pixel = per_pixel * nongray.double().numpy()[:, None, None]
    return reduce_reference(torch.from_numpy(per_pixel), reduction).numpy()


def make_regression(rng: torch.Generator, n: int = 3, h: int = 4, w: int = 5):
    pred = torch.randn(n, 2, h, w, generator=rng) * 40
    target = torch.randn(n, 2, h, w, generator=rng) * 40
    pixel_weight = torch.rand(n, h, w, generator=rng) * 5 + 0.1
    nongray = torch.tensor([True, False, True])
    return pred, target, pixel_weight, nongray


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_matches_numpy(reduction: str, rng: torch.Generator) -> None:
    pred, target, pw, ng = make_regression(rng)
    for weight, mask in [(pw, ng), (None, ng), (pw, None), (None, None)]:
        ours = regression_loss(pred, target, weight, mask, reduction)
        ref = regression_reference(pred, target, weight, mask, reduction)
        np.testing.assert_allclose(ours.double().numpy(), ref, rtol=1e-5)
    close(
        regression_loss(pred, target, None, None, reduction),
        regression_loss(pred, target, torch.ones_like(pw), torch.ones(3, dtype=torch.bool), reduction),
        rtol=1e-6,
        atol=0,
    )
    if reduction == "none":
        assert bool((regression_loss(pred, target, pw, ng, "none")[1] == 0).all())


def test_regression_gradient(rng: torch.Generator) -> None:
    pred, target, pw, ng = make_regression(rng)
    pred = pred.requires_grad_(True)
    regression_loss(pred, target, pw, ng, "batch").backward()
    analytic = (pw * ng.float()[:, None, None])[:, None] * (pred.detach() - target) / 3
    torch.testing.assert_close(pred.grad, analytic, rtol=1e-5, atol=1e-6)
    assert bool((pred.grad[1] == 0).all())


# --- input validation --------------------------------------------------------------------------


def test_errors(rng: torch.Generator) -> None:
    b = make_batch(rng)
    with pytest.raises(ValueError, match="logits"):
        classification_loss(b.logits[:, :312], b.dense[:, :312])
    with pytest.raises(ValueError, match="logits"):
        classification_loss(b.logits[0], b.dense[0])  # no batch dimension
    with pytest.raises(ValueError, match="dense targets"):
        classification_loss(b.logits, b.dense[:, :, :, :-1])
    with pytest.raises(ValueError, match="dense targets"):
        classification_loss(b.logits, b.dense[:2])
    with pytest.raises(ValueError, match="sparse targets"):
        classification_loss(b.logits, SoftTargets(b.sparse.index[:2], b.sparse.weight[:2]))
    with pytest.raises(ValueError, match="sparse targets"):
        idx, wt = b.sparse.index[..., :-1], b.sparse.weight[..., :-1]
        classification_loss(b.logits, SoftTargets(idx, wt))
    with pytest.raises(ValueError, match="weight must have shape"):
        classification_loss(b.logits, SoftTargets(b.sparse.index, b.sparse.weight[:, :1]))
    with pytest.raises(ValueError, match="pixel_weight"):
        classification_loss(b.logits, b.sparse, b.pixel_weight[:, None])
    with pytest.raises(ValueError, match="pixel_weight"):
        classification_loss(b.logits, b.sparse, b.pixel_weight[:2])
    with pytest.raises(ValueError, match="nongray"):
        classification_loss(b.logits, b.sparse, b.pixel_weight, b.nongray[:2])
    with pytest.raises(ValueError, match="nongray"):
        classification_loss(b.logits, b.sparse, b.pixel_weight, b.nongray[:, None])
    with pytest.raises(ValueError, match=r"reduction must be one of .*'average'"):
        classification_loss(b.logits, b.sparse, reduction="average")  # type: ignore[arg-type]

    pred, target, pw, ng = make_regression(rng)
    with pytest.raises(ValueError, match="pred_ab"):
        regression_loss(pred[:, :1], target[:, :1])
    with pytest.raises(ValueError, match="target_ab"):
        regression_loss(pred, target[..., :-1])
    with pytest.raises(ValueError, match="pixel_weight"):
        regression_loss(pred, target, pw[:, :-1])
    with pytest.raises(ValueError, match="nongray"):
        regression_loss(pred, target, pw, ng[:1])
    with pytest.raises(ValueError, match="reduction"):
        regression_loss(pred, target, reduction="avg")  # type: ignore[arg-type]


# --- weight decay under "mean" -----------------------------------------------------------------


def test_rescale_weight_decay_makes_mean_equivalent_to_batch(rng: torch.Generator) -> None:
    n, c, h, w, wd = 2, 4, 44, 44, 1e-3
    wd_mean = rescale_weight_decay(wd, h * w)
    assert wd_mean == pytest.approx(wd / (h * w), rel=1e-15)

    features = torch.randn(n, c, h, w, generator=rng, dtype=torch.float64)
    theta0 = torch.randn(Q, c, generator=rng, dtype=torch.float64) * 0.3
    targets, _ = random_targets(rng, n, h, w)
    pixel_weight = torch.rand(n, h, w, generator=rng) + 0.5

    def loss_of(theta: torch.Tensor, reduction: str) -> torch.Tensor:
        logits = torch.einsum("qc,nchw->nqhw", theta, features)  # a 1x1 convolution
        return classification_loss(logits, targets, pixel_weight, None, reduction)

    def grad(reduction: str, decay: float) -> torch.Tensor:
        theta = theta0.clone().requires_grad_(True)
        (loss_of(theta, reduction) + 0.5 * decay * theta.square().sum()).backward()
        return theta.grad

    g_batch, g_mean = grad("batch", wd), grad("mean", wd_mean)
    close(g_mean * (h * w), g_batch, rtol=1e-10, atol=1e-14)
    # The decay is a sizeable part of the gradient, so a wrong rescaling would be caught above.
    decay_part = wd * theta0
    assert float(decay_part.norm()) > 1e-5 * float(g_batch.norm())
    assert not torch.allclose(grad("mean", wd) * (h * w), g_batch, rtol=1e-6, atol=0)

    # Adam sees the same direction up to the global factor h*w, so (eps -> 0) it takes the same steps.
    def adam_steps(reduction: str, decay: float) -> torch.Tensor:
        theta = theta0.clone().requires_grad_(True)
        opt = torch.optim.Adam([theta], lr=1e-2, eps=1e-30, weight_decay=decay)
        for _ in range(3):
            opt.zero_grad()
            loss_of(theta, reduction).backward()
            opt.step()
        return theta.detach()

    close(adam_steps("mean", wd_mean), adam_steps("batch", wd), rtol=1e-8, atol=1e-10)


def test_regression_keeps_float64(rng: torch.Generator) -> None:
    pred = torch.randn(2, 2, 3, 3, generator=rng, dtype=torch.float64)
    assert regression_loss(pred, torch.zeros_like(pred)).dtype == torch.float64


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_reduce_pixels_matches_numpy(reduction: str, rng: torch.Generator) -> None:
    """The shared weighting and reduction, against a numpy sum over the non-gray images' weighted pixels."""
    per_pixel = torch.rand(3, 4, 5, generator=rng, dtype=torch.float64)
    weight = torch.rand(3, 4, 5, generator=rng, dtype=torch.float64) + 0.5
    nongray = torch.tensor([True, False, True])
    weighted = per_pixel.numpy() * weight.numpy() * nongray.numpy()[:, None, None]
    expected = {"none": weighted, "sum": weighted.sum(), "batch": weighted.sum() / 3, "mean": weighted.mean()}
    got = reduce_pixels(per_pixel, weight, nongray, reduction)
    np.testing.assert_allclose(got.numpy(), expected[reduction], rtol=1e-12)
    with pytest.raises(ValueError, match=r"per_pixel must be N x h x w, got shape \(3, 1, 4, 5\)"):
        reduce_pixels(per_pixel[:, None], weight, nongray, reduction)
