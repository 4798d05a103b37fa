"""Cost of a pretraining step for each recipe's model: images/s, where the time goes, peak memory.

For each model (at its recipe's crop size) a fresh process times, on one in-memory uint8 batch:

- the parts of a step by hand: target preparation (``module.prepare``), the network's forward +
  loss + backward, and the optimiser step;
- real ``Trainer.fit`` steps of the same ``ColorizationModule`` on the same batch (no data loading),
  as wall time per step.

"Outside forward/backward" is measured inside the Lightning steps themselves: 1 - (time in the
network's forward + time from ``on_before_backward`` to ``on_after_backward``) / (time between
batch starts), summed over the timed steps. What remains is target preparation, the loss, the
optimiser, logging and Lightning's own overhead. Peak memory is the process's peak RSS on the CPU
(and ``max_memory_allocated`` on a GPU).

    python -m experiments.benchmarks.training_step [--models quickstart ...] [--steps 10] [--batch N]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from typing import Any

import torch

from selfsup_color.command import command_parser, parse

from .common import describe_machine, device_sync, fit_on_batch, photo_batch

# name: (arch, arch_options, crop, CPU batch, recipe batch per device)
MODELS: dict[str, tuple[str, dict[str, Any], int, int, int]] = {
    "quickstart": ("eccv16", {"width": 0.25}, 64, 16, 16),
    "cifar10_cpu": ("eccv16", {"width": 0.5}, 32, 64, 64),
    "eccv16_imagenet": ("eccv16", {}, 176, 8, 5),
    "resnet50_imagenet": ("timm", {"backbone": "resnet50", "output_stride": 8}, 224, 4, 32),
}


def _timed(fn: Any, device: torch.device) -> float:
    sync = device_sync(device)
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def measure(name: str, steps: int, warmup: int, batch_size: int | None = None) -> dict[str, Any]:
    """Time one model in this process (run it in a fresh one for a clean peak-memory figure)."""
    from lightning.pytorch import Callback

    from selfsup_color import Q
    from selfsup_color.pretrain.module import ColorizationModule, fused_adam

    arch, options, crop, cpu_batch, _ = MODELS[name]
    batch_size = batch_size or cpu_batch
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    module = ColorizationModule(arch=arch, arch_options=options, log_images_every_n_steps=0).to(device)
    module.prior_probs.fill_(1.0 / Q)  # a known prior: no estimation pass
    module.targets.class_weights.fill_(1.0)
    batch = photo_batch(crop, batch_size, device)
    optimizer = fused_adam(list(module.net.parameters()), lr=1e-5)  # as configure_optimizers builds it

    prepared: dict[str, Any] = {}

    def forward_backward() -> None:
        module._loss_and_ab(prepared["targets"], decode=False)[0].backward()  # the module's own loss

    parts: dict[str, list[float]] = {"targets": [], "forward_backward": [], "optimizer": []}
    for i in range(warmup + steps):
        t_targets = _timed(lambda: prepared.update(targets=module.prepare(batch)), device)
        t_fb = _timed(forward_backward, device)
        t_opt = _timed(lambda: (optimizer.step(), optimizer.zero_grad(set_to_none=True)), device)
        if i >= warmup:
            parts["targets"].append(t_targets)
            parts["forward_backward"].append(t_fb)
            parts["optimizer"].append(t_opt)

    sync = device_sync(device)
    net_time: list[float] = []  # forward + backward of the network, inside the Lightning steps

    def timed_forward(lightness: torch.Tensor) -> torch.Tensor:
        sync()
        start = time.perf_counter()
        out = module.net(lightness)
        sync()
        net_time.append(time.perf_counter() - start)
        return out

    class BackwardTimer(Callback):
        def on_before_backward(self, *args: Any) -> None:
            sync()
            self.backward_start = time.perf_counter()

        def on_after_backward(self, *args: Any) -> None:
            sync()
            net_time[-1] += time.perf_counter() - self.backward_start

    object.__setattr__(module, "_forward", timed_forward)
    starts = fit_on_batch(module, batch, warmup + steps + 1, device, [BackwardTimer()])
    gaps = [b - a for a, b in zip(starts[warmup:], starts[warmup + 1 :], strict=False)]
    inside = net_time[warmup : warmup + len(gaps)]
    median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    step = median(gaps)
    result = {
        "model": name,
        "arch": arch,
        "options": options,
        "crop": crop,
        "batch": batch_size,
        "params_M": sum(p.numel() for p in module.net.parameters()) / 1e6,
        "step_ms": 1e3 * step,
        "images_per_s": batch_size / step,
        **{f"{k}_ms": 1e3 * median(v) for k, v in parts.items()},
        "in_step_forward_backward_ms": 1e3 * median(inside),
        "outside_share": 1.0 - sum(inside) / sum(gaps),
        "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if device.type == "cuda":
        result["peak_cuda_MiB"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main() -> None:
    parser = command_parser("python -m experiments.benchmarks.training_step", __doc__)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, help="batch size of every model (default: each its own)")
    parser.add_argument(
        "--one", help="internal: measure one model, print JSON"
    )  # internal: measure one model, print JSON
    args = parse(parser, sys.argv[1:], {})
    if args.one:
        print(json.dumps(measure(args.one, args.steps, args.warmup, args.batch)))
        return
    print(describe_machine())
    columns = "model params crop batch images/s step fwd+bwd targets optimiser outside_fwd/bwd peak_RSS"
    columns = columns.split()
    print("| " + " | ".join(c.replace("_", " ") for c in columns) + " |")
    print("|" + "---|" * len(columns))
    for name in args.models:
        cmd = [
            sys.executable,
            "-m",
            "experiments.benchmarks.training_step",
            "--one",
            name,
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            *(["--batch", str(args.batch)] if args.batch else []),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        print(
            f"| {name} | {r['params_M']:.1f} M | {r['crop']} | {r['batch']} | {r['images_per_s']:.1f} | "
            f"{r['step_ms']:.0f} ms | {r['in_step_forward_backward_ms']:.0f} ms | {r['targets_ms']:.1f} ms | "
            f"{r['optimizer_ms']:.1f} ms | {100 * r['outside_share']:.1f}% | {r['peak_rss_MiB']:.0f} MiB |",
            flush=True,
        )


if __name__ == "__main__":
    main()
