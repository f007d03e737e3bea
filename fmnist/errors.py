"""Errors a user can fix. The CLI prints them as one line and exits non-zero, no traceback."""


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
