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


def test_the_script_runs_real_trainer_steps_on_the_cpu() -> None:
    import argparse

    from experiments.benchmarks.gpu import measure

    args = argparse.Namespace(
        device="cpu", width=0.0625, size=32, batch=2, precision="bf16-mixed", channels_last=True,
        compile=False, steps=2, warmup=1, peak_tflops=0.5,
    )  # fmt: skip
    result = measure(args)
    assert result["images_per_s"] > 0 and result["gflops_per_image"] > 0
    assert result["mfu"] == result["achieved_tflops"] / 0.5
