"""One family of errors. Every user mistake raises a :class:`GencoError` subclass whose message is one
line naming the file / row / field, what was expected and what was given. The CLI prints that line and
exits non-zero; it never shows a traceback for these."""
from __future__ import annotations


class GencoError(Exception):
    """Root of every error genco-data raises on purpose."""


class SchemaError(GencoError, TypeError):
    """A table, file or column does not have the expected schema (names, types)."""


class InvalidInputError(GencoError, ValueError):
    """A value is out of its allowed range or a file cannot be read as the format it claims."""


class BuildError(GencoError):
    """A build was refused or failed (too many rejects, no input, ...); nothing was written."""


class IntegrityError(GencoError):
    """A release does not match its manifest (checksum, row count, missing or extra file)."""


class FormatVersionError(GencoError):
    """A release was written with an incompatible ``format_version``."""


class BackwardCompatibilityError(FormatVersionError):
    """The release is older than this genco-data can read."""


class ForwardCompatibilityError(FormatVersionError):
    """The release is newer than this genco-data can read; upgrade genco-data."""


class PredictionsError(GencoError, ValueError):
    """A predictions file breaks the predictions contract."""


class SubmissionError(GencoError, ValueError):
    """A leaderboard submission is refused."""


class PublishError(GencoError):
    """Publishing to / pulling from the Hub was refused."""


class LockedError(GencoError):
    """Another process is writing the same output (a release, a leaderboard entry, a board) right now."""


__all__ = [
    "GencoError",
    "SchemaError",
    "InvalidInputError",
    "BuildError",
    "IntegrityError",
    "FormatVersionError",
    "BackwardCompatibilityError",
    "ForwardCompatibilityError",
    "PredictionsError",
    "SubmissionError",
    "PublishError",
    "LockedError",
]
