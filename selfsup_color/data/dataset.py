"""The dataset of image crops and its collate function.

Workers only decode and crop: an item is a crop x crop x 3 uint8 tensor, and all colour maths runs
on the device afterwards. A file that cannot be read (broken, or over the pixel budget of
:func:`~.decode.read_crop`) gives None, and :func:`collate_images` drops it and counts it in the
batch's ``skipped``.

Unreadable files are reported once per file and run, whatever the number of workers: the flags of
files found unreadable live in shared memory (one byte per file), so the process that finds one
warns and marks it, and no process, now or in a later epoch, reads or reports it again. Datasets
over the same files can share the flags (:func:`unreadable_flags`): the data module's prior pass and
training set do, so a file the prior pass reported is not reported again by training.

Randomness. The crop and flip of item ``index`` in epoch ``epoch`` come from
``random.Random(f"{seed}:{epoch}:{index}")``, a Mersenne Twister seeded with the string's SHA-512,
the same on every platform and run. So an item gets the same crop whatever the number of workers,
the order of the items or the DDP rank that reads it. (Seeding a NumPy generator instead costs about
0.2 ms per image in a decoding loop, 5% of the loading time.)

Epochs. The epoch lives in shared memory, so :meth:`ImageFiles.set_epoch` in the main process
reaches workers that already run (``persistent_workers``). Call it before iterating, as for a
``DistributedSampler``; :class:`~selfsup_color.data.sampling.EpochSampler` does it for you.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from os import PathLike

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .crops import check_sizes
from .decode import read_crop
from .packed import PackedPaths


class UnreadableImageWarning(UserWarning):
    """A file was skipped because it could not be decoded (corrupt, truncated, not an image...)."""


def unreadable_flags(count: int) -> Tensor:
    """Shared-memory flags (bool, all False) of ``count`` files: the ``unreadable`` of :class:`ImageFiles`."""
    return torch.zeros(count, dtype=torch.bool).share_memory_()


class ImageFiles(Dataset[Tensor | None]):
    """Crops of image files: random (``train``) or centred, as crop x crop x 3 uint8 tensors.

    Each image is resized (shorter side to ``resize``) and cropped as described in
    :mod:`selfsup_color.data.crops`; only the crop is resampled (see :func:`~.decode.read_crop`).
    With ``repeats`` > 1 the files are listed that many times (item ``i`` is file ``i % len(files)``,
    with its own crop), each stored once and reported once if unreadable: by its first copy's reader.

    ``unreadable`` (from :func:`unreadable_flags`) is shared with other datasets over the same files,
    file ``j`` of this one being flag ``positions[j]`` (default ``j``); without it, the dataset has
    flags of its own. Datasets sharing flags must not be read at the same time.
    """

    def __init__(
        self,
        files: Sequence[str | PathLike[str]],
        resize: int = 256,
        crop: int = 176,
        train: bool = True,
        seed: int = 0,
        repeats: int = 1,
        unreadable: Tensor | None = None,
        positions: Sequence[int] | None = None,
    ) -> None:
        check_sizes(resize, crop)
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if not isinstance(repeats, int) or repeats < 1:
            raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
        self.files = PackedPaths(files)
        self.resize, self.crop, self.train, self.seed, self.repeats = resize, crop, train, seed, repeats
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._positions = None if positions is None else torch.as_tensor(positions, dtype=torch.int64)
        if self._positions is not None and self._positions.shape != (len(self.files),):
            raise ValueError(f"positions must give one flag per file ({len(self.files)})")
        self._broken = unreadable_flags(len(self.files)) if unreadable is None else unreadable

    def __len__(self) -> int:
        return len(self.files) * self.repeats

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s crops from now on, in this process and in its DataLoader workers."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self._epoch.fill_(epoch)

    def rng(self, index: int) -> random.Random:
        """The generator of item ``index``'s crop and flip in the current epoch."""
        return random.Random(f"{self.seed}:{self.epoch}:{index}")

    def __getitem__(self, index: int) -> Tensor | None:
        index = range(len(self))[index]  # IndexError and negative indices as for a list
        file = index % len(self.files)
        flag = file if self._positions is None else int(self._positions[file])
        if self._broken[flag]:
            return None
        path = self.files[file]
        try:
            return read_crop(path, self.resize, self.crop, self.rng(index) if self.train else None)
        except Exception as error:  # any decoder failure: one bad file must not end a long run
            if index == file:  # the first copy's reader (one per epoch) marks and reports it: no race
                self._broken[flag] = True
                warnings.warn(
                    f"skipping unreadable image {path}: {type(error).__name__}: {error}",
                    UnreadableImageWarning,
                    stacklevel=2,
                )
            return None


def collate_images(items: Sequence[Tensor | None], size: tuple[int, int] | None = None) -> dict[str, Tensor]:
    """Stack H x W x 3 uint8 crops into a batch, dropping the Nones of unreadable files.

    Returns ``rgb``: N x 3 x H x W uint8 whose memory is channels-last (a permuted view of the
    stacked N x H x W x 3, no copy), and ``skipped``: the number of dropped items, a 0-dim int64
    tensor (sum it over an epoch to report it). When every item was dropped, ``rgb`` has N = 0 and
    H x W = ``size`` (0 x 0 if not given).
    """
    images = [item for item in items if item is not None]
    if images:
        stacked = torch.stack(images)
    else:
        height, width = size or (0, 0)
        stacked = torch.empty((0, height, width, 3), dtype=torch.uint8)
    skipped = torch.tensor(len(items) - len(images), dtype=torch.int64)
    return {"rgb": stacked.permute(0, 3, 1, 2), "skipped": skipped}
