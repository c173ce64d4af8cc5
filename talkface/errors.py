"""The one exception type for expected, user-facing failures.

The CLI prints these as a single line and exits non-zero, without a traceback. Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class TalkfaceError(Exception):
    """An expected failure (bad input, missing weights, ...) with a message a user can act on."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class ConfigError(TalkfaceError):
    """A config file or override that does not match its dataclass."""


class MediaError(TalkfaceError):
    """An unreadable, empty or malformed audio/video file."""


class MissingWeightsError(TalkfaceError):
    """A pretrained component whose local weights file is absent."""

    def __init__(self, path: str | Path, what: str, where_to_get: str):
        super().__init__(f"missing {what} weights; {where_to_get}", path)
