"""GlobalBatchNorm2d on one process is BatchNorm2d; conversion keeps every parameter and buffer."""

from __future__ import annotations

import torch
from torch import nn

from selfsup_color.models import build_model
from selfsup_color.models.sync_bn import (
    GlobalBatchNorm2d,
    convert_to_global_batchnorm,
    revert_global_batchnorm,
)


def test_single_process_matches_batchnorm() -> None:
    torch.manual_seed(0)
    plain, synced = nn.BatchNorm2d(3), GlobalBatchNorm2d(3)
    x = torch.randn(4, 3, 5, 5)
    assert torch.equal(plain(x), synced(x))
    assert torch.equal(plain.running_var, synced.running_var)


def test_conversion_round_trip_keeps_the_state() -> None:
    net = build_model("eccv16", width=0.0625)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    converted = convert_to_global_batchnorm(net)
    kinds = [type(m) for m in converted.modules() if isinstance(m, nn.BatchNorm2d)]
    assert kinds and set(kinds) == {GlobalBatchNorm2d}
    assert all(torch.equal(before[k], v) for k, v in converted.state_dict().items())
    reverted = revert_global_batchnorm(converted)
    assert {type(m) for m in reverted.modules() if isinstance(m, nn.BatchNorm2d)} == {nn.BatchNorm2d}
    assert reverted.state_dict().keys() == before.keys()
