"""The Lightning DataModule: training crops, validation, and the images of the one-pass prior.

Files are found when the module is built, so a missing path or an empty folder fails at once,
before any training starts. Batches are :func:`~selfsup_color.data.dataset.collate_images` dicts:
``rgb`` (N x 3 x H x W uint8, channels-last memory) and ``skipped`` (unreadable files in the batch).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Sampler

from .crops import check_sizes
from .dataset import ImageFiles, collate_images, unreadable_flags
from .files import find_images
from .sampling import PRIOR, SPLIT, SUBSET, EpochSampler, ResumableLoader, permutation, seed_worker
from .splits import seeded_split


class ColorizationDataModule(LightningDataModule):
    """Image crops for colorization training (Zhang et al. 2016's recipe by default).

    Args:
        train: the training images: a folder (recursive), a ``.txt`` file list, ``"builtin"``, or a
            list of these or of image files (see :func:`~selfsup_color.data.files.find_images`).
            Class folders and labels are ignored.
        val: the validation images, in the same forms; also the test images.
        val_fraction: without ``val``, hold out this fraction of ``train`` (seeded) for validation.
            Neither: no validation loader.
        resize, crop: training crops: shorter side resized to ``resize``, random ``crop`` x ``crop``
            crop, random horizontal flip.
        val_resize, val_crop: validation: shorter side resized, centre crop (default: as training).
        batch_size, val_batch_size: images per batch (``val_batch_size`` defaults to ``batch_size``).
        num_workers: DataLoader worker processes (0: load in the main process).
        max_train_images: train on this many of the training images at most (a seeded choice).
        train_repeats: each training image appears this many times per epoch, with its own crop
            each time (for tiny sets such as ``builtin``, so epochs are not a handful of images).
        seed: fixes the split, the choice, the order of each epoch and every crop.
        pin_memory, persistent_workers: passed to the DataLoaders.

    Training crops depend on (seed, epoch, index) only. Lightning calls the training sampler's
    ``set_epoch`` every epoch, which also sets the crops' epoch in the workers
    (:class:`~selfsup_color.data.sampling.EpochSampler`); under DDP the sampler shards the files.
    """

    def __init__(
        self,
        train: str | list[str] = "builtin",
        val: str | list[str] | None = None,
        val_fraction: float = 0.0,
        resize: int = 256,
        crop: int = 176,
        val_resize: int | None = None,
        val_crop: int | None = None,
        batch_size: int = 40,
        val_batch_size: int | None = None,
        num_workers: int = 4,
        max_train_images: int | None = None,
        train_repeats: int = 1,
        seed: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        val_resize = resize if val_resize is None else val_resize
        val_crop = crop if val_crop is None else val_crop
        val_batch_size = batch_size if val_batch_size is None else val_batch_size
        check_sizes(resize, crop)
        check_sizes(val_resize, val_crop, "val_resize, val_crop")
        for name, value, minimum in (
            ("batch_size", batch_size, 1),
            ("val_batch_size", val_batch_size, 1),
            ("num_workers", num_workers, 0),
            ("seed", seed, 0),
            ("train_repeats", train_repeats, 1),
            ("max_train_images", 1 if max_train_images is None else max_train_images, 1),
        ):
            _check_int(name, value, minimum)
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if val is not None and val_fraction > 0:
            raise ValueError("give either val or val_fraction, not both")
        self.resize, self.crop, self.val_resize, self.val_crop = resize, crop, val_resize, val_crop
        self.batch_size, self.val_batch_size = batch_size, val_batch_size
        self.num_workers, self.seed, self.train_repeats = num_workers, seed, train_repeats
        self.pin_memory, self.persistent_workers = pin_memory, persistent_workers

        train_files = find_images(train)
        val_files = find_images(val) if val is not None else []
        if val_fraction > 0:
            train_files, val_files = split_files(train_files, val_fraction, seed)
        if max_train_images is not None and max_train_images < len(train_files):
            chosen = permutation(len(train_files), seed, SUBSET)[:max_train_images]
            train_files = sorted(train_files[i] for i in chosen)
        self._train_files, self._val_files = train_files, val_files
        self._unreadable = unreadable_flags(len(train_files))  # shared by the prior and training sets

    @property
    def train_files(self) -> list[Path]:
        return list(self._train_files)

    @property
    def val_files(self) -> list[Path]:
        return list(self._val_files)

    def train_dataloader(self) -> DataLoader:
        images = ImageFiles(
            self._train_files,
            self.resize,
            self.crop,
            train=True,
            seed=self.seed,
            repeats=self.train_repeats,
            unreadable=self._unreadable,
        )
        return self._loader(images, self.batch_size, EpochSampler(images, self.seed), self.persistent_workers)

    def val_dataloader(self) -> DataLoader | list:
        """Centre crops of the validation images; ``[]`` (no validation) when there are none."""
        if not self._val_files:
            return []
        images = ImageFiles(self._val_files, self.val_resize, self.val_crop, train=False)
        return self._loader(images, self.val_batch_size, None, self.persistent_workers)

    def test_dataloader(self) -> DataLoader | list:
        """The validation loader: the test images are the validation images."""
        return self.val_dataloader()

    def prior_dataloader(self, num_images: int, rank: int = 0, world_size: int = 1) -> DataLoader:
        """Centre crops (training sizes) of ``num_images`` training images, for the empirical prior.

        The images are the first ``num_images`` (at most all) of a seeded permutation of the
        training files; rank ``rank`` of ``world_size`` gets every ``world_size``-th of them, so the
        ranks' shares are disjoint and together cover them all. No shuffling, one pass.
        """
        _check_int("num_images", num_images, 1)
        _check_int("world_size", world_size, 1)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size = {world_size}), got {rank}")
        chosen = permutation(len(self._train_files), self.seed, PRIOR)[:num_images]
        mine = chosen[rank::world_size]
        files = [self._train_files[i] for i in mine]
        images = ImageFiles(
            files, self.resize, self.crop, train=False, unreadable=self._unreadable, positions=mine.tolist()
        )
        return self._loader(images, self.batch_size, None, persistent=False)

    def _loader(
        self, images: ImageFiles, batch_size: int, sampler: Sampler[int] | None, persistent: bool
    ) -> DataLoader:
        workers = self.num_workers
        kind = ResumableLoader if isinstance(sampler, EpochSampler) else DataLoader
        return kind(
            images,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=workers,
            collate_fn=partial(collate_images, size=(images.crop, images.crop)),
            pin_memory=self.pin_memory,
            persistent_workers=persistent and workers > 0,
            worker_init_fn=seed_worker if workers > 0 else None,
            generator=torch.Generator().manual_seed(self.seed),
        )


def split_files(files: list[Path], fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Split ``files`` into (train, val), val holding ``fraction`` of them (:func:`~.splits.seeded_split`)."""
    return seeded_split(files, fraction, seed, SPLIT)


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
