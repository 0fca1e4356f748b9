"""Errors that describe a bad input or environment; the CLI prints them as one line."""


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


class DivergenceError(UnlearnlabError):
    """Training or unlearning produced a non-finite loss."""


class CorruptCacheError(CacheError):
    """A cache file is damaged (unreadable, truncated, or its contents fail their digest); it
    has been moved aside and the artefact is rebuilt."""
