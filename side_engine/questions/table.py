"""Every generated image of an audit with all its scores, as one table a notebook reads: `side report AUDIT --csv
FILE` (CSV, or Parquet through pyarrow for a FILE ending in .parquet). docs/REPORT_CSV.md says what each column holds.

The rows are read and written CHUNK images at a time, so that a table of 500,000 images never holds them all as
Python objects; the file appears whole or not at all (atomic.replacing)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..matching.metrics import Bands
from ..store import AuditStore, TrainingImages, VerdictNote
from ..vocabulary import Guide
from . import tabular
from .tabular import BOOL, FLOAT, FLOAT32, INT, TEXT, Column

CHUNK = 20_000


def columns(k: int) -> list[Column]:
    """The table's columns for an audit that stores k neighbours per image, in order."""
    fixed = [("id", INT), ("guide", TEXT), ("gamma", FLOAT), ("target_label", INT), ("target_name", TEXT),
             ("idx", INT), ("seed", INT), ("path", TEXT), ("sha256", TEXT), ("best", FLOAT32), ("band", TEXT),
             ("best_train", INT), ("best_train_path", TEXT), ("gu", FLOAT), ("normalizer", FLOAT),
             ("on_target", BOOL), ("verdict", TEXT), ("note", TEXT)]
    neighbours = [(f"nn{j}_{what}", kind) for j in range(1, k + 1)
                  for what, kind in (("idx", INT), ("score", FLOAT32), ("raw", FLOAT32))]
    return [Column(n, kind) for n, kind in fixed + neighbours]


@dataclass(frozen=True)
class _Audit:
    """What every chunk's rows are read against: read once."""

    bands: Bands
    training: TrainingImages
    class_names: list[str]  # [] where the labels have no names (clusters, a user's classifier)
    verdicts: dict[int, VerdictNote]
    on_target: bool  # the audit's schema has the column


def _audit(store: AuditStore) -> _Audit:
    labels = store.config.labels
    named = labels.source == "classifier" and not labels.classifier
    return _Audit(bands=store.config.band_set(), training=store.training_images(),
                  class_names=store.class_names if named else [], verdicts=store.verdicts(),
                  on_target=store.schema_version >= 2)


def chunks(store: AuditStore, size: int) -> Iterator[dict[str, list | np.ndarray]]:
    """The table's columns `size` images at a time, in id order: lists with None where a cell is empty, and the
    float32 columns as numpy arrays."""
    audit = _audit(store)
    after = 0
    while rows := store.images(after, size):
        yield _chunk(store, audit, rows)
        after = rows[-1].id


def _chunk(store: AuditStore, audit: _Audit, rows: list) -> dict[str, list | np.ndarray]:
    ids = [r.id for r in rows]
    guided = [r.guide is not Guide.NONE for r in rows]
    best = np.array([r.best for r in rows], np.float32)
    nn_idx, nn_score, nn_raw = (np.stack([getattr(r, c) for r in rows]) for c in ("nn_idx", "nn_score", "nn_raw"))
    hit: dict[int, int | None] = {}
    if audit.on_target:
        hit = dict(store.db.execute("SELECT id, on_target FROM images WHERE id >= ? AND id <= ?", (ids[0], ids[-1])))
    notes = [audit.verdicts.get(i) for i in ids]
    names = audit.class_names
    out: dict[str, list | np.ndarray] = {
        "id": ids, "guide": [str(r.guide) for r in rows], "gamma": [r.gamma for r in rows],
        "target_label": [r.label if g else None for r, g in zip(rows, guided, strict=True)],
        "target_name": [names[r.label] if g and 0 <= r.label < len(names) else None
                        for r, g in zip(rows, guided, strict=True)],
        "idx": [r.idx for r in rows], "seed": [r.seed for r in rows], "path": [r.path for r in rows],
        "sha256": [r.sha256 for r in rows], "best": best,
        "band": [b or None for b in audit.bands.classify(best).tolist()],
        "best_train": [r.best_train for r in rows],
        "best_train_path": [_train_path(audit.training, r.best_train) for r in rows],
        "gu": [r.gu for r in rows], "normalizer": [r.normalizer for r in rows],
        "on_target": [None if hit.get(i) is None else bool(hit[i]) for i in ids],
        "verdict": [(v.verdict or None) if v else None for v in notes],
        "note": [(v.note or None) if v else None for v in notes],
    }
    for j in range(nn_idx.shape[1]):
        out[f"nn{j + 1}_idx"] = nn_idx[:, j].tolist()
        out[f"nn{j + 1}_score"] = nn_score[:, j]
        out[f"nn{j + 1}_raw"] = nn_raw[:, j]
    return out


def _train_path(training: TrainingImages, j: int) -> str | None:
    return training.paths[j] if 0 <= j < len(training) else None


def write_table(audit_dir: str | Path, out: str | Path) -> int:
    """The table of every generated image into `out` (CSV; Parquet where it ends in .parquet); returns how many
    rows. Raises InputError naming `out` when it cannot be written (nothing is left there then), or for Parquet
    without pyarrow."""
    store = AuditStore.open(audit_dir)
    try:
        first = store.images(0, 1)
        k = len(first[0].nn_idx) if first else store.config.matching.k
        return tabular.write(out, columns(k), chunks(store, CHUNK))
    finally:
        store.close()
