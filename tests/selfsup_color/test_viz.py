"""Figures and grids: the prior over the ab plane, rendering, PNG output, colorization grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from PIL import Image
from skimage import data

from selfsup_color import Q, ab_bins, rgb_to_lab
from selfsup_color.viz import (
    colorization_grid,
    figure_to_array,
    labelled_grid,
    prior_figure,
    priors_figure,
    save_figure,
    save_png,
    tile,
)

N_CELLS = 23  # a and b from -110 to 110 in steps of 10
PAD = 2


def cell(plane: np.ndarray, a: int, b: int) -> object:
    """The value of the ab-plane image at (a, b): rows are b, columns a, origin at -110."""
    return plane[(b + 110) // 10, (a + 110) // 10]


def bin_index(a: int, b: int) -> int:
    return int(((ab_bins() - torch.tensor([a, b])).abs().sum(1) == 0).nonzero())


@pytest.fixture(scope="module")
def peaked_prior() -> torch.Tensor:
    p = torch.full((Q,), 1e-4, dtype=torch.float64)
    p[bin_index(0, 0)] = 0.5
    p[bin_index(-90, 50)] = 0.0  # probability 0: log is -inf, shown blank
    return p / p.sum()


def prior_image(fig: Figure) -> np.ma.MaskedArray:
    return fig.axes[1].images[0].get_array()


def test_uniform_prior_fills_exactly_the_gamut() -> None:
    fig = prior_figure(torch.full((Q,), 1.0 / Q), title="uniform")
    plane = prior_image(fig)
    assert plane.shape == (N_CELLS, N_CELLS)
    assert int(np.ma.count_masked(plane)) == N_CELLS**2 - Q
    np.testing.assert_allclose(plane.compressed(), np.log10(1.0 / Q))
    assert cell(plane, 100, -110) is np.ma.masked  # out of gamut
    assert fig.get_suptitle() == "uniform"
    for ax in fig.axes[:2]:
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("a", "b")
    assert len(fig.axes) == 3  # two panels and the colourbar


def test_peaked_prior_cells_hold_log10_p(peaked_prior: torch.Tensor) -> None:
    plane = prior_image(prior_figure(peaked_prior))
    p = peaked_prior.numpy()
    for a, b in [(0, 0), (100, 0), (-50, 100), (90, -110)]:
        assert cell(plane, a, b) == pytest.approx(np.log10(p[bin_index(a, b)]))
    assert cell(plane, -90, 50) is np.ma.masked
    assert int(np.ma.count_masked(plane)) == N_CELLS**2 - Q + 1


def test_gamut_panel_shows_bin_colours_at_l50(peaked_prior: torch.Tensor) -> None:
    rgba = prior_figure(peaked_prior).axes[0].images[0].get_array()
    assert rgba.shape == (N_CELLS, N_CELLS, 4)
    np.testing.assert_allclose(cell(rgba, 0, 0), [0.466, 0.466, 0.466, 1.0], atol=2e-3)  # mid gray
    red = cell(rgba, 80, 70)
    assert red[0] > 0.9 > 0.3 > red[1] and red[3] == 1
    assert cell(rgba, -110, -110)[3] == 0  # out of gamut: transparent
    assert int((rgba[..., 3] == 1).sum()) == Q


@pytest.mark.parametrize(
    ("prior", "error", "match"),
    [
        (torch.ones(Q - 1), ValueError, r"shape \(313,\)"),
        (torch.ones(1, Q), ValueError, r"shape \(313,\)"),
        (torch.full((Q,), 1.0 / Q) - 0.01, ValueError, "non-negative"),
        (torch.full((Q,), float("nan")), ValueError, "NaN"),
        (np.ones(Q), TypeError, "torch.Tensor"),
    ],
)
def test_prior_figure_rejects_bad_priors(prior: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        prior_figure(prior)  # type: ignore[arg-type]


def test_figure_to_array_and_save_figure(tmp_path: Path, peaked_prior: torch.Tensor) -> None:
    fig = prior_figure(peaked_prior)
    array = figure_to_array(fig)
    width, height = (fig.get_size_inches() * fig.dpi).round().astype(int)
    assert array.shape == (height, width, 3) and array.dtype == np.uint8
    assert array.min() < 50 and array.max() == 255  # something was drawn on white

    path = save_figure(fig, tmp_path / "new" / "dir" / "prior.png")
    assert path == tmp_path / "new" / "dir" / "prior.png"
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (width, height)
    with pytest.raises(ValueError, match=r"\.png"):
        save_figure(fig, tmp_path / "prior.jpg")


def test_tile_layout() -> None:
    cells = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1).expand(6, 1, 3, 4)
    grid = tile(cells, columns=3, padding=PAD, fill=-1.0)
    assert grid.shape == (1, 2 * (3 + PAD) + PAD, 3 * (4 + PAD) + PAD)
    assert grid[0, PAD, PAD] == 0 and grid[0, PAD, PAD + 4 + PAD] == 1  # row-major
    assert grid[0, PAD + 3 + PAD, PAD] == 3
    assert grid[0, 0].eq(-1).all() and grid[0, :, PAD + 4].eq(-1).all()  # border and gutter
    with pytest.raises(ValueError, match="whole rows"):
        tile(cells, columns=4)


def grid_cell(grid: torch.Tensor, row: int, col: int, h: int, w: int) -> torch.Tensor:
    top, left = PAD + row * (h + PAD), PAD + col * (w + PAD)
    return grid[:, top : top + h, left : left + w]


@pytest.mark.parametrize(("n", "max_images", "cols"), [(3, 8, 3), (5, 2, 2)])
def test_colorization_grid_shape(n: int, max_images: int, cols: int) -> None:
    h, w = 16, 20
    lightness = torch.linspace(0, 100, h * w).view(1, 1, h, w).repeat(n, 1, 1, 1)
    grid = colorization_grid(
        lightness, torch.zeros(n, 2, h // 4, w // 4), torch.zeros(n, 2, h, w), max_images
    )
    assert grid.dtype == torch.uint8 and grid.device.type == "cpu"
    assert grid.shape == (3, 3 * (h + PAD) + PAD, cols * (w + PAD) + PAD)
    assert grid[:, :PAD].eq(255).all() and grid[:, :, :PAD].eq(255).all()  # white padding


def test_colorization_grid_rows_reproduce_a_photo() -> None:
    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
    rgb = F.interpolate(photo, size=(48, 48), mode="bilinear", antialias=True).clamp(0, 1)
    rgb = torch.cat((rgb, rgb.flip(-1)))
    lab = rgb_to_lab(rgb)
    pred = F.avg_pool2d(lab[:, 1:], 4)  # a blurry "prediction" at 1/4 resolution
    grid = colorization_grid(lab[:, :1], pred, lab[:, 1:])
    expected = (rgb * 255).round()
    for col in range(2):
        truth = grid_cell(grid, 2, col, 48, 48).float()
        assert (truth - expected[col]).abs().max() <= 2
        gray = grid_cell(grid, 0, col, 48, 48).int()
        assert (gray - gray[:1]).abs().max() <= 1  # R = G = B
        prediction = grid_cell(grid, 1, col, 48, 48).float()
        assert 0 < (prediction - expected[col]).abs().mean() < 20  # close to the photo, not equal


def test_colorization_grid_rejects_bad_input() -> None:
    L = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="batch sizes differ"):
        colorization_grid(L, torch.zeros(3, 2, 2, 2), torch.zeros(2, 2, 8, 8))
    with pytest.raises(ValueError, match="pred_ab must have shape"):
        colorization_grid(L, torch.zeros(2, 3, 2, 2), torch.zeros(2, 2, 8, 8))
    with pytest.raises(ValueError, match="max_images"):
        colorization_grid(L, torch.zeros(2, 2, 2, 2), torch.zeros(2, 2, 8, 8), max_images=0)


def test_save_png_round_trip(tmp_path: Path) -> None:
    image = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    path = save_png(image, tmp_path / "a" / "img.png")
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert torch.equal(torch.from_numpy(np.array(im)).permute(2, 0, 1), image)
    with pytest.raises(TypeError, match="uint8"):
        save_png(image.float(), tmp_path / "f.png")
    with pytest.raises(ValueError, match="3 x H x W"):
        save_png(image[None], tmp_path / "b.png")


def test_priors_figure_one_panel_per_prior_on_a_shared_scale(peaked_prior: torch.Tensor) -> None:
    uniform = torch.full((Q,), 1.0 / Q, dtype=torch.float64)
    fig = priors_figure({"peaked": peaked_prior, "uniform": uniform}, floor=1e-3)
    panels = fig.axes[:2]
    assert [ax.get_title() for ax in panels] == ["peaked", "uniform"] and len(fig.axes) == 3
    peaked = panels[0].images[0].get_array()
    assert cell(peaked, 0, 0) == pytest.approx(np.log10(peaked_prior[bin_index(0, 0)]))
    assert float(cell(peaked, 100, 0)) == pytest.approx(-3.0)  # p ~ 1.9e-4 < 1e-3: drawn at the floor
    assert cell(peaked, 100, -110) is np.ma.masked  # out of gamut stays blank
    limits = {ax.images[0].get_clim() for ax in panels}
    assert len(limits) == 1 and limits.pop()[0] == pytest.approx(-3.0)
    with pytest.raises(ValueError, match="at least one"):
        priors_figure({})


def test_labelled_grid_places_each_image_under_its_title() -> None:
    images = [torch.full((3, 8, 8), v) for v in (0.0, 0.5, 1.0)]
    fig = labelled_grid({"a": images[:2], "b": images[1:]})
    axes = np.array(fig.axes).reshape(2, 2)
    assert [ax.get_title() for ax in axes[0]] == ["a", "b"]
    assert float(axes[1, 1].images[0].get_array().mean()) == pytest.approx(1.0)
    assert float(axes[0, 0].images[0].get_array().mean()) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="same"):
        labelled_grid({"a": images[:2], "b": images[:1]})
