"""Errors a user can fix. The CLI prints them as one line and exits non-zero, no traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable


class FmnistError(Exception):
    """Base of every error caused by input (config, data, paths), not by a bug."""


class ConfigError(FmnistError):
    """A config key or value that is not allowed."""


class DataError(FmnistError):
    """Missing, corrupted or inconsistent Fashion-MNIST data."""


class RunDirError(FmnistError):
    """A run directory that cannot be written or does not hold a finished run."""


def reason(exc: BaseException) -> str:
    """The first line of an exception's message, or its type when the message is empty: deep
    library errors (zip, pickle, h5) are often multi-line or blank."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


#: How an error a user can fix ends a process: this exit code, its one stderr line starting so.
USER_ERROR_EXIT, ERROR_PREFIX = 2, "fmnist: error: "


def exit_code(work: Callable[[], int], debug: bool = False, bug_traceback: bool = False) -> int:
    """Run a command's work and turn what it raises into one stderr line and an exit code, as the
    `fmnist` command and the job entry point (`fmnist.job`) report: an error a user can fix exits
    2, Ctrl-C 130, a bug 1 asking for --debug; `debug` raises instead. `bug_traceback`: a bug
    raises, its traceback kept (a job's log, which its parent shows)."""
    try:
        return work()
    except FmnistError as exc:
        if debug:
            raise
        print(f"{ERROR_PREFIX}{exc}", file=sys.stderr, flush=True)
        return USER_ERROR_EXIT
    except KeyboardInterrupt:
        print("fmnist: interrupted", file=sys.stderr, flush=True)
        return 130
    except OSError as exc:  # disk full, permissions, a vanished file: the user's to fix
        if debug:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"{ERROR_PREFIX}{exc.strerror or reason(exc)}{where}", file=sys.stderr, flush=True)
        return USER_ERROR_EXIT
    except Exception as exc:  # a bug: one line by default, the traceback with --debug
        if debug or bug_traceback:
            raise
        print(
            f"fmnist: internal error: {type(exc).__name__}: {reason(exc)}"
            " (run again with --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1
