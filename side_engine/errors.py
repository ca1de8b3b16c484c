"""Errors the engine raises on purpose; anything else is a bug."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SQLITE_FULL = 13


class InputError(Exception):
    """Bad input from the user: a file or folder and what is wrong with it, in one line."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class Cancelled(Exception):
    """The listener asked the running stage to stop; everything finished so far is persisted."""


class EngineStopped(Exception):
    """The engine's process ended without finishing or cancelling its run (killed, crashed); the message says how,
    in one line. What it stored is kept and the audit resumes."""


def disk_full(e: BaseException) -> bool:
    """Whether e says the disk (or the user's quota) is full: an OSError, SQLite's SQLITE_FULL, or an error of a
    library that reports the OS's error in its message only (safetensors: "... (os error 28)")."""
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(e, sqlite3.Error):
        return getattr(e, "sqlite_errorcode", None) == SQLITE_FULL
    return f"(os error {errno.ENOSPC})" in str(e) or f"(os error {errno.EDQUOT})" in str(e)


RESUME = "resume the audit (side run --resume); everything stored so far is kept"


@contextmanager
def disk_full_is_input(folder: str | Path, then: str = RESUME) -> Iterator[None]:
    """A full disk inside becomes an InputError naming the folder: the user's to fix, then to do what `then` says;
    nothing stored before is lost (each write is atomic or rolled back)."""
    try:
        yield
    except Exception as e:
        if not disk_full(e):
            raise
        raise InputError(folder, f"no space left on its disk: free some space, then {then}") from e
