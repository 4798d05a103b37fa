"""One RGB -> L / ab path: the prior counts the ab the loss encodes, and every consumer of L sees
the pretraining input, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsup_color.core.bins import Q
from selfsup_color.core.color import rgb_to_ab, rgb_to_lab, rgb_to_lightness
from selfsup_color.core.prior import PriorEstimator
from selfsup_color.core.targets import TargetBuilder

STRIDE = 4
BORDER_COLOURS = (348404, 499524, 937984, 1151708, 1234032, 1742762, 1828495, 1911504, 2023473, 2038651)
"""24-bit sRGB codes (0xRRGGBB) on a bin boundary: float32 rounding decides their nearest bin, and
float Lab of ``codes / 255`` puts each in another bin than the loss's table path does."""


def photo_batch(seed: int = 0) -> torch.Tensor:
    """6 x 3 x 48 x 40 uint8: smooth colour gradients (with :data:`BORDER_COLOURS`), noise, a gray image
    and a near-gray one."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:48, 0:40] / 40.0
    images = []
    for _ in range(3):
        phase = rng.uniform(0, 6, 3)
        images.append(np.stack([127.5 + 127.5 * np.sin(5 * x + 3 * y + p) for p in phase], -1))
    images.append(rng.integers(0, 256, (48, 40, 3)))
    images.append(np.repeat(rng.integers(0, 256, (48, 40, 1)), 3, -1))  # gray: no loss, not counted
    images.append(np.clip(128 + rng.integers(-2, 3, (48, 40, 3)), 0, 255))  # near gray
    batch = np.stack(images).round().astype(np.uint8)
    border = np.array(BORDER_COLOURS)[:, None] >> np.array([16, 8, 0]) & 255
    batch[:3, : STRIDE * len(border) : STRIDE, 0] = border  # on the subsampling grid
    return torch.from_numpy(batch).permute(0, 3, 1, 2)


def loss_bins(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ab the loss encodes and per-bin counts of their nearest bins over non-gray images.

    The rebalancing weight of a pixel is ``class_weights[nearest bin]``: with weights 0..Q-1 it is
    the nearest bin the target builder found.
    """
    targets = TargetBuilder(class_weights=torch.arange(Q, dtype=torch.float32), stride=STRIDE)(rgb)
    nearest = targets.pixel_weight[targets.nongray].long()
    return targets.ab, torch.bincount(nearest.flatten(), minlength=Q)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_prior_counts_exactly_the_bins_the_loss_encodes(dtype: torch.dtype) -> None:
    codes = photo_batch()
    rgb = codes if dtype == torch.uint8 else codes.float() / 255
    ab, expected = loss_bins(rgb)
    assert torch.equal(rgb_to_ab(rgb, STRIDE), ab)
    estimator = PriorEstimator(stride=STRIDE)
    estimator.update_rgb(rgb)
    assert torch.equal(estimator.counts, expected)
    assert estimator.n_gray_skipped == 2 and expected.sum() > 0  # the gray and near-gray images


def test_prior_counts_do_not_depend_on_the_batching() -> None:
    rgb = photo_batch(1)
    _, expected = loss_bins(rgb)
    estimator = PriorEstimator(stride=STRIDE)
    for part in (rgb[:1], rgb[1:4], rgb[4:]):
        estimator.update_rgb(part)
    assert torch.equal(estimator.counts, expected)


def test_lightness_is_the_training_input_and_close_to_scikit_image() -> None:
    from skimage.color import rgb2lab

    codes = photo_batch(2)
    lightness = TargetBuilder(stride=STRIDE)(codes).lightness
    assert torch.equal(rgb_to_lightness(codes), lightness)
    reference = rgb2lab(codes.permute(0, 2, 3, 1).numpy())[..., 0]
    assert np.abs(lightness[:, 0].numpy() - reference).max() < 1e-3
    floats = codes.float() / 255
    assert torch.equal(rgb_to_lightness(floats), TargetBuilder(stride=STRIDE)(floats).lightness)
    assert torch.equal(rgb_to_lightness(floats), rgb_to_lab(floats)[:, :1])


def test_ab_of_codes_matches_scikit_image() -> None:
    from skimage.color import rgb2lab

    codes = photo_batch(3)
    reference = rgb2lab(codes.permute(0, 2, 3, 1).numpy())[:, ::STRIDE, ::STRIDE, 1:]
    ab = rgb_to_ab(codes, STRIDE).permute(0, 2, 3, 1).numpy()
    assert ab.dtype == np.float32 and np.abs(ab - reference).max() < 2e-3


def test_transfer_encoder_sees_the_pretraining_lightness() -> None:
    from selfsup_color.models import build_model
    from transfer.classification.callback import TapReader
    from transfer.encoder import LightnessEncoder

    codes = photo_batch(4)
    expected = TargetBuilder(stride=STRIDE)(codes).lightness
    net = build_model("eccv16", width=0.125)
    seen: list[torch.Tensor] = []
    forward_features = net.forward_features

    def spy(lightness: torch.Tensor, taps: object = None) -> dict[str, torch.Tensor]:
        seen.append(lightness)
        return forward_features(lightness, taps)

    net.forward_features = spy  # type: ignore[method-assign]
    LightnessEncoder(net)(codes)
    TapReader(net)(codes)
    assert len(seen) == 2 and all(torch.equal(x, expected) for x in seen)


def test_border_colours_are_where_a_second_lab_path_would_count_other_bins() -> None:
    """Guards the test above: with float Lab (the prior's path before issue 15) the counts differ."""
    from selfsup_color.core.encode import nearest_bin

    codes = photo_batch()
    old = rgb_to_lab(codes.float() / 255)[:, 1:, ::STRIDE, ::STRIDE]
    assert not torch.equal(nearest_bin(old[:3]), nearest_bin(rgb_to_ab(codes[:3], STRIDE)))
