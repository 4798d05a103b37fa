"""Pretraining throughput on one GPU: images/s and model FLOP utilisation (MFU) of eccv16 at 176 px.

Real ``Trainer.fit`` steps of :class:`ColorizationModule` (bf16-mixed, channels_last by default) on
in-memory uint8 batches of photo crops, so data loading is left out: the figure is what the device
sustains for the whole step (target preparation, forward, loss, backward, fused Adam).

MFU = (FLOPs of the network's forward + backward per image, counted by
``torch.utils.flop_counter.FlopCounterMode``) x images/s / the device's peak dense bf16 FLOP/s.
The peak comes from a small table of known devices or ``--peak_tflops``.

    python -m experiments.benchmarks.gpu [--batch 40 --steps 30 --warmup 10 --compile]

It runs on a CPU too (for checking the script; pass ``--peak_tflops`` to get an MFU there).
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from jsonargparse import Namespace

from selfsup_color.command import command_parser, parse

from .common import describe_machine, fit_on_batch, photo_batch

PEAK_BF16_TFLOPS = {  # dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets
    "H200": 989.4,
    "H100 SXM": 989.4,
    "H100 80GB HBM3": 989.4,
    "H100 PCIe": 756.0,
    "A100": 312.0,
}


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    """The device's peak dense bf16 TFLOP/s: ``override``, else from :data:`PEAK_BF16_TFLOPS` by name."""
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    return None


def training_flops(net: torch.nn.Module, size: int, device: torch.device) -> float:
    """FLOPs of one image's forward + backward through ``net`` (weights' and activations' gradients)."""
    from torch.utils.flop_counter import FlopCounterMode

    lightness = torch.rand(1, 1, size, size, device=device) * 100
    with FlopCounterMode(display=False) as counter:
        net(lightness).float().sum().backward()
    net.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def measure(args: Namespace) -> dict[str, Any]:
    from selfsup_color import Q
    from selfsup_color.pretrain.module import ColorizationModule

    device = torch.device(args.device)
    module = ColorizationModule(
        arch="eccv16",
        arch_options={"width": args.width},
        channels_last=args.channels_last,
        compile_net=args.compile,
        compile_targets=args.compile,
        log_images_every_n_steps=0,
    )
    module.prior_probs.fill_(1.0 / Q)  # a known prior: no estimation pass
    flops = training_flops(module.net.to(device), args.size, device)
    batch = photo_batch(args.size, args.batch, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    starts = fit_on_batch(module, batch, args.warmup + args.steps + 1, device, precision=args.precision)
    timed = starts[args.warmup :]
    seconds = (timed[-1] - timed[0]) / (len(timed) - 1)
    images_per_s = args.batch / seconds
    peak = peak_tflops(device, args.peak_tflops)
    result: dict[str, Any] = {
        "step_ms": 1e3 * seconds,
        "images_per_s": images_per_s,
        "gflops_per_image": flops / 1e9,
        "achieved_tflops": flops * images_per_s / 1e12,
        "peak_tflops": peak,
        "mfu": flops * images_per_s / (peak * 1e12) if peak else None,
    }
    if device.type == "cuda":
        result["peak_memory_GiB"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def main() -> None:
    parser = command_parser("python -m experiments.benchmarks.gpu", __doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=40, help="images per step (the paper's 40)")
    parser.add_argument("--size", type=int, default=176, help="crop size (the paper's 176)")
    parser.add_argument("--width", type=float, default=1.0, help="eccv16 channel width multiplier")
    parser.add_argument("--precision", default="bf16-mixed")
    parser.add_argument("--no_channels_last", dest="channels_last", action="store_false")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network and targets")
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (and compilation)")
    parser.add_argument("--peak_tflops", type=float, default=None, help="the device's peak, if not known")
    args = parse(
        parser, sys.argv[1:], {"--no-channels-last": "--no_channels_last", "--peak-tflops": "--peak_tflops"}
    )
    print(describe_machine())
    if args.device.startswith("cuda"):
        print(f"device: {torch.cuda.get_device_name(torch.device(args.device))}")
    result = measure(args)
    setting = (
        f"eccv16 width {args.width}, {args.size} px, batch {args.batch}, {args.precision}, "
        f"channels_last {args.channels_last}, compile {args.compile}"
    )
    mfu = f"{100 * result['mfu']:.1f}%" if result["mfu"] is not None else "n/a (unknown peak: --peak_tflops)"
    print(
        f"{setting}: {result['images_per_s']:.1f} images/s ({result['step_ms']:.1f} ms/step), "
        f"{result['gflops_per_image']:.1f} GFLOP per image (fwd+bwd), "
        f"{result['achieved_tflops']:.2f} TFLOP/s achieved, MFU {mfu}"
        + (f", peak memory {result['peak_memory_GiB']:.1f} GiB" if "peak_memory_GiB" in result else "")
    )


if __name__ == "__main__":
    main()
