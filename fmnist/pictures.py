"""Any picture a user has, read through Pillow and turned into the 28x28 image the network takes.

The conversion follows the steps that made Fashion-MNIST from Zalando's product photos
(zalandoresearch/fashion-mnist, README, "Get the Data"): trim the edges close to the corner
colour, resize the longest edge to 28, sharpen, centre on a 28x28 canvas of the background
colour, negate, 8-bit grey. So a product photo on a white background looks to the network like
the images it was trained on.

The background colour is the median of the four corner pixels of the 8-bit grey picture
(transparency composited on white first). It also says which way round a picture is: a light
background (>= `DARK_BACKGROUND_BELOW`) is a photo, negated at the end; a dark one already has
Fashion-MNIST's polarity and is not negated. A 28x28 picture with a dark background is taken to
be a Fashion-MNIST-style image and passes through unchanged, pixel for pixel (every one of the
70,000 Fashion-MNIST images has a corner median under 52, so all of them pass through).

No framework is imported here: the core and `fmnist predict` on an ONNX file need only Pillow.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageChops, ImageFilter, ImageOps, UnidentifiedImageError

from fmnist import IMAGE_SHAPE
from fmnist.errors import FmnistError

SIDE = IMAGE_SHAPE[0]
#: The formats `fmnist predict` reads, as Pillow names them (MPO: the JPEG variant many cameras write).
FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "BMP", "GIF", "TIFF")
#: File name endings taken from a folder; other files there are skipped (listed apart).
SUFFIXES = (".png", ".jpg", ".jpeg", ".jpe", ".webp", ".bmp", ".dib", ".gif", ".tif", ".tiff")
#: The project's own cap, checked from the header before any pixel is decoded: 40 megapixels is a
#: large camera photo (160 MB decoded as RGBA). Pillow's bomb guard only warns below ~179 M pixels.
MAX_PIXELS = 40_000_000
DARK_BACKGROUND_BELOW = 128  # a corner median under this: a dark background, Fashion-MNIST's polarity
TRIM_THRESHOLD = round(0.05 * 255)  # "close to the corner colour": within 5% of the intensity range
# Sharpening: the dataset's "Gaussian operator with the radius and standard deviation of 1.0,
# with increasing effect near outlines", as Pillow's unsharp mask at half strength: the box
# filter below blurs less than the dataset's subsampling, and on synthetic photos made from test
# images Pillow's default 150% moved more of them off the class of the original (measured:
# docs/use-your-model.md).
SHARPEN = ImageFilter.UnsharpMask(radius=1.0, percent=50, threshold=3)
WHITE = 255


class PictureError(FmnistError):
    """A file that cannot be used as a picture: the message says why, in one line; `reason`
    says it for programs (`fmnist serve` picks its HTTP status by it)."""

    def __init__(self, message: str, reason: str = "corrupt") -> None:
        super().__init__(message)
        self.reason = reason  # one of REASONS


#: Why a picture was refused: nothing in it, over the pixel cap, not a picture at all, a format
#: not read here, or damaged data.
REASONS = ("empty", "too_large", "not_a_picture", "unsupported", "corrupt")


@dataclass
class Picture:
    """A picture as the network sees it: 28x28 uint8, dark background, and how it got there."""

    path: Path
    pixels: np.ndarray
    conversion: str  # "pass-through" (already Fashion-MNIST-style) or "converted"
    source_size: tuple[int, int]  # width, height as read
    seconds: dict[str, float] = field(default_factory=dict)  # "decode", "convert"


def collect(paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The picture files named or found in the folders named (sorted, not recursive), and the
    problems met: a missing path, an empty folder. Non-picture names in a folder are skipped."""
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SUFFIXES
            )
            if not found:
                problems.append((path, f"no pictures in this folder (looked for {', '.join(SUFFIXES)})"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append((path, "no such file or folder"))
    return files, problems


def load(path: Path) -> Picture:
    """Read one picture and convert it to the network's input; PictureError says why not."""
    start = time.perf_counter()
    grey, size = read_grey(path)
    decoded = time.perf_counter()
    pixels, conversion = to_network_input(grey)
    return Picture(
        Path(path), pixels, conversion, size, {"decode": decoded - start, "convert": time.perf_counter() - decoded}
    )


def read_grey(path: Path | BinaryIO) -> tuple[Image.Image, tuple[int, int]]:
    """The picture (a file, or bytes in a file object) as 8-bit grey ("L"): transparency
    composited on white, 16-bit and float scaled to 8 bits, the first frame of an animation,
    turned upright by its EXIF orientation."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PictureError(f"too large to read (over {MAX_PIXELS:,} pixels)", "too_large") from None
    except UnidentifiedImageError:
        raise PictureError("not a picture Pillow can read", "not_a_picture") from None
    except OSError as exc:
        raise PictureError(f"cannot open: {exc.strerror or exc}") from None
    with image:
        if image.format not in FORMATS:
            raise PictureError(
                f"{image.format} pictures are not supported (use {', '.join(FORMATS[:-1])} or TIFF)", "unsupported"
            )
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise PictureError(f"too large: {width}x{height} is over the {MAX_PIXELS:,}-pixel limit", "too_large")
        try:
            image.seek(0)  # GIF, TIFF, WebP: the first frame
            image.load()
            image = ImageOps.exif_transpose(image)
            grey = _to_grey(image)
        except (OSError, EOFError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
            raise PictureError(f"cannot decode ({exc}); the file may be truncated or corrupt") from None
    return grey, (width, height)


def _to_grey(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):  # 16-bit grey (PNG, TIFF): 0-65535
        values = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8))
    if mode == "F":  # float TIFF: 0-1 when it fits there, else 0-255
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        scale = 255.0 if values.max(initial=0.0) <= 1.0 else 1.0
        return Image.fromarray(np.clip(np.round(values * scale), 0, 255).astype(np.uint8))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (WHITE, WHITE, WHITE, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    if mode == "L":
        return image.copy()
    return image.convert("RGB").convert("L") if mode in ("CMYK", "YCbCr", "LAB", "HSV") else image.convert("L")


def background(grey: Image.Image) -> int:
    """The median of the four corner pixels: the background colour, robust to one odd corner."""
    w, h = grey.size
    corners = [grey.getpixel(xy) for xy in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1))]
    return int(np.median(corners))


def to_network_input(grey: Image.Image) -> tuple[np.ndarray, str]:
    """28x28 uint8 with a dark background, and "pass-through" or "converted"."""
    bg = background(grey)
    dark = bg < DARK_BACKGROUND_BELOW
    if grey.size == (SIDE, SIDE) and dark:
        return np.array(grey, dtype=np.uint8), "pass-through"
    # 1. trim the edges close to the corner colour (a blank picture keeps its whole frame)
    diff = ImageChops.difference(grey, Image.new("L", grey.size, bg))
    box = diff.point(lambda p: 255 if p > TRIM_THRESHOLD else 0).getbbox()
    trimmed = grey.crop(box) if box else grey
    # 2. the longest edge to 28 (box filter: each pixel the mean of the pixels it covers)
    w, h = trimmed.size
    scale = SIDE / max(w, h)
    size = (max(1, min(SIDE, round(w * scale))), max(1, min(SIDE, round(h * scale))))
    small = trimmed.resize(size, Image.Resampling.BOX)
    # 3. sharpen, 4. centre on a canvas of the background colour, 5. negate a light background
    small = small.filter(SHARPEN)
    canvas = Image.new("L", (SIDE, SIDE), bg)
    canvas.paste(small, ((SIDE - size[0]) // 2, (SIDE - size[1]) // 2))
    if not dark:
        canvas = ImageOps.invert(canvas)
    return np.array(canvas, dtype=np.uint8), "converted"


def save_input(pixels: np.ndarray, path: Path) -> None:
    """The 28x28 image the network saw, as an 8-bit grey PNG."""
    Image.fromarray(np.asarray(pixels, np.uint8)).save(path, format="PNG")
