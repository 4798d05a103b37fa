"""Colorization with any timm CNN backbone that has ``forward_intermediates``, plus a light decoder head.

The backbone is built with ``pretrained=False`` (never downloaded) and ``in_chans=1``. Its
``output_stride`` (8, 16 or 32) is timm's: stages past that stride are dilated instead of strided, as
Goyal et al. (2019) train ResNet-50 colorization with the last stage at stride 1 (output stride 8);
32 leaves the backbone untouched (and is not passed to timm, so backbones without the option work).

Taps are the model's ``feature_info`` modules: for ResNets ``act1, layer1..layer4`` are renamed
``stem, layer1..layer4``; other backbones keep timm's module names with dots replaced by underscores
(e.g. ``stages_0`` for ConvNeXt). Strides are ``feature_info`` reductions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from ..core.bins import Q
from ..core.targets import OUTPUT_STRIDE
from .base import ColorizationNet
from .head import FusionHead
from .init import check_scheme, init_weights

BACKBONE_OUTPUT_STRIDES: tuple[int, ...] = (8, 16, 32)
"""Valid values of ``output_stride``."""
RESNET_MODULES = ("act1", "layer1", "layer2", "layer3", "layer4")
RESNET_TAPS = ("stem", "layer1", "layer2", "layer3", "layer4")
SKIP_STRIDE = OUTPUT_STRIDE
"""Stride of the feature concatenated in the head (the logits' stride)."""


def tap_names_for(module_names: Sequence[str]) -> tuple[str, ...]:
    """Tap names of timm ``feature_info`` module names."""
    if tuple(module_names) == RESNET_MODULES:
        return RESNET_TAPS
    return tuple(name.replace(".", "_") for name in module_names)


def create_backbone(name: str, output_stride: int) -> nn.Module:
    """A 1-channel, randomly initialised timm model, pruned to its ``feature_info`` taps.

    Its classifier and final norm are pruned (``prune_intermediate_layers``), leaving the modules a
    ``features_only`` extractor keeps: the same parameters, under the model's own names. ValueError
    when timm cannot build it or it lacks ``forward_intermediates``.
    """
    import timm  # slow to import: only when a timm model is built

    if not timm.is_model(name):
        raise ValueError(f"unknown timm backbone {name!r}; see timm.list_models() for the valid names")
    options = {} if output_stride == 32 else {"output_stride": output_stride}
    try:
        model = timm.create_model(name, pretrained=False, num_classes=0, in_chans=1, **options)
    except (RuntimeError, TypeError, AssertionError, ValueError) as error:
        raise ValueError(
            f"timm backbone {name!r} cannot be built as a 1-channel model "
            f"with output_stride={output_stride}: {error}"
        ) from error
    if not hasattr(model, "forward_intermediates") or not getattr(model, "feature_info", None):
        raise ValueError(f"timm backbone {name!r} has no forward_intermediates; choose a CNN that has")
    model.prune_intermediate_layers(len(model.feature_info), prune_norm=True, prune_head=True)
    return model


class TimmColorizer(ColorizationNet):
    """A timm backbone (taps from its ``feature_info``) and a :class:`~.head.FusionHead` to Q logits.

    The head fuses the deepest feature with the deepest stride-4 one (none: the deep feature alone)
    and outputs exactly H/4 x W/4. ``output_stride`` is the *backbone's* (kept as
    ``backbone_output_stride``); the logits' stride, ``self.output_stride``, is always 4.
    :meth:`forward_features` runs the backbone no further than the deepest tap asked for (timm's
    ``forward_intermediates`` with ``stop_early``).
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        output_stride: int = 32,
        head_channels: int = 256,
        init: str = "kaiming",
        num_outputs: int = Q,
    ) -> None:
        super().__init__()
        if output_stride not in BACKBONE_OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be one of {BACKBONE_OUTPUT_STRIDES}, got {output_stride}")
        self.init = check_scheme(init)
        self.backbone_name = backbone
        self.backbone_output_stride = output_stride
        self.backbone = create_backbone(backbone, output_stride)
        info = self.backbone.feature_info
        self.tap_names = tap_names_for([tap["module"] for tap in info])
        self._channels = {name: tap["num_chs"] for name, tap in zip(self.tap_names, info, strict=True)}
        self._strides = {name: tap["reduction"] for name, tap in zip(self.tap_names, info, strict=True)}
        skips = [name for name in self.tap_names if self._strides[name] == SKIP_STRIDE]
        self.skip_tap = skips[-1] if skips else None
        skip_channels = self._channels[self.skip_tap] if self.skip_tap else None
        self.head = FusionHead(self._channels[self.tap_names[-1]], skip_channels, head_channels, num_outputs)
        init_weights(self, init)

    def tap_channels(self) -> dict[str, int]:
        return dict(self._channels)

    def tap_strides(self) -> dict[str, int]:
        return dict(self._strides)

    def upgrade_state_dict(self, state: Mapping[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
        """Until 2026-12-07 the backbone was timm's ``features_only`` wrapper, which flattened the model's
        top-level sequential stages (``backbone.stages_0.*``); today's keys are the model's own
        (``backbone.stages.0.*``). Renames a key only when the old name is present and the new absent."""
        renamed = {}
        for key in self.state_dict():
            parts = key.split(".")
            if parts[0] == "backbone" and len(parts) > 3 and parts[2].isdigit():
                old = ".".join(["backbone", f"{parts[1]}_{parts[2]}", *parts[3:]])
                renamed[prefix + old] = prefix + key
        return {renamed[k] if k in renamed and renamed[k] not in state else k: v for k, v in state.items()}

    def _extract(self, x: Tensor, depth: int) -> list[Tensor]:
        return self.backbone.forward_intermediates(
            x, indices=list(range(depth)), stop_early=True, intermediates_only=True
        )

    def _predict(self, features: dict[str, Tensor], size: tuple[int, int]) -> Tensor:
        skip = features[self.skip_tap] if self.skip_tap else None
        return self.head(features[self.tap_names[-1]], skip, size)
