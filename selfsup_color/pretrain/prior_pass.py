"""The one-pass empirical prior of a run's training images, DDP-aware, with its plot."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..core.prior import Prior, PriorEstimator, load_prior, load_prior_table, save_prior
from ..core.targets import OUTPUT_STRIDE
from ..distributed import in_process_group, rank_world
from ..progress import progress_bar


def estimate_data_prior(
    datamodule: Any,
    num_images: int,
    device: torch.device,
    sigma: float = 5.0,
    source: str = "",
    stride: int = OUTPUT_STRIDE,
) -> Prior:
    """Prior of the first ``num_images`` training images (a seeded sample), split over the ranks.

    Pixels are counted at ``stride``, the network's output stride (``ab[..., ::stride, ::stride]``).

    ``datamodule`` must offer ``prior_dataloader(num_images, rank, world_size)``. Every rank counts
    its shard on ``device``; the counts are summed with one all-reduce, so each rank returns the
    prior of the whole sample, equal to a single-process pass. Files that could not be read (each
    warned about once) are counted in the record's ``n_unreadable``.
    """
    if not hasattr(datamodule, "prior_dataloader"):
        raise TypeError(
            f"{type(datamodule).__name__} has no prior_dataloader(); pass a precomputed prior "
            "(--model.prior FILE, from `selfsup-color prior`) or use ColorizationDataModule"
        )
    rank, world = rank_world()
    estimator = PriorEstimator(sigma=sigma, stride=stride)
    loader = datamodule.prior_dataloader(num_images, rank=rank, world_size=world)
    unreadable = 0
    with progress_bar(total=len(loader.dataset), desc="ab prior", unit="img") as bar:
        for batch in loader:
            rgb = batch["rgb"]
            if rgb.shape[0]:
                estimator.update_rgb(rgb.to(device, non_blocking=True))
            unreadable += int(batch["skipped"])
            bar.update(rgb.shape[0] + int(batch["skipped"]))
    record = estimator.all_reduce().to_record(source)
    return dataclasses.replace(record, n_unreadable=sum_over_ranks(unreadable, device))


def sum_over_ranks(value: int, device: torch.device) -> int:
    """``value`` summed over the ranks of the default process group (itself without one)."""
    if not in_process_group():
        return value
    total = torch.tensor([value], dtype=torch.int64, device=device)
    if dist.get_backend() == dist.Backend.NCCL and total.device.type != "cuda":
        total = total.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return int(total.item())


def read_prior(path: str | Path) -> Prior:
    """A prior from a JSON record (``save_prior``) or a plain Q-line text table."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prior file {path} does not exist; compute one with `selfsup-color prior`")
    return load_prior(path) if path.suffix == ".json" else load_prior_table(path)


def write_prior(record: Prior, folder: Path, title: str = "") -> tuple[Path, Path, np.ndarray]:
    """Save ``prior.json`` and its Figure-3 style plot ``prior.png`` into ``folder``.

    Returns both paths and the plot as an H x W x 3 uint8 array (for loggers), rendered once.
    """
    from ..viz import figure_to_array, prior_figure, save_figure

    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "prior.json"
    save_prior(record, json_path)
    figure = prior_figure(record.prior, title=title or None)
    png_path = save_figure(figure, folder / "prior.png")
    return json_path, png_path, figure_to_array(figure)
