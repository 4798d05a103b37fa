"""Data: finding image files, decoding and cropping them in workers, and the Lightning DataModule.

Workers only decode and crop; batches are uint8 RGB (N x 3 x H x W, channels-last memory) and all
colour maths runs on the device. ``ColorizationDataModule`` is imported on first use (it pulls in
Lightning, which takes seconds to import).
"""

from .builtin import BUILTIN_PHOTOS, builtin_images
from .cache import cache_dir, extract_archive
from .crops import Crop, centre_crop, random_crop, resized_size
from .dataset import ImageFiles, UnreadableImageWarning, collate_images
from .decode import load_rgb, read_crop
from .files import IMAGE_EXTENSIONS, find_images
from .sampling import EpochSampler, ResumableLoader, seed_worker


def __getattr__(name: str) -> object:
    if name == "ColorizationDataModule":
        from .datamodule import ColorizationDataModule

        return ColorizationDataModule
    raise AttributeError(f"module 'selfsup_color.data' has no attribute {name!r}")


__all__ = [
    "BUILTIN_PHOTOS",
    "IMAGE_EXTENSIONS",
    "ColorizationDataModule",
    "Crop",
    "EpochSampler",
    "ImageFiles",
    "ResumableLoader",
    "UnreadableImageWarning",
    "builtin_images",
    "cache_dir",
    "centre_crop",
    "collate_images",
    "extract_archive",
    "find_images",
    "load_rgb",
    "random_crop",
    "read_crop",
    "resized_size",
    "seed_worker",
]
