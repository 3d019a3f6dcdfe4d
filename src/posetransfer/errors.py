"""The one exception type users see: a single line naming the file or key and the problem."""

from __future__ import annotations

from pathlib import Path


class PosetransferError(Exception):
    """An error caused by the user's input (video, config, cache), shown as one line, no traceback."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        text = message if path is None else f"{path}: {message}"
        super().__init__(" ".join(text.split()))  # always one line


class ConfigError(PosetransferError):
    """A config key or subject sheet entry is wrong."""


class VideoError(PosetransferError):
    """A video cannot be read, or holds no usable frames."""


class CacheError(PosetransferError):
    """An HDF5 cache is missing, truncated, corrupt or of another schema version."""


class NoPersonError(PosetransferError):
    """No person was found where one is required."""
