"""``builtin``: the colour photos that ship inside scikit-image's wheel, as image files in the cache.

They load offline. Left out: ``stereo_motorcycle``'s right view (a near-duplicate of the left),
``cat`` (the same photo as ``chelsea``), ``colorwheel`` (synthetic), ``logo`` (an RGBA drawing),
the grayscale images, and those that need a download (``skin``, ``lily``, ``eagle``, ...).
The split is fixed: ``builtin:val`` holds photos that ``builtin:train`` never shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..io import write_atomic
from .cache import cache_dir

BUILTIN_PHOTOS: dict[str, tuple[str, ...]] = {
    "train": (
        "astronaut",
        "hubble_deep_field",
        "immunohistochemistry",
        "retina",
        "rocket",
        "stereo_motorcycle",
    ),
    "val": ("chelsea", "coffee"),
}
"""Names of the ``skimage.data`` photos in each split."""

BUILTIN_FORMATS: dict[str, tuple[str, dict[str, object]]] = {
    "train": ("jpg", {"format": "JPEG", "quality": 95, "subsampling": 0}),
    "val": ("png", {"format": "PNG", "compress_level": 1}),
}
"""File suffix and Pillow save options of each split."""


def builtin_photo(name: str) -> np.ndarray:
    """The H x W x 3 uint8 array of one ``skimage.data`` photo (the left view for stereo pairs)."""
    from skimage import data

    image = getattr(data, name)()
    return image[0] if isinstance(image, tuple) else image


def builtin_images(split: str = "train", root: str | Path | None = None) -> list[Path]:
    """Files of the ``split`` photos under ``root / "builtin" / split``, written on first use.

    Training photos are stored as JPEG (quality 95, no chroma subsampling), which Pillow decodes at
    reduced size for small crops (5x faster than PNG here); validation photos stay lossless PNG, as
    the colour metrics need.

    ``root`` defaults to :func:`~selfsup_color.data.cache.cache_dir`. Each file is written atomically,
    so DDP ranks that start together do not collide.
    """
    if split not in BUILTIN_PHOTOS:
        raise ValueError(f"unknown builtin split {split!r}: use 'builtin', 'builtin:train' or 'builtin:val'")
    folder = Path(root if root is not None else cache_dir()) / "builtin" / split
    paths = []
    for name in BUILTIN_PHOTOS[split]:
        path = folder / f"{name}.{BUILTIN_FORMATS[split][0]}"
        if not path.is_file():
            image = Image.fromarray(builtin_photo(name))
            options = BUILTIN_FORMATS[split][1]
            write_atomic(path, lambda tmp, image=image, options=options: image.save(tmp, **options))
        paths.append(path)
    return sorted(paths)
