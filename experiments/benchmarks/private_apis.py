"""Private-API paths we dropped (issue 15) against their public replacements, in one process.

Each pair does the same work on the same inputs; the private side is the code as it was:

- ``jpeg``: torchvision's ``torch.ops.image.decode_jpeg`` operator against the public
  ``torchvision.io.decode_jpeg`` (its deprecation warning silenced), on hymenoptera's JPEGs;
- ``resample``: ``aten._upsample_bilinear2d_aa`` with an explicit output size against
  ``F.interpolate(..., antialias=True)`` (:func:`~selfsup_color.data.resample.resample_crop`), on
  the train crops of those files (256 / 176);
- ``partial``: Pillow decoding only the rows a crop needs (``image.tile`` cut short, a sentinel row)
  against a full decode (:func:`~selfsup_color.data.decode.pillow_crop`), at ``--resize`` / ``--crop``
  (the Pillow path: every JPEG without a tensor decoder) and at half that (decoded reduced by ``draft``);
- ``timm``: the features of a ``resnet50`` up to ``layer2``, by a copy of ``FeatureDictNet``'s loop
  over the ``features_only`` wrapper against ``forward_intermediates(stop_early=True)``.

Rounds interleave the two sides in an order that alternates round by round; we print the median time
per item of each and the median of the per-round ratios (private is faster where the ratio < 1).

Run: ``python -m experiments.benchmarks.private_apis [--rounds 7 --pairs jpeg resample partial timm]``
"""

from __future__ import annotations

import math
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image

from experiments.benchmarks.common import describe_machine
from experiments.paths import SHARED
from selfsup_color.command import command_parser, parse
from selfsup_color.data import cache_dir, extract_archive, find_images
from selfsup_color.data.crops import Crop, random_crop
from selfsup_color.data.decode import as_tensor, crop_image, draw_crop, orientation, pillow_crop
from selfsup_color.data.jpeg import read_if_jpeg
from selfsup_color.data.resample import reach, resample_crop

Side = Callable[[object], object]


# ---------------------------------------------------------------- jpeg: the private operator


def private_decode_jpeg(data: torch.Tensor) -> torch.Tensor:
    from torchvision.io import ImageReadMode

    return torch.ops.image.decode_jpeg(data, ImageReadMode.RGB.value, True)


def public_decode_jpeg(data: torch.Tensor) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return decode_jpeg(data, mode=ImageReadMode.RGB, apply_exif_orientation=True)


# ---------------------------------------------------------------- resample: the private aten call


def private_resample(item: tuple[torch.Tensor, Crop]) -> torch.Tensor:
    image, crop = item
    _, height, width = image.shape
    resized_width, resized_height = crop.resized
    rows, columns = crop.top + crop.size, crop.left + crop.size
    batch = image.permute(1, 2, 0)[None].permute(0, 3, 1, 2)
    source = batch[
        :, :, : reach(rows, height / resized_height, height), : reach(columns, width / resized_width, width)
    ]
    resized = torch.ops.aten._upsample_bilinear2d_aa(
        source, [rows, columns], False, resized_height / height, resized_width / width
    )
    out = resized[0, :, crop.top :, crop.left :].permute(1, 2, 0).contiguous()
    return out.flip(1) if crop.flip else out


# ---------------------------------------------------------------- partial: Pillow internals

PARTIAL_SENTINEL = (3, 251, 7)


class PartialDecodeError(OSError):
    pass


def rows_needed(box: tuple[float, float, float, float], size: int, height: int) -> int:
    scale = max(1.0, (box[3] - box[1]) / size)
    return min(height, math.ceil(box[3] + 3.0 * scale) + 2)


def decode_top_rows(image: Image.Image, rows: int) -> bool:
    """The removed partial decode: the tile cut to ``rows``, a sentinel row to detect failure."""
    width, height = image.size
    eligible = (
        image.format == "JPEG"
        and image.mode in ("RGB", "L")
        and "progressive" not in image.info
        and len(image.tile) == 1
        and rows < height
    )
    if not eligible:
        return False
    canvas = Image.core.new(image.mode, image.size)
    sentinel = PARTIAL_SENTINEL if image.mode == "RGB" else PARTIAL_SENTINEL[0]
    canvas.paste(sentinel, (0, rows - 1, width, rows))
    tile, extents = image.tile[0], (0, 0, width, rows)
    image.tile = [
        tile._replace(extents=extents) if hasattr(tile, "_replace") else (tile[0], extents, *tile[2:])
    ]
    image.im = canvas
    try:
        image.load()
    except OSError:
        pass
    if image.crop((0, rows - 1, width, rows)).getcolors(1) == [(width, sentinel)]:
        raise PartialDecodeError(f"{image.filename}: the partial decode did not reach row {rows}")
    return True


def partial_crop_image(image: Image.Image, crop: Crop, turn: int, partial: bool) -> Image.Image:
    """The removed path: decode only the rows the crop needs (upright JPEGs), then :func:`crop_image`
    (whose ``draft`` is a no-op on the loaded image)."""
    if partial and turn == 1:
        image.draft("RGB", crop.resized)
        box = crop.box(*image.size)
        decode_top_rows(image, rows_needed(box, crop.size, image.size[1]))
    return crop_image(image, crop, turn)


def private_pillow_crop(path: str, resize: int, size: int, rng: random.Random) -> torch.Tensor:
    """The removed ``pillow_crop``: partial decode first, a full decode when it fails."""
    with Image.open(path) as image:
        turn = orientation(image)
        width, height = image.size[::-1] if turn >= 5 else image.size
        crop = draw_crop(width, height, resize, size, rng)
        try:
            return as_tensor(partial_crop_image(image, crop, turn, partial=True))
        except PartialDecodeError:
            pass
    with Image.open(path) as image:
        return as_tensor(partial_crop_image(image, crop, turn, partial=False))


# ---------------------------------------------------------------- timm: a copy of FeatureDictNet._collect


def private_run_until(backbone: torch.nn.Module, x: torch.Tensor, depth: int) -> list[torch.Tensor]:
    features: list[torch.Tensor] = []
    for name, module in backbone.items():
        x = module(x)
        if name in backbone.return_layers:
            features.append(x)
            if len(features) == depth:
                break
    return features


# ---------------------------------------------------------------- timing


def interleaved(
    private: Side, public: Side, items: Sequence[object], rounds: int
) -> tuple[float, float, float]:
    """Median seconds per item of each side over ``rounds`` (after a warm-up) and the median ratio."""
    times: dict[str, list[float]] = {"private": [], "public": []}
    sides = {"private": private, "public": public}
    for number in range(-1, rounds):
        order = ["private", "public"] if number % 2 else ["public", "private"]
        for name in order:
            began = time.perf_counter()
            for item in items:
                sides[name](item)
            if number >= 0:
                times[name].append((time.perf_counter() - began) / len(items))
    ratio = statistics.median(b / a for a, b in zip(times["private"], times["public"], strict=True))
    return statistics.median(times["private"]), statistics.median(times["public"]), ratio


def jpeg_pairs(files: list[Path], resize: int, crop: int) -> dict[str, tuple[Side, Side, list[object]]]:
    """Decode and resample inputs: the JPEG bytes of ``files``, and their decoded images with a crop each."""
    data = [torch.frombuffer(raw, dtype=torch.uint8) for f in files if (raw := read_if_jpeg(f)) is not None]
    rng = random.Random(0)
    crops = []
    for tensor in data:
        image = private_decode_jpeg(tensor)
        crops.append((image, random_crop(image.shape[2], image.shape[1], resize, crop, rng)))
    return {
        "jpeg": (private_decode_jpeg, public_decode_jpeg, data),
        "resample": (private_resample, lambda item: resample_crop(*item), crops),
    }


def partial_pairs(files: list[Path], resize: int, crop: int) -> dict[str, tuple[Side, Side, list[object]]]:
    """Pillow crops with and without the partial decode, at ``resize`` and at half of it (drafted)."""
    jpegs = [str(f) for f in files if f.suffix.lower() in (".jpg", ".jpeg")]
    pairs = {}
    for r, c in ((resize, crop), (resize // 2, crop // 2)):
        pairs[f"partial {r}/{c}"] = (
            lambda path, r=r, c=c: private_pillow_crop(path, r, c, random.Random(path)),
            lambda path, r=r, c=c: pillow_crop(path, r, c, random.Random(path)),
            jpegs,
        )
    return pairs


def timm_pair(batch: int, size: int) -> dict[str, tuple[Side, Side, list[object]]]:
    """resnet50 features to layer2 (depth 3 of 5): the copied loop against ``forward_intermediates``."""
    import timm

    wrapped = timm.create_model("resnet50", pretrained=False, features_only=True, in_chans=1).eval()
    plain = timm.create_model("resnet50", pretrained=False, num_classes=0, in_chans=1).eval()
    plain.load_state_dict(wrapped.state_dict(), strict=False)
    x = torch.randn(batch, 1, size, size)

    def private(x: torch.Tensor) -> object:
        with torch.no_grad():
            return private_run_until(wrapped, x, 3)

    def public(x: torch.Tensor) -> object:
        with torch.no_grad():
            return plain.forward_intermediates(x, indices=[0, 1, 2], stop_early=True, intermediates_only=True)

    return {"timm": (private, public, [x])}


def main() -> None:
    parser = command_parser("python -m experiments.benchmarks.private_apis", __doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=SHARED / "data" / "hymenoptera.tar")
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument("--crop", type=int, default=176)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pairs", nargs="+", default=["jpeg", "resample", "partial", "timm"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a DataLoader worker has 1)")
    args = parse(parser, sys.argv[1:], {})
    torch.set_num_threads(args.threads)
    root = extract_archive(args.archive, cache_dir())
    files = find_images([root / "train", root / "val"])
    print(f"{len(files)} files of {root}; {describe_machine()}")
    pairs: dict[str, tuple[Side, Side, list[object]]] = {}
    if {"jpeg", "resample"} & set(args.pairs):
        pairs |= {k: v for k, v in jpeg_pairs(files, args.resize, args.crop).items() if k in args.pairs}
    if "partial" in args.pairs:
        pairs |= partial_pairs(files, args.resize, args.crop)
    if "timm" in args.pairs:
        pairs |= timm_pair(8, 176)
    print(f"{'pair':<18} {'private':>10} {'public':>10} {'public / private time':>22}")
    for name, (private, public, items) in pairs.items():
        t_private, t_public, ratio = interleaved(private, public, items, args.rounds)
        print(f"{name:<18} {t_private * 1e3:8.3f} ms {t_public * 1e3:8.3f} ms {ratio:21.3f}x")


if __name__ == "__main__":
    main()
