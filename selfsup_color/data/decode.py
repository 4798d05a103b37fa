"""Decoding image files to RGB: whole images (:func:`load_rgb`) or one crop (:func:`read_crop`).

Every file is shown upright (its EXIF orientation applied) and converted to 8-bit RGB:

- RGB, L (grayscale), 1 (bilevel), P without transparency, CMYK, YCbCr: Pillow's conversion
  (CMYK without colour management, as Pillow does it);
- anything with transparency (RGBA, LA, PA, P or L with a transparent colour) is composited onto
  white, as a viewer shows it on a white page. Dropping the alpha channel would show whatever colour
  the encoder left under transparent pixels, often black or noise;
- 16-bit (I;16 PNG and TIFF, and I) is scaled from 0..65535 to 0..255 (Pillow's own conversion
  would clip it at 255); F (float) is taken as 0..1.

Memory. Every reader takes a pixel budget, ``max_pixels`` (default :data:`MAX_PIXELS`): a file whose
header declares more pixels than would be decoded within it is refused with
:class:`ImageTooLargeError` before any pixel is decoded, so a decompression bomb costs a header read.
Crops count the pixels decoded, after JPEG's reduced (``draft``) decoding.
"""

from __future__ import annotations

import random
import warnings
from os import PathLike

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from .crops import Crop, centre_crop, random_crop, resized_size
from .jpeg import decode_jpeg_rgb, jpeg_decoder, jpeg_frame_size, read_if_jpeg
from .resample import resample_crop

ORIENTATION = 0x0112
"""The EXIF tag of the orientation (1 = upright; 5 to 8 swap width and height)."""
SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
MAX_PIXELS = 50_000_000
"""The default pixel budget of one decoded image: 50 megapixels (150 MB as RGB), under Pillow's
89.5-megapixel ``DecompressionBombWarning``. Colorizing such an image at full resolution needs about
5 GB (see docs/pretraining.md, "Commands")."""
REDUCING_GAP = 3.0
"""Boxes over 6x the crop are first box-filtered by an integer factor (Pillow's ``reducing_gap``):
several times faster on huge images, and by Pillow's account indistinguishable from the exact filter."""


class ImageTooLargeError(Image.DecompressionBombError):
    """A file declares more pixels than the reader's budget (``max_pixels``); nothing was decoded."""


def check_pixels(path: str | PathLike[str], width: int, height: int, max_pixels: int | None) -> None:
    """Raise :class:`ImageTooLargeError` naming ``path`` if ``width * height`` exceeds ``max_pixels``
    (None: no budget)."""
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"{path} is {width} x {height} pixels ({width * height / 1e6:.1f} megapixels), over the budget "
            f"of {max_pixels / 1e6:g} megapixels (max_pixels); it was not decoded"
        )


def open_image(path: str | PathLike[str], max_pixels: int | None = MAX_PIXELS) -> Image.Image:
    """``Image.open(path)`` (the header only), refused by :func:`check_pixels` before any decoding.

    Pillow's own warning for images over 89.5 megapixels is silenced: the budget decides. Pillow still
    refuses (``DecompressionBombError``) any image over twice that, whatever ``max_pixels``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(path)
    try:
        check_pixels(path, *image.size, max_pixels)
    except ImageTooLargeError:
        image.close()
        raise
    return image


def orientation(image: Image.Image) -> int:
    """The EXIF orientation of ``image`` (1 to 8); 1 when absent, unknown or unreadable."""
    try:
        value = image.getexif().get(ORIENTATION, 1)
    except Exception:  # a malformed EXIF block must not cost us the pixels
        return 1
    return value if value in range(1, 9) else 1


def rgb_or_gray(image: Image.Image) -> Image.Image:
    """``image`` loaded and converted to mode RGB or L (L kept: it is cheaper to resample)."""
    mode = image.mode
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    if mode in ("RGB", "L"):
        image.load()
        return image
    if mode in SIXTEEN_BIT:
        return _scaled_gray(np.asarray(image), 65535.0)
    if mode == "F":
        return _scaled_gray(np.asarray(image), 1.0)
    return image.convert("L" if mode == "1" else "RGB")


def _scaled_gray(values: np.ndarray, white: float) -> Image.Image:
    scaled = values * (255.0 / white)  # one float64 array, rounded and clipped in place
    np.clip(np.rint(scaled, out=scaled), 0, 255, out=scaled)
    return Image.fromarray(scaled.astype(np.uint8))


def load_rgb(
    path: str | PathLike[str], upright: bool = True, max_pixels: int | None = MAX_PIXELS
) -> Image.Image:
    """The image at ``path`` as RGB at full resolution; raises on a broken file.

    The one reader of whole images (colorize, evaluate, detection, segmentation; crops come from
    :func:`read_crop`, the same picture). ``upright=False`` keeps the stored pixel grid (EXIF
    orientation ignored), which detection boxes and segmentation masks refer to. A file declaring
    more than ``max_pixels`` pixels (None: no budget) raises :class:`ImageTooLargeError` before it is
    decoded.
    """
    with open_image(path, max_pixels) as image:
        turn = orientation(image) if upright else 1
        upright = ImageOps.exif_transpose(image) if turn != 1 else image
        out = rgb_or_gray(upright)
        return out if out.mode == "RGB" else out.convert("RGB")


def read_crop(
    path: str | PathLike[str],
    resize: int,
    size: int,
    rng: random.Random | None = None,
    max_pixels: int | None = MAX_PIXELS,
) -> Tensor:
    """A ``size`` x ``size`` x 3 uint8 crop of the image at ``path`` resized to shorter side ``resize``.

    With ``rng`` the crop is random and flipped half the time (:func:`~.crops.random_crop`), else it
    is centred. The picture is that of resizing the whole (upright, RGB) image with Pillow's
    antialiased bilinear filter and cropping it (within one grey level), but only the crop is
    resampled:

    - a JPEG that needs no reduction is decoded by torchvision or TorchCodec (:mod:`~.jpeg`) into a
      tensor and resampled by torch (:func:`~.resample.resample_crop`), about twice as fast as
      Pillow's filter;
    - a JPEG at least twice the resized size is decoded at 1/2, 1/4 or 1/8 scale (Pillow's
      ``draft``);
    - other files, and JPEGs neither decoder reads, go through Pillow, which resamples the box
      (see :data:`REDUCING_GAP` for boxes still over 6x the crop).

    Raises on a broken file, and (:class:`ImageTooLargeError`) on one that would decode to more than
    ``max_pixels`` pixels (after the reduced decoding), before decoding it.
    """
    data, decoder = read_if_jpeg(path), jpeg_decoder()
    frame = jpeg_frame_size(data) if data is not None and decoder is not None else None
    if frame is not None and not draft_reduces(*frame, resize):
        check_pixels(path, *frame, max_pixels)
        try:
            image = decode_jpeg_rgb(data, decoder[1])
        except Exception:  # a broken file: Pillow decodes it or raises its own error
            pass
        else:
            _, height, width = image.shape
            return resample_crop(image, draw_crop(width, height, resize, size, rng))
    return pillow_crop(path, resize, size, rng, max_pixels)


def pillow_crop(
    path: str | PathLike[str],
    resize: int,
    size: int,
    rng: random.Random | None = None,
    max_pixels: int | None = MAX_PIXELS,
) -> Tensor:
    """:func:`read_crop` through Pillow: reduced (``draft``) JPEG decoding, box resample."""
    with open_image(path, None) as image:
        # draft as crop_image will (EXIF orientation does not change the scale), so that the budget
        # counts the pixels decoded; checked before orientation(), which decodes a PNG to find its EXIF
        image.draft("RGB", resized_size(*image.size, resize))
        check_pixels(path, *image.size, max_pixels)
        turn = orientation(image)
        width, height = image.size[::-1] if turn >= 5 else image.size
        return as_tensor(crop_image(image, draw_crop(width, height, resize, size, rng), turn))


def draw_crop(width: int, height: int, resize: int, size: int, rng: random.Random | None) -> Crop:
    """The random crop (and flip) ``rng`` draws, or the centred crop without ``rng``."""
    if rng is None:
        return centre_crop(width, height, resize, size)
    return random_crop(width, height, resize, size, rng)


def draft_reduces(width: int, height: int, resize: int) -> bool:
    """Whether Pillow's ``draft`` decodes a JPEG of ``width`` x ``height`` reduced for ``resize``.

    It does when both sides are at least twice the resized image's (orientation does not matter).
    """
    resized_width, resized_height = resized_size(width, height, resize)
    return min(width // resized_width, height // resized_height) >= 2


def as_tensor(image: Image.Image) -> Tensor:
    """An RGB Pillow image as an H x W x 3 uint8 tensor (the bytes copied into a writable buffer)."""
    width, height = image.size
    return torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(height, width, 3)


def crop_image(image: Image.Image, crop: Crop, turn: int) -> Image.Image:
    """Resample ``crop`` of the unloaded ``image`` (EXIF orientation ``turn``) as RGB.

    A JPEG is decoded at the smallest scale (1/2, 1/4, 1/8) that ``draft`` allows for ``crop.resized``.
    """
    swap = turn >= 5
    image.draft("RGB", crop.resized[::-1] if swap else crop.resized)
    box = crop.box(*(image.size[::-1] if swap else image.size))
    upright = rgb_or_gray(ImageOps.exif_transpose(image) if turn != 1 else image)
    out = upright.resize(
        (crop.size, crop.size), Image.Resampling.BILINEAR, box=box, reducing_gap=REDUCING_GAP
    )
    if crop.flip:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return out if out.mode == "RGB" else out.convert("RGB")
