"""Errors a user can fix. The CLI prints them as one line and exits non-zero, no traceback."""


class FmnistError(Exception):
    """Base of every error caused by input (config, data, paths), not by a bug."""


class ConfigError(FmnistError):
    """A config key or value that is not allowed."""


class DataError(FmnistError):
    """Missing, corrupted or inconsistent Fashion-MNIST data."""


class RunDirError(FmnistError):
    """A run directory that cannot be written or does not hold a finished run."""
