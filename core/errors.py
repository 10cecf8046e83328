"""Error types that carry an actionable message for the user.

Every error raised for bad user input names the offending file or value and says what to do, so the
CLI, the sidecar and the Blender panel can show it verbatim instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path


class TalkbridgeError(Exception):
    """Base class for every error talkbridge raises on purpose."""


class InputError(TalkbridgeError, ValueError):
    """A user-supplied input (file, option value) cannot be used as given."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class JobInterrupted(Exception):
    """A job stopped because its caller asked it to (a stopping batch, Ctrl-C): not a failure of
    the job, so it is reported as interrupted, and whoever holds partial files removes them."""


class CheckpointError(TalkbridgeError):
    """A weights file is missing, corrupt, of the wrong kind, or does not match the network."""

    def __init__(
        self,
        message: str,
        path: str | Path | None = None,
        missing: list[str] | None = None,
        unexpected: list[str] | None = None,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.missing = list(missing or [])
        self.unexpected = list(unexpected or [])
        text = f"{self.path}: {message}" if self.path is not None else message
        text += _describe_keys("missing keys", self.missing)
        text += _describe_keys("unexpected keys", self.unexpected)
        super().__init__(text)


def _describe_keys(label: str, keys: list[str], shown: int = 8) -> str:
    if not keys:
        return ""
    listed = ", ".join(keys[:shown])
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return f"\n  {label} ({len(keys)}): {listed}{more}"
