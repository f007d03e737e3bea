"""Synthetic product photos made from Fashion-MNIST test images, for testing and measuring
`fmnist predict` where no real photos of known class are at hand: each 28x28 image enlarged,
inverted onto a white background (dark garment on white, as a shop photo), placed off-centre
on a larger canvas, saved as an RGB JPEG. They are synthetic and are called so wherever shown.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

SCALE_RANGE = (4.0, 16.0)  # the garment's size: 112 to 448 pixels across
MARGIN_RANGE = (1.15, 1.8)  # canvas side / garment side
JPEG_QUALITY_RANGE = (70, 95)
WHITE = (255, 255, 255)


def photo_jpeg(image: np.ndarray, rng: np.random.Generator) -> bytes:
    """One synthetic photo of a 28x28 uint8 Fashion-MNIST image, as the bytes of an RGB JPEG."""
    side = int(round(28 * rng.uniform(*SCALE_RANGE)))
    garment = Image.fromarray(255 - np.asarray(image, np.uint8)).resize((side, side), Image.Resampling.BICUBIC)
    width, height = (int(side * rng.uniform(*MARGIN_RANGE)) for _ in range(2))
    canvas = Image.new("RGB", (width, height), WHITE)
    corner = (int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1)))
    canvas.paste(garment.convert("RGB"), corner)
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=int(rng.integers(*JPEG_QUALITY_RANGE)))
    return buffer.getvalue()


def write_photos(images: np.ndarray, folder: Path, seed: int = 0) -> list[Path]:
    """`synthetic-NNNN.jpg` per image in `folder` (created), reproducible from `seed`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"synthetic-{i:04d}.jpg"
        path.write_bytes(photo_jpeg(image, rng))
        paths.append(path)
    return paths
