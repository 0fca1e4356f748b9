"""Errors that describe a bad input or environment; the CLI prints them as one line."""


def one_line(message) -> str:
    """``message`` (an exception or text) on one line: a line break quoted from the input (a
    ``--set`` value, a path) is written as ``\\n``, so that the error stays one line."""
    return str(message).replace("\r", "\\r").replace("\n", "\\n")


class UnlearnlabError(Exception):
    """Base class: the message names the problem and the fix."""


class DataError(UnlearnlabError):
    """A dataset or forget-set file is missing, corrupted or inconsistent."""


class SpecError(UnlearnlabError):
    """A forget specification cannot be parsed or selects nothing."""


class ConfigError(UnlearnlabError):
    """An unknown name or a malformed option value."""


class CacheError(UnlearnlabError):
    """A cached model is missing (under --no-train) or does not match its configuration."""


class CorruptCacheError(CacheError):
    """A cache file is damaged, foreign or unverifiable; it has been moved aside (never deleted)
    to ``moved_to`` so that the entry can be rebuilt."""

    def __init__(self, message: str, path=None, moved_to=None):
        super().__init__(message)
        self.path = path
        self.moved_to = moved_to


class BundleError(ConfigError):
    """A run bundle given to ``rescore`` is incomplete or damaged (a ``ConfigError``, as a bundle
    that is not one always was)."""


class DivergenceError(UnlearnlabError):
    """Training or unlearning produced a non-finite loss."""


class ExecutorError(UnlearnlabError):
    """Jobs of an executor with workers failed: a job raised, or its worker died more often
    than ``--retries`` allows; the message counts them and quotes the first error."""
