"""Downloads against a real local HTTP server: mirror fallback, checksums, and no half-written files."""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from fmnist.datasets import load_fashion_mnist
from fmnist.download import MIRRORS, configured_mirrors, download_file
from fmnist.errors import DataError
from fmnist.idx import write_idx

Serve = Callable[[str, bytes], bytes | None]
"""(file name, good gz bytes) -> bytes to send, or None for a 404."""


def tiny_files() -> tuple[dict[str, np.ndarray], dict[str, bytes], dict[str, str]]:
    """Arrays by stem, their .gz bytes by file name, and the uncompressed SHA-256 by stem."""
    rng = np.random.default_rng(2)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(12) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([9, 2, 1, 1, 6], dtype=np.uint8),
    }
    raw = {stem: write_idx(a) for stem, a in arrays.items()}
    return (
        arrays,
        {f"{s}.gz": gzip.compress(d) for s, d in raw.items()},
        {s: hashlib.sha256(d).hexdigest() for s, d in raw.items()},
    )


ARRAYS, GZ, SUMS = tiny_files()


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1:0 whose responses a test chooses, counting requests."""

    def __init__(self, serve: Serve, truncate: bool = False) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                name = self.path.rsplit("/", 1)[-1]
                outer.requests.append(name)
                body = serve(name, GZ[name]) if name in GZ else None
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/gzip")
                # An interrupted transfer: announce more than is sent, then close.
                self.send_header("Content-Length", str(len(body) + (1000 if truncate else 0)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:  # keep test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[Callable[..., _Server]]:
    started: list[_Server] = []

    def start(serve: Serve, truncate: bool = False) -> _Server:
        started.append(_Server(serve, truncate))
        return started[-1]

    yield start
    for s in started:
        s.close()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FMNIST_DATA_DIR", raising=False)
    monkeypatch.delenv("FMNIST_MIRRORS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def good(name: str, body: bytes) -> bytes:
    return body


def missing(name: str, body: bytes) -> None:
    return None


def test_env_replaces_mirrors(monkeypatch: pytest.MonkeyPatch) -> None:
    assert configured_mirrors() == MIRRORS and MIRRORS[0].startswith("https://fashion-mnist.s3")
    monkeypatch.setenv("FMNIST_MIRRORS", " http://a/ , http://b/x ,")
    assert configured_mirrors() == ("http://a/", "http://b/x")


def test_download_falls_back_and_loads(
    monkeypatch: pytest.MonkeyPatch, server: Callable[..., _Server], tmp_path: Path
) -> None:
    not_found, ok = server(missing), server(good)
    monkeypatch.setenv("FMNIST_MIRRORS", f"{not_found.url},{ok.url}")
    data = load_fashion_mnist(checksums=SUMS)
    cache = tmp_path / "xdg" / "fmnist-parity" / "fashion-mnist"
    assert data.data_dir == cache
    assert sorted(p.name for p in cache.iterdir()) == sorted(GZ)
    assert sorted(not_found.requests) == sorted(GZ) and sorted(ok.requests) == sorted(GZ)
    np.testing.assert_array_equal(data.train_images, ARRAYS["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(data.train_labels, ARRAYS["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(data.test_images, ARRAYS["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(data.test_labels, ARRAYS["t10k-labels-idx1-ubyte"])
    # A second load finds the files: no more requests.
    load_fashion_mnist(checksums=SUMS)
    assert len(ok.requests) == len(GZ)


def test_progress_bar_path(server: Callable[..., _Server], tmp_path: Path) -> None:
    ok = server(good)
    name = "t10k-labels-idx1-ubyte.gz"
    path = download_file(
        name, tmp_path / "d", SUMS["t10k-labels-idx1-ubyte"], mirrors=[ok.url.rstrip("/")], progress=True
    )
    assert path == tmp_path / "d" / name and path.read_bytes() == GZ[name]


def test_checksum_mismatch_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, server: Callable[..., _Server], tmp_path: Path
) -> None:
    other = gzip.compress(write_idx(np.zeros((12, 28, 28), dtype=np.uint8)))  # valid gzip, wrong content
    bad = server(lambda name, body: other)
    monkeypatch.setenv("FMNIST_MIRRORS", bad.url)
    with pytest.raises(DataError) as exc:
        load_fashion_mnist(tmp_path / "d", checksums=SUMS)
    message = str(exc.value)
    assert "\n" not in message
    assert "checksum mismatch" in message and SUMS["train-images-idx3-ubyte"] in message
    assert list((tmp_path / "d").iterdir()) == []


def test_corrupted_gzip_leaves_nothing(server: Callable[..., _Server], tmp_path: Path) -> None:
    def flipped(name: str, body: bytes) -> bytes:
        data = bytearray(body)
        data[len(data) // 2] ^= 0xFF
        return bytes(data)

    bad = server(flipped)
    with pytest.raises(DataError, match="not a valid gzip file"):
        download_file("train-images-idx3-ubyte.gz", tmp_path, None, mirrors=[bad.url])
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_leaves_nothing(server: Callable[..., _Server], tmp_path: Path) -> None:
    cut = server(good, truncate=True)
    name = "train-images-idx3-ubyte.gz"
    with pytest.raises(DataError) as exc:
        download_file(name, tmp_path, SUMS["train-images-idx3-ubyte"], mirrors=[cut.url], timeout=5)
    assert f"connection closed after {len(GZ[name])} of {len(GZ[name]) + 1000} bytes" in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_then_good_mirror(server: Callable[..., _Server], tmp_path: Path) -> None:
    cut, ok = server(good, truncate=True), server(good)
    name = "train-labels-idx1-ubyte.gz"
    path = download_file(name, tmp_path, SUMS["train-labels-idx1-ubyte"], mirrors=[cut.url, ok.url])
    assert path.read_bytes() == GZ[name] and list(tmp_path.iterdir()) == [path]


def test_every_mirror_failure_is_listed(server: Callable[..., _Server], tmp_path: Path) -> None:
    not_found = server(missing)
    with pytest.raises(DataError) as exc:
        download_file(
            "t10k-images-idx3-ubyte.gz", tmp_path, None, mirrors=[not_found.url, "http://127.0.0.1:9/", "nonsense://x/"]
        )
    message = str(exc.value)
    assert "\n" not in message and "HTTP 404" in message and message.count("t10k-images-idx3-ubyte.gz:") == 3
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_not_overwritten_by_a_failed_download(server: Callable[..., _Server], tmp_path: Path) -> None:
    name = "t10k-labels-idx1-ubyte.gz"
    (tmp_path / name).write_bytes(b"old")
    cut = server(good, truncate=True)
    with pytest.raises(DataError):
        download_file(name, tmp_path, None, mirrors=[cut.url])
    assert (tmp_path / name).read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1
