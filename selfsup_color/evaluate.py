"""Colorization quality of trained networks on a set of photos: the paper's Table 1 metrics.

Every method colorizes each photo at full resolution (the net sees L resized to ``process_size``;
its ab is upsampled and recombined with the original L, see :mod:`selfsup_color.colorize`), and is
scored against the photo's own ab:

* AuC and rebalanced AuC over all pixels of all photos together. One pass fills an
  :class:`ErrorTable` per method (pixel counts by true bin and ab error), so the rebalancing prior,
  by default the evaluated photos' own smoothed ab distribution, can be applied at the end;
* colourfulness and PSNR per image, averaged over images.

The gray baseline (ab = 0) and the truth's colourfulness are always reported beside the methods.
Unreadable files, and files declaring more than ``max_pixels`` pixels (:data:`MAX_PIXELS`, refused
before decoding), are skipped with a warning and listed in the scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .colorize import MAX_SIDE, colorize_lightness, read_rgb_or_skip
from .core.bins import Q
from .core.color import lab_to_rgb, rgb_to_ab, rgb_to_lightness
from .core.encode import nearest_bin
from .core.metrics import (
    MAX_THRESHOLD,
    _inverse_prior,
    auc_from_histogram,
    colourfulness,
    distance_buckets,
    psnr,
)
from .core.prior import smooth_prior

GRAY = "gray"
"""Name of the baseline that predicts ab = 0 everywhere."""

Predictor = Callable[[Tensor], Tensor]
"""Maps N x 1 x H x W lightness (L in [0, 100]) to N x 2 x H x W ab."""
MAX_PIXELS = 16_000_000
"""The default pixel budget of one photo: scoring keeps about 300 bytes per pixel for the gray baseline
and one method (measured), so 16 megapixels need about 5 GB."""


class ErrorTable:
    """Pixel counts by (nearest bin of the true ab, ``ceil`` of the ab error): ``Q x (T + 2)`` float64.

    Summing the rows gives the histogram of :func:`~selfsup_color.core.metrics.auc`; weighting row
    ``q`` by ``1 / prior[q]`` first gives the rebalanced one, for any prior chosen afterwards.
    """

    def __init__(self, max_threshold: int = MAX_THRESHOLD, device: torch.device | str = "cpu") -> None:
        self.max_threshold = max_threshold
        self.counts = torch.zeros(Q, max_threshold + 2, dtype=torch.float64, device=device)

    def update(self, pred_ab: Tensor, true_ab: Tensor) -> None:
        """Count the pixels of ``N x 2 x H x W`` predictions against their truth."""
        bucket = distance_buckets(pred_ab, true_ab, self.max_threshold)
        cell = nearest_bin(true_ab).reshape(-1) * (self.max_threshold + 2) + bucket
        ones = torch.ones_like(cell, dtype=torch.float64)
        self.counts.view(-1).index_add_(0, cell.to(self.counts.device), ones.to(self.counts.device))

    def truth_counts(self) -> Tensor:
        """Pixels per nearest true bin (Q,): the evaluated photos' ab histogram."""
        return self.counts.sum(dim=1)

    def auc(self) -> float:
        """AuC with every pixel weighted 1."""
        return float(auc_from_histogram(self.counts.sum(dim=0)))

    def rebalanced_auc(self, prior: Tensor) -> float:
        """AuC with each pixel weighted by ``1 / prior`` of its true bin (see ``rebalanced_auc``)."""
        if prior.shape != (Q,):
            raise ValueError(f"prior must have shape ({Q},), got {tuple(prior.shape)}")
        weights = _inverse_prior(prior, self.counts.device)
        return float(auc_from_histogram((weights[:, None] * self.counts).sum(dim=0)))


@dataclass
class MethodScores:
    """Running sums for one method over the evaluated photos."""

    table: ErrorTable
    colourfulness: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)

    def summary(self, prior: Tensor) -> dict[str, float]:
        """AuC, rebalanced AuC (under ``prior``), mean colourfulness and mean PSNR."""
        return {
            "auc": self.table.auc(),
            "rebalanced_auc": self.table.rebalanced_auc(prior),
            "colourfulness": sum(self.colourfulness) / len(self.colourfulness),
            "psnr": sum(self.psnr) / len(self.psnr),
        }


def square_thumbnail(rgb: Tensor, size: int) -> Tensor:
    """Centre square of a ``3 x H x W`` image in [0, 1], resized to ``size`` (antialiased)."""
    h, w = rgb.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = rgb[None, :, top : top + side, left : left + side]
    return F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


@dataclass
class Evaluation:
    """What :func:`evaluate_photos` measured."""

    scores: dict[str, dict[str, float]]
    """Per method (the gray baseline first): auc, rebalanced_auc, colourfulness, psnr."""
    truth_colourfulness: float
    images: int
    pixels: int
    prior: Tensor
    """The rebalancing prior used (Q,)."""
    thumbnails: dict[str, list[Tensor]]
    """Per column ("input", each method, "truth"): 3 x s x s images in [0, 1] of the grid photos."""
    unreadable: list[Path] = field(default_factory=list)
    """The files skipped: broken, or over the pixel budget."""


def evaluate_photos(
    predictors: Mapping[str, Predictor],
    paths: Sequence[Path],
    prior: Tensor | None = None,
    prior_sigma: float = 5.0,
    grid_paths: Sequence[Path] = (),
    thumbnail_size: int = 160,
    device: torch.device | str = "cpu",
    max_pixels: int | None = MAX_PIXELS,
) -> Evaluation:
    """Score each predictor (and the gray baseline) on the photos at ``paths``.

    ``prior`` (Q,) rebalances the AuC; None uses the photos' own nearest-bin histogram smoothed by
    ``prior_sigma``. Unreadable files, and files declaring more than ``max_pixels`` pixels (refused
    before decoding), are skipped with a warning and listed in ``unreadable``; no readable file raises
    ``ValueError``. ``grid_paths`` (a subset of ``paths``) are kept as thumbnails for a qualitative grid.
    """
    from .progress import progress_bar  # Lightning: imported when needed, not for --help

    if GRAY in predictors:
        raise ValueError(f"{GRAY!r} is the built-in baseline; give your methods other names")
    methods = {GRAY: None, **predictors}
    scores = {name: MethodScores(ErrorTable(device=device)) for name in methods}
    keep = {Path(p) for p in grid_paths}
    thumbs: dict[str, list[Tensor]] = {name: [] for name in ("input", *methods, "truth")}
    truth_colourfulness: list[float] = []
    pixels = 0
    unreadable = []
    for path in progress_bar(paths, desc="evaluate", unit="photo"):
        pixels_np = read_rgb_or_skip(Path(path), max_pixels)
        if pixels_np is None:
            unreadable.append(Path(path))
            continue
        codes = torch.from_numpy(pixels_np).permute(2, 0, 1)[None].to(device)
        rgb = codes.float() / 255.0
        lightness, true_ab = rgb_to_lightness(codes), rgb_to_ab(codes)  # as in training
        pixels += true_ab.shape[-2] * true_ab.shape[-1]
        truth_colourfulness.append(float(colourfulness(rgb)[0]))
        for name, predict in methods.items():
            pred_ab = torch.zeros_like(true_ab) if predict is None else predict(lightness).to(true_ab.dtype)
            pred_rgb = lab_to_rgb(torch.cat((lightness, pred_ab), dim=1))
            scores[name].table.update(pred_ab, true_ab)
            scores[name].colourfulness.append(float(colourfulness(pred_rgb)[0]))
            scores[name].psnr.append(float(psnr(pred_rgb, rgb)[0]))
            if Path(path) in keep:
                thumbs[name].append(square_thumbnail(pred_rgb[0], thumbnail_size).cpu())
        if Path(path) in keep:
            thumbs["input"].append(thumbs[GRAY][-1])
            thumbs["truth"].append(square_thumbnail(rgb[0], thumbnail_size).cpu())
    if not truth_colourfulness:
        raise ValueError(f"none of the {len(paths)} files could be read as an image")
    if prior is None:
        prior = smooth_prior(scores[GRAY].table.truth_counts(), prior_sigma)
    return Evaluation(
        scores={name: s.summary(prior) for name, s in scores.items()},
        truth_colourfulness=sum(truth_colourfulness) / len(truth_colourfulness),
        images=len(truth_colourfulness),
        pixels=pixels,
        prior=prior.cpu(),
        thumbnails={name: t for name, t in thumbs.items() if name != GRAY},
        unreadable=unreadable,
    )


def network_predictor(
    net: Callable[[Tensor], Tensor], temperature: float, process_size: int | None, max_side: int = MAX_SIDE
) -> Predictor:
    """A :data:`Predictor` from a colorization net (see ``colorize.colorize_lightness``)."""
    return lambda lightness: colorize_lightness(net, lightness, temperature, process_size, max_side)


def spread(paths: Sequence[Path], count: int) -> list[Path]:
    """``count`` of ``paths`` evenly spaced in their sorted order (a fixed, content-blind choice)."""
    ordered = sorted(paths)
    if count >= len(ordered):
        return ordered
    step = len(ordered) / count
    return [ordered[math.floor(i * step)] for i in range(count)]


def scores_markdown(evaluation: Evaluation, about: str = "") -> str:
    """The scores as a markdown table (methods as rows, gray baseline first, truth last)."""
    lines = [about, ""] if about else []
    lines += [
        "| method | AuC | rebalanced AuC | colourfulness | PSNR (dB) |",
        "|---|---|---|---|---|",
    ]
    for name, s in evaluation.scores.items():
        label = "gray (ab = 0)" if name == GRAY else name
        cells = f"{s['auc']:.3f} | {s['rebalanced_auc']:.3f} | {s['colourfulness']:.1f} | {s['psnr']:.2f}"
        lines.append(f"| {label} | {cells} |")
    lines.append(f"| ground truth | 1 | 1 | {evaluation.truth_colourfulness:.1f} | - |")
    return "\n".join(lines) + "\n"


def write_evaluation(evaluation: Evaluation, out: Path, about: dict[str, object]) -> list[Path]:
    """Write ``scores.json``, ``scores.md`` and (when thumbnails were kept) ``grid.png`` into ``out``."""
    import json

    from .viz import labelled_grid, save_figure

    out.mkdir(parents=True, exist_ok=True)
    record = {
        **about,
        "images": evaluation.images,
        "pixels": evaluation.pixels,
        "n_unreadable": len(evaluation.unreadable),
        "unreadable": [str(p) for p in evaluation.unreadable],
        "scores": evaluation.scores,
        "truth_colourfulness": evaluation.truth_colourfulness,
        "prior": evaluation.prior.tolist(),
    }
    written = [out / "scores.json", out / "scores.md"]
    written[0].write_text(json.dumps(record, indent=1) + "\n")
    summary = f"{evaluation.images} photos, {evaluation.pixels} pixels; " + ", ".join(
        f"{k}: {v}" for k, v in about.items() if k != "methods"
    )
    if evaluation.unreadable:
        names = ", ".join(str(p) for p in evaluation.unreadable)
        summary += f"\n\n{len(evaluation.unreadable)} file(s) skipped (unreadable or too large): {names}"
    written[1].write_text(scores_markdown(evaluation, summary))
    if evaluation.thumbnails["input"]:
        written.append(save_figure(labelled_grid(evaluation.thumbnails), out / "grid.png"))
    return written
