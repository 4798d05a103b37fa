"""The smoothed ab prior of each data set (and the ImageNet reference table), plotted side by side.

Run: ``python -m experiments.results.priors --out runs/results/priors``

Writes ``<name>/prior.json`` and ``<name>/prior.png`` per data set, ``priors.png`` (every prior on
one colour scale) and ``priors.json`` (a summary row per data set).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from experiments.paths import REPO, SHARED
from selfsup_color import Prior, load_prior_table, rebalance_weights
from selfsup_color.command import command_parser, parse
from selfsup_color.data import ColorizationDataModule
from selfsup_color.pretrain.prior_pass import estimate_data_prior, write_prior
from selfsup_color.viz import priors_figure, save_figure

DATASETS = {
    # name: (folder under data/, resize, crop, images): Imagenette as it is pretrained, photos at 176 px
    "Imagenette train": ("imagenette/train", 72, 64, 10_000),
    "hymenoptera train": ("hymenoptera/train", 256, 176, 10_000),
    "COCO128": ("coco128/images", 256, 176, 10_000),
    "CBSD68": ("cbsd68", 256, 176, 10_000),
}
IMAGENET_TABLE = SHARED / "reference" / "imagenet_prior_313.txt"


def summary(record: Prior) -> dict[str, float]:
    """Images, pixels, entropy (bits), bins holding 90% of the mass, largest rebalancing weight."""
    p = record.prior.double()
    ordered = p.sort(descending=True).values
    return {
        "images": record.n_images,
        "pixels": record.n_pixels,
        "entropy_bits": float(-(p[p > 0] * p[p > 0].log2()).sum()),
        "bins_for_90_percent": int((ordered.cumsum(0) < 0.9).sum()) + 1,
        "max_weight_lam_0.5": float(rebalance_weights(p, 0.5).max()),
    }


def slug(name: str) -> str:
    return name.lower().replace(" ", "_").replace("-", "")


def main() -> None:
    parser = command_parser("python -m experiments.results.priors", __doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parse(parser, sys.argv[1:], {})
    priors, rows = {}, {}
    for name, (folder, resize, crop, images) in DATASETS.items():
        data = ColorizationDataModule(
            train=str(REPO / "data" / folder), resize=resize, crop=crop, batch_size=64,
            num_workers=args.workers, persistent_workers=False,
        )  # fmt: skip
        record = estimate_data_prior(data, images, torch.device("cpu"), source=f"data/{folder}")
        write_prior(record, args.out / slug(name), title=f"prior of {name}")
        priors[name], rows[name] = record.prior, summary(record) | {"resize": resize, "crop": crop}
        print(f"{name}: {rows[name]}", flush=True)
    if IMAGENET_TABLE.is_file():
        table = load_prior_table(IMAGENET_TABLE)
        priors["ImageNet (reference table)"] = table.prior
        rows["ImageNet (reference table)"] = {
            k: v for k, v in summary(table).items() if k not in ("images", "pixels")
        }
    save_figure(priors_figure(priors), args.out / "priors.png", dpi=90)
    (args.out / "priors.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {args.out / 'priors.png'} and {args.out / 'priors.json'}")


if __name__ == "__main__":
    main()
