"""The interface every colorization network implements, and the narrower one transfer learning uses.

A network takes CIE lightness ``L`` in [0, 100] (N x 1 x H x W, not normalised: it applies
:func:`~.normalize.normalize_lightness`, ``(L - 50) / 100``, itself) and returns Q = 313 logits at
1/``output_stride`` of the input resolution (4; 8 for the AlexNet). Its intermediate feature maps
("taps") are named, ordered shallow to deep, and can be read without running the rest of the network.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from torch import Tensor, nn

from ..core.checks import check_float_batch
from ..core.targets import OUTPUT_STRIDE
from .normalize import normalize_lightness


@runtime_checkable
class FeatureEncoder(Protocol):
    """What transfer learning needs from a network: named feature maps with known channels and strides."""

    tap_names: tuple[str, ...]

    def forward_features(self, lightness: Tensor, taps: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Feature maps of the requested taps (all if None), shallow to deep."""
        ...

    def tap_channels(self) -> dict[str, int]:
        """Channels of each tap."""
        ...

    def tap_strides(self) -> dict[str, int]:
        """Spatial reduction of each tap relative to the input."""
        ...


class ColorizationNet(nn.Module, ABC):
    """Abstract base: lightness in, Q logits at 1/``output_stride`` resolution out, plus named taps.

    Subclasses set ``tap_names`` and implement :meth:`_predict` (taps to logits), :meth:`tap_channels`
    and :meth:`tap_strides`; :meth:`_extract` (run the body up to a tap) runs the submodules named
    after the taps unless overridden.
    """

    tap_names: tuple[str, ...] = ()
    """Feature taps, ordered shallow -> deep."""
    output_stride: int = OUTPUT_STRIDE
    """The logits are at 1/output_stride of the input resolution."""
    input_multiple: int = 4
    """:meth:`forward` requires H and W to be multiples of this (4: an exact H/4 x W/4 output)."""

    def forward(self, lightness: Tensor) -> Tensor:
        """Logits ``N x Q x h x w`` of the lightness ``N x 1 x H x W`` (L in [0, 100]).

        ``h = ceil(H / output_stride)`` and ``w = ceil(W / output_stride)``: the size of the targets.
        """
        check_float_batch(lightness, "lightness", 1)
        height, width = lightness.shape[-2:]
        if height % self.input_multiple or width % self.input_multiple:
            raise ValueError(
                f"{type(self).__name__} needs H and W to be multiples of {self.input_multiple}, "
                f"got {height} x {width}; crop or pad the input"
            )
        features = self._extract(normalize_lightness(lightness), len(self.tap_names))
        # ceil: the size of ab[..., ::stride, ::stride], the targets (H / stride when it divides H)
        size = (-(-height // self.output_stride), -(-width // self.output_stride))
        return self._predict(dict(zip(self.tap_names, features, strict=True)), size)

    def forward_features(self, lightness: Tensor, taps: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Feature maps of the requested taps (all if None), ordered shallow -> deep.

        Only the network up to the deepest requested tap is run. ``taps`` may also be a single name.
        Raises KeyError for an unknown tap name.
        """
        check_float_batch(lightness, "lightness", 1)
        wanted = self.select_taps(taps)
        if not wanted:
            return {}
        depth = self.tap_names.index(wanted[-1]) + 1
        extracted = self._extract(normalize_lightness(lightness), depth)
        features = dict(zip(self.tap_names[:depth], extracted, strict=True))
        return {name: features[name] for name in wanted}

    def select_taps(self, taps: Sequence[str] | str | None) -> list[str]:
        """The requested taps, validated, deduplicated and ordered shallow -> deep."""
        if taps is None:
            return list(self.tap_names)
        requested = {taps} if isinstance(taps, str) else set(taps)
        unknown = sorted(requested.difference(self.tap_names))
        if unknown:
            raise KeyError(
                f"unknown tap(s) {unknown} for {type(self).__name__}; valid taps: {self.tap_names}"
            )
        return [name for name in self.tap_names if name in requested]

    @abstractmethod
    def tap_channels(self) -> dict[str, int]:
        """Channels of each tap."""

    @abstractmethod
    def tap_strides(self) -> dict[str, int]:
        """Spatial reduction of each tap relative to the input."""

    def upgrade_state_dict(self, state: Mapping[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
        """``state`` (this network's weights under ``prefix``) with keys that earlier releases wrote
        renamed to today's, so that old checkpoints still load strictly. Default: unchanged."""
        return dict(state)

    def _extract(self, x: Tensor, depth: int) -> list[Tensor]:
        """Feature maps of the first ``depth`` taps of the normalised input ``x``, computing no further.

        Default: the submodules named after the taps, run in order, each on the previous one's output.
        """
        features = []
        for name in self.tap_names[:depth]:
            x = self.get_submodule(name)(x)
            features.append(x)
        return features

    @abstractmethod
    def _predict(self, features: dict[str, Tensor], size: tuple[int, int]) -> Tensor:
        """Logits of size ``size`` from all the taps."""
