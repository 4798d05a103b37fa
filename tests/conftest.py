"""Shared test fixtures: the reference tables and data sets in ../shared, found or skipped."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    """``$SELFSUP_COLOR_SHARED`` if set, else ``../shared`` beside the checkout, else None."""
    env = os.environ.get("SELFSUP_COLOR_SHARED")
    path = Path(env) if env else REPO.parent / "shared"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The folder of reference tables (ab bins, ImageNet prior); skips when absent."""
    root = shared_dir()
    if root is None or not (root / "reference").is_dir():
        pytest.skip("reference tables not found: set SELFSUP_COLOR_SHARED to the folder holding reference/")
    return root / "reference"


@pytest.fixture(scope="session")
def reference_bins(reference_dir: Path) -> np.ndarray:
    """The 313 x 2 reference ab bin centres."""
    return np.loadtxt(reference_dir / "ab_bins_313.txt")


@pytest.fixture(scope="session")
def reference_prior(reference_dir: Path) -> torch.Tensor:
    """The ImageNet prior over the 313 bins (float64)."""
    return torch.from_numpy(np.loadtxt(reference_dir / "imagenet_prior_313.txt"))


@pytest.fixture()
def rng() -> torch.Generator:
    """A seeded torch generator for reproducible random tests."""
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="session")
def cbsd68_crops() -> torch.Tensor:
    """The first 8 CBSD68 photos (lossless PNG), centre-cropped to 176 x 176: N x 3 x H x W uint8.

    Read straight from ``shared/data/cbsd68.tar`` in memory; skips when the archive is absent.
    """
    import io
    import tarfile

    from PIL import Image

    root = shared_dir()
    archive = root / "data" / "cbsd68.tar" if root else None
    if archive is None or not archive.is_file():
        pytest.skip("CBSD68 not found: set SELFSUP_COLOR_SHARED to the folder holding data/cbsd68.tar")
    crops = []
    with tarfile.open(archive) as tar:
        names = sorted(n for n in tar.getnames() if n.endswith(".png"))[:8]
        for name in names:
            image = np.asarray(Image.open(io.BytesIO(tar.extractfile(name).read())).convert("RGB"))
            top, left = (image.shape[0] - 176) // 2, (image.shape[1] - 176) // 2
            crops.append(image[top : top + 176, left : left + 176])
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2)
