"""The GPU benchmark's FLOP count and peak lookup (its timing needs a GPU and is not asserted)."""

from __future__ import annotations

import torch

from experiments.benchmarks.gpu import peak_tflops, training_flops


class OneConv(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1, bias=False)

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        return self.conv(lightness)


def test_training_flops_count_forward_and_weight_gradient() -> None:
    # forward: 2 x (4 outputs x 9 taps) per pixel; backward: the weight gradient costs the same and
    # the input needs no gradient, so the total is twice the forward.
    forward = 2 * 4 * 9 * 8 * 8
    assert training_flops(OneConv(), 8, torch.device("cpu")) == 2 * forward


def test_peak_lookup_prefers_the_override_and_knows_no_cpu_peak() -> None:
    assert peak_tflops(torch.device("cpu"), 12.5) == 12.5
    assert peak_tflops(torch.device("cpu"), None) is None
