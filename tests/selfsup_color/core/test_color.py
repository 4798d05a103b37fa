"""Lab conversion against scikit-image, edge colours, gradients, dtypes and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from skimage import color

from selfsup_color import lab_to_rgb, rgb_to_lab, rgb_to_lightness

EDGE_COLOURS = [
    (0, 0, 0), (1, 1, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1), (1, 0, 1),
    (0.5, 0.5, 0.5), (0.04045, 0.04045, 0.04045), (0.01, 0.0, 0.0), (1e-4, 1e-4, 1e-4),
]  # fmt: skip


def skimage_lab(rgb: torch.Tensor) -> np.ndarray:
    return np.stack([color.rgb2lab(im) for im in rgb.permute(0, 2, 3, 1).double().numpy()]).transpose(
        0, 3, 1, 2
    )


def skimage_rgb(lab: torch.Tensor) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage warns when it clips negative Z
        out = [color.lab2rgb(im) for im in lab.permute(0, 2, 3, 1).double().numpy()]
    return np.stack(out).transpose(0, 3, 1, 2)


def test_rgb_to_lab_matches_skimage_on_random_and_edge_colours(rng: torch.Generator) -> None:
    rgb = torch.rand(3, 3, 20, 20, generator=rng)
    edges = torch.tensor(EDGE_COLOURS, dtype=torch.float32)
    rgb[0, :, 0, : len(EDGE_COLOURS)] = edges.t()
    assert np.abs(rgb_to_lab(rgb).numpy() - skimage_lab(rgb)).max() < 1e-3


def test_lab_to_rgb_matches_skimage_inside_and_outside_the_gamut(rng: torch.Generator) -> None:
    lab = torch.empty(2, 3, 24, 24)
    lab[:, 0].uniform_(0, 100, generator=rng)
    lab[:, 1:].uniform_(-128, 128, generator=rng)  # much of this is out of the sRGB gamut
    assert np.abs(lab_to_rgb(lab).numpy() - skimage_rgb(lab)).max() < 1e-3


def test_round_trip_recovers_rgb(rng: torch.Generator) -> None:
    rgb = torch.rand(2, 3, 16, 16, generator=rng, dtype=torch.float64)
    assert torch.allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-6)


def test_known_values() -> None:
    white = rgb_to_lab(torch.ones(1, 3, 1, 1)).view(3)
    black = rgb_to_lab(torch.zeros(1, 3, 1, 1)).view(3)
    # scikit-image's matrix maps white to a, b of a few thousandths, not exactly 0.
    assert torch.allclose(white, torch.tensor([100.0, 0.0, 0.0]), atol=1e-2)
    assert abs(float(white[0]) - 100.0) < 1e-3
    assert torch.allclose(black, torch.zeros(3), atol=1e-3)


def test_gradients_are_finite_and_match_finite_differences(rng: torch.Generator) -> None:
    rgb = torch.rand(1, 3, 4, 4, generator=rng, dtype=torch.float64) * 0.9 + 0.05
    rgb[0, :, 0, 0] = 0.0  # the dark linear segments and the knees
    rgb[0, :, 0, 1] = 0.04045
    rgb.requires_grad_(True)
    rgb_to_lab(rgb, check=False).sum().backward()
    assert torch.isfinite(rgb.grad).all()
    inner = (torch.rand(1, 3, 3, 3, generator=rng, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: rgb_to_lab(x, check=False), (inner,))
    lab = rgb_to_lab(inner.detach()).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: lab_to_rgb(x, check=False), (lab,))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(dtype: torch.dtype, rng: torch.Generator) -> None:
    rgb = torch.rand(1, 3, 8, 8, generator=rng).to(dtype)
    lab = rgb_to_lab(rgb)
    assert lab.dtype == dtype
    reference = skimage_lab(rgb.float())
    tolerance = 0.1 if dtype == torch.float16 else 0.6  # output rounding of L near 100
    assert np.abs(lab.double().numpy() - reference).max() < tolerance


def test_bad_input_raises_clear_errors() -> None:
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        rgb_to_lab(torch.rand(3, 8, 8))
    with pytest.raises(TypeError, match="floating point"):
        rgb_to_lab(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="non-finite"):
        rgb_to_lab(torch.full((1, 3, 2, 2), float("nan")))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rgb_to_lab(torch.full((1, 3, 2, 2), 255.0))
    with pytest.raises(ValueError, match="non-finite"):
        lab_to_rgb(torch.full((1, 3, 2, 2), float("inf")))


def test_lightness_matches_skimage_for_floats_and_uint8(rng: torch.Generator) -> None:
    rgb = torch.rand(2, 3, 9, 13, generator=rng)
    rgb[0, :, 0, : len(EDGE_COLOURS)] = torch.tensor(EDGE_COLOURS, dtype=torch.float32).t()
    reference = skimage_lab(rgb)[:, :1]
    lightness = rgb_to_lightness(rgb)
    assert lightness.shape == (2, 1, 9, 13) and lightness.dtype == torch.float32
    assert np.abs(lightness.numpy() - reference).max() < 1e-3
    codes = (rgb * 255).round().to(torch.uint8)
    from_codes = rgb_to_lightness(codes)
    assert np.abs(from_codes.numpy() - skimage_lab(codes.double() / 255)[:, :1]).max() < 1e-3
    assert rgb_to_lightness(rgb.double()).dtype == torch.float64
    with pytest.raises(ValueError, match="rgb"):
        rgb_to_lightness(rgb + 1.0)
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        rgb_to_lightness(codes[:, :2])
