"""Small networks shared by the model tests (CPU-sized: narrow, 64 px inputs)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from selfsup_color.models import ECCV16, AlexNet, ColorizationNet, TimmColorizer

SMALL_MODELS: dict[str, Callable[[], ColorizationNet]] = {
    "eccv16": lambda: ECCV16(width=1 / 8),
    "alexnet": lambda: AlexNet(width=1 / 8),
    "resnet18": lambda: TimmColorizer("resnet18", head_channels=32),
    "convnext_atto": lambda: TimmColorizer("convnext_atto", head_channels=32),
}
"""Name -> factory of a small network of each kind of body."""

DEEPEST_MODULE: dict[str, Callable[[ColorizationNet], nn.Module]] = {
    "eccv16": lambda model: model.conv7,
    "alexnet": lambda model: model.fc7,
    "resnet18": lambda model: model.backbone.layer4,
    "convnext_atto": lambda model: model.backbone.stages[3],
}
"""Name -> the module computing the deepest tap of that network."""


@pytest.fixture(scope="module", params=list(SMALL_MODELS))
def small_model(request: pytest.FixtureRequest) -> tuple[str, ColorizationNet]:
    """(name, network) for each small network, in eval mode."""
    torch.manual_seed(0)
    return request.param, SMALL_MODELS[request.param]().eval()


def lightness(height: int = 64, width: int = 64, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A random N x 1 x H x W lightness batch with L in [0, 100]."""
    return 100 * torch.rand(batch, 1, height, width, generator=torch.Generator().manual_seed(seed))
