"""sRGB (D65) <-> CIE Lab on batched tensors, matching ``skimage.color.rgb2lab`` / ``lab2rgb``.

Every function is differentiable and stays on the input's device. Piecewise curves are written with
``clamp`` instead of ``where`` so that no branch produces NaN gradients and the ops stay fusable.

The one path from images to what a network sees and what the loss encodes: :func:`rgb_to_lightness`
(the network input: pretraining, transfer, colorize, evaluate) and :func:`rgb_to_ab` (the ground truth:
the targets, the prior, evaluate). 8-bit images go through look-up tables (:func:`uint8_tables`);
:class:`~selfsup_color.core.targets.TargetBuilder` runs the same functions in stages.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .checks import check_float_batch, check_floating, check_image_batch, check_range, compute_dtype

# sRGB primaries -> XYZ (D65, 2 degree observer), the same matrix as scikit-image.
XYZ_FROM_RGB: tuple[tuple[float, ...], ...] = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
WHITE_D65: tuple[float, float, float] = (0.95047, 1.0, 1.08883)

_SRGB_KNEE = 0.04045  # encoded value where the sRGB curve turns from linear to power
_SRGB_KNEE_LINEAR = 0.0031308  # the same knee in linear light
_LAB_EPS = 0.008856  # (6/29)^3: knee of the Lab companding function
_LAB_SLOPE = 7.787  # slope of its linear segment
_LAB_DELTA = 0.2068966  # 6/29: the knee after companding


def srgb_to_linear(v: Tensor) -> Tensor:
    """Undo the sRGB transfer curve (float input in [0, 1])."""
    power = ((v.clamp(min=_SRGB_KNEE) + 0.055) / 1.055).pow(2.4)
    return power + (v.clamp(max=_SRGB_KNEE) - _SRGB_KNEE) / 12.92


def linear_to_srgb(v: Tensor) -> Tensor:
    """Apply the sRGB transfer curve (no clipping)."""
    power = 1.055 * v.clamp(min=_SRGB_KNEE_LINEAR).pow(1 / 2.4) - 0.055
    return power + 12.92 * (v.clamp(max=_SRGB_KNEE_LINEAR) - _SRGB_KNEE_LINEAR)


def cbrt_newton(t: Tensor, iterations: int = 3) -> Tensor:
    """Cube root of t in [(6/29)^3, 1.1] by Newton steps on t^(-1/3).

    Starts from 0.7689 t^(-1/4) + 0.2311 t^(-1/2) (within 2.7% on that range); three steps reach
    float32 rounding. Multiplies and adds only (plus rsqrt and sqrt), so it vectorises where ``pow``
    does not. For companding colours of bounded sRGB input.
    """
    inv_sqrt = t.rsqrt()
    r = 0.7689 * inv_sqrt.sqrt() + 0.2311 * inv_sqrt
    for _ in range(iterations):
        r = r * (4.0 - t * r * r * r) * (1.0 / 3.0)
    return t * r * r


def lab_compand(t: Tensor, fast: bool = False) -> Tensor:
    """The CIE Lab function f(t): cube root above (6/29)^3, linear below.

    ``fast`` uses :func:`cbrt_newton`, valid for t <= ~1.1 (colours of sRGB in [0, 1]).
    """
    knee = t.clamp(min=_LAB_EPS)
    root = cbrt_newton(knee) if fast else knee.pow(1 / 3)
    return root + _LAB_SLOPE * (t.clamp(max=_LAB_EPS) - _LAB_EPS)


def lab_expand(f: Tensor) -> Tensor:
    """Inverse of :func:`lab_compand`."""
    cube = f.clamp(min=_LAB_DELTA).pow(3)
    return cube + (f.clamp(max=_LAB_DELTA) - _LAB_DELTA) / _LAB_SLOPE


RGB_FROM_XYZ: tuple[tuple[float, ...], ...] = tuple(
    tuple(row) for row in torch.linalg.inv(torch.tensor(XYZ_FROM_RGB, dtype=torch.float64)).tolist()
)


def _matrix(inverse: bool, device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.tensor(RGB_FROM_XYZ if inverse else XYZ_FROM_RGB, dtype=dtype, device=device)


def _mix(x: Tensor, m: Tensor) -> Tensor:
    """Apply a 3 x 3 colour matrix over the channel dimension of N x 3 x H x W."""
    return torch.einsum("ij,njhw->nihw", m, x)


def _white(x: Tensor) -> Tensor:
    return torch.tensor(WHITE_D65, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)


def linear_rgb_to_lab(lin: Tensor, fast: bool = False) -> Tensor:
    """Linear-light RGB -> Lab (no checks; the building block of :func:`rgb_to_lab`).

    ``fast`` companding is valid for linear RGB in [0, 1] (see :func:`lab_compand`).
    """
    f = lab_compand(_mix(lin, _matrix(False, lin.device, lin.dtype)) / _white(lin), fast)
    fx, fy, fz = f.unbind(1)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=1)


def rgb_to_lab(rgb: Tensor, check: bool = True) -> Tensor:
    """sRGB in [0, 1] (N x 3 x H x W, float) -> CIE Lab (L in [0, 100]), D65 white.

    Half-precision inputs are computed in float32 and returned in their own dtype. With
    ``check`` (the default) NaN or values outside [0, 1] raise a ``ValueError``.
    """
    check_float_batch(rgb, "rgb", 3)
    if check:
        check_range(rgb, "rgb", 0.0, 1.0)
    x = rgb.to(compute_dtype(rgb))
    return linear_rgb_to_lab(srgb_to_linear(x)).to(rgb.dtype)


def rgb_to_lightness(rgb: Tensor, check: bool = True) -> Tensor:
    """sRGB in [0, 1] (N x 3 x H x W, float) or 8-bit codes (uint8) -> CIE L (N x 1 x H x W, [0, 100]).

    The network input of pretraining, bit for bit (:class:`~selfsup_color.core.targets.TargetBuilder`
    runs the same functions; its ``compile=True`` stages may round the last bit differently): uint8
    through the tables of :func:`uint8_tables` (:func:`uint8_luminance`,
    :func:`lightness_from_luminance`), floats as the L channel of :func:`rgb_to_lab`. Floats come
    back in their own dtype (computed in at least float32), uint8 as float32.
    """
    check_image_batch(rgb, "rgb", 3)
    if rgb.dtype == torch.uint8:
        luminance = uint8_luminance(rgb.long(), _cached_tables(rgb.device)[1])
        return lightness_from_luminance(luminance)
    return rgb_to_lab(rgb, check)[:, :1]


def rgb_to_ab(rgb: Tensor, stride: int = 1, check: bool = True) -> Tensor:
    """The ab (N x 2 x h x w) of every ``stride``-th pixel: what the loss encodes.

    uint8 through the tables of :func:`uint8_tables` (:func:`ab_from_linear`), floats in [0, 1] as
    :func:`rgb_to_lab` of the subsampled image in float32. Returns float32. The prior counts these and
    :class:`~selfsup_color.core.targets.TargetBuilder` encodes them, bit for bit.
    """
    check_image_batch(rgb, "rgb", 3)
    if rgb.dtype == torch.uint8:
        codes = rgb[..., ::stride, ::stride].long()
        return ab_from_linear(torch.take(_cached_tables(rgb.device)[0], codes))
    check_floating(rgb, "rgb")
    return rgb_to_lab(rgb[..., ::stride, ::stride].float(), check)[:, 1:]


def _uint8_linear() -> Tensor:
    """The 256 linear-light values of 8-bit sRGB codes, computed in float64."""
    return srgb_to_linear(torch.arange(256, dtype=torch.float64) / 255.0)


def uint8_tables() -> tuple[Tensor, Tensor]:
    """float32 look-up tables of 8-bit codes: linear RGB (256) and each channel's share of Y (3 x 256).

    Computed in float64 and rounded once. The bin search downstream is exact in float32 only: a
    module cast to another dtype must rebuild them (exactly) instead of using cast copies.
    """
    linear = _uint8_linear()
    y_row = torch.tensor(XYZ_FROM_RGB[1], dtype=torch.float64)
    return linear.float(), (y_row[:, None] * linear[None]).float()


_TABLES: dict[torch.device, tuple[Tensor, Tensor]] = {}


def _cached_tables(device: torch.device) -> tuple[Tensor, Tensor]:
    if device not in _TABLES:
        _TABLES[device] = tuple(t.to(device) for t in uint8_tables())  # type: ignore[assignment]
    return _TABLES[device]


def uint8_luminance(
    codes: Tensor, luminance_lut: Tensor, look_up: Callable[..., Tensor] = torch.take
) -> Tensor:
    """Luminance Y (N x H x W) of integer sRGB ``codes`` (N x 3 x H x W), ``luminance_lut`` from
    :func:`uint8_tables`.

    ``look_up(table, codes)`` gathers (``torch.take`` wants int64 codes; indexing takes int32).
    """
    y = look_up(luminance_lut[0], codes[:, 0]) + look_up(luminance_lut[1], codes[:, 1])
    return y + look_up(luminance_lut[2], codes[:, 2])


def lightness_from_luminance(y: Tensor) -> Tensor:
    """CIE L (N x 1 x H x W) of luminance Y (N x H x W, in [0, 1]; fast cube root)."""
    return (116.0 * lab_compand(y, fast=True) - 16.0).unsqueeze(1)


def ab_from_linear(linear: Tensor) -> Tensor:
    """ab (N x 2 x H x W) of linear RGB in [0, 1] (fast cube root)."""
    return linear_rgb_to_lab(linear, fast=True)[:, 1:]


def colourful(ab: Tensor, gray_threshold: float) -> Tensor:
    """N bool: whether any pixel of each ab map has ``|a|`` or ``|b|`` above ``gray_threshold``.

    Images that are not colourful are grayscale: the loss skips them and the prior leaves them out.
    """
    return (ab.abs() > gray_threshold).flatten(1).any(dim=1)


def lab_to_rgb(lab: Tensor, check: bool = True) -> Tensor:
    """CIE Lab (N x 3 x H x W) -> sRGB in [0, 1], D65 white, clipped to the sRGB gamut.

    Like scikit-image, negative Z is clipped to 0 before the XYZ -> RGB step and the result is
    clipped to [0, 1]. With ``check`` NaN or infinite input raises a ``ValueError``.
    """
    check_float_batch(lab, "lab", 3)
    if check:
        check_range(lab, "lab", -float("inf"), float("inf"))
    x = lab.to(compute_dtype(lab))
    L, a, b = x.unbind(1)
    fy = (L + 16.0) / 116.0
    f = torch.stack((fy + a / 500.0, fy, (fy - b / 200.0).clamp(min=0.0)), dim=1)
    xyz = lab_expand(f) * _white(x)
    rgb = linear_to_srgb(_mix(xyz, _matrix(True, x.device, x.dtype)))
    return rgb.clamp(0.0, 1.0).to(lab.dtype)
