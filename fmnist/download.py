"""Fetch Fashion-MNIST files from the official mirrors, safely.

A download is written to a temporary file beside its destination and renamed into place only
once it is complete and its checksum is right, so an interrupted or corrupted download never
leaves a file under the final name for a later run to trust.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from fmnist import __version__
from fmnist.errors import DataError
from fmnist.idx import decompress_gzip

MIRRORS: tuple[str, ...] = (
    "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)
"""Official base URLs, tried in order; `FMNIST_MIRRORS` (comma-separated) replaces them."""

MIRRORS_ENV = "FMNIST_MIRRORS"
CHUNK = 1 << 20


class _MirrorFailed(Exception):
    """One mirror's failure, with a short reason; the caller moves on to the next mirror."""


def configured_mirrors() -> tuple[str, ...]:
    """The mirrors to try: `$FMNIST_MIRRORS` when set (a private mirror, or a test server), else `MIRRORS`."""
    value = os.environ.get(MIRRORS_ENV, "")
    mirrors = tuple(part.strip() for part in value.split(",") if part.strip())
    return mirrors or MIRRORS


def download_file(
    filename: str,
    dest_dir: Path,
    expected_sha256: str | None,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30,
    progress: bool | None = None,
) -> Path:
    """Download `filename` into `dest_dir` from the first mirror that serves it intact.

    `expected_sha256` is the hash of the *uncompressed* bytes (for a `.gz`), which does not
    depend on how a mirror compressed the file; a mismatch counts as that mirror failing.
    `progress` shows a transient bar on stderr (default: only when stderr is a terminal).
    Raises `DataError` listing every mirror's failure when none succeeds.
    """
    if not filename or "/" in filename or "\\" in filename or filename in (".", ".."):
        raise ValueError(f"expected a bare file name, got {filename!r}")
    dest_dir = Path(dest_dir)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {dest_dir} to download {filename} into: {exc.strerror or exc}") from None
    if progress is None:
        progress = _stderr_is_tty()
    failures: list[str] = []
    for base in configured_mirrors() if mirrors is None else tuple(mirrors):
        url = base if base.endswith("/") else base + "/"
        url += filename
        try:
            return _fetch(url, filename, dest_dir, expected_sha256, timeout, progress)
        except _MirrorFailed as exc:
            failures.append(f"{url}: {exc}")
    if not failures:
        raise DataError(f"cannot download {filename}: no mirrors configured (check {MIRRORS_ENV})")
    raise DataError(f"cannot download {filename} from any mirror: " + "; ".join(failures))


def _fetch(
    url: str, filename: str, dest_dir: Path, expected_sha256: str | None, timeout: float, progress: bool
) -> Path:
    """Try one URL; on any failure the temp file is gone and `_MirrorFailed` says why."""
    fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{filename}.", suffix=".part")
    tmp = Path(tmp_name)
    done = False
    try:
        with os.fdopen(fd, "wb") as out:
            _stream(url, out, filename, timeout, progress)
            out.flush()
            os.fsync(out.fileno())
        _verify(tmp, filename, expected_sha256)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a data file need not be
        final = dest_dir / filename
        os.replace(tmp, final)
        done = True
        return final
    finally:
        if not done:
            tmp.unlink(missing_ok=True)


def _stream(url: str, out: IO[bytes], filename: str, timeout: float, progress: bool) -> None:
    """Copy the response body to `out`, refusing a body shorter than its Content-Length.

    http.client returns a short body silently when the server closes early, so the count is
    checked here.
    """
    request = urllib.request.Request(url, headers={"User-Agent": f"fmnist-parity/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length_text = response.headers.get("Content-Length")
            total = int(length_text) if length_text and length_text.isdigit() else None
            received = 0
            with _ProgressBar(filename, total, progress) as advance:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    advance(len(chunk))
    except urllib.error.HTTPError as exc:
        raise _MirrorFailed(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _MirrorFailed(_reason_text(exc.reason)) from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _MirrorFailed(_reason_text(exc)) from None
    if total is not None and received < total:
        raise _MirrorFailed(f"connection closed after {received} of {total} bytes")
    if received == 0:
        raise _MirrorFailed("empty response")


def _verify(path: Path, filename: str, expected_sha256: str | None) -> None:
    """Check the download decompresses (a `.gz`) and, when known, its uncompressed SHA-256."""
    data = path.read_bytes()
    if filename.endswith(".gz"):
        try:
            data = decompress_gzip(data, filename)
        except DataError:
            raise _MirrorFailed("not a valid gzip file (truncated or corrupted)") from None
    if expected_sha256 is not None:
        found = hashlib.sha256(data).hexdigest()
        if found != expected_sha256.lower():
            raise _MirrorFailed(f"checksum mismatch (expected SHA-256 {expected_sha256}, found {found})")


class _ProgressBar:
    """A transient rich progress bar on stderr, or nothing at all: the caller just calls `advance(n)`."""

    def __init__(self, filename: str, total: int | None, enabled: bool) -> None:
        self.filename, self.total, self.enabled = filename, total, enabled
        self._progress: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._progress.start()
        task = self._progress.add_task(f"downloading {self.filename}", total=self.total)
        return lambda n: self._progress.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _reason_text(reason: object) -> str:
    """A short reason: `[Errno 111] Connection refused`, `timed out`, ... without nested reprs."""
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    text = str(reason)
    return text or type(reason).__name__
