"""Reading any picture and converting it the way Fashion-MNIST was made (fmnist.pictures)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmnist import pictures as pics
from fmnist.synthetic_photos import photo_jpeg


def garment() -> np.ndarray:
    """A Fashion-MNIST-style 28x28 image: a bright shape on a black background."""
    x = np.zeros((28, 28), np.uint8)
    x[4:24, 8:20] = 200
    x[6:10, 4:24] = 160
    return x


def test_a_fashion_mnist_style_picture_passes_through_unchanged(tmp_path: Path):
    x = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    x[0, :] = x[-1, :] = 0  # dark corners: Fashion-MNIST's polarity
    Image.fromarray(x).save(tmp_path / "a.png")
    picture = pics.load(tmp_path / "a.png")
    assert picture.conversion == "pass-through"
    np.testing.assert_array_equal(picture.pixels, x)


def test_real_test_images_all_pass_through(real_data_dir):
    from fmnist.datasets import load_fashion_mnist

    images = load_fashion_mnist(str(real_data_dir)).test_images
    for x in images[::50]:
        pixels, how = pics.to_network_input(Image.fromarray(x))
        assert how == "pass-through"
        np.testing.assert_array_equal(pixels, x)
    corners = np.median(np.stack([images[:, 0, 0], images[:, 0, -1], images[:, -1, 0], images[:, -1, -1]]), axis=0)
    assert corners.max() < pics.DARK_BACKGROUND_BELOW  # the rule holds for every test image


def test_a_photo_on_white_is_trimmed_resized_centred_and_negated(tmp_path: Path):
    x = garment()
    big = Image.fromarray(255 - x).resize((280, 280), Image.Resampling.NEAREST)
    canvas = Image.new("L", (900, 500), 255)
    canvas.paste(big, (600, 30))  # off-centre on a larger canvas
    canvas.convert("RGB").save(tmp_path / "photo.jpg", quality=90)
    picture = pics.load(tmp_path / "photo.jpg")
    assert picture.conversion == "converted"
    assert picture.source_size == (900, 500)
    assert picture.pixels.shape == (28, 28) and picture.pixels.dtype == np.uint8
    assert picture.pixels[0, 0] <= 5  # the background black again
    # the garment's bounding box (20 x 20 here) fills the 28x28 frame, as in Fashion-MNIST
    assert np.abs(picture.pixels.astype(int) - _trimmed_and_rescaled(x)).mean() < 20


def _trimmed_and_rescaled(x: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(x)
    box = Image.fromarray(x[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1])
    w, h = box.size
    s = 28 / max(w, h)
    small = box.resize((round(w * s), round(h * s)), Image.Resampling.BOX)
    canvas = Image.new("L", (28, 28), 0)
    canvas.paste(small, ((28 - small.size[0]) // 2, (28 - small.size[1]) // 2))
    return np.asarray(canvas, int)


def test_transparency_is_composited_on_white(tmp_path: Path):
    rgba = np.zeros((100, 60, 4), np.uint8)  # fully transparent black, with an opaque dark block
    rgba[20:80, 10:50] = (30, 30, 30, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    grey, _ = pics.read_grey(tmp_path / "t.png")
    assert grey.getpixel((0, 0)) == 255 and grey.getpixel((30, 50)) == 30
    picture = pics.load(tmp_path / "t.png")
    assert picture.conversion == "converted" and picture.pixels[14, 14] > 200 and picture.pixels[0, 0] == 0


@pytest.mark.parametrize(
    "fmt,suffix,mode",
    [
        ("PNG", "png", "L"),
        ("PNG", "png", "RGB"),
        ("PNG", "png", "P"),
        ("PNG", "png", "LA"),
        ("PNG", "png", "1"),
        ("PNG", "png", "I;16"),
        ("JPEG", "jpg", "RGB"),
        ("JPEG", "jpg", "CMYK"),
        ("JPEG", "jpg", "L"),
        ("WEBP", "webp", "RGBA"),
        ("BMP", "bmp", "RGB"),
        ("TIFF", "tif", "I;16"),
        ("TIFF", "tif", "F"),
        ("TIFF", "tif", "RGB"),
        ("GIF", "gif", "P"),
    ],
)
def test_every_format_and_mode_reads_as_8_bit_grey(tmp_path: Path, fmt: str, suffix: str, mode: str):
    x = 255 - np.kron(garment(), np.ones((4, 4), np.uint8))  # dark garment on white, 112x112
    image = Image.fromarray(x, "L")
    if mode == "I;16":
        image = Image.fromarray((x.astype(np.uint16) * 257).astype("<u2"))
    elif mode == "F":
        image = Image.fromarray(x.astype(np.float32) / 255.0, "F")
    elif mode in ("LA", "RGBA"):
        image = image.convert(mode)
    elif mode != "L":
        image = image.convert(mode)
    image.save(tmp_path / f"x.{suffix}", format=fmt)
    grey, size = pics.read_grey(tmp_path / f"x.{suffix}")
    assert grey.mode == "L" and size == (112, 112)
    tolerance = 40 if fmt in ("JPEG", "WEBP") or mode == "1" else 1  # lossy, or 1-bit dithered
    assert np.abs(np.asarray(grey, int) - x).mean() < tolerance
    assert pics.load(tmp_path / f"x.{suffix}").conversion == "converted"


def test_gif_first_frame_is_used(tmp_path: Path):
    first = Image.fromarray(garment())
    second = Image.fromarray(np.full((28, 28), 0, np.uint8))
    first.save(tmp_path / "a.gif", save_all=True, append_images=[second])
    picture = pics.load(tmp_path / "a.gif")
    assert picture.conversion == "pass-through"
    np.testing.assert_array_equal(picture.pixels > 100, garment() > 100)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path):
    x = np.zeros((28, 28), np.uint16)
    x[5:20, 5:20] = 65535
    x[10, 10] = 32896  # 128 * 257
    Image.fromarray(x.astype("<u2")).save(tmp_path / "a.png")
    picture = pics.load(tmp_path / "a.png")
    assert picture.pixels[6, 6] == 255 and picture.pixels[10, 10] == 128 and picture.pixels[0, 0] == 0


def test_a_dark_background_photo_is_not_negated(tmp_path: Path):
    big = Image.fromarray(garment()).resize((140, 140), Image.Resampling.NEAREST)
    big.save(tmp_path / "dark.png")
    picture = pics.load(tmp_path / "dark.png")
    assert picture.conversion == "converted"
    assert picture.pixels[0, 0] == 0 and picture.pixels[14, 14] > 150


def test_synthetic_photo_converts_close_to_its_source(real_data_dir):
    from fmnist.datasets import load_fashion_mnist

    images = load_fashion_mnist(str(real_data_dir)).test_images[:40]
    rng = np.random.default_rng(1)
    diffs = []
    for x in images:
        import io

        grey, _ = pics.read_grey(io.BytesIO(photo_jpeg(x, rng)))
        pixels, how = pics.to_network_input(grey)
        assert how == "converted"
        diffs.append(np.abs(pixels.astype(int) - x).mean())
    assert np.mean(diffs) < 25  # of 255: the same garment, not noise (an unrelated pair differs by ~60)


def test_not_a_picture_truncated_and_unsupported_files_fail_in_one_line(tmp_path: Path):
    (tmp_path / "notes.png").write_text("not a picture\n")
    Image.fromarray(garment()).resize((300, 300)).convert("RGB").save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    Image.fromarray(garment()).save(tmp_path / "a.ico", format="ICO")
    for name, words in (("notes.png", "not a picture"), ("cut.jpg", "truncated"), ("a.ico", "not supported")):
        with pytest.raises(pics.PictureError, match=words) as info:
            pics.load(tmp_path / name)
        assert "\n" not in str(info.value)


def test_oversized_pictures_are_refused_before_decoding(tmp_path: Path, monkeypatch):
    side = int(pics.MAX_PIXELS**0.5) + 100  # just over the cap, under Pillow's own warning
    Image.new("1", (side, side), 1).save(tmp_path / "big.png")
    Image.new("1", (10_000, 10_000), 1).save(tmp_path / "huge.png")  # over Pillow's warning threshold too
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self, *a: decoded.append(self) or None)
    for name in ("big.png", "huge.png"):
        start = time.perf_counter()
        with pytest.raises(pics.PictureError, match="too large"):
            pics.load(tmp_path / name)
        assert time.perf_counter() - start < 1.0
    assert decoded == []


def test_collect_lists_folders_and_reports_empty_or_missing_ones(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "some").mkdir()
    for name in ("b.png", "a.JPG", "notes.txt", ".hidden.png"):
        (tmp_path / "some" / name).write_bytes(b"x")
    files, problems = pics.collect([tmp_path / "some", tmp_path / "empty", tmp_path / "missing.png"])
    assert [f.name for f in files] == ["a.JPG", "b.png"]
    assert [(p.name, reason.split(" (")[0]) for p, reason in problems] == [
        ("empty", "no pictures in this folder"),
        ("missing.png", "no such file or folder"),
    ]
