"""Which training images were copied: the audit read per training image (`side report AUDIT --by-image`, the app's
Training images tab).

The gallery answers "which generated images look like training images"; the people who act on an audit (take an
image out of the training set, tell its owner) ask the other way round. For every training image j in 0..n_train-1:

- matches per band (high, mid, low): a generated image *matches* j when j is among its k stored neighbours (nn_idx)
  and its score on j (nn_score) lies inside a band. It counts once for j, in the band its score on j falls in; a
  neighbour outside every band counts nowhere. Most training images have no match at all.
- best: the closest score any generated image has on j among its stored neighbours, inside a band or not (the
  Direction says which way is closer: the smallest nL2, the largest cosine), and the generated image that has it (id,
  guide, gamma); where several tie, the first in id order. NaN, -1 and '' where j is no generated image's neighbour.
- runs: how many distinct (guide, gamma) runs have at least one match on j. Random sampling (guide none) is a run
  like the others.

Risk order, the table's default: more high-band matches first, then more mid, then more low, then the best score
(closest first; none last), then the training index.

A few passes of numpy over the flattened neighbour columns (masks, np.bincount, np.fmin.at, one lexsort over
n_train), nothing per image in Python: a million training images against 500,000 generated images with k = 10 count
in 0.2-0.5 s on two shared cores, with temporaries about four times the size of the neighbour columns (160 MiB).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..matching.metrics import Bands, ScoreArrays
from ..store import NO_LABEL, AuditStore, TrainingImages
from ..vocabulary import BANDS_HIGH_FIRST, BandName, Direction
from . import tabular
from .tabular import FLOAT, FLOAT32, INT, TEXT, Column

# Entries per numpy call that holds the GIL (ufunc.at, casting Python strings): about 2 ms each. The count runs on a
# worker beside the GUI thread, which waits for the GIL meanwhile; whole columns held it for 20-40 ms at 500k images.
HELD = 50_000
PART = 100_000  # training images per part of the written table: tens of MB of Python cells at any n_train


@dataclass(frozen=True)
class TrainingRisk:
    """One row per training image, indexed by its training index."""

    counts: dict[BandName, np.ndarray]  # int64 matches per band, high first
    best: np.ndarray  # float32 closest score on the image; NaN where it is nobody's neighbour
    best_id: np.ndarray  # int64 id of the generated image with that score; -1 where none
    best_guide: np.ndarray  # '<U4' its Guide value; '' where none
    best_gamma: np.ndarray  # its gamma; NaN where none
    best_run: np.ndarray  # int64 its run's place among the audit's runs in (gamma, guide) order; -1 where none
    runs: np.ndarray  # int64 distinct (guide, gamma) runs with a match
    direction: Direction

    def __len__(self) -> int:
        return len(self.best)

    @property
    def matched(self) -> np.ndarray:
        """True where at least one generated image matched the training image in a band."""
        return sum(self.counts.values(), np.zeros(len(self), np.int64)) > 0

    def closeness(self) -> np.ndarray:
        """best as a key that sorts closest first, +inf where none."""
        c = (self.best if self.direction is Direction.DISTANCE else -self.best).astype(np.float64)
        return np.where(np.isnan(c), np.inf, c)

    def order(self) -> np.ndarray:
        """The training indices in risk order."""
        c = self.counts
        # lexsort is stable and its last key sorts first: ties end in index order.
        return np.lexsort((self.closeness(), -c[BandName.LOW], -c[BandName.MID], -c[BandName.HIGH]))


def by_image(a: ScoreArrays, bands: Bands, n_train: int) -> TrainingRisk:
    """Matches per band, best score and runs of every training image (module docstring)."""
    k = a.nn_idx.shape[1] if a.nn_idx.ndim == 2 else 0
    flat_i, flat_s = a.nn_idx.reshape(-1), a.nn_score.reshape(-1)
    if flat_i.size and (int(flat_i.min()) < 0 or int(flat_i.max()) >= n_train):
        raise ValueError(f"a stored neighbour lies outside the {n_train} training images")
    guide = _guides(a)
    counts: dict[BandName, np.ndarray] = {}
    matched = np.zeros(flat_s.shape, bool)
    for name in BANDS_HIGH_FIRST:
        hit = bands.band(name).contains(flat_s)
        counts[name] = np.bincount(flat_i[hit], minlength=n_train).astype(np.int64)
        matched |= hit

    closeness = flat_s if bands.direction is Direction.DISTANCE else -flat_s
    closest = np.full(n_train, np.inf, flat_s.dtype)
    for s in range(0, flat_s.size, HELD):
        np.fmin.at(closest, flat_i[s:s + HELD], closeness[s:s + HELD])
    # The first neighbour entry (row-major: the lowest row, that is the lowest id) that reaches the closest score.
    at = np.flatnonzero(closeness == closest[flat_i])
    first = np.full(n_train, flat_s.size, np.intp)
    for s in range(0, at.size, HELD):
        np.minimum.at(first, flat_i[at[s:s + HELD]], at[s:s + HELD])
    found = first < flat_s.size
    row = first[found] // max(k, 1)
    best = np.full(n_train, np.nan, np.float32)
    best[found] = flat_s[first[found]]
    best_id = np.full(n_train, -1, np.int64)
    best_id[found] = a.ids[row]
    best_guide = np.full(n_train, "", "<U4")
    best_guide[found] = guide[row]
    best_gamma = np.full(n_train, np.nan)
    best_gamma[found] = a.gamma[row]
    run, n_runs = _run_codes(a, guide)
    best_run = np.full(n_train, -1, np.int64)
    best_run[found] = run[row]

    return TrainingRisk(counts=counts, best=best, best_id=best_id, best_guide=best_guide, best_gamma=best_gamma,
                        best_run=best_run, runs=_runs(a, run, n_runs, matched.reshape(a.nn_idx.shape), n_train),
                        direction=bands.direction)


def _guides(a: ScoreArrays) -> np.ndarray:
    """The guide column (Python strings) as '<U4', cast a part at a time."""
    return np.concatenate([a.guide[s:s + HELD].astype("<U4") for s in range(0, len(a), HELD)] or [np.zeros(0, "<U4")])


def _run_codes(a: ScoreArrays, guide: np.ndarray) -> tuple[np.ndarray, int]:
    """Each generated image's run as its place among the runs in (gamma, guide) order, and how many runs there are.
    From the few distinct guides and gammas, not from a string per row."""
    if not len(a):
        return np.zeros(0, np.int32), 0
    _, g = np.unique(guide, return_inverse=True)
    _, y = np.unique(a.gamma, return_inverse=True)
    runs, code = np.unique(y.reshape(-1) * (int(g.max()) + 1) + g.reshape(-1), return_inverse=True)
    return code.reshape(-1).astype(np.int32), len(runs)


def _runs(a: ScoreArrays, run: np.ndarray, n_runs: int, matched: np.ndarray, n_train: int) -> np.ndarray:
    """Distinct runs with a match, per training image: a flag per (image, run) pair that any match sets; few runs,
    so n_train x runs flags stay small (9 MB for a million images and nine runs)."""
    if not matched.any():
        return np.zeros(n_train, np.int64)
    # In place, one array of the matched entries' width: this is the count's largest temporary.
    flag = a.nn_idx[matched].astype(np.intp)
    flag *= n_runs
    flag += np.broadcast_to(run.reshape(-1, 1), matched.shape)[matched]
    seen = np.zeros(n_train * n_runs, bool)
    seen[flag] = True
    return seen.reshape(n_train, n_runs).sum(axis=1, dtype=np.int64)


@dataclass(frozen=True)
class Matches:
    """The generated images that hold one training image among their k neighbours, closest first (ties in id order);
    with a limit, the closest of them, and the scores of them all."""

    rows: np.ndarray  # positions in the ScoreArrays
    ids: np.ndarray  # their image ids
    slot: np.ndarray  # which of the image's neighbours the training image is: 0, its nearest
    score: np.ndarray  # float32, the image's score on the training image
    every: np.ndarray  # float32, the score on it of every generated image that holds it, in id order

    def __len__(self) -> int:
        return len(self.rows)


def matches_of(a: ScoreArrays, j: int, direction: Direction, limit: int | None = None) -> Matches:
    """Every generated image with training image j among its stored neighbours, in a band or not; only the closest
    `limit` of them where given."""
    k = a.nn_idx.shape[1] if a.nn_idx.ndim == 2 else 1
    at = np.flatnonzero(a.nn_idx.reshape(-1) == j)  # a tenth of the time of np.nonzero over the 2-d columns
    every = a.nn_score.reshape(-1)[at]
    closeness = every if Direction(direction) is Direction.DISTANCE else -every
    pick = np.arange(len(at))
    if limit is not None and len(at) > limit:
        # Everything closer than the limit-th closeness, then its ties in id order: linear, where sorting the
        # hundreds of thousands that hold a much-copied training image would not be.
        kth = np.partition(closeness, limit - 1)[limit - 1]
        closer = np.flatnonzero(closeness < kth)
        ties = np.flatnonzero(closeness == kth)[:limit - len(closer)]
        pick = np.sort(np.concatenate([closer, ties]))
    o = pick[np.argsort(closeness[pick], kind="stable")]  # nonzero lists rows in order: ties stay in id order
    rows = at[o] // k
    return Matches(rows=rows, ids=a.ids[rows], slot=at[o] % k, score=every[o], every=every)


# ----- the table: `side report AUDIT --by-image [--csv FILE]` --------------------------------------------------------
# (name, kind): kind is the Parquet type, and how the CSV writes the value. docs/REPORT_CSV.md says what each holds.
COLUMNS = tuple(Column(name, kind) for name, kind in (
    ("rank", INT), ("train_idx", INT), ("path", TEXT), ("sha256", TEXT), ("label", INT), ("label_name", TEXT),
    ("high", INT), ("mid", INT), ("low", INT), ("runs", INT), ("best", FLOAT32), ("best_id", INT),
    ("best_guide", TEXT), ("best_gamma", FLOAT)))


@dataclass(frozen=True)
class TrainingTable:
    """An audit's TrainingRisk with what names its training images, rows in risk order."""

    risk: TrainingRisk
    order: np.ndarray
    training: TrainingImages
    class_names: list[str]
    bands: Bands

    def label_name(self, label: int | None) -> str:
        if label is None:
            return ""
        return self.class_names[label] if 0 <= label < len(self.class_names) else str(label)

    def parts(self, size: int) -> Iterator[dict[str, list]]:
        """Every training image, risk order, as the table's columns `size` rows at a time (None where a cell is
        empty): the cells are Python objects, a few hundred bytes a row, so only a part of them is held at once."""
        for start in range(0, len(self.order), size):
            yield self._part(start, self.order[start:start + size])

    def _part(self, start: int, o: np.ndarray) -> dict[str, list]:
        r, t, idx = self.risk, self.training, o.tolist()
        labels = [None if y == NO_LABEL else y for y in t.labels[o].tolist()]
        found = (r.best_id[o] >= 0).tolist()
        return {
            "rank": list(range(start + 1, start + len(o) + 1)), "train_idx": idx,
            "path": [t.paths[j] for j in idx], "sha256": [h.decode() for h in t.sha256[o].tolist()],
            "label": labels, "label_name": [self.label_name(y) or None for y in labels],
            **{str(name): r.counts[name][o].tolist() for name in BANDS_HIGH_FIRST},
            "runs": r.runs[o].tolist(), "best": [v if f else None for v, f in zip(r.best[o].tolist(), found)],
            "best_id": [i if f else None for i, f in zip(r.best_id[o].tolist(), found)],
            "best_guide": [g or None for g in r.best_guide[o].tolist()],
            "best_gamma": [y if f else None for y, f in zip(r.best_gamma[o].tolist(), found)],
        }


def training_table(store: AuditStore, bands: Bands | None = None) -> TrainingTable:
    """The audit's training images at risk, under its own bands unless others are given."""
    bands = bands or store.config.band_set()
    n_train = store.n_train
    risk = by_image(store.score_arrays(), bands, n_train)
    training = store.training_images()
    if len(training) != n_train:
        raise ValueError(f"{len(training)} training images recorded, n_train says {n_train}")
    return TrainingTable(risk=risk, order=risk.order(), training=training, class_names=store.class_names,
                         bands=bands)


def format_table(t: TrainingTable) -> str:
    """The training images that some generated image matched, in risk order, and how many none matched."""
    r, d = t.risk, t.bands.direction
    matched = t.order[r.matched[t.order]]
    bands = "  ".join(f"{b.name.label} {b.interval}" for b in t.bands.all())
    head = (f"{'rank':>6}{'train':>8}{'high':>6}{'mid':>6}{'low':>6}{'best':>8}{'image':>8}  {'guide':<6}{'gamma':>6}"
            f"{'runs':>6}  {'label':<8}file")
    title = f"training images that generated images matched, most at risk first (bands {bands}; {d.unit}, {d.closer})"
    lines = [title, head]
    c = r.counts
    for rank, j in enumerate(matched.tolist(), start=1):
        train = t.training[j]
        label = t.label_name(train.label)
        lines.append(f"{rank:>6}{j:>8}{c[BandName.HIGH][j]:>6}{c[BandName.MID][j]:>6}{c[BandName.LOW][j]:>6}"
                     f"{r.best[j]:>8.3f}{r.best_id[j]:>8}  {r.best_guide[j]:<6}{r.best_gamma[j]:>6g}{r.runs[j]:>6}  "
                     f"{label:<8}{train.path}")
    unmatched = len(r) - len(matched)
    lines.append(f"{unmatched:,} of {len(r):,} training images were matched in no band by any generated image.")
    return "\n".join(lines)


def write_table(t: TrainingTable, out: str | Path) -> int:
    """Every training image into `out` (CSV; Parquet where it ends in .parquet), risk order; returns how many rows.
    Raises InputError naming `out` when it cannot be written (nothing is left there then), or for Parquet without
    pyarrow."""
    return tabular.write(out, COLUMNS, t.parts(PART))
