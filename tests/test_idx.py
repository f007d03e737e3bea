"""IDX reading and writing: a round trip, and every damaged file gives a one-line DataError naming it."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from fmnist.errors import DataError
from fmnist.idx import parse_idx, read_idx_bytes, write_idx

IMAGES = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
LABELS = np.array([0, 9, 3], dtype=np.uint8)


def _assert_one_line(exc: pytest.ExceptionInfo[DataError], *parts: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message


@pytest.mark.parametrize("array", [IMAGES, LABELS], ids=["images", "labels"])
def test_round_trip(array: np.ndarray) -> None:
    data = write_idx(array)
    assert data[:4] == (b"\x00\x00\x08\x03" if array.ndim == 3 else b"\x00\x00\x08\x01")
    back = parse_idx(data, "x")
    assert back.dtype == np.uint8 and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable


def test_header_is_big_endian() -> None:
    data = write_idx(np.zeros((2, 28, 28), dtype=np.uint8))
    assert struct.unpack(">IIII", data[:16]) == (0x803, 2, 28, 28)
    assert len(data) == 16 + 2 * 28 * 28


def test_write_rejects_what_it_cannot_read_back() -> None:
    with pytest.raises(ValueError, match="uint8"):
        write_idx(np.zeros(3, dtype=np.int32))
    with pytest.raises(ValueError, match="dimensions"):
        write_idx(np.zeros((2, 2), dtype=np.uint8))


def test_reads_gzip_and_raw(tmp_path: Path) -> None:
    data = write_idx(IMAGES)
    (tmp_path / "a-idx3-ubyte").write_bytes(data)
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(gzip.compress(data))
    assert read_idx_bytes(tmp_path / "a-idx3-ubyte") == data
    assert read_idx_bytes(tmp_path / "a-idx3-ubyte.gz") == data


def test_wrong_kind_is_refused() -> None:
    with pytest.raises(DataError) as exc:
        parse_idx(write_idx(LABELS), "labels-file", ndim=3)
    _assert_one_line(exc, "labels-file", "0x00000803", "0x00000801")


def test_wrong_magic() -> None:
    data = b"\x1f\x8b\x08\x00" + write_idx(LABELS)[4:]  # e.g. a .gz file not decompressed
    with pytest.raises(DataError) as exc:
        parse_idx(data, "weird.bin")
    _assert_one_line(exc, "weird.bin", "expected magic number 0x00000803 or 0x00000801", "found 0x1F8B0800")


def test_non_ubyte_type_is_refused() -> None:
    data = b"\x00\x00\x0d\x01" + write_idx(LABELS)[4:]  # 0x0D: float
    with pytest.raises(DataError) as exc:
        parse_idx(data, "floats")
    _assert_one_line(exc, "floats", "found 0x00000D01")


@pytest.mark.parametrize("data", [b"", b"\x00\x00", write_idx(IMAGES)[:10]], ids=["empty", "2-bytes", "10-bytes"])
def test_short_header(data: bytes) -> None:
    with pytest.raises(DataError) as exc:
        parse_idx(data, "short-file")
    _assert_one_line(exc, "short-file", "header too short")


def test_truncated_payload() -> None:
    data = write_idx(IMAGES)[:-7]
    with pytest.raises(DataError) as exc:
        parse_idx(data, "cut-file")
    _assert_one_line(exc, "cut-file", "truncated", "expected 60 bytes of data", "found 53")


def test_trailing_bytes() -> None:
    with pytest.raises(DataError) as exc:
        parse_idx(write_idx(LABELS) + b"\x00\x01", "long-file")
    _assert_one_line(exc, "long-file", "2 unexpected trailing bytes")


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "t-idx3-ubyte.gz"
    packed = gzip.compress(write_idx(np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)))
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError) as exc:
        read_idx_bytes(path)
    _assert_one_line(exc, str(path), "not a valid gzip file (truncated or corrupted)")


@pytest.mark.parametrize("where", [0.3, 0.6, -6], ids=["early", "middle", "crc"])
def test_bit_flipped_gzip(tmp_path: Path, where: float) -> None:
    path = tmp_path / "f-idx3-ubyte.gz"
    packed = bytearray(
        gzip.compress(write_idx(np.random.default_rng(1).integers(0, 256, (10, 28, 28), dtype=np.uint8)))
    )
    index = int(len(packed) * where) if where > 0 else len(packed) + int(where)
    packed[index] ^= 0x10
    path.write_bytes(bytes(packed))
    with pytest.raises(DataError) as exc:
        read_idx_bytes(path)
    _assert_one_line(exc, str(path), "not a valid gzip file")


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        read_idx_bytes(tmp_path / "nope.gz")
    _assert_one_line(exc, "nope.gz", "cannot read")
