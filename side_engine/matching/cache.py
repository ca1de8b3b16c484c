"""Training-set descriptors: in memory for small sets, on disk (memory-mapped) for any size.

An audit keeps its training descriptors in `descriptors/`:
    train.f32    N x d float32, row-major; row i is training image i as the store numbers them (train_images.idx)
    train.json   {"format", "rows", "dim", "done", "descriptor", "manifest_sha256"}: the shape, what made them
                 (descriptor name and settings, the TorchScript file's SHA-256, the model's channels and size), the
                 training manifest SHA-256 they belong to, and how many leading rows are computed
Rows are computed in batches and written with pwrite (nothing of the file is held by the process); `done` is
advanced only after the rows before it are on disk (fdatasync), so an interrupted build resumes where it stopped.
A cache whose JSON disagrees (another manifest, descriptor or shape) is rebuilt from row 0.

Searching reads the file through a read-only mapping: `MappedRows.blocks` hands out blocks of rows and, for a file
larger than RESIDENT_BYTES, gives each block's pages back (madvise DONTNEED) once it is searched, so the process's
resident memory holds one block whatever N; the page cache may keep the file, which the OS reclaims as it needs.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..atomic import replacing

FORMAT = 1
DATA_NAME = "train.f32"
META_NAME = "train.json"
# A mapped file up to this size stays mapped once read (searched at memory speed); a larger one is streamed a block at
# a time. The exact fallback (ExactIndex) always holds its database in memory.
RESIDENT_BYTES = 1 << 30
BLOCK_BYTES = 256 << 20  # rows handed to one search call while streaming
COMMIT_SECONDS = 5.0  # a build makes its rows durable (and advances `done`) at most this often


class ArrayRows:
    """Descriptors held in memory: (N, d) float32, C-contiguous."""

    resident = True

    def __init__(self, array: np.ndarray):
        self.array = np.ascontiguousarray(array, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.array)

    @property
    def dim(self) -> int:
        return self.array.shape[1]

    def blocks(self, rows: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, block) over all rows; rows = 0: one block."""
        step = rows or max(1, len(self))
        for s in range(0, len(self), step):
            yield s, self.array[s:s + step]

    def take(self, ids: np.ndarray) -> np.ndarray:
        return self.array[ids]

    def all(self) -> np.ndarray:
        return self.array

    def close(self) -> None:
        pass


class MappedRows:
    """Descriptors in a file of N x d float32, mapped read-only (copy-on-write, never written: the arrays are
    writable for the libraries that want that, and the file is never changed).

    resident: the file is small enough (<= RESIDENT_BYTES) to stay mapped after a search reads it; otherwise every
    block's pages are given back after use, and `take` reads its rows without the mapping."""

    def __init__(self, path: Path, n: int, dim: int, resident_bytes: int | None = None,
                 block_bytes: int | None = None):
        self.path = Path(path)
        self.n, self._dim = n, dim
        nbytes = n * dim * 4
        resident_bytes = RESIDENT_BYTES if resident_bytes is None else resident_bytes
        block_bytes = BLOCK_BYTES if block_bytes is None else block_bytes
        self.resident = nbytes <= resident_bytes
        self.block_rows = max(1, block_bytes // max(1, dim * 4))
        self._map: mmap.mmap | None = None
        self._array = np.zeros((0, dim), dtype=np.float32)
        if nbytes:
            with open(self.path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), nbytes, access=mmap.ACCESS_COPY)
            self._array = np.frombuffer(self._map, dtype=np.float32, count=n * dim).reshape(n, dim)

    def __len__(self) -> int:
        return self.n

    @property
    def dim(self) -> int:
        return self._dim

    def _release(self, start: int = 0, stop: int | None = None) -> None:
        """Give rows [start, stop)'s pages back to the OS (they stay in the page cache, not in this process)."""
        if self._map is None or self.resident:
            return
        stop = self.n if stop is None else stop
        lo = (start * self._dim * 4) // mmap.PAGESIZE * mmap.PAGESIZE
        hi = min(len(self._map), stop * self._dim * 4)
        if hi > lo:
            self._map.madvise(mmap.MADV_DONTNEED, lo, hi - lo)

    def blocks(self, rows: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, block view) over all rows; a streamed file's block is given back when the next is asked for.
        rows = 0: the whole file as one block when it is resident, else block_rows rows."""
        step = rows or (max(1, self.n) if self.resident else self.block_rows)
        for s in range(0, self.n, step):
            yield s, self._array[s:s + step]
            self._release(s, s + step)

    def take(self, ids: np.ndarray) -> np.ndarray:
        """The rows ids (any shape of int), copied. A streamed file's rows are read with pread, not through the
        mapping: a page fault there maps the whole large folio around it (2 MiB pages of the page cache), and a few
        thousand scattered rows would map nearly all of a 2 GB file (measured: +1.86 GB for 3,050 rows)."""
        ids = np.asarray(ids)
        if self.resident:
            return self._array[ids]
        flat = ids.reshape(-1)
        out = np.empty((len(flat), self._dim), dtype=np.float32)
        row = self._dim * 4
        with open(self.path, "rb", buffering=0) as f:
            fd = f.fileno()
            for j, i in enumerate(flat.tolist()):
                if os.preadv(fd, [out[j]], i * row) != row:
                    raise OSError(f"{self.path}: short read at row {i}")
        return out.reshape(*ids.shape, self._dim)

    def all(self) -> np.ndarray:
        """The whole file as one (N, d) array (resident in the process once read: the exact fallback uses it)."""
        return self._array

    def close(self) -> None:
        self._array = np.zeros((0, self._dim), dtype=np.float32)
        if self._map is not None:
            with contextlib.suppress(BufferError):  # a view is still alive somewhere: the mapping goes with it
                self._map.close()
            self._map = None


class DescriptorCache:
    """One folder's train.f32 + train.json (see the module's docstring)."""

    def __init__(self, folder: Path, meta: dict):
        self.folder = Path(folder)
        self.meta = meta
        self._fd: int | None = None
        self._last_commit = time.monotonic()

    @property
    def data_path(self) -> Path:
        return self.folder / DATA_NAME

    @property
    def rows(self) -> int:
        return int(self.meta["rows"])

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    @property
    def done(self) -> int:
        return int(self.meta["done"])

    @property
    def complete(self) -> bool:
        return self.done == self.rows

    @classmethod
    def open(cls, folder: str | Path, rows: int, descriptor: dict, manifest_sha256: str) -> DescriptorCache | None:
        """The folder's cache when it belongs to this training set and descriptor (complete or not), else None."""
        folder = Path(folder)
        try:
            meta = json.loads((folder / META_NAME).read_text(encoding="utf-8"))
            size = (folder / DATA_NAME).stat().st_size
        except (OSError, ValueError):
            return None
        expected = {"format": FORMAT, "rows": rows, "descriptor": descriptor, "manifest_sha256": manifest_sha256}
        if any(meta.get(key) != value for key, value in expected.items()):
            return None
        if not isinstance(meta.get("dim"), int) or not isinstance(meta.get("done"), int) or meta["dim"] <= 0:
            return None
        if size != rows * meta["dim"] * 4 or not 0 <= meta["done"] <= rows:
            return None
        return cls(folder, meta)

    @classmethod
    def create(cls, folder: str | Path, rows: int, dim: int, descriptor: dict, manifest_sha256: str,
               ) -> DescriptorCache:
        """A new, empty cache (any earlier one in the folder is replaced); the data file is sized, not filled."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "rows": rows, "dim": dim, "done": 0, "descriptor": descriptor,
                "manifest_sha256": manifest_sha256}
        cache = cls(folder, meta)
        cache._write_meta()  # done = 0 first: a crash below leaves a cache that rebuilds, never stale rows
        with open(cache.data_path, "wb") as f:
            f.truncate(rows * dim * 4)
        return cache

    def write(self, start: int, rows: np.ndarray) -> None:
        """Rows start.. (float32 (B, dim)); they count as done after the next commit."""
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.dim or start + len(rows) > self.rows:
            raise ValueError(f"rows {start}..{start + len(rows)} of shape {rows.shape} do not fit {self.rows} x "
                             f"{self.dim}")
        if self._fd is None:
            self._fd = os.open(self.data_path, os.O_WRONLY)
        view = rows.data.cast("B")
        offset = start * self.dim * 4
        while view:
            n = os.pwrite(self._fd, view, offset)
            view, offset = view[n:], offset + n

    def commit(self, done: int, force: bool = False) -> None:
        """Record that rows < done are written: after fdatasync of the data, at most every COMMIT_SECONDS."""
        if not force and time.monotonic() - self._last_commit < COMMIT_SECONDS:
            return
        if self._fd is not None:
            os.fdatasync(self._fd)
        self.meta["done"] = done
        self._write_meta()
        self._last_commit = time.monotonic()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def mapped(self, resident_bytes: int | None = None, block_bytes: int | None = None) -> MappedRows:
        return MappedRows(self.data_path, self.rows, self.dim, resident_bytes, block_bytes)

    def _write_meta(self) -> None:
        with replacing(self.folder / META_NAME) as tmp:
            tmp.write_text(json.dumps(self.meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
