"""Finding, verifying and loading the data: each way a folder can be wrong gives one clear DataError."""

from __future__ import annotations

import gzip
import hashlib
import socket
from pathlib import Path

import numpy as np
import pytest

from fmnist.datasets import (
    FILES,
    FashionMNIST,
    default_cache_dir,
    describe,
    load_fashion_mnist,
    load_test_split,
    resolve_data_dir,
)
from fmnist.errors import DataError
from fmnist.idx import write_idx


def tiny_arrays(n_train: int = 20, n_test: int = 10) -> dict[str, np.ndarray]:
    """Four small arrays, one per file stem, every class present."""
    rng = np.random.default_rng(0)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }


def write_dataset(folder: Path, arrays: dict[str, np.ndarray], gz: bool = True) -> dict[str, str]:
    """Write the arrays as IDX files; returns their checksums (uncompressed), like `FILES`."""
    folder.mkdir(parents=True, exist_ok=True)
    sums = {}
    for stem, array in arrays.items():
        data = write_idx(array)
        sums[stem] = hashlib.sha256(data).hexdigest()
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return sums


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the user's data dir, cache or mirrors."""
    monkeypatch.delenv("FMNIST_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("FMNIST_MIRRORS", "http://127.0.0.1:9/")  # discard port: never the internet


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_files_lists_the_official_checksums() -> None:
    assert list(FILES) == [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    assert all(len(v) == 64 for v in FILES.values())


def test_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert default_cache_dir() == tmp_path / "xdg" / "fmnist-parity" / "fashion-mnist"
    assert resolve_data_dir(None) == (default_cache_dir(), "cache")
    monkeypatch.setenv("FMNIST_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(None) == (tmp_path / "env", "FMNIST_DATA_DIR")
    assert resolve_data_dir(tmp_path / "arg") == (tmp_path / "arg", "--data-dir")
    assert resolve_data_dir(str(tmp_path / "arg")) == (tmp_path / "arg", "--data-dir")


def test_tilde_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir("~/fm") == (tmp_path / "home" / "fm", "--data-dir")
    monkeypatch.setenv("FMNIST_DATA_DIR", "~/env-fm")
    assert resolve_data_dir(None) == (tmp_path / "home" / "env-fm", "FMNIST_DATA_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "fmnist-parity" / "fashion-mnist"


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_loads_tiny_files(tmp_path: Path, gz: bool) -> None:
    arrays = tiny_arrays()
    sums = write_dataset(tmp_path / "d", arrays, gz=gz)
    data = load_fashion_mnist(tmp_path / "d", download=False, checksums=sums)
    assert isinstance(data, FashionMNIST) and data.data_dir == tmp_path / "d"
    np.testing.assert_array_equal(data.train_images, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(data.train_labels, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(data.test_images, arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(data.test_labels, arrays["t10k-labels-idx1-ubyte"])
    text = describe(data)
    assert str(tmp_path / "d") in text and "20" in text and "10" in text


def test_env_dir_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_dataset(tmp_path / "env", tiny_arrays())
    monkeypatch.setenv("FMNIST_DATA_DIR", str(tmp_path / "env"))
    assert load_fashion_mnist(download=False, checksums=None).data_dir == tmp_path / "env"


def test_missing_file_without_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    folder = tmp_path / "env"
    write_dataset(folder, tiny_arrays())
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("FMNIST_DATA_DIR", str(folder))
    with pytest.raises(DataError) as exc:
        load_fashion_mnist(download=False, checksums=None)
    message = str(exc.value)
    assert "\n" not in message
    for part in (
        "t10k-labels-idx1-ubyte",
        str(folder),
        "(from FMNIST_DATA_DIR)",
        "--data-dir",
        str(default_cache_dir()),
    ):
        assert part in message, message


def test_the_test_split_alone_needs_only_its_two_files_and_never_downloads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import fmnist.download

    monkeypatch.setattr(fmnist.download, "download_file", lambda *a, **k: pytest.fail("tried to download"))
    arrays = tiny_arrays()
    folder = tmp_path / "test-only"
    sums = write_dataset(folder, {stem: a for stem, a in arrays.items() if stem.startswith("t10k")})
    images, labels = load_test_split(folder, checksums=sums)
    assert np.array_equal(images, arrays["t10k-images-idx3-ubyte"])
    assert np.array_equal(labels, arrays["t10k-labels-idx1-ubyte"])
    with pytest.raises(DataError, match="checksum mismatch"):  # the official checksums by default
        load_test_split(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as exc:
        load_test_split(folder, checksums=sums)
    for part in ("t10k-labels-idx1-ubyte.gz", str(folder), "(from --data-dir)", "fmnist data"):
        assert part in str(exc.value), exc.value


def test_missing_file_download_fails_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FMNIST_MIRRORS", closed_port_url())
    with pytest.raises(DataError) as exc:
        load_fashion_mnist(download=True)
    message = str(exc.value)
    assert "\n" not in message
    for part in (
        "train-images-idx3-ubyte",
        str(default_cache_dir()),
        "(from cache)",
        "downloading it failed",
        "127.0.0.1",
        "FMNIST_DATA_DIR",
    ):
        assert part in message, message
    assert default_cache_dir().is_dir() and list(default_cache_dir().iterdir()) == []


def test_checksum_mismatch(tmp_path: Path) -> None:
    sums = write_dataset(tmp_path, tiny_arrays())
    wrong = dict(sums, **{"train-labels-idx1-ubyte": "0" * 64})
    with pytest.raises(DataError) as exc:
        load_fashion_mnist(tmp_path, download=False, checksums=wrong)
    message = str(exc.value)
    assert "train-labels-idx1-ubyte.gz" in message and "0" * 64 in message
    assert sums["train-labels-idx1-ubyte"] in message and "\n" not in message


def test_official_checksums_are_checked_by_default(tmp_path: Path) -> None:
    write_dataset(tmp_path, tiny_arrays())
    with pytest.raises(DataError, match=FILES["train-images-idx3-ubyte"]):
        load_fashion_mnist(tmp_path, download=False)


def test_count_mismatch(tmp_path: Path) -> None:
    arrays = tiny_arrays()
    arrays["t10k-labels-idx1-ubyte"] = arrays["t10k-labels-idx1-ubyte"][:7]
    write_dataset(tmp_path, arrays)
    with pytest.raises(DataError) as exc:
        load_fashion_mnist(tmp_path, download=False, checksums=None)
    message = str(exc.value)
    assert "test split" in message and "10 images" in message and "7 labels" in message


def test_label_out_of_range(tmp_path: Path) -> None:
    arrays = tiny_arrays()
    arrays["train-labels-idx1-ubyte"][5] = 12
    write_dataset(tmp_path, arrays)
    with pytest.raises(DataError) as exc:
        load_fashion_mnist(tmp_path, download=False, checksums=None)
    message = str(exc.value)
    assert "train-labels-idx1-ubyte" in message and "label 12 at index 5" in message


def test_wrong_image_size(tmp_path: Path) -> None:
    arrays = tiny_arrays()
    arrays["t10k-images-idx3-ubyte"] = np.zeros((10, 32, 32), dtype=np.uint8)
    write_dataset(tmp_path, arrays)
    with pytest.raises(DataError) as exc:
        load_fashion_mnist(tmp_path, download=False, checksums=None)
    message = str(exc.value)
    assert "t10k-images-idx3-ubyte" in message and "32x32" in message and "28x28" in message


def test_labels_where_images_belong(tmp_path: Path) -> None:
    arrays = tiny_arrays()
    arrays["train-images-idx3-ubyte"] = arrays["train-labels-idx1-ubyte"]
    write_dataset(tmp_path, arrays)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*0x00000803"):
        load_fashion_mnist(tmp_path, download=False, checksums=None)


def test_real_data(real_data_dir: Path) -> None:
    """The real files (FMNIST_DATA_DIR or ../shared): official counts and checksums."""
    data = load_fashion_mnist(real_data_dir, download=False)
    assert data.train_images.shape == (60000, 28, 28) and data.train_labels.shape == (60000,)
    assert data.test_images.shape == (10000, 28, 28) and data.test_labels.shape == (10000,)
    assert np.bincount(data.train_labels).tolist() == [6000] * 10
    assert data.test_labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
