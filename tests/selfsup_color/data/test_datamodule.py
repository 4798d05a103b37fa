"""ColorizationDataModule: arguments, splits, loaders, the prior's shards, and a Lightning run."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from selfsup_color.data import ColorizationDataModule, EpochSampler

from .images import folder_of_pictures, save

SMALL = {"resize": 40, "crop": 32, "num_workers": 0, "batch_size": 4}


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    folder_of_pictures(tmp_path / "pictures", 20, size=(64, 48))
    return tmp_path / "pictures"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"crop": 300}, "resize, crop"),
        ({"val_resize": 100, "val_crop": 128}, "val_resize, val_crop"),
        ({"batch_size": 0}, "batch_size"),
        ({"val_batch_size": -1}, "val_batch_size"),
        ({"num_workers": -1}, "num_workers"),
        ({"seed": -2}, "seed"),
        ({"max_train_images": 0}, "max_train_images"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"val_fraction": 0.2, "val": "builtin:val"}, "not both"),
    ],
)
def test_bad_arguments_fail_at_construction(folder: Path, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ColorizationDataModule(train=str(folder), **{**SMALL, **options})


def test_missing_or_empty_sources_fail_at_construction(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent"):
        ColorizationDataModule(train=str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        ColorizationDataModule(train=str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="absent"):
        ColorizationDataModule(train="builtin", val=str(tmp_path / "absent"))


def test_val_fraction_split_is_seeded_disjoint_and_complete(folder: Path) -> None:
    data = ColorizationDataModule(train=str(folder), val_fraction=0.25, **SMALL)
    train, val = data.train_files, data.val_files
    assert len(val) == 5 and len(train) == 15 and not set(train) & set(val)
    assert sorted(train + val) == sorted(folder.rglob("*.png"))
    assert ColorizationDataModule(train=str(folder), val_fraction=0.25, **SMALL).val_files == val
    assert ColorizationDataModule(train=str(folder), val_fraction=0.25, seed=1, **SMALL).val_files != val
    assert ColorizationDataModule(train=str(folder), **SMALL).val_dataloader() == []  # no validation


def test_max_train_images_is_a_seeded_subset(folder: Path) -> None:
    data = ColorizationDataModule(train=str(folder), max_train_images=6, **SMALL)
    assert len(data.train_files) == 6 and set(data.train_files) < set(folder.rglob("*.png"))
    assert data.train_files == sorted(data.train_files)


def test_loaders_yield_declared_batches(folder: Path, tmp_path: Path) -> None:
    save(tmp_path / "val" / "a.png", torch.zeros(30, 50, 3, dtype=torch.uint8).numpy())
    data = ColorizationDataModule(
        train=str(folder), val=str(tmp_path / "val"), val_resize=36, val_crop=24, val_batch_size=8, **SMALL
    )
    loader = data.train_dataloader()
    assert isinstance(loader.sampler, EpochSampler)
    batches = list(loader)
    assert [b["rgb"].shape for b in batches] == [(4, 3, 32, 32)] * 5
    assert all(b["rgb"].is_contiguous(memory_format=torch.channels_last) for b in batches)
    (val,) = list(data.val_dataloader())
    assert val["rgb"].shape == (1, 3, 24, 24) and val["skipped"] == 0
    assert len(data.test_dataloader()) == 1


def test_prior_loaders_shard_disjointly_and_completely(folder: Path) -> None:
    data = ColorizationDataModule(train=str(folder), **SMALL)
    shards = [list(data.prior_dataloader(15, rank, 2).dataset.files) for rank in (0, 1)]
    assert len(shards[0]) == 8 and len(shards[1]) == 7 and not set(shards[0]) & set(shards[1])
    chosen = set(shards[0] + shards[1])
    assert chosen < {str(f) for f in data.train_files}
    # a seeded permutation's head, not the first files in sorted order:
    assert list(data.prior_dataloader(15).dataset.files) != sorted(chosen)
    assert set(data.prior_dataloader(15).dataset.files) == chosen
    assert len(data.prior_dataloader(100).dataset) == 20  # at most all
    batch = next(iter(data.prior_dataloader(15, 1, 2)))
    assert batch["rgb"].shape == (4, 3, 32, 32)
    with pytest.raises(ValueError, match="rank"):
        data.prior_dataloader(15, 2, 2)


class Recorder(pl.LightningModule):
    """Records the crops it is trained on (and checks that Lightning kept our sampler)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[torch.Tensor] = []

    def training_step(self, batch: dict[str, torch.Tensor], index: int) -> torch.Tensor:
        assert isinstance(self.trainer.train_dataloader.sampler, EpochSampler)
        self.seen.append(batch["rgb"].clone())
        return self.weight * batch["rgb"].float().mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def fit(folder: Path, epochs: int) -> list[torch.Tensor]:
    model = Recorder()
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=ColorizationDataModule(train=str(folder), **{**SMALL, "batch_size": 10}))
    return [torch.cat(model.seen[i : i + 2]) for i in range(0, len(model.seen), 2)]


@pytest.mark.filterwarnings("ignore:You passed in a .val_dataloader.", "ignore:.*LeafSpec")
def test_lightning_epochs_get_new_reproducible_crops(folder: Path) -> None:
    first = fit(folder, 2)
    assert len(first) == 2 and first[0].shape == (20, 3, 32, 32)
    assert not torch.equal(first[0], first[1])
    again = fit(folder, 2)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_hymenoptera_loaders_splits_and_prior_shards(hymenoptera: Path) -> None:
    train, val = str(hymenoptera / "train"), str(hymenoptera / "val")
    data = ColorizationDataModule(train=train, val=val, val_crop=224, batch_size=8, num_workers=0)
    assert len(data.train_files) == 245 and len(data.val_files) == 153  # 244 JPEGs + the placeholder GIF
    batch = next(iter(data.train_dataloader()))
    assert batch["rgb"].shape == (8, 3, 176, 176) and batch["rgb"].dtype == torch.uint8
    assert next(iter(data.val_dataloader()))["rgb"].shape == (8, 3, 224, 224)

    split = ColorizationDataModule(train=train, val_fraction=0.1, num_workers=0)
    assert len(split.val_files) == 24 and not set(split.train_files) & set(split.val_files)
    assert sorted(split.train_files + split.val_files) == data.train_files

    shards = [data.prior_dataloader(245, rank, 2) for rank in (0, 1)]
    files = [list(shard.dataset.files) for shard in shards]
    assert not set(files[0]) & set(files[1])
    assert sorted(files[0] + files[1]) == [str(f) for f in data.train_files]
    assert next(iter(shards[1]))["rgb"].shape == (8, 3, 176, 176)
