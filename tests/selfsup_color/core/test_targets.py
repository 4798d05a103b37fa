"""Target preparation against scikit-image Lab and a brute-force encoder, on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import color, data

from selfsup_color import Q, TargetBuilder, classification_loss, nearest_bin, prepare_batch, soft_encode

from .reference import brute_force_soft_encode, dense_points, near_ties, to_points

BINS = __import__("selfsup_color").ab_bins(dtype=torch.float64).numpy()


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """Four 64 x 64 crops of real photos, N x 3 x H x W uint8 in channels-last memory."""
    crops = [
        data.astronaut()[100:164, 200:264],
        data.chelsea()[50:114, 100:164],
        data.coffee()[200:264, 300:364],
    ]
    crops.append(data.rocket()[100:164, 150:214])
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2)


def skimage_lab(rgb: torch.Tensor) -> np.ndarray:
    return np.stack([color.rgb2lab(im) for im in rgb.permute(0, 2, 3, 1).numpy()]).transpose(0, 3, 1, 2)


def test_uint8_targets_match_skimage_and_brute_force(photos: torch.Tensor) -> None:
    weights = torch.rand(Q, generator=torch.Generator().manual_seed(1)) + 0.5
    out = TargetBuilder(weights)(photos)
    lab = skimage_lab(photos)
    assert out.lightness.shape == (4, 1, 64, 64) and out.lightness.dtype == torch.float32
    assert np.abs(out.lightness[:, 0].numpy() - lab[:, 0]).max() < 1e-3
    ab = lab[:, 1:, ::4, ::4]  # the reference's ground truth at the output resolution
    assert np.abs(out.ab.numpy() - ab).max() < 1e-3
    # Soft targets equal a brute-force encoding of scikit-image's ab, except at near-ties that
    # the float32 vs float64 ab (|diff| < 1e-3) can flip.
    points = to_points(torch.from_numpy(ab))
    ties = near_ties(points, BINS, 10, tol=0.5)
    assert ties.mean() < 0.05
    diff = np.abs(dense_points(out.targets.to_dense()) - brute_force_soft_encode(points, BINS))
    assert diff[~ties].max() < 1e-4
    near = nearest_bin(torch.from_numpy(ab)).reshape(-1)
    same = (near == nearest_bin(out.ab).reshape(-1)).numpy()
    assert np.allclose(out.pixel_weight.reshape(-1).numpy()[same], weights[near].numpy()[same])
    assert same.mean() > 0.99
    assert out.nongray.tolist() == [True] * 4


def test_float_input_matches_uint8_input(photos: torch.Tensor) -> None:
    builder = TargetBuilder()
    a, b = builder(photos), builder(photos.float() / 255)
    assert torch.allclose(a.lightness, b.lightness, atol=1e-3)
    assert torch.allclose(a.ab, b.ab, atol=1e-3)
    assert (a.targets.to_dense() - b.targets.to_dense()).abs().max() < 1e-3
    assert torch.equal(a.nongray, b.nongray)


def test_gray_images_are_masked_and_carry_no_loss() -> None:
    gray = torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8).expand(2, 3, 32, 32)
    colour = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    colour[:, 0] = 200  # red
    out = prepare_batch(torch.cat([gray, colour]))
    assert out.nongray.tolist() == [False, False, True]
    logits = torch.randn(3, Q, 8, 8, requires_grad=True)
    per_image = classification_loss(logits, out.targets, out.pixel_weight, out.nongray, reduction="none")
    assert torch.all(per_image[:2] == 0) and torch.all(per_image[2] > 0)
    all_gray = prepare_batch(gray)
    loss = classification_loss(logits[:2], all_gray.targets, all_gray.pixel_weight, all_gray.nongray)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_a_batch_of_one_and_other_sizes() -> None:
    x = torch.randint(0, 256, (1, 3, 30, 18), dtype=torch.uint8)
    out = prepare_batch(x, stride=4)
    assert out.ab.shape == (1, 2, 8, 5)  # ceil(30 / 4) x ceil(18 / 4), like ab[..., ::4, ::4]
    assert out.targets.index.shape == (1, 10, 8, 5)
    assert torch.allclose(out.targets.weight.sum(1), torch.ones(1, 8, 5))
    assert torch.allclose(out.targets.to_dense(), soft_encode(out.ab), atol=1e-6)


def test_compiled_builder_matches_eager(photos: torch.Tensor) -> None:
    eager, compiled = TargetBuilder(), TargetBuilder(compile=True)
    a, b = eager(photos), compiled(photos)
    assert torch.allclose(a.lightness, b.lightness, atol=1e-4)
    assert torch.equal(a.targets.index.sort(1).values, b.targets.index.sort(1).values)
    assert torch.allclose(a.targets.to_dense(), b.targets.to_dense(), atol=1e-5)
    assert torch.equal(a.nongray, b.nongray)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_a_builder_cast_with_its_module_gives_the_float32_targets(
    photos: torch.Tensor, dtype: torch.dtype
) -> None:
    """Lightning casts the whole module under "64-true" or "bf16-true": the targets must not change.

    Only the class weights keep the cast's rounding (bf16: 8 significant bits), as set by the caller.
    """
    weights = torch.rand(Q, generator=torch.Generator().manual_seed(2)) + 0.5
    a, b = TargetBuilder(weights)(photos), TargetBuilder(weights).to(dtype)(photos)
    assert torch.equal(a.lightness, b.lightness) and torch.equal(a.ab, b.ab)
    assert torch.equal(a.targets.index, b.targets.index) and torch.equal(a.targets.weight, b.targets.weight)
    assert b.pixel_weight.dtype == torch.float32 and torch.equal(a.nongray, b.nongray)
    rtol = 2**-8 if dtype == torch.bfloat16 else 0.0
    assert torch.allclose(a.pixel_weight, b.pixel_weight, rtol=rtol, atol=0.0)


def test_bad_input_raises() -> None:
    builder = TargetBuilder()
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        builder(torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match="uint8 or floating"):
        builder(torch.zeros(1, 3, 8, 8, dtype=torch.int16))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        builder(torch.full((1, 3, 8, 8), 2.0))
    with pytest.raises(ValueError, match="non-finite"):
        builder(torch.full((1, 3, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="class_weights"):
        TargetBuilder(torch.ones(5))


def test_real_lossless_photos_match_the_reference_pipeline(cbsd68_crops: torch.Tensor) -> None:
    """CBSD68 crops: L, ab and soft targets against scikit-image plus a brute-force encoder."""
    out = TargetBuilder(compile=False)(cbsd68_crops)
    lab = skimage_lab(cbsd68_crops)
    assert np.abs(out.lightness[:, 0].numpy() - lab[:, 0]).max() < 1e-3
    ab = lab[:, 1:, ::4, ::4]
    assert np.abs(out.ab.numpy() - ab).max() < 1e-3
    points = to_points(torch.from_numpy(ab))
    ties = near_ties(points, BINS, 10, tol=0.5)
    diff = np.abs(dense_points(out.targets.to_dense()) - brute_force_soft_encode(points, BINS))
    assert ties.mean() < 0.05 and diff[~ties].max() < 1e-4
    assert out.nongray.all()


def test_compile_failure_falls_back_to_eager_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_compile(fn: object, **kwargs: object) -> object:
        def run(*args: object) -> object:
            raise RuntimeError("no C++ compiler")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    x = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
    builder = TargetBuilder(compile=True)
    with pytest.warns(RuntimeWarning, match="running TargetBuilder stages eagerly"):
        out = builder(x)
    assert not builder.compile_stages
    assert torch.equal(out.targets.index, TargetBuilder()(x).targets.index)
