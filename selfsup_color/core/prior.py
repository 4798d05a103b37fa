"""The empirical ab prior p~ over the Q bins, Gaussian-smoothed (Zhang et al., Sec. 2.2).

Counting. Every pixel adds one to the count of its *nearest* bin (hard assignment), so the counts
are exact int64 integers: accumulating in any number of batches, or on any number of DDP ranks
followed by an all-reduce, gives bit-for-bit the single-process result. Pixels are taken at the
network's output resolution, ``ab[..., ::stride, ::stride]`` (stride 4 for the reference model).

Smoothing. With bin centres c_q and ``K[q, j] = exp(-|c_q - c_j|^2 / (2 sigma^2))`` normalised so
that every column sums to 1, the smoothed prior is ``p~ = K c / sum(K c)``: each bin's mass is
spread over its neighbours (a neighbour 10 ab units away gets exp(-2) of the centre's share when
sigma = 5) and the total mass is conserved. ``sigma = 0`` means no smoothing.

Files. :func:`save_prior` writes a small, human-readable JSON record (:class:`Prior`: the prior,
the counts and how they were obtained); :func:`load_prior` reads it back, checking every key.
:func:`load_prior_table` reads the plain one-probability-per-line tables of ``shared/reference``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor

from ..distributed import in_process_group
from ..io import write_text_atomic
from .bins import Q, ab_bins
from .checks import check_bin_vector, check_finite, check_float_batch, check_image_batch, check_prior
from .color import colourful, rgb_to_ab
from .encode import nearest_bin
from .targets import OUTPUT_STRIDE

FORMAT_VERSION = 1
"""Version of the JSON prior file format written by :func:`save_prior`."""

_TALLIES = ("n_images", "n_pixels", "n_gray_skipped")


def smoothing_kernel(sigma: float, device: torch.device | str | None = None) -> Tensor:
    """The ``Q x Q`` float64 kernel K: Gaussian in ab distance, every column summing to 1."""
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0 (0: no smoothing), got {sigma}")
    if sigma == 0:
        return torch.eye(Q, dtype=torch.float64, device=device)
    centres = ab_bins(device, torch.float64)
    k = torch.exp(-torch.cdist(centres, centres).square() / (2 * sigma**2))
    return k / k.sum(dim=0, keepdim=True)


def smooth_prior(counts_or_probs: Tensor, sigma: float = 5.0) -> Tensor:
    """Smoothed prior ``K c / sum(K c)`` (float64, sums to 1) from counts or probabilities ``c``."""
    check_bin_vector(counts_or_probs, "counts_or_probs")
    c = counts_or_probs.to(torch.float64)
    if not bool(c.sum() > 0):
        raise ValueError("counts_or_probs is all zero: no pixel was counted, so there is no prior")
    p = smoothing_kernel(sigma, c.device) @ c
    return p / p.sum()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# Allowed JSON types of every field of a Prior file (lists checked separately).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "sigma": (int, float),
    "n_images": (int,),
    "n_pixels": (int,),
    "n_gray_skipped": (int,),
    "stride": (int,),
    "source": (str,),
    "n_unreadable": (int,),
    "created": (str,),
    "version": (int,),
}
_FIELDS = ("prior", "counts", *_FIELD_TYPES)
_OPTIONAL = {"counts", "sigma", "n_images", "n_pixels", "n_gray_skipped", "stride", "n_unreadable", "created"}
_ADDED = {"n_unreadable"}
"""Keys added to format version 1 later: files written before them lack them and load them as None."""


def _check_json_value(key: str, value: Any) -> None:
    if value is None:
        if key not in _OPTIONAL:
            raise ValueError(f"field {key!r} must not be null")
        return
    if key in ("prior", "counts"):
        if not isinstance(value, list):
            raise ValueError(f"field {key!r} must be a list of {Q} numbers")
        if len(value) != Q:
            raise ValueError(f"field {key!r} must hold {Q} numbers (one per bin), holds {len(value)}")
        kinds = (int,) if key == "counts" else (int, float)
        if not all(isinstance(v, kinds) and not isinstance(v, bool) for v in value):
            raise ValueError(f"field {key!r} must hold only {'integers' if key == 'counts' else 'numbers'}")
    elif isinstance(value, bool) or not isinstance(value, _FIELD_TYPES[key]):
        raise ValueError(f"field {key!r} has the wrong type {type(value).__name__}")


@dataclasses.dataclass(frozen=True, eq=False)
class Prior:
    """A prior over the Q bins and how it was made; ``None`` marks metadata a table does not give.

    ``n_images`` and ``n_pixels`` are the counted images and pixels (after subsampling by
    ``stride``); grayscale images left out are in ``n_gray_skipped``, and files that could not be
    read in ``n_unreadable`` (None in files written before it was recorded).
    """

    prior: Tensor
    counts: Tensor | None
    sigma: float | None
    n_images: int | None
    n_pixels: int | None
    n_gray_skipped: int | None
    stride: int | None
    source: str
    n_unreadable: int | None = None
    created: str | None = dataclasses.field(default_factory=_now)
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        check_prior(self.prior, "prior")
        object.__setattr__(self, "prior", self.prior.detach().to("cpu", torch.float64))
        if self.counts is not None:
            check_bin_vector(self.counts, "counts")
            if self.counts.dtype != torch.int64:
                raise TypeError(f"counts must be int64, got {self.counts.dtype}")
            object.__setattr__(self, "counts", self.counts.detach().cpu())
        for key in _FIELD_TYPES:
            _check_json_value(key, getattr(self, key))
        if self.sigma is not None:
            if not (math.isfinite(self.sigma) and self.sigma >= 0):
                raise ValueError(f"field 'sigma' must be a finite number >= 0, got {self.sigma}")
            object.__setattr__(self, "sigma", float(self.sigma))
        if self.version != FORMAT_VERSION:
            raise ValueError(
                f"unsupported prior format version {self.version}; this code reads {FORMAT_VERSION}"
            )


def save_prior(record: Prior, path: str | os.PathLike[str]) -> None:
    """Write ``record`` as JSON (plain numbers, exact float64 round trip), atomically: concurrent writers
    never share a temporary file (:func:`~selfsup_color.io.write_text_atomic`)."""
    data: dict[str, Any] = {f: getattr(record, f) for f in _FIELDS}
    data["prior"] = record.prior.tolist()
    data["counts"] = None if record.counts is None else record.counts.tolist()
    write_text_atomic(path, json.dumps(data, indent=1))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise ValueError(f"duplicate key {k!r}")
    return dict(pairs)


def load_prior(path: str | os.PathLike[str]) -> Prior:
    """Read a :func:`save_prior` file; a bad, unknown or missing key raises ``ValueError``."""
    try:
        data = json.loads(Path(path).read_text(), object_pairs_hook=_no_duplicates)
        if not isinstance(data, dict):
            raise ValueError("the file must hold a JSON object")
        unknown = sorted(set(data) - set(_FIELDS))
        missing = [f for f in _FIELDS if f not in data and f not in _ADDED]
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} (allowed: {', '.join(_FIELDS)})")
        if missing:
            raise ValueError(f"missing key {missing[0]!r}")
        for key in ("prior", "counts"):
            _check_json_value(key, data[key])
        kw = {key: data.get(key) for key in _FIELDS}
        kw["prior"] = torch.tensor(data["prior"], dtype=torch.float64)
        if data["counts"] is not None:
            kw["counts"] = torch.tensor(data["counts"], dtype=torch.int64)
        return Prior(**kw)
    except (ValueError, TypeError) as e:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"invalid prior file {path}: {e}") from e


def load_prior_table(path: str | os.PathLike[str], sigma: float | None = None) -> Prior:
    """Read a plain table: one probability per line, ``#`` comments; ``counts`` is None."""
    values = []
    try:
        for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
            text = line.split("#", 1)[0].strip()
            if text:
                try:
                    values.append(float(text))
                except ValueError:
                    raise ValueError(f"line {n} is not a number: {text!r}") from None
        return Prior(
            prior=torch.tensor(values, dtype=torch.float64),
            counts=None,
            sigma=sigma,
            n_images=None,
            n_pixels=None,
            n_gray_skipped=None,
            stride=None,
            source=str(path),
            created=None,
        )
    except (ValueError, TypeError) as e:
        raise ValueError(f"invalid prior table {path}: {e}") from e


class PriorEstimator:
    """Accumulates exact nearest-bin counts of ab pixels, in constant memory, on ``device``.

    Images are subsampled to ``ab[..., ::stride, ::stride]``. An image is grayscale when none of
    its (subsampled) pixels has ``|a|`` or ``|b|`` above ``gray_threshold``; with ``skip_gray``
    such images are not counted, only tallied in ``n_gray_skipped``. Under DDP every rank updates
    with its share, then calls :meth:`all_reduce` once. ``device`` (default CPU) holds the counts;
    the bin search runs on the input's device.
    """

    def __init__(
        self,
        sigma: float = 5.0,
        stride: int = OUTPUT_STRIDE,
        skip_gray: bool = True,
        gray_threshold: float = 5.0,
        device: torch.device | str | None = None,
    ) -> None:
        smoothing_kernel(sigma)  # validates sigma now rather than at the end of a long pass
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride!r}")
        if not (math.isfinite(gray_threshold) and gray_threshold >= 0):
            raise ValueError(f"gray_threshold must be a finite number >= 0, got {gray_threshold}")
        self.sigma = float(sigma)
        self.stride = stride
        self.skip_gray = bool(skip_gray)
        self.gray_threshold = float(gray_threshold)
        self.device = torch.device(device if device is not None else "cpu")
        self._counts = torch.zeros(Q, dtype=torch.int64, device=self.device)
        self._tallies = torch.zeros(len(_TALLIES), dtype=torch.int64, device=self.device)
        self._reduced = False

    @property
    def counts(self) -> Tensor:
        """The int64 nearest-bin counts, shape ``(Q,)`` (a copy)."""
        return self._counts.clone()

    @property
    def n_images(self) -> int:
        """Images counted (grayscale images that were skipped excluded)."""
        return int(self._tallies[0])

    @property
    def n_pixels(self) -> int:
        """Pixels counted, after subsampling."""
        return int(self._tallies[1])

    @property
    def n_gray_skipped(self) -> int:
        """Grayscale images seen but not counted."""
        return int(self._tallies[2])

    def _config(self) -> dict[str, Any]:
        return {
            "stride": self.stride,
            "skip_gray": self.skip_gray,
            "gray_threshold": self.gray_threshold,
        }

    def _check_not_reduced(self) -> None:
        if self._reduced:
            raise RuntimeError(
                "this estimator was already all-reduced: updating or reducing it again would count "
                "other ranks' pixels twice; reduce once, after the last update"
            )

    def update_ab(self, ab: Tensor) -> None:
        """Count every ``stride``-th pixel of ``N x 2 x H x W`` float ab maps (Lab units)."""
        check_float_batch(ab, "ab", 2)
        self._count(ab[..., :: self.stride, :: self.stride])

    def update_rgb(self, rgb: Tensor) -> None:
        """Count an ``N x 3 x H x W`` sRGB batch, uint8 or float in [0, 1].

        The ab are :func:`~selfsup_color.core.color.rgb_to_ab`'s, the very values the loss encodes
        (:class:`~selfsup_color.core.targets.TargetBuilder` with the same stride): uint8 through the
        same tables, floats in float32.
        """
        check_image_batch(rgb, "rgb", 3)
        self._count(rgb_to_ab(rgb, self.stride))

    def _count(self, ab: Tensor) -> None:
        """Add the nearest-bin histogram of already subsampled ab maps."""
        check_finite(ab, "ab")
        self._check_not_reduced()
        coloured = colourful(ab, self.gray_threshold)
        keep = coloured if self.skip_gray else torch.ones_like(coloured)
        idx = torch.where(keep[:, None, None], nearest_bin(ab), Q)  # skipped images -> bin Q
        hist = torch.bincount(idx.flatten(), minlength=Q + 1)[:Q]
        kept = keep.sum()
        tallies = torch.stack((kept, kept * ab.shape[2] * ab.shape[3], (~keep).sum()))
        self._counts += hist.to(self.device)
        self._tallies += tallies.to(self.device)

    def all_reduce(self) -> PriorEstimator:
        """Sum counts and tallies over the ranks of the default process group (no-op without one).

        Works with gloo (any device) and nccl (CPU-held counts travel through the current CUDA
        device). Call it once, after the last update, on every rank.
        """
        if not in_process_group():
            return self
        self._check_not_reduced()
        buf = torch.cat((self._counts, self._tallies))
        if dist.get_backend() == dist.Backend.NCCL and buf.device.type != "cuda":
            buf = buf.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        buf = buf.to(self.device)
        self._counts.copy_(buf[:Q])
        self._tallies.copy_(buf[Q:])
        self._reduced = True
        return self

    def prior(self) -> Tensor:
        """The smoothed prior (float64, shape ``(Q,)``, sums to 1)."""
        if self.n_pixels == 0:
            raise ValueError(
                f"no pixel was counted ({self.n_gray_skipped} grayscale images skipped): "
                "call update_rgb or update_ab with colour images before asking for the prior"
            )
        return smooth_prior(self._counts, self.sigma)

    def to_record(self, source: str = "") -> Prior:
        """The prior with its counts and metadata, ready for :func:`save_prior`."""
        return Prior(
            prior=self.prior(),
            counts=self.counts,
            sigma=self.sigma,
            n_images=self.n_images,
            n_pixels=self.n_pixels,
            n_gray_skipped=self.n_gray_skipped,
            stride=self.stride,
            source=source,
        )

    def state_dict(self) -> dict[str, Any]:
        """Counts, tallies and configuration, on the CPU, for resuming."""
        tallies = dict(zip(_TALLIES, self._tallies.tolist(), strict=True))
        return {"counts": self.counts.cpu(), **tallies, **self._config(), "reduced": self._reduced}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; the counting configuration must match this one."""
        expected = {"counts", *_TALLIES, *self._config(), "reduced"}
        if set(state) != expected:
            raise ValueError(f"state keys {sorted(state)} differ from the expected {sorted(expected)}")
        config = {k: state[k] for k in self._config()}
        if config != self._config():
            raise ValueError(
                f"state was counted with {config}, this estimator uses {self._config()}; "
                "counts made with different settings cannot be mixed"
            )
        counts = state["counts"]
        check_bin_vector(counts, "state['counts']")
        if counts.dtype != torch.int64:
            raise TypeError(f"state['counts'] must be int64, got {counts.dtype}")
        self._counts.copy_(counts)
        self._tallies.copy_(torch.tensor([int(state[k]) for k in _TALLIES]))
        self._reduced = bool(state["reduced"])


def estimate_prior(
    batches: Iterable[Tensor | Sequence[Tensor]],
    kind: Literal["rgb", "ab"] = "rgb",
    sigma: float = 5.0,
    stride: int = OUTPUT_STRIDE,
    skip_gray: bool = True,
    max_images: int | None = None,
    source: str = "",
    gray_threshold: float = 5.0,
) -> Prior:
    """The prior of ``batches`` in one pass (``kind`` "rgb": as :meth:`PriorEstimator.update_rgb`
    takes; "ab": as :meth:`PriorEstimator.update_ab` takes).

    Memory stays constant. With ``max_images`` the pass stops once that many images (counted or
    skipped as grayscale) were read, without drawing another batch. A ``(images, labels, ...)``
    tuple or list, as data loaders yield, stands for its first element.
    """
    if kind not in ("rgb", "ab"):
        raise ValueError(f"kind must be 'rgb' or 'ab', got {kind!r}")
    if max_images is not None and (isinstance(max_images, bool) or max_images < 1):
        raise ValueError(f"max_images must be None or a positive integer, got {max_images!r}")
    est = PriorEstimator(sigma=sigma, stride=stride, skip_gray=skip_gray, gray_threshold=gray_threshold)
    update = est.update_rgb if kind == "rgb" else est.update_ab
    seen = 0
    for batch in batches:
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        if max_images is not None:
            batch = batch[: max_images - seen]
        update(batch)
        seen += batch.shape[0]
        if max_images is not None and seen >= max_images:
            break
    return est.to_record(source)
