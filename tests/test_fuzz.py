"""Property-based fuzzing of the IDX reader: whatever bytes it gets, it either returns an array
of the shape the header states or raises `DataError` with a one-line message naming the file:
never another exception, which the CLI would show as a traceback. The config loader has its
own file (test_fuzz_config.py); the shared helpers are in fuzzing.py.
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fmnist.errors import DataError
from fmnist.idx import MAGIC, decompress_gzip, parse_idx, read_idx_bytes, write_idx
from fuzzing import FUZZ, FUZZ_FILES, assert_one_line, event


# --------------------------------------------------------------------------------------------
# IDX reader


def check_parse(data: bytes, name: str, ndim: int | None) -> np.ndarray | None:
    """parse_idx returns what the header says, or a one-line DataError naming `name`."""
    try:
        array = parse_idx(data, name, ndim=ndim)
    except DataError as exc:
        assert_one_line(exc, name)
        event("refused")
        return None
    event("parsed")
    assert isinstance(array, np.ndarray) and array.dtype == np.uint8
    (magic,) = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    assert magic in MAGIC.values() and (ndim is None or dims == ndim)
    shape = struct.unpack(f">{dims}I", data[4 : 4 + 4 * dims])
    assert array.shape == shape
    assert array.tobytes() == data[4 + 4 * dims :]
    return array


def header(ndim: int, shape: list[int]) -> bytes:
    return struct.pack(f">I{ndim}I", MAGIC[ndim], *shape)


ndims = st.sampled_from([None, 1, 3])
dim = st.one_of(st.integers(0, 6), st.sampled_from([28, 255, 256, 2**16, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1))


@FUZZ
@given(data=st.binary(max_size=300), ndim=ndims)
@example(data=b"", ndim=None)
@example(data=b"\x00\x00\x08\x03\x00\x00", ndim=3)
@example(data=b"\x1f\x8b\x08\x00", ndim=None)  # a gzip file read as raw IDX
def test_parse_idx_arbitrary_bytes(data: bytes, ndim: int | None) -> None:
    check_parse(data, "fuzz-idx3-ubyte", ndim)


@FUZZ
@given(kind=st.sampled_from([1, 3]), ask=st.booleans(), draw=st.data())
def test_parse_idx_valid_header_random_payload(kind: int, ask: bool, draw: Any) -> None:
    shape = draw.draw(st.lists(dim, min_size=kind, max_size=kind), label="shape")
    expected = math.prod(shape)
    if expected <= 500:
        length = draw.draw(st.integers(max(0, expected - 20), expected + 20), label="payload length")
    else:
        length = draw.draw(st.integers(0, 600), label="payload length")
    payload = draw.draw(st.binary(min_size=length, max_size=length), label="payload")
    data = header(kind, shape) + payload
    array = check_parse(data, "train-images-idx3-ubyte", kind if ask else None)
    if length != expected:
        assert array is None
    elif array is None:  # only an empty shape numpy cannot index, e.g. 0 x 2^32-1 x 2^32-1
        assert expected == 0 and math.prod(d for d in shape if d) >= 2**63, shape


@pytest.mark.parametrize(
    "shape", [(2**31, 2**31, 4), (2**32 - 1, 2**32 - 1, 2**32 - 1), (2**16, 2**16, 0), (0, 2**32 - 1, 2**32 - 1)]
)
def test_huge_dimensions(shape) -> None:
    """A product that overflows int64 (2^31 * 2^31 * 4 = 2^64 wraps to 0) is a truncation; an empty
    shape numpy cannot index (0 x 2^32-1 x 2^32-1) is refused too."""
    array = check_parse(header(3, list(shape)), "huge", 3)
    assert (array is None) == (shape != (2**16, 2**16, 0))


def small_idx_file(draw: Any) -> bytes:
    kind = draw.draw(st.sampled_from([1, 3]), label="kind")
    shape = draw.draw(st.lists(st.integers(0, 5), min_size=kind, max_size=kind), label="shape")
    values = draw.draw(st.binary(min_size=math.prod(shape), max_size=math.prod(shape)), label="values")
    return write_idx(np.frombuffer(values, dtype=np.uint8).reshape(shape))


def damage(draw: Any, data: bytes) -> bytes:
    """Flip some bytes, then maybe cut or extend the end."""
    buf = bytearray(data)
    for _ in range(draw.draw(st.integers(0, 4), label="flips") if buf else 0):
        i = draw.draw(st.integers(0, len(buf) - 1), label="position")
        buf[i] ^= draw.draw(st.integers(1, 255), label="xor")
    end = draw.draw(st.sampled_from(["keep", "cut", "extend"]), label="end")
    if end == "cut" and buf:
        del buf[draw.draw(st.integers(0, len(buf) - 1), label="cut at") :]
    elif end == "extend":
        buf += draw.draw(st.binary(min_size=1, max_size=20), label="extra")
    return bytes(buf)


@FUZZ
@given(draw=st.data(), ndim=ndims)
def test_parse_idx_damaged_files(draw: Any, ndim: int | None) -> None:
    check_parse(damage(draw, small_idx_file(draw)), "t10k-labels-idx1-ubyte", ndim)


def check_decompress(data: bytes, name: str) -> bytes | None:
    try:
        out = decompress_gzip(data, name)
    except DataError as exc:
        assert_one_line(exc, name)
        return None
    assert isinstance(out, bytes)
    return out


gzip_like = st.one_of(
    st.binary(max_size=200),
    # a gzip magic with random method, flags (FEXTRA, FNAME, FCOMMENT, FHCRC) and rest
    st.builds(lambda rest: b"\x1f\x8b" + rest, st.binary(max_size=100)),
    st.builds(
        lambda flags, rest: b"\x1f\x8b\x08" + bytes([flags]) + rest, st.integers(0, 255), st.binary(max_size=100)
    ),
)


@FUZZ
@given(data=gzip_like)
@example(data=b"")
@example(data=b"\x1f\x8b\x08\x04" + b"\x00" * 6 + b"\xff\xff")  # FEXTRA longer than the file
def test_decompress_gzip_arbitrary_bytes(data: bytes) -> None:
    check_decompress(data, "fuzz.gz")


@FUZZ
@given(draw=st.data())
def test_decompress_gzip_damaged(draw: Any) -> None:
    original = small_idx_file(draw)
    damaged = damage(draw, gzip.compress(original, mtime=0))
    out = check_decompress(damaged, "train-labels-idx1-ubyte.gz")
    if out is not None:
        check_parse(out, "train-labels-idx1-ubyte.gz", None)


@FUZZ_FILES
@given(draw=st.data(), raw=st.booleans())
def test_read_idx_bytes_files(scratch: Path, draw: Any, raw: bool) -> None:
    """Damaged .gz files (or random bytes named .gz), read and parsed as `load_fashion_mnist` does."""
    if raw:
        content = draw.draw(gzip_like, label="content")
    else:
        content = damage(draw, gzip.compress(small_idx_file(draw), mtime=0))
    path = scratch / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(content)
    try:
        data = read_idx_bytes(path)
    except DataError as exc:
        assert_one_line(exc, str(path))
        return
    check_parse(data, str(path), draw.draw(ndims, label="ndim"))


def test_read_idx_bytes_unreadable(scratch: Path) -> None:
    for path in (scratch / "missing.gz", scratch):  # no such file; a directory
        with pytest.raises(DataError) as exc:
            read_idx_bytes(path)
        assert_one_line(exc.value, str(path))
