"""The audit folder: audit.toml (the whole config) + audit.sqlite (WAL) + images/ (lossless PNG).

Everything is written as it is produced: an image file lands atomically (temp file, then rename) before its
row is committed, and a batch's rows go in one transaction, so a crash loses at most the batch in flight and
a resumed run sees exactly what is complete. Each thread gets its own SQLite connection: the engine writes
from its worker thread while the GUI reads from its own.
"""

from __future__ import annotations

import json
import operator
import os
import sqlite3
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar, overload

import numpy as np
from filelock import FileLock, Timeout
from PIL import Image

from . import __version__, provenance
from .atomic import left_by_a_killed_writer, replacing
from .config import AuditConfig, config_from_dict
from .errors import InputError
from .matching.metrics import Bands, GroupResult, ScoreArrays, score_groups
from .matching.uncertainty import with_uncertainty
from .vocabulary import VERDICTS, Direction, Guide, Verdict

CONFIG_NAME = "audit.toml"
DB_NAME = "audit.sqlite"
LOCK_NAME = "audit.lock"
# A reviewer's verdicts and notes, in a database of their own: giving one while a run writes audit.sqlite (this
# process's or another's) never makes the reviewer a second writer of the audit.
VERDICTS_NAME = "verdicts.sqlite"
# How long a writer waits for the claim: long enough to outlast a reader's probe (writer_active), which holds the
# lock for an instant, and short enough to refuse a second writer at once.
CLAIM_WAIT_S = 0.5
SCHEMA_VERSION = 2
# Version 1 lacks images.on_target; it is read as unknown (NULL) there.
READABLE_SCHEMAS = ("1", "2")
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stages(
    name TEXT PRIMARY KEY, status TEXT NOT NULL, started REAL, finished REAL, info TEXT);
CREATE TABLE IF NOT EXISTS files(
    role TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, PRIMARY KEY(role, path));
CREATE TABLE IF NOT EXISTS train_images(
    idx INTEGER PRIMARY KEY, path TEXT NOT NULL, label INTEGER, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS syn_images(
    idx INTEGER PRIMARY KEY, seed INTEGER NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images(
    id INTEGER PRIMARY KEY,
    guide TEXT NOT NULL, gamma REAL NOT NULL, label INTEGER NOT NULL, idx INTEGER NOT NULL,
    seed INTEGER NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, created REAL NOT NULL,
    best REAL NOT NULL, best_train INTEGER NOT NULL, gu REAL, normalizer REAL NOT NULL,
    nn_idx BLOB NOT NULL, nn_raw BLOB NOT NULL, nn_score BLOB NOT NULL,
    on_target INTEGER,
    UNIQUE(guide, gamma, idx));
CREATE TABLE IF NOT EXISTS curves(
    stage TEXT NOT NULL, step INTEGER NOT NULL, loss REAL NOT NULL, accuracy REAL, PRIMARY KEY(stage, step));
CREATE TABLE IF NOT EXISTS health(
    t_lo INTEGER PRIMARY KEY, t_hi INTEGER NOT NULL, agreement REAL NOT NULL, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS verdicts(
    image_id INTEGER PRIMARY KEY REFERENCES images(id), verdict TEXT NOT NULL, note TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL);
"""
# verdicts.sqlite: the same table (audit.sqlite's is where audits kept verdicts before it, read until it exists).
VERDICTS_TABLE = """CREATE TABLE IF NOT EXISTS verdicts(
    image_id INTEGER PRIMARY KEY, verdict TEXT NOT NULL, note TEXT NOT NULL DEFAULT '', updated REAL NOT NULL)"""

class FileRecord(NamedTuple):
    """An input file the audit depends on (role: model, training_manifest, user_classifier), with its SHA-256."""

    role: str
    path: str
    sha256: str


TRAINING_PART = 1 << 16  # training images read from the database at a time
NO_LABEL = -1  # TrainingImages.labels of a training image in a flat folder (no class subfolders)


class TrainImage(NamedTuple):
    idx: int
    path: str  # relative to the training folder (AuditStore.train_path)
    label: int | None
    sha256: str


class TrainingImages(Sequence[TrainImage]):
    """The audit's training images, in index order, held as columns: a TrainImage is made when one is asked for.
    A million TrainImage objects took 301 MB and were a million objects for every full garbage collection of the
    app to scan; these columns take about 140 MB (the paths as str, the digests as 64 bytes, the labels as one
    array: NO_LABEL where the training folder has no class folders)."""

    def __init__(self, paths: list[str], labels: np.ndarray, sha256: np.ndarray):
        self.paths = paths
        self.labels = labels
        self.sha256 = sha256

    def __len__(self) -> int:
        return len(self.paths)

    @overload
    def __getitem__(self, j: int) -> TrainImage: ...

    @overload
    def __getitem__(self, j: slice) -> list[TrainImage]: ...

    def __getitem__(self, j: int | slice) -> TrainImage | list[TrainImage]:
        if isinstance(j, slice):
            return [self[i] for i in range(*j.indices(len(self)))]
        j = operator.index(j)  # a numpy index gives a TrainImage of Python ints, as JSON writes them
        if not 0 <= j < len(self):  # a training index, not a list position: -1 is no image, not the last
            raise IndexError(f"no training image with index {j}")
        label = int(self.labels[j])
        return TrainImage(j, self.paths[j], None if label == NO_LABEL else label, self.sha256[j].decode())

    def __iter__(self) -> Iterator[TrainImage]:
        return (self[j] for j in range(len(self)))


class SynImage(NamedTuple):
    """One image of D_syn, the model's own samples that TDKD distils on."""

    idx: int
    seed: int
    path: str
    sha256: str


class CurvePoint(NamedTuple):
    step: int
    loss: float
    accuracy: float | None


class HealthBucket(NamedTuple):
    """f_TD's agreement with its teacher on held-out samples noised to t in [t_lo, t_hi)."""

    t_lo: int
    t_hi: int
    agreement: float
    n: int


class VerdictNote(NamedTuple):
    verdict: Verdict | None  # None: a note without a verdict
    note: str


@dataclass(frozen=True)
class ImageRow:
    """One generated image with its stored matches (scores sorted best first)."""

    id: int
    guide: Guide
    gamma: float
    label: int
    idx: int
    seed: int
    path: str
    sha256: str
    created: float
    best: float
    best_train: int
    gu: float | None
    normalizer: float
    nn_idx: np.ndarray
    nn_raw: np.ndarray
    nn_score: np.ndarray


def write_png_atomic(path: Path, array: np.ndarray) -> None:
    """array: (H, W) or (H, W, 3) uint8."""
    with replacing(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def write_text_atomic(path: Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _read_only(path: Path) -> sqlite3.Connection:
    """A connection that writes nothing, not even SQLite's shared-memory index: a database with no write-ahead log
    beside it is complete in its file and opens as immutable; with one, SQLite needs that log's index (-shm)."""
    immutable = "" if path.with_name(f"{path.name}-wal").exists() else "&immutable=1"
    return sqlite3.connect(f"{path.as_uri()}?mode=ro{immutable}", uri=True, timeout=30)


class AuditStore:
    """One audit folder. create() for a new one, open() for an existing one."""

    def __init__(self, root: Path, config: AuditConfig):
        self.root = root
        self.config = config
        self._local = threading.local()
        self._write_lock: FileLock | None = None
        self._on_target_col: bool | None = None
        # A folder this process cannot write (read-only media, another user's audit) opens for reading only.
        self.read_only = not os.access(root, os.W_OK)

    # ----- lifecycle -------------------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, config: AuditConfig) -> AuditStore:
        root = Path(root).expanduser().resolve()
        if (root / CONFIG_NAME).exists():
            raise InputError(root, "already holds an audit: use --resume to continue it, or choose a new folder")
        if root.exists() and not root.is_dir():
            raise InputError(root, "is a file, not a folder")
        if root.exists():
            # What a create stopped before writing audit.toml leaves: nothing of a run yet, so it starts again.
            leftovers = {DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", f".{CONFIG_NAME}.tmp"}
            entries = list(root.iterdir())
            if any(p.name not in leftovers or not p.is_file() for p in entries):
                raise InputError(root, "folder is not empty: choose a new or empty folder for the audit")
            for p in entries:
                p.unlink()
        root.mkdir(parents=True, exist_ok=True)
        store = cls(root, config)
        with store.db:
            store.db.executescript(SCHEMA)
            store.set_meta("schema_version", str(SCHEMA_VERSION))
            made_by = provenance.engine()
            store.set_meta("engine_version", __version__)
            store.set_meta("sampler_revision", str(made_by["sampler_revision"]))
            for dist in ("torch", "diffusers"):
                if made_by[dist]:  # None where the distribution's metadata is missing: left unrecorded, not "None"
                    store.set_meta(f"{dist}_version", str(made_by[dist]))
            store.set_meta("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        # The config is written last: a folder with audit.toml is a complete, openable audit.
        write_text_atomic(root / CONFIG_NAME, config.to_toml())
        return store

    @classmethod
    def open(cls, root: str | Path) -> AuditStore:
        root = Path(root).expanduser().resolve()
        cfg_path = root / CONFIG_NAME
        if not root.is_dir():
            raise InputError(root, "audit folder does not exist")
        if not cfg_path.exists() or not (root / DB_NAME).exists():
            raise InputError(root, f"not an audit folder (no {CONFIG_NAME} or {DB_NAME})")
        try:
            data = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise InputError(cfg_path, f"not valid TOML ({e})") from None
        store = cls(root, config_from_dict(data, cfg_path))
        try:
            version = store.meta("schema_version")
        except sqlite3.DatabaseError as e:
            if store.read_only and (root / f"{DB_NAME}-wal").exists():
                raise InputError(root / DB_NAME, "is read-only and was not closed cleanly (its write-ahead log "
                                 f"{DB_NAME}-wal is there): copy the folder to a writable disk to open it") from None
            raise InputError(root / DB_NAME, f"not a readable audit database ({e})") from None
        if version not in READABLE_SCHEMAS:
            raise InputError(root / DB_NAME, f"audit schema version {version}, this engine reads {SCHEMA_VERSION}")
        return store

    @property
    def db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None and self.read_only:
            conn = self._local.conn = _read_only(self.root / DB_NAME)
        if conn is None:
            conn = sqlite3.connect(self.root / DB_NAME, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    def lock_for_writing(self) -> None:
        """Claims the folder for one writer (a run or a resume) until close(); the OS drops the claim of a process
        that dies. Two writers would both store the batch in flight and interleave their stage records."""
        if self.read_only:
            raise InputError(self.root, "is read-only: the audit can be viewed and reported, not run or resumed there")
        # Not thread-local (filelock's default): the claim is the store's, and close() may run on another thread
        # than the one that took it, where a thread-local lock's release does nothing; the claim would then end
        # only when the lock object happened to be collected.
        lock = FileLock(self.root / LOCK_NAME, timeout=CLAIM_WAIT_S, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            raise InputError(self.root, "another run is writing this audit; let it finish or cancel it first") from None
        self._write_lock = lock
        # A writer killed mid-write left these; the claim says none is writing now.
        for p in left_by_a_killed_writer(self.root):
            p.unlink(missing_ok=True)

    def writer_active(self) -> bool:
        """Whether a writer (another process, or another store of this one) holds the audit's claim. Tried without
        waiting and given back at once, so that a reader can poll it; a writer's claim waits out such a probe
        (CLAIM_WAIT_S). False where the lock cannot be tried at all (a read-only folder)."""
        if self._write_lock is not None:
            return False
        lock = FileLock(self.root / LOCK_NAME, timeout=0, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            return True
        except OSError:
            return False
        lock.release()
        return False

    def close(self) -> None:
        """Closes this thread's connections, and gives up the writer's claim if this store holds it."""
        for name in ("conn", "verdicts"):
            conn = getattr(self._local, name, None)
            if conn is not None:
                conn.close()
                setattr(self._local, name, None)
        if self._write_lock is not None:
            self._write_lock.release()
            self._write_lock = None

    # ----- small tables ----------------------------------------------------------------------------------
    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def record_inputs(self, *, model_path: str, train_path: str, class_names: list[str], n_train: int,
                      n_neighbours: int, descriptor: str, direction: Direction, skipped: list) -> None:
        """What the load stage found, in one transaction: the typed properties below read it back."""
        with self.db:
            for key, value in (("model_path", model_path), ("train_path", train_path), ("n_train", str(n_train)),
                               ("class_names", json.dumps(class_names)), ("n_neighbours", str(n_neighbours)),
                               ("descriptor", descriptor), ("direction", str(direction)),
                               ("skipped", json.dumps(skipped))):
                self.set_meta(key, value)

    def _meta_as(self, key: str, parse: Callable[[str], T], unknown: T) -> T:
        value = self.meta(key)
        return parse(value) if value else unknown

    # Before the load stage has run, each reads as unknown (None, 0, empty or the config's choice), never a parse
    # error.
    @property
    def model_path(self) -> str | None:
        return self.meta("model_path")

    @property
    def train_path(self) -> Path | None:
        return self._meta_as("train_path", Path, None)

    @property
    def n_train(self) -> int:
        n = self._meta_as("n_train", int, 0)
        # A count the training table does not bear out is damage, and a huge one would have every scoring allocate a
        # flag per claimed training image (minutes, or MemoryError, for a random 64-bit number). The table's indices
        # run 0..n-1, so its largest is read off the key's b-tree: no scan, also on the GUI thread at a million images.
        if n and n != self.db.execute("SELECT COALESCE(MAX(idx), -1) + 1 FROM train_images").fetchone()[0]:
            raise ValueError(f"n_train {n} disagrees with the training images the audit recorded")
        return n

    @property
    def class_names(self) -> list[str]:
        return self._meta_as("class_names", json.loads, [])

    @property
    def n_neighbours(self) -> int | None:
        return self._meta_as("n_neighbours", int, None)

    @property
    def descriptor(self) -> str:
        """The descriptor's name as the matcher reported it (a TorchScript file's name, not just "torchscript")."""
        return self.meta("descriptor") or self.config.matching.descriptor

    @property
    def direction(self) -> Direction:
        return self._meta_as("direction", Direction, Direction.of_descriptor(self.config.matching.descriptor))

    @property
    def skipped(self) -> list:
        """Training files the load stage could not read: [path, reason] each."""
        return self._meta_as("skipped", json.loads, [])

    @property
    def made_by(self) -> dict[str, str | int | None]:
        """What made this audit's images (provenance.engine() when it was created). Audits from before this was
        recorded: the sampler revision follows from the schema (1 came with revision 1), the versions are None."""
        revision = self.meta("sampler_revision")
        return {"engine_version": self.meta("engine_version"),
                "sampler_revision": int(revision) if revision else (1 if self.schema_version == 1 else 2),
                "torch": self.meta("torch_version"), "diffusers": self.meta("diffusers_version")}

    @property
    def schema_version(self) -> int:
        return self._meta_as("schema_version", int, 0)

    @property
    def complete(self) -> bool:
        return self.meta("status") == "complete"

    def mark_complete(self) -> None:
        with self.db:
            self.set_meta("status", "complete")

    def stage_status(self, name: str) -> str | None:
        row = self.db.execute("SELECT status FROM stages WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def stage_info(self, name: str) -> dict:
        row = self.db.execute("SELECT info FROM stages WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def stages(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT name, status FROM stages").fetchall())

    def mark_stage(self, name: str, status: str, info: dict | None = None) -> None:
        now = time.time()
        with self.db:
            self.db.execute(
                "INSERT INTO stages(name, status, started, finished, info) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET status = excluded.status, "
                "finished = excluded.finished, info = COALESCE(excluded.info, stages.info)",
                (name, status, now, now if status == "done" else None, json.dumps(info) if info else None),
            )

    def record_files(self, role: str, items: list[tuple[str, str]]) -> None:
        with self.db:
            self.db.execute("DELETE FROM files WHERE role = ?", (role,))
            self.db.executemany("INSERT INTO files VALUES (?, ?, ?)", [(role, p, h) for p, h in items])

    def files(self, role: str | None = None) -> list[FileRecord]:
        if role is None:
            rows = self.db.execute("SELECT role, path, sha256 FROM files ORDER BY role, path")
        else:
            rows = self.db.execute("SELECT role, path, sha256 FROM files WHERE role = ? ORDER BY path", (role,))
        return [FileRecord(*r) for r in rows]

    def record_training_set(self, paths: list[str], labels: np.ndarray | None, hashes: list[str]) -> None:
        label_of = [None if labels is None else int(labels[i]) for i in range(len(paths))]
        with self.db:
            self.db.execute("DELETE FROM train_images")
            self.db.executemany(
                "INSERT INTO train_images VALUES (?, ?, ?, ?)",
                [(i, p, y, h) for i, (p, y, h) in enumerate(zip(paths, label_of, hashes))],
            )

    def training_images(self) -> TrainingImages:
        """Every training image, index j at position j (record_training_set numbers them so), read a part at a time
        so that no Python object per image outlives its part."""
        paths: list[str] = []
        labels, digests = [np.zeros(0, np.int64)], [np.zeros(0, "S64")]
        rows = self.db.execute("SELECT idx, path, label, sha256 FROM train_images ORDER BY idx")
        while part := rows.fetchmany(TRAINING_PART):
            idx, path, label, digest = zip(*part)
            if not np.array_equal(idx, np.arange(len(paths), len(paths) + len(part))):
                raise InputError(self.root / DB_NAME, "its training images are not numbered from 0 without a gap")
            paths.extend(path)
            labels.append(np.array([NO_LABEL if y is None else y for y in label], np.int64))
            digests.append(np.array(digest, "S64"))
        return TrainingImages(paths, np.concatenate(labels), np.concatenate(digests))

    # ----- curves and health -------------------------------------------------------------------------------
    def add_curve_points(self, stage: str, points: list[tuple[int, float, float | None]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO curves VALUES (?, ?, ?, ?)",
                                [(stage, s, loss, a) for s, loss, a in points])

    def curve(self, stage: str) -> list[CurvePoint]:
        return [CurvePoint(*r) for r in self.db.execute(
            "SELECT step, loss, accuracy FROM curves WHERE stage = ? ORDER BY step", (stage,))]

    def clear_curve(self, stage: str, after_step: int = -1) -> None:
        with self.db:
            self.db.execute("DELETE FROM curves WHERE stage = ? AND step > ?", (stage, after_step))

    def set_health(self, buckets: list[tuple[int, int, float, int]]) -> None:
        with self.db:
            self.db.execute("DELETE FROM health")
            self.db.executemany("INSERT INTO health VALUES (?, ?, ?, ?)", buckets)

    def health(self) -> list[HealthBucket]:
        return [HealthBucket(*r) for r in self.db.execute("SELECT t_lo, t_hi, agreement, n FROM health ORDER BY t_lo")]

    # ----- D_syn --------------------------------------------------------------------------------------------
    def syn_done(self) -> set[int]:
        return {r[0] for r in self.db.execute("SELECT idx FROM syn_images")}

    def add_syn_batch(self, rows: list[tuple[int, int, str, str]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO syn_images VALUES (?, ?, ?, ?)", rows)

    def syn_images(self) -> list[SynImage]:
        return [SynImage(*r) for r in self.db.execute("SELECT idx, seed, path, sha256 FROM syn_images ORDER BY idx")]

    # ----- generated images -----------------------------------------------------------------------------------
    def done_indices(self, guide: str, gamma: float) -> set[int]:
        return {r[0] for r in self.db.execute(
            "SELECT idx FROM images WHERE guide = ? AND gamma = ?", (guide, float(gamma)))}

    def add_images(self, rows: list[dict]) -> list[int]:
        """Insert one batch of generated images with their matches, in one transaction; returns their ids."""
        ids = []
        with self.db:
            for r in rows:
                cur = self.db.execute(
                    "INSERT INTO images(guide, gamma, label, idx, seed, path, sha256, created, best, best_train,"
                    " gu, normalizer, nn_idx, nn_raw, nn_score, on_target) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (r["guide"], float(r["gamma"]), int(r["label"]), int(r["idx"]), int(r["seed"]), r["path"],
                     r["sha256"], time.time(), float(r["nn_score"][0]), int(r["nn_idx"][0]),
                     None if r.get("gu") is None else float(r["gu"]), float(r["normalizer"]),
                     np.asarray(r["nn_idx"], np.int32).tobytes(), np.asarray(r["nn_raw"], np.float32).tobytes(),
                     np.asarray(r["nn_score"], np.float32).tobytes(),
                     None if r.get("on_target") is None else int(bool(r["on_target"]))),
                )
                ids.append(cur.lastrowid)
        return ids

    _IMAGE_COLS = ("id, guide, gamma, label, idx, seed, path, sha256, created, best, best_train, gu, normalizer,"
                   " nn_idx, nn_raw, nn_score")

    @staticmethod
    def _image_row(r: tuple) -> ImageRow:
        """An ImageRow of a row of _IMAGE_COLS."""
        return ImageRow(id=r[0], guide=Guide(r[1]), gamma=r[2], label=r[3], idx=r[4], seed=r[5], path=r[6],
                        sha256=r[7], created=r[8], best=r[9], best_train=r[10], gu=r[11], normalizer=r[12],
                        nn_idx=np.frombuffer(r[13], np.int32), nn_raw=np.frombuffer(r[14], np.float32),
                        nn_score=np.frombuffer(r[15], np.float32))

    def image(self, image_id: int) -> ImageRow | None:
        r = self.db.execute(f"SELECT {self._IMAGE_COLS} FROM images WHERE id = ?", (image_id,)).fetchone()
        return self._image_row(r) if r else None

    def images(self, after_id: int = 0, limit: int | None = None) -> list[ImageRow]:
        q = f"SELECT {self._IMAGE_COLS} FROM images WHERE id > ? ORDER BY id"
        args: tuple = (after_id,)
        if limit is not None:
            q += " LIMIT ?"
            args += (limit,)
        return [self._image_row(r) for r in self.db.execute(q, args)]

    def image_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM images").fetchone()[0]

    def score_arrays(self, after_id: int = 0) -> ScoreArrays:
        on_target = "on_target" if self._has_on_target() else "NULL"
        rows = self.db.execute(
            f"SELECT id, guide, gamma, label, best, nn_idx, nn_score, gu, {on_target}, idx FROM images WHERE id > ? "
            "ORDER BY id", (after_id,)).fetchall()
        if not rows:
            return ScoreArrays.empty(self.config.matching.k)
        # column by column: zip(*rows) with a million arguments is slower than the query itself
        ids, guide, gamma, label, best, nn_idx, nn_score, gu, hit, idx = ([r[c] for r in rows] for c in range(10))
        return ScoreArrays(
            ids=np.asarray(ids, np.int64), guide=np.asarray(guide, object), gamma=np.asarray(gamma, float),
            label=np.asarray(label, np.int64), best=np.asarray(best, np.float32),
            # one join and one frombuffer per column: a numpy array per row would cost more than the query
            nn_idx=np.frombuffer(b"".join(nn_idx), np.int32).reshape(len(ids), -1),
            nn_score=np.frombuffer(b"".join(nn_score), np.float32).reshape(len(ids), -1),
            gu=np.asarray(gu, dtype=float),
            on_target=np.asarray(hit, dtype=float),
            idx=np.asarray(idx, np.int64),
        )

    def score(self, bands: Bands | None = None, *, uncertainty: bool = False,
              arrays: ScoreArrays | None = None) -> list[GroupResult]:
        """AMS / UMS per band of every (guide, gamma) run stored, under the audit's bands unless others are given;
        with uncertainty, also the UMS intervals and each guided run against Random (what reports print). arrays:
        this audit's score_arrays(), where the caller has read them already."""
        bands = bands or self.config.band_set()
        a = self.score_arrays() if arrays is None else arrays
        results = score_groups(a, bands, self.n_train)
        return with_uncertainty(results, a, bands) if uncertainty else results

    def _has_on_target(self) -> bool:
        # Asked on every streamed read; the answer is fixed by the schema the audit was made with.
        if self._on_target_col is None:
            self._on_target_col = "on_target" in {r[1] for r in self.db.execute("PRAGMA table_info(images)")}
        return self._on_target_col

    # ----- verdicts ---------------------------------------------------------------------------------------------
    # They live in verdicts.sqlite, which the first verdict creates with the ones an older audit kept in audit.sqlite
    # (its verdicts table, read until then): audit.sqlite stays the run's alone.
    def _verdicts_db(self) -> sqlite3.Connection | None:
        """This thread's connection to verdicts.sqlite, None until that exists (complete: user_version 1)."""
        conn = getattr(self._local, "verdicts", None)
        if conn is None and (self.root / VERDICTS_NAME).exists():
            conn = (_read_only(self.root / VERDICTS_NAME) if self.read_only
                    else sqlite3.connect(self.root / VERDICTS_NAME, timeout=30))
            if conn.execute("PRAGMA user_version").fetchone()[0] < 1:  # being created by another connection
                conn.close()
                return None
            self._local.verdicts = conn
        return conn

    def _verdicts_for_writing(self) -> sqlite3.Connection:
        if self.read_only:
            raise InputError(self.root, "is read-only: verdicts cannot be saved there (copy the audit to a writable "
                             "folder to give verdicts)")
        conn = self._verdicts_db()
        if conn is not None:
            return conn
        conn = sqlite3.connect(self.root / VERDICTS_NAME, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            if conn.execute("PRAGMA user_version").fetchone()[0] < 1:
                conn.execute(VERDICTS_TABLE)
                conn.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?)", self.db.execute(
                    "SELECT image_id, verdict, note, updated FROM verdicts").fetchall())
                conn.execute("PRAGMA user_version = 1")
            conn.commit()
        except BaseException:
            conn.close()
            raise
        self._local.verdicts = conn
        return conn

    def _verdicts_source(self) -> sqlite3.Connection:
        return self._verdicts_db() or self.db

    def set_verdict(self, image_id: int, verdict: str | None, note: str | None = None) -> None:
        """verdict None clears it; note None keeps the stored note. Written to verdicts.sqlite, never audit.sqlite."""
        if verdict is not None and verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {[str(v) for v in VERDICTS]}")
        db = self._verdicts_for_writing()
        with db:
            if note is None:
                old = self.verdict(image_id)
                note = old.note if old else ""
            if verdict is None and not note:
                db.execute("DELETE FROM verdicts WHERE image_id = ?", (image_id,))
            else:
                db.execute("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?)",
                           (image_id, verdict or "", note, time.time()))

    @staticmethod
    def _verdict_note(verdict: str, note: str) -> VerdictNote:
        return VerdictNote(Verdict(verdict) if verdict else None, note)

    def verdict(self, image_id: int) -> VerdictNote | None:
        r = self._verdicts_source().execute("SELECT verdict, note FROM verdicts WHERE image_id = ?",
                                            (image_id,)).fetchone()
        return self._verdict_note(*r) if r else None

    def verdicts(self) -> dict[int, VerdictNote]:
        return {r[0]: self._verdict_note(r[1], r[2])
                for r in self._verdicts_source().execute("SELECT image_id, verdict, note FROM verdicts")}

    # ----- paths --------------------------------------------------------------------------------------------------
    def path(self, rel: str) -> Path:
        return self.root / rel

    @staticmethod
    def image_relpath(guide: str, gamma: float, idx: int) -> str:
        return f"images/{guide}/gamma_{gamma:g}/{idx:06d}.png"

    @staticmethod
    def syn_relpath(idx: int) -> str:
        return f"images/syn/{idx:06d}.png"

    def classifier_path(self, which: str) -> Path:
        return self.root / "classifiers" / f"{which}.safetensors"
