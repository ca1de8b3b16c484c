"""Errors the engine raises on purpose; anything else is a bug."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input from the user: a file or folder and what is wrong with it, in one line."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class Cancelled(Exception):
    """The listener asked the running stage to stop; everything finished so far is persisted."""
