"""Figures and image grids: the ab prior over the gamut (Zhang et al., Fig. 3) and colorization results.

Matplotlib is used through :class:`matplotlib.figure.Figure` and the Agg canvas only, never
``pyplot``: no global figure state, no GUI backend, safe in workers and on headless machines.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor

from .core.bins import GRID, Q, ab_bins
from .core.checks import check_bin_vector, check_float_batch
from .core.color import lab_to_rgb

AB_LIMIT = 110
"""The ab plane of the figures spans [-AB_LIMIT, AB_LIMIT] in both axes (one cell per GRID units)."""

GRID_PADDING = 2
"""White pixels between (and around) the cells of :func:`colorization_grid`."""


def ab_plane_index() -> tuple[Tensor, Tensor]:
    """Row (b) and column (a) of each of the Q bins in the ``n x n`` ab plane of the figures.

    ``n = 2 * AB_LIMIT / GRID + 1`` (23); row 0 is b = -AB_LIMIT, column 0 is a = -AB_LIMIT.
    """
    cells = (ab_bins(dtype=torch.float64) + AB_LIMIT) / GRID
    idx = cells.round().long()
    return idx[:, 1], idx[:, 0]


def _plane(values: np.ndarray, fill: float) -> np.ndarray:
    """Scatter per-bin ``values`` (Q x C) into an ``n x n x C`` plane filled with ``fill`` elsewhere."""
    n = 2 * AB_LIMIT // GRID + 1
    plane = np.full((n, n, values.shape[1]), fill, dtype=np.float64)
    rows, cols = ab_plane_index()
    plane[rows.numpy(), cols.numpy()] = values
    return plane


def gamut_colours(lightness: float = 50.0) -> Tensor:
    """The sRGB colour (Q x 3, float in [0, 1]) of every bin centre at the given L."""
    ab = ab_bins(dtype=torch.float64)
    lab = torch.cat((torch.full((Q, 1), float(lightness), dtype=torch.float64), ab), dim=1)
    return lab_to_rgb(lab.T.reshape(1, 3, Q, 1))[0, :, :, 0].T


def _show_plane(ax: object, values: np.ndarray, **options: object) -> object:
    """``imshow`` a per-bin plane (from :func:`_plane`) over [-110, 110]^2, a right, b up."""
    half = AB_LIMIT + GRID / 2
    image = ax.imshow(  # type: ignore[attr-defined]
        values, origin="lower", extent=(-half, half, -half, half), interpolation="nearest", **options
    )
    ax.set_xlabel("a")  # type: ignore[attr-defined]
    ax.set_ylabel("b")  # type: ignore[attr-defined]
    return image


def _log_plane(prior: Tensor) -> np.ndarray:
    """log10 of a prior on the ab plane, masked where out of gamut or zero."""
    check_bin_vector(prior, "prior")
    p = prior.detach().to("cpu", torch.float64).numpy()
    with np.errstate(divide="ignore"):
        return np.ma.masked_invalid(_plane(np.log10(p)[:, None], np.nan)[..., 0])


def prior_figure(prior: Tensor, title: str | None = None) -> Figure:
    """Zhang et al.'s Fig. 3: (a) the bin colours at L = 50, (b) log10 of ``prior`` over the ab plane.

    Both panels plot a on the x axis and b on the y axis, one GRID-wide cell per bin centre over
    [-110, 110]; out-of-gamut cells (and bins of probability 0, whose log is -inf) are blank.
    ``prior`` (shape ``(Q,)``, non-negative) need not be normalised: it is plotted as given.
    The figure carries an Agg canvas; panel (b) is ``fig.axes[1]`` and its colourbar ``fig.axes[2]``.
    """
    log_p = _log_plane(prior)
    colours = np.concatenate((gamut_colours(50.0).numpy(), np.ones((Q, 1))), axis=1)
    rgba = _plane(colours, 0.0)  # alpha 0: out of gamut

    fig = Figure(figsize=(10, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_rgb, ax_prior = fig.subplots(1, 2)
    _show_plane(ax_rgb, rgba)
    ax_rgb.set_title("(a) ab gamut at L = 50")
    image = _show_plane(ax_prior, log_p, cmap="jet")
    ax_prior.set_title("(b) empirical probability, log scale")
    fig.colorbar(image, ax=ax_prior, label="log10 p(a, b)")
    if title:
        fig.suptitle(title)
    return fig


def priors_figure(priors: dict[str, Tensor], floor: float = 1e-6) -> Figure:
    """One panel per named prior: log10 p over the ab plane on one shared colour scale.

    Values below ``floor`` are drawn at the floor so the panels compare; the figure's last axis is
    the shared colourbar.
    """
    if not priors:
        raise ValueError("priors is empty: give at least one named prior")
    planes = {name: _log_plane(p) for name, p in priors.items()}
    low = np.log10(floor)
    high = max(float(plane.max()) for plane in planes.values())
    fig = Figure(figsize=(3.6 * len(planes) + 0.8, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(planes), squeeze=False)[0]
    image = None
    for ax, (name, plane) in zip(axes, planes.items(), strict=True):
        image = _show_plane(ax, np.ma.maximum(plane, low), cmap="jet", vmin=low, vmax=high)
        ax.set_title(name)
    fig.colorbar(image, ax=list(axes), label="log10 p(a, b)")
    return fig


def labelled_grid(columns: dict[str, list[Tensor]], cell_inches: float = 1.6) -> Figure:
    """Images in a table: one column per key (titled with it), one row per image index.

    ``columns`` maps titles to equally long lists of ``3 x H x W`` images in [0, 1].
    """
    lengths = {len(images) for images in columns.values()}
    if len(lengths) != 1 or not lengths.pop():
        raise ValueError("every column needs the same, non-zero number of images")
    rows = len(next(iter(columns.values())))
    fig = Figure(figsize=(cell_inches * len(columns), cell_inches * rows + 0.3), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, len(columns), squeeze=False)
    for j, (title, images) in enumerate(columns.items()):
        axes[0, j].set_title(title, fontsize=9)
        for i, image in enumerate(images):
            axes[i, j].imshow(image.clamp(0, 1).permute(1, 2, 0).cpu().numpy())
            axes[i, j].set_axis_off()
    return fig


def _png_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path ending in .png, its parent folders created."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"only PNG is written: {path} must end in .png")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parent folders created); returns the path."""
    path = _png_path(path)
    FigureCanvasAgg(fig)  # a Figure made elsewhere may carry another canvas
    fig.savefig(path, format="png", dpi=dpi)
    return path


def figure_to_array(fig: Figure) -> np.ndarray:
    """Render ``fig`` with Agg at its own dpi: an ``H x W x 3`` uint8 array (e.g. for wandb.Image)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def to_uint8(image: Tensor) -> Tensor:
    """Float image(s) in [0, 1] -> uint8 (clamped, rounded), same shape and device."""
    return (image.clamp(0.0, 1.0) * 255).round().to(torch.uint8)


def tile(cells: Tensor, columns: int, padding: int = GRID_PADDING, fill: float = 1.0) -> Tensor:
    """Tile ``rows * columns`` images (``K x C x H x W``, row-major) into one ``C x H' x W'`` image.

    ``padding`` pixels of ``fill`` separate and surround the cells (like torchvision's make_grid):
    ``H' = rows (H + padding) + padding``, ``W' = columns (W + padding) + padding``.
    """
    k, c, h, w = cells.shape
    if columns < 1 or k % columns:
        raise ValueError(f"{k} cells do not fill whole rows of {columns} columns")
    x = F.pad(cells.reshape(k // columns, columns, c, h, w), (0, padding, 0, padding), value=fill)
    x = x.permute(2, 0, 3, 1, 4).reshape(c, (k // columns) * (h + padding), columns * (w + padding))
    return F.pad(x, (padding, 0, padding, 0), value=fill)


def _lab_image(lightness: Tensor, ab: Tensor) -> Tensor:
    """sRGB in [0, 1] of ``lightness`` (N x 1 x H x W) with ``ab`` bilinearly resized to H x W."""
    if ab.shape[-2:] != lightness.shape[-2:]:
        ab = F.interpolate(ab, size=lightness.shape[-2:], mode="bilinear", align_corners=False)
    return lab_to_rgb(torch.cat((lightness, ab), dim=1)).clamp(0.0, 1.0)


def colorization_grid(lightness: Tensor, pred_ab: Tensor, true_ab: Tensor, max_images: int = 8) -> Tensor:
    """A ``3 x H_grid x W_grid`` uint8 grid: rows input gray, prediction, truth; one column per image.

    ``lightness`` is ``N x 1 x H x W`` (L in [0, 100]); ``pred_ab`` and ``true_ab`` are ``N x 2``
    maps of any size, bilinearly upsampled to H x W. The first ``min(N, max_images)`` images are
    shown, with GRID_PADDING white pixels between and around cells, so
    ``H_grid = 3 (H + 2) + 2`` and ``W_grid = n (W + 2) + 2``. Computed on the inputs' device; the
    result is on the CPU.
    """
    check_float_batch(lightness, "lightness", 1)
    check_float_batch(pred_ab, "pred_ab", 2)
    check_float_batch(true_ab, "true_ab", 2)
    if not pred_ab.shape[0] == true_ab.shape[0] == lightness.shape[0]:
        raise ValueError(
            f"batch sizes differ: lightness {lightness.shape[0]}, pred_ab {pred_ab.shape[0]}, "
            f"true_ab {true_ab.shape[0]}"
        )
    if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
        raise ValueError(f"max_images must be a positive integer, got {max_images!r}")
    n = min(lightness.shape[0], max_images)
    with torch.no_grad():
        L = lightness[:n].detach().float()
        rows = [_lab_image(L, torch.zeros_like(L).expand(-1, 2, -1, -1))]
        rows += [_lab_image(L, ab[:n].detach().float()) for ab in (pred_ab, true_ab)]
        grid = tile(torch.cat(rows), columns=n)
        return to_uint8(grid).cpu()


def save_png(image: Tensor, path: str | os.PathLike[str]) -> Path:
    """Write a ``3 x H x W`` uint8 image as a PNG at ``path`` (parent folders created); returns the path."""
    if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be a 3 x H x W tensor, got {shape}")
    if image.dtype != torch.uint8:
        raise TypeError(f"image must be uint8, got {image.dtype}; convert floats in [0, 1] with to_uint8")
    path = _png_path(path)
    Image.fromarray(image.permute(1, 2, 0).cpu().numpy()).save(path, format="PNG")
    return path
