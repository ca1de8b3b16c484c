"""Files written whole or not at all: each is written to a hidden temporary file beside it, then renamed over it.

A failed write (a full disk) removes its temporary file. A killed one leaves it, to be overwritten by the next write
of the same file or removed by the next writer of the audit (left_by_a_killed_writer)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yields the temporary path to write; path is replaced by it once the block has ended without an error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def left_by_a_killed_writer(root: Path) -> list[Path]:
    """Temporary files under root: ours (.NAME.tmp) and those safetensors writes before its own rename (.tmpXXXXXX).
    Only a writer that holds the folder's claim may remove them: anyone else's may be in the middle of a write."""
    return [p for p in root.rglob(".*") if p.is_file() and (p.name.endswith(".tmp") or p.name.startswith(".tmp"))]
