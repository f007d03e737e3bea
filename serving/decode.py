"""Uploaded bytes -> the 28x28 image the network takes, by `fmnist.pictures`' own rules.

A thin adapter: `pictures.read_grey` opens what Pillow opens, a path or a file object, so the
bytes go in as a `BytesIO` and every rule (formats, the pixel cap checked from the header before
any pixel is decoded, EXIF orientation, transparency on white, the Fashion-MNIST conversion)
stays in `fmnist.pictures`. Candidate to move there as `pictures.load_bytes`.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

import numpy as np

from fmnist import pictures as pics
from serving.limits import DECODE_SLOTS

_slots = threading.BoundedSemaphore(DECODE_SLOTS)


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray  # uint8 [28, 28], dark background
    conversion: str  # "pass-through" or "converted"
    source_size: tuple[int, int]  # width, height as uploaded


def decode(data: bytes) -> Decoded:
    """One picture's bytes -> network input; PictureError (one line) when they are not usable."""
    if not data:
        raise pics.PictureError("empty upload (0 bytes)", "empty")
    with _slots:  # bounded: decoding a large picture takes memory, however small its file
        grey, size = pics.read_grey(io.BytesIO(data))
        pixels, conversion = pics.to_network_input(grey)
    return Decoded(pixels, conversion, size)


def to_png(pixels: np.ndarray) -> bytes:
    """A 28x28 uint8 image as 8-bit grey PNG bytes (test images for the page)."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8), "L").save(out, format="PNG")
    return out.getvalue()
