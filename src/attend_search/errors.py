"""User-facing errors: what went wrong, where (file and field path), never a traceback."""

from __future__ import annotations


class AttendSearchError(Exception):
    """A mistake in the user's input. The CLI prints it and exits with :attr:`exit_code`."""

    exit_code = 2

    def __init__(self, message: str, *, path: str = "", source: str | None = None):
        self.message = message
        self.path = path
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.source, self.path) if part)
        return f"{where}: {self.message}" if where else self.message

    def located(self, source: str) -> "AttendSearchError":
        """The same error, attributed to a file (keeps the original class)."""
        if self.source is None:
            self.source = source
        return self


class SpecError(AttendSearchError):
    """A spec (one resolved architecture) is malformed or cannot be built."""


class SpaceError(AttendSearchError):
    """A search-space file is malformed."""


class RunStopped(AttendSearchError):
    """A run stopped by something other than the user's input (trials failing one after
    another, the storage gone): exit code 1, and what to do next."""

    exit_code = 1
