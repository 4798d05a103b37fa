"""One image reader: every path that opens an image sees the same picture of a file.

Files in the modes that differ between readers (alpha, 16 bits, EXIF orientation, CMYK, palette,
gray with alpha) are read by each consumer; all must give :func:`load_rgb`'s array, and that array
must match an independent numpy decoding of what the file stores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup_color.colorize import read_rgb_or_skip
from selfsup_color.data import ImageFiles
from selfsup_color.data.datamodule import ColorizationDataModule
from selfsup_color.data.decode import load_rgb
from transfer.detection.data import read_image
from transfer.segmentation.data import Pair, identity_labels, read_pair

from .images import picture

SIDE = 32


def composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None].astype(np.float64) / 255
    return np.rint(rgb * a + 255 * (1 - a)).astype(np.uint8)


def sample_files(folder: Path) -> dict[str, tuple[Path, np.ndarray, np.ndarray]]:
    """name -> (file, the picture upright, the picture in the stored grid), square SIDE x SIDE."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = picture(SIDE, SIDE, seed=3, smooth=True)
    alpha = np.tile(np.linspace(0, 255, SIDE).astype(np.uint8), (SIDE, 1))
    files: dict[str, tuple[Path, np.ndarray, np.ndarray]] = {}

    Image.fromarray(np.dstack([rgb, alpha])).save(folder / "rgba.png")
    files["rgba"] = (folder / "rgba.png", composite_on_white(rgb, alpha), composite_on_white(rgb, alpha))

    wide = (rgb[..., 0].astype(np.uint16) * 257 + np.arange(SIDE, dtype=np.uint16)).astype(np.uint16)
    Image.fromarray(wide).save(folder / "gray16.png")
    gray = np.repeat(np.rint(wide / 257.0).astype(np.uint8)[..., None], 3, -1)
    files["gray16"] = (folder / "gray16.png", gray, gray)

    gray_alpha = composite_on_white(np.repeat(rgb[..., 1:2], 3, -1), alpha)
    Image.fromarray(np.dstack([rgb[..., 1], alpha]), "LA").save(folder / "la.png")
    files["la"] = (folder / "la.png", gray_alpha, gray_alpha)

    palette = rgb // 64 * 64 + 32  # 64 colours
    image = Image.fromarray(palette).quantize(
        colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    image.save(folder / "palette.png")
    indices, table = np.asarray(image), np.array(image.getpalette()[: 3 * 256]).reshape(-1, 3)
    files["palette"] = (
        folder / "palette.png",
        table[indices].astype(np.uint8),
        table[indices].astype(np.uint8),
    )

    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated 90 degrees clockwise
    Image.fromarray(rgb).save(folder / "exif.jpg", quality=95, exif=exif)
    with Image.open(folder / "exif.jpg") as stored_image:
        stored = np.asarray(stored_image.convert("RGB"))
    files["exif"] = (folder / "exif.jpg", np.rot90(stored, k=-1).copy(), stored)

    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    with Image.open(folder / "cmyk.jpg") as cmyk_image:
        cmyk = np.asarray(cmyk_image).astype(np.float64)
    converted = np.rint((255 - cmyk[..., :3]) * (255 - cmyk[..., 3:]) / 255).astype(np.uint8)
    files["cmyk"] = (folder / "cmyk.jpg", converted, converted)
    return files


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, np.ndarray, np.ndarray]]:
    return sample_files(tmp_path_factory.mktemp("modes"))


def test_load_rgb_matches_an_independent_decoding(
    files: dict[str, tuple[Path, np.ndarray, np.ndarray]],
) -> None:
    for name, (path, upright, stored) in files.items():
        for got, want in ((load_rgb(path), upright), (load_rgb(path, upright=False), stored)):
            error = np.abs(np.asarray(got).astype(int) - want).max()
            assert got.mode == "RGB" and error <= 1, f"{name}: off by {error}"


def test_every_consumer_reads_the_same_picture(
    files: dict[str, tuple[Path, np.ndarray, np.ndarray]], tmp_path: Path
) -> None:
    paths = [path for path, _, _ in files.values()]
    crops = ImageFiles(paths, resize=SIDE, crop=SIDE, train=False)  # training, prior and classification
    datamodule = ColorizationDataModule(
        train=[str(p) for p in paths], resize=SIDE, crop=SIDE, batch_size=2, num_workers=0
    )
    loader = datamodule.prior_dataloader(len(paths))
    prior_images = dict(
        zip(map(Path, loader.dataset.files), (x for b in loader for x in b["rgb"]), strict=True)
    )
    mask = tmp_path / "mask.png"
    Image.fromarray(np.zeros((SIDE, SIDE), np.uint8)).save(mask)
    for index, (name, (path, _, _)) in enumerate(files.items()):
        upright, stored = np.asarray(load_rgb(path)), np.asarray(load_rgb(path, upright=False))
        assert np.array_equal(read_rgb_or_skip(path), upright), f"{name}: colorize and evaluate"
        assert np.array_equal(crops[index].numpy(), upright), f"{name}: training crops"
        assert np.array_equal(prior_images[path].permute(1, 2, 0).numpy(), upright), f"{name}: prior pass"
        assert torch.equal(read_image(path), torch.from_numpy(stored.copy()).permute(2, 0, 1)), (
            f"{name}: detection"
        )
        image, _ = read_pair(Pair(name, path, mask), identity_labels(["background"]))
        assert np.array_equal(np.asarray(image), stored), f"{name}: segmentation"
