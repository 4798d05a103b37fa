"""ImageFiles and collate_images: item format, seeding, epochs, broken files, workers."""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from selfsup_color.data import (
    ColorizationDataModule,
    EpochSampler,
    ImageFiles,
    UnreadableImageWarning,
    collate_images,
    read_crop,
)

from .images import decoded_files, folder_of_pictures, picture, png_declaring, save


@pytest.fixture()
def files(tmp_path: Path) -> list[Path]:
    return folder_of_pictures(tmp_path, 10, size=(64, 48))


def test_items_are_uint8_crops_seeded_by_seed_epoch_index(files: list[Path]) -> None:
    images = ImageFiles(files, resize=40, crop=32, seed=3)
    item = images[4]
    assert item.shape == (32, 32, 3) and item.dtype == torch.uint8 and len(images) == 10
    expected = read_crop(files[4], 40, 32, random.Random("3:0:4"))
    np.testing.assert_array_equal(item.numpy(), np.asarray(expected))
    assert torch.equal(ImageFiles(files, 40, 32, seed=3)[4], item)  # reproducible
    crops = [images[i] for i in range(10)]
    images.set_epoch(1)
    assert images.epoch == 1
    assert sum(not torch.equal(a, images[i]) for i, a in enumerate(crops)) >= 8  # new epoch, new crops
    other_seed = ImageFiles(files, 40, 32, seed=4)
    assert sum(not torch.equal(a, other_seed[i]) for i, a in enumerate(crops)) >= 8
    with pytest.raises(ValueError, match="epoch"):
        images.set_epoch(-1)
    with pytest.raises(ValueError, match="seed"):
        ImageFiles(files, seed=-1)


def test_val_items_are_centre_crops_of_every_epoch(files: list[Path]) -> None:
    images = ImageFiles(files, resize=40, crop=32, train=False)
    first = images[0]
    images.set_epoch(5)
    assert torch.equal(images[0], first)
    np.testing.assert_array_equal(first.numpy(), np.asarray(read_crop(files[0], 40, 32)))


def test_collate_stacks_into_channels_last_without_copy(files: list[Path]) -> None:
    images = ImageFiles(files, resize=40, crop=32)
    items = [images[i] for i in range(4)]
    batch = collate_images(items)
    rgb = batch["rgb"]
    assert rgb.shape == (4, 3, 32, 32) and rgb.dtype == torch.uint8
    assert rgb.is_contiguous(memory_format=torch.channels_last) and rgb.permute(0, 2, 3, 1).is_contiguous()
    assert torch.equal(rgb[2], items[2].permute(2, 0, 1))
    assert batch["skipped"].dtype == torch.int64 and batch["skipped"].ndim == 0 and batch["skipped"] == 0


def broken_files(folder: Path) -> tuple[Path, Path]:
    whole = save(folder / "whole.jpg", picture(64, 48))
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(whole.read_bytes()[:400])
    text = folder / "notes.jpg"
    text.write_text("this is not a JPEG")
    return truncated, text


def test_broken_files_are_skipped_with_one_warning_each(files: list[Path], tmp_path: Path) -> None:
    truncated, text = broken_files(tmp_path / "broken")
    images = ImageFiles([files[0], truncated, files[1], text], resize=40, crop=32)
    with pytest.warns(UnreadableImageWarning) as caught:
        batch = collate_images([images[i] for i in range(4)])
    assert [str(w.message).split(":")[0] for w in caught] == [
        f"skipping unreadable image {truncated}",
        f"skipping unreadable image {text}",
    ]
    assert batch["rgb"].shape == (2, 3, 32, 32) and batch["skipped"] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning for a file already reported
        images.set_epoch(1)
        assert images[1] is None and images[3] is None
        empty = collate_images([images[1], images[3]], size=(32, 32))
    assert empty["rgb"].shape == (0, 3, 32, 32) and empty["rgb"].dtype == torch.uint8
    assert empty["skipped"] == 2
    assert collate_images([None])["rgb"].shape == (0, 3, 0, 0)


def test_a_bomb_is_skipped_without_being_decoded(
    files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = decoded_files(monkeypatch)
    bomb = png_declaring(tmp_path / "bomb.png", 20_000, 5_000)  # 100 megapixels declared, 1 row of data
    images = ImageFiles([files[0], bomb], resize=40, crop=32, train=False)
    with pytest.warns(UnreadableImageWarning, match=r"bomb\.png: ImageTooLargeError: .* 20000 x 5000"):
        batch = collate_images([images[0], images[1]])
    assert batch["skipped"] == 1 and batch["rgb"].shape == (1, 3, 32, 32)
    assert set(decoded) == {str(files[0])}


@contextlib.contextmanager
def worker_warnings(log: Path) -> Iterator[list[tuple[int, str]]]:
    """(process id, file) of each unreadable-image warning given in the block, by this process or by
    DataLoader workers it forks (``warnings.warn`` is replaced before they fork: they append to ``log``).
    The list is filled when the block ends."""
    real_warn, caught = warnings.warn, []

    def to_log(message: object, category: object = None, stacklevel: int = 1, **_: object) -> None:
        if category is UnreadableImageWarning:
            path = str(message).removeprefix("skipping unreadable image ").split(": ")[0]
            with open(log, "a") as file:
                file.write(f"{os.getpid()}\t{path}\n")
        else:
            real_warn(message, category, stacklevel + 1)  # type: ignore[arg-type]

    warnings.warn = to_log  # type: ignore[assignment]
    try:
        yield caught
    finally:
        warnings.warn = real_warn
        lines = log.read_text().splitlines() if log.exists() else []
        caught += [(int(pid), path) for pid, path in (line.split("\t") for line in lines)]


def unreadable_warnings_with_workers(
    images: ImageFiles, log: Path, epochs: int, **loader: object
) -> list[tuple[int, str]]:
    """The :func:`worker_warnings` of ``epochs`` passes of a 2-worker DataLoader over ``images``."""
    with worker_warnings(log) as caught:
        loader_ = DataLoader(images, batch_size=2, num_workers=2, collate_fn=collate_images, **loader)
        skipped = [int(sum(batch["skipped"] for batch in loader_)) for _ in range(epochs)]
    assert skipped == [skipped[0]] * epochs and skipped[0] > 0  # every pass still skips them
    return caught


@pytest.mark.parametrize("persistent", [False, True])
def test_two_workers_warn_once_per_broken_file_per_run(
    files: list[Path], tmp_path: Path, persistent: bool
) -> None:
    """2 workers, 3 epochs, 2 broken files: 2 warnings, from the workers, whoever reads which file when."""
    truncated, text = broken_files(tmp_path / "broken")
    images = ImageFiles([*files[:4], truncated, *files[4:8], text], resize=40, crop=32, train=False)
    caught = unreadable_warnings_with_workers(
        images, tmp_path / "warnings.log", epochs=3, persistent_workers=persistent
    )
    assert sorted(path for _, path in caught) == sorted(map(str, (truncated, text)))
    assert all(pid != os.getpid() for pid, _ in caught)  # the workers read the files


def test_repeated_files_warn_once(files: list[Path], tmp_path: Path) -> None:
    """``repeats`` lists each file several times: a broken one is still reported once, by its first copy."""
    truncated, _ = broken_files(tmp_path / "broken")
    images = ImageFiles([files[0], truncated, files[1]], resize=40, crop=32, repeats=4)
    assert len(images) == 12 and images[7] is None
    for index in (0, 3, 11):  # file index % 3, with the crop of the item's own index
        expected = read_crop(images.files[index % 3], 40, 32, random.Random(f"0:0:{index}"))
        assert torch.equal(images[index], expected)
    with pytest.raises(IndexError):
        images[12]
    caught = unreadable_warnings_with_workers(images, tmp_path / "warnings.log", epochs=2)
    assert [path for _, path in caught] == [str(truncated)]


def test_the_prior_pass_and_training_report_a_file_once(tmp_path: Path) -> None:
    """A fit reads the training files twice (the prior pass, then training): still one warning per file."""
    folder_of_pictures(tmp_path / "photos", 8, size=(48, 40))
    truncated, text = broken_files(tmp_path / "photos" / "broken")
    data = ColorizationDataModule(
        train=str(tmp_path / "photos"),
        resize=40,
        crop=32,
        batch_size=2,
        num_workers=2,
        persistent_workers=False,
    )
    with worker_warnings(tmp_path / "warnings.log") as caught:
        prior_skipped = sum(int(batch["skipped"]) for batch in data.prior_dataloader(100))  # all 10
        loader = data.train_dataloader()
        train_skipped = [sum(int(batch["skipped"]) for batch in loader) for _ in range(2)]
    assert prior_skipped == 2 and train_skipped == [2, 2]
    assert sorted(path for _, path in caught) == sorted(map(str, (truncated, text)))


def test_hymenoptera_placeholder_gif_goes_through(hymenoptera: Path) -> None:
    gif = hymenoptera / "train" / "ants" / "imageNotFound.gif"
    item = ImageFiles([gif], resize=256, crop=176)[0]
    assert item is not None and item.shape == (176, 176, 3)


def test_dataset_pickles_for_spawned_workers(files: list[Path]) -> None:
    images = ImageFiles(files, resize=40, crop=32, seed=2)
    images.set_epoch(3)
    copy = pickle.loads(pickle.dumps(images))
    assert copy.epoch == 3 and list(copy.files) == [str(f) for f in files]
    assert torch.equal(copy[5], images[5])


def test_persistent_workers_follow_set_epoch(files: list[Path]) -> None:
    """Workers started once see each new epoch: their crops equal the main process's, epoch by epoch."""
    images = ImageFiles(files, resize=40, crop=32, seed=1)
    sampler = EpochSampler(images, seed=1)
    loader = DataLoader(
        images,
        batch_size=3,
        sampler=sampler,
        num_workers=2,
        persistent_workers=True,
        collate_fn=collate_images,
    )
    passes = []
    for epoch in (0, 1, 0):
        sampler.set_epoch(epoch)
        order = list(sampler)
        batches = torch.cat([batch["rgb"] for batch in loader])
        expected = torch.stack([images[i] for i in order]).permute(0, 3, 1, 2)
        assert torch.equal(batches, expected), epoch
        passes.append((order, batches))
    assert passes[0][0] != passes[1][0]  # a new order each epoch
    assert passes[0][0] == passes[2][0] and torch.equal(passes[0][1], passes[2][1])


def test_epoch_sampler_shards_over_ranks(files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Under DDP (faked here: 2 ranks) each rank gets a disjoint half, reshuffled every epoch."""
    import torch.distributed as dist

    images = ImageFiles(files, resize=40, crop=32)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr(dist, "get_rank", lambda group=None, rank=rank: rank)
        sampler = EpochSampler(images, seed=0)
        sampler.set_epoch(2)
        shards.append(list(sampler))
        assert images.epoch == 2
        sampler.set_epoch(3)
        assert list(sampler) != shards[-1]
    assert len(shards[0]) == len(shards[1]) == 5 and sorted(shards[0] + shards[1]) == list(range(10))
