"""Colorize grayscale or colour photos with a trained network (inference only).

The network sees only the lightness; its ab prediction (at 1/4 resolution) is decoded by the
annealed mean and upsampled, then recombined with the *original full-resolution* L, as in
Zhang et al. Networks take L in [0, 100] and normalise it themselves.

Memory is bounded per image whatever its size or shape: the network input's long side is at most
``max_side`` (:data:`MAX_SIDE`), and a file declaring more than ``max_pixels`` pixels
(:data:`~selfsup_color.data.decode.MAX_PIXELS`) is skipped with a warning before it is decoded, which
also bounds the full-resolution recombination (about 100 bytes per pixel, see docs/pretraining.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .core.checks import check_float_batch, check_image_batch
from .core.color import lab_to_rgb, rgb_to_lightness
from .core.decode import DEFAULT_TEMPERATURE
from .data.decode import MAX_PIXELS, ImageTooLargeError, load_rgb
from .pretexts import PRETEXTS, pretext_for_outputs

MULTIPLE = 8
"""Network inputs are made a multiple of this many pixels on each side (the reference net's stride)."""
MAX_SIDE = 2048
"""The default cap on the long side of the network input: 8 times the default ``process_size``, so only
panoramas beyond 8:1 are narrowed; at full resolution, larger images are scaled down to it."""

Net = Callable[[Tensor], Tensor]


def process_shape(
    height: int, width: int, process_size: int | None, max_side: int = MAX_SIDE
) -> tuple[int, int] | None:
    """The network input size: shorter side ~ ``process_size``, long side at most ``max_side``, both
    multiples of 8; None when the net sees the image itself (padded to multiples of 8).

    The image is scaled so its shorter side is ``process_size`` (None: kept), or less where the long
    side would exceed ``max_side``; each side is then rounded to the nearest multiple of
    :data:`MULTIPLE` (halves up, at least one multiple) and capped at ``max_side`` rounded down to a
    multiple. So the aspect ratio is kept within rounding, and the shorter side may end up a few pixels
    off ``process_size``. None is returned when ``process_size`` is None and the long side is within
    ``max_side``.
    """
    long, short = max(height, width), min(height, width)
    if process_size is None and long <= max_side:
        return None
    scale = min(1.0 if process_size is None else process_size / short, max_side / long)
    cap = max_side // MULTIPLE * MULTIPLE

    def fit(side: int) -> int:
        return min(cap, max(MULTIPLE, int(side * scale / MULTIPLE + 0.5) * MULTIPLE))

    return fit(height), fit(width)


def _check_sizes(process_size: int | None, max_side: int) -> None:
    if process_size is not None and (
        isinstance(process_size, bool) or not isinstance(process_size, int) or process_size < 1
    ):
        raise ValueError(f"process_size must be a positive integer or None, got {process_size!r}")
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < MULTIPLE:
        raise ValueError(f"max_side must be an integer >= {MULTIPLE}, got {max_side!r}")


def _predict_ab(net: Net, x: Tensor, temperature: float) -> Tensor:
    """ab at the net's output resolution, decoded by its pretext: ``net.pretext`` (a ColorizationModule's),
    else the registered pretext with as many output channels (a bare network)."""
    out = net(x)
    if isinstance(out, Tensor) and out.dim() == 4 and out.shape[0] == x.shape[0]:
        pretext = getattr(net, "pretext", None) or pretext_for_outputs(out.shape[1])
        if pretext is not None and out.shape[1] == pretext.num_outputs:
            return pretext.decode(out, temperature)
    got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
    outputs = ", ".join(f"{cls.num_outputs} for {name}" for name, cls in PRETEXTS.items())
    raise ValueError(
        f"net must map L of shape {tuple(x.shape)} to N x C x h x w outputs of a pretext (C = {outputs}), "
        f"got {got}"
    )


def colorize_lightness(
    net: Net,
    lightness: Tensor,
    temperature: float = DEFAULT_TEMPERATURE,
    process_size: int | None = None,
    max_side: int = MAX_SIDE,
) -> Tensor:
    """Predicted ab (``N x 2 x H x W``) for ``N x 1 x H x W`` lightness (L in [0, 100]).

    The net sees L resized (bilinear, antialiased) to :func:`process_shape` (shorter side
    ``process_size``, long side at most ``max_side``); with ``process_size`` None and the long side
    within ``max_side``, L itself, padded by reflection (replication for sides under 8 px) up to
    multiples of 8, and the prediction is cropped back. Logits are decoded by the annealed mean at
    ``temperature`` (a net with 2 output channels predicts ab directly) and upsampled bilinearly to
    H x W. Runs under ``torch.no_grad``; it does not call ``net.eval()``: putting the net in eval mode
    (and on the device of ``lightness``) is the caller's job.
    """
    check_float_batch(lightness, "lightness", 1, finite=True)
    _check_sizes(process_size, max_side)
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    height, width = lightness.shape[-2:]
    size = process_shape(height, width, process_size, max_side)
    with torch.no_grad():
        if size is not None:
            x = F.interpolate(lightness, size=size, mode="bilinear", align_corners=False, antialias=True)
        else:
            pad_h, pad_w = -height % MULTIPLE, -width % MULTIPLE
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(lightness, (0, pad_w, 0, pad_h), mode=mode)
        ab = _predict_ab(net, x, temperature)
        # resized input: ab covers the whole image; padded input: upsample to the padded size, crop
        out_size = (height, width) if size is not None else tuple(x.shape[-2:])
        ab = F.interpolate(ab, size=out_size, mode="bilinear", align_corners=False)
        return ab[..., :height, :width]


def colorize_rgb(
    net: Net,
    rgb: Tensor,
    temperature: float = DEFAULT_TEMPERATURE,
    process_size: int | None = None,
    max_side: int = MAX_SIDE,
) -> Tensor:
    """Colorized ``N x 3 x H x W`` sRGB in [0, 1] from uint8 or float (in [0, 1]) ``rgb``.

    Only the lightness of ``rgb`` is used: the result combines the original full-resolution L with
    the predicted ab (see :func:`colorize_lightness`), converted to sRGB and clamped.
    """
    check_image_batch(rgb, "rgb", 3)
    with torch.no_grad():
        lightness = rgb_to_lightness(rgb)  # uint8: the pretraining input, bit for bit
        ab = colorize_lightness(net, lightness, temperature, process_size, max_side)
        return lab_to_rgb(torch.cat((lightness, ab.to(lightness.dtype)), dim=1)).clamp(0.0, 1.0)


def read_rgb_or_skip(path: Path, max_pixels: int | None = MAX_PIXELS) -> np.ndarray | None:
    """The image at ``path`` as H x W x 3 uint8, read as training reads it (:func:`.data.decode.load_rgb`:
    upright, alpha composited on white, 16-bit scaled), or None with one warning naming it: for a
    broken file, or one declaring more than ``max_pixels`` pixels (refused before decoding)."""
    try:
        return np.array(load_rgb(path, max_pixels=max_pixels))  # writable: torch.from_numpy warns otherwise
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        reason = str(e) if isinstance(e, ImageTooLargeError) else f"cannot read it as an image ({e})"
        warnings.warn(f"skipping {path}: {reason}", stacklevel=3)
        return None


def _output_paths(paths: Sequence[Path], out_dir: Path, suffix: str) -> list[Path]:
    """``out_dir / <stem><suffix>.png`` for each input; raises if two coincide or one is an input."""
    outputs = [Path(out_dir) / f"{Path(p).stem}{suffix}.png" for p in paths]
    seen: dict[Path, Path] = {}
    inputs = {Path(p).resolve() for p in paths}
    for src, out in zip(paths, outputs, strict=True):
        key = out.resolve()
        if key in seen:
            raise ValueError(f"{seen[key]} and {src} would both be written to {out}; colorize them apart")
        if key in inputs:
            raise ValueError(f"writing {out} would overwrite an input; choose another out_dir or suffix")
        seen[key] = Path(src)
    return outputs


def colorize_files(
    net: Net,
    paths: Sequence[Path],
    out_dir: Path,
    temperature: float = DEFAULT_TEMPERATURE,
    process_size: int | None = 256,
    suffix: str = "_color",
    device: torch.device | str = "cpu",
    max_side: int = MAX_SIDE,
    max_pixels: int | None = MAX_PIXELS,
) -> list[Path]:
    """Colorize image files one at a time at full resolution; write ``<stem><suffix>.png`` into out_dir.

    Files are read with Pillow (EXIF orientation applied, converted to RGB: colour inputs are
    re-colorized from their lightness). A file that cannot be read, or that declares more than
    ``max_pixels`` pixels, is skipped with a warning naming it (see :func:`read_rgb_or_skip`); the
    net sees at most ``max_side`` pixels on a side (:func:`process_shape`). Tensors go to ``device``;
    ``net`` must already be there, in eval mode. Returns the written paths, in input order.
    """
    from .progress import progress_bar  # Lightning and matplotlib: imported when needed, not for --help
    from .viz import save_png, to_uint8

    _check_sizes(process_size, max_side)
    outputs = _output_paths(paths, out_dir, suffix)
    written = []
    for path, out in progress_bar(zip(paths, outputs, strict=True), len(paths), "colorize", "photo"):
        pixels = read_rgb_or_skip(Path(path), max_pixels)
        if pixels is None:
            continue
        rgb = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).to(device)
        colour = colorize_rgb(net, rgb, temperature, process_size, max_side)
        written.append(save_png(to_uint8(colour[0]), out))
    return written
