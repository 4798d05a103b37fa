"""What class rebalancing does to the training signal of a data set, at a given crop size.

For each ``--lam``, on one seeded batch of training crops:

- the effective sample size (Kish) of the weighted loss over pixels and over images, as a fraction
  of the plain counts: how many equally weighted pixels or images the batch is worth;
- the share of the batch's loss weight carried by its heaviest 10% of images;
- per block of a network (freshly initialised, or a pretraining checkpoint's with ``--ckpt``),
  |weight decay| / |loss gradient| (the paper's L2 decay of 1e-3 is added to the gradient; a loss
  summed over few pixels per image makes it weigh more).

    python -m experiments.analysis.rebalancing --data data/imagenette/train --resize 72 --crop 64

The prior comes from ``--prior FILE`` (``selfsup-color prior``) or is estimated from ``--images``
training crops (seeded).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import torch

from selfsup_color.command import command_parser, parse
from selfsup_color.core.loss import classification_loss
from selfsup_color.core.prior import Prior
from selfsup_color.core.rebalance import effective_sample_size, rebalance_weights
from selfsup_color.core.targets import ColorizationTargets, TargetBuilder
from selfsup_color.data import ColorizationDataModule
from selfsup_color.models import build_model
from selfsup_color.pretrain.checkpoint import load_pretraining_module
from selfsup_color.pretrain.prior_pass import estimate_data_prior, read_prior

BLOCKS = ("conv1", "conv3", "conv5", "conv7")


def weight_statistics(pixel_weight: torch.Tensor, nongray: torch.Tensor) -> dict[str, float]:
    """ESS fractions over pixels and images, and the heaviest 10% of images' share of the weight."""
    w = pixel_weight.double() * nongray.double().view(-1, 1, 1)
    per_image = w.flatten(1).sum(1)
    heaviest = per_image.sort(descending=True).values[: max(1, len(per_image) // 10)]
    return {
        "ess_pixels": float(effective_sample_size(w.flatten())) / w.numel(),
        "ess_images": float(effective_sample_size(per_image)) / len(per_image),
        "top10_share": float(heaviest.sum() / per_image.sum()),
    }


def decay_to_gradient(
    net: torch.nn.Module, targets: ColorizationTargets, weight_decay: float
) -> dict[str, float]:
    """|weight_decay * theta| / |dL/dtheta| of each block's weights, the net in training mode."""
    net.train().zero_grad()
    t = targets
    loss = classification_loss(net(t.lightness), t.targets, t.pixel_weight, t.nongray, "batch")
    loss.backward()
    ratios = {}
    for block in BLOCKS:
        params = [p for name, p in net.named_parameters() if name.startswith(block) and p.dim() > 1]
        grad = torch.sqrt(sum(p.grad.square().sum() for p in params))
        decay = weight_decay * torch.sqrt(sum(p.detach().square().sum() for p in params))
        ratios[block] = float(decay / grad)
    return ratios


def network(ckpt: str | None, width: float, seed: int) -> torch.nn.Module:
    """The net of a pretraining checkpoint (loaded strictly), else eccv16 at ``width``, seeded."""
    if ckpt:
        return load_pretraining_module(ckpt).net
    torch.manual_seed(seed)
    return build_model("eccv16", width=width)


def main(argv: Sequence[str] | None = None) -> dict[float, dict[str, float]]:
    parser = command_parser("python -m experiments.analysis.rebalancing", __doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="training image folder, file list or 'builtin'")
    parser.add_argument("--resize", type=int, required=True)
    parser.add_argument("--crop", type=int, required=True)
    parser.add_argument("--batch", type=int, default=256, help="crops in the measured batch")
    parser.add_argument("--images", type=int, default=5000, help="crops for the prior without --prior")
    parser.add_argument("--prior", default=None, help="prior JSON or table (else estimated)")
    parser.add_argument("--lam", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--width", type=float, default=0.25, help="eccv16 width for the decay ratio")
    parser.add_argument(
        "--ckpt_path", default=None, help="a pretraining checkpoint: its net instead of a new one"
    )
    parser.add_argument("--weight_decay", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parse(parser, sys.argv[1:] if argv is None else argv, {"--ckpt": "--ckpt_path"})

    data = ColorizationDataModule(
        train=args.data,
        val=args.data,
        resize=args.resize,
        crop=args.crop,
        batch_size=args.batch,
        num_workers=0,
        seed=args.seed,
    )
    prior: Prior = (
        read_prior(args.prior)
        if args.prior
        else estimate_data_prior(data, args.images, torch.device("cpu"), source=args.data)
    )
    loader = data.train_dataloader()
    loader.sampler.set_epoch(0)
    rgb = next(iter(loader))["rgb"]
    print(f"{args.data} at {args.crop} px: {rgb.shape[0]} crops, prior of {prior.n_images} images")
    net = network(args.ckpt_path, args.width, args.seed)  # one network for every lam (gradients reset)
    results = {}
    for lam in args.lam:
        t = TargetBuilder(rebalance_weights(prior.prior, lam))(rgb)
        stats = weight_statistics(t.pixel_weight, t.nongray)
        stats.update(decay_to_gradient(net, t, args.weight_decay))
        results[lam] = stats
        print(
            f"lam {lam}: ESS {stats['ess_pixels']:.2f} of the pixels, {stats['ess_images']:.2f} of the "
            f"images; heaviest 10% of images carry {stats['top10_share']:.2f} of the weight; "
            "|decay| / |gradient| " + ", ".join(f"{b} {stats[b]:.3f}" for b in BLOCKS)
        )
    return results


if __name__ == "__main__":
    main()
