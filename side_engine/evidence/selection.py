"""Which pairs an export holds: the filters over an audit's generated images, and the row each kept pair becomes.

A pair is a generated image and one training image. Ordinarily that is the image's nearest training image, one pair
per generated image. With `training_images` (`side export --image N`) it is each chosen training image, paired with
every generated image that holds it among its k stored neighbours (at any place, not only the nearest): a generated
image near two chosen training images makes two pairs, and the band filter then applies to the score on the chosen
image."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..matching.metrics import Band, Bands, ScoreArrays
from ..store import AuditStore, ImageRow
from ..vocabulary import BANDS_HIGH_FIRST, BANDS_LOW_FIRST, GUIDES, VERDICTS, BandName, Direction, Guide, Verdict


class PairColumns(Protocol):
    """What select() and count() read: one value per generated image, aligned. Columns is one; the GUI gallery's
    own columns are another, so its export dialog counts exactly the pairs an export of that choice writes."""

    ids: np.ndarray
    guide: np.ndarray
    gamma: np.ndarray
    best: np.ndarray
    verdict: np.ndarray


class NeighbourColumns(PairColumns, Protocol):
    """PairColumns with every stored neighbour: what a selection by training image reads."""

    nn_idx: np.ndarray  # (N, k) training indices, nearest first
    nn_score: np.ndarray  # (N, k) the scores on them


@dataclass
class Columns:
    ids: np.ndarray
    guide: np.ndarray  # Guide values
    gamma: np.ndarray
    best: np.ndarray  # float32 as the audit stores it: the same band as the gallery's badges and AMS/UMS
    verdict: np.ndarray  # Verdict values, '' where none
    nn_idx: np.ndarray  # (N, k)
    nn_score: np.ndarray  # (N, k)

    @classmethod
    def of(cls, store: AuditStore, a: ScoreArrays | None = None) -> Columns:
        """The columns of every generated image; `a` saves reading the scores again when the caller has them."""
        a = store.score_arrays() if a is None else a
        given = store.verdicts()
        verdicts = [(v.verdict or "") if (v := given.get(int(i))) else "" for i in a.ids]
        return cls(a.ids, a.guide, a.gamma, a.best, np.array(verdicts, dtype=object), a.nn_idx, a.nn_score)


@dataclass(frozen=True)
class Selected:
    """The pairs a selection keeps, in export order: the generated image's position in the columns, and which of its
    stored neighbours the pair's training image is (0: its nearest, always so without training_images)."""

    pos: np.ndarray
    slot: np.ndarray

    def __len__(self) -> int:
        return len(self.pos)


def select_pairs(cols: PairColumns | NeighbourColumns, bands: Bands, *, band: str | None = None,
                 verdict: str | None = None, guide: str | None = None, gamma: float | None = None,
                 top: int | None = None, image_ids: Iterable[int] | None = None,
                 training_images: Iterable[int] | None = None) -> Selected:
    """The pairs the filters keep, closest first (ties by image id, then training index); top N applies last.
    training_images: the pairs of these training images (module docstring); cols must then be NeighbourColumns."""
    pos, slot = _pairs(cols, bands, band, verdict, guide, gamma, image_ids, training_images)
    score = cols.best[pos] if training_images is None else _neighbours(cols).nn_score[pos, slot]
    sign = 1.0 if bands.direction is Direction.DISTANCE else -1.0
    train = slot if training_images is None else _neighbours(cols).nn_idx[pos, slot]
    order = np.lexsort((train, cols.ids[pos], sign * score.astype(float)))[:top]
    return Selected(pos[order], slot[order])


def select(cols: PairColumns | NeighbourColumns, bands: Bands, *, band: str | None = None,
           verdict: str | None = None, guide: str | None = None, gamma: float | None = None, top: int | None = None,
           image_ids: Iterable[int] | None = None, training_images: Iterable[int] | None = None) -> np.ndarray:
    """Positions in cols of the pairs' generated images, in select_pairs' order (with training_images, an image
    near two of them is there twice)."""
    return select_pairs(cols, bands, band=band, verdict=verdict, guide=guide, gamma=gamma, top=top,
                        image_ids=image_ids, training_images=training_images).pos


def count(cols: PairColumns | NeighbourColumns, bands: Bands, *, band: str | None = None,
          verdict: str | None = None, guide: str | None = None, gamma: float | None = None, top: int | None = None,
          image_ids: Iterable[int] | None = None, training_images: Iterable[int] | None = None) -> int:
    """len(select(...)) without listing the pairs or sorting them (the sort costs 200 ms at 500,000 images): cheap
    enough to recount a dialog's choice at every change on the GUI thread."""
    n = int(np.count_nonzero(_kept(cols, bands, band, verdict, guide, gamma, image_ids, training_images)))
    return n if top is None else min(n, top)


def _one_of(members: tuple) -> tuple[str, ...]:
    return tuple(str(m) for m in members)


def _neighbours(cols: PairColumns | NeighbourColumns) -> NeighbourColumns:
    if not isinstance(getattr(cols, "nn_idx", None), np.ndarray):
        raise TypeError("a selection by training image needs every stored neighbour (NeighbourColumns)")
    return cols  # type: ignore[return-value]


def _pairs(cols: PairColumns | NeighbourColumns, bands: Bands, band, verdict, guide, gamma, image_ids,
           training_images) -> tuple[np.ndarray, np.ndarray]:
    """(positions, slots) of the kept pairs, in column order."""
    kept = _kept(cols, bands, band, verdict, guide, gamma, image_ids, training_images)
    if kept.ndim == 1:
        pos = np.flatnonzero(kept)
        return pos, np.zeros(len(pos), np.intp)
    pos, slot = np.nonzero(kept)
    return pos, slot


def _kept(cols: PairColumns | NeighbourColumns, bands: Bands, band, verdict, guide, gamma, image_ids,
          training_images) -> np.ndarray:
    """What the filters keep: (N,) of the generated images, or with training_images (N, k) of their stored
    neighbours."""
    if training_images is None:
        return _keep(cols, bands, band, verdict, guide, gamma, image_ids)
    c = _neighbours(cols)
    hit = _any_of(c.nn_idx, training_images)
    hit &= _keep(cols, bands, None, verdict, guide, gamma, image_ids)[:, None]
    if band is not None:
        hit &= _band(bands, band).contains(c.nn_score)
    return hit


# Up to this many training images are looked for one comparison each: 0.5 ms each over 175,000 x 10 neighbours,
# where np.isin takes 5 ms whatever the number.
FEW_TRAINING_IMAGES = 8


def _any_of(nn_idx: np.ndarray, training_images: Iterable[int]) -> np.ndarray:
    wanted = np.unique(np.asarray(list(training_images), np.int64))
    if len(wanted) > FEW_TRAINING_IMAGES:
        return np.isin(nn_idx, wanted)
    hit = np.zeros(nn_idx.shape, bool)
    for j in wanted:
        hit |= nn_idx == j
    return hit


def _band(bands: Bands, band: str) -> Band:
    if band not in BANDS_LOW_FIRST:
        raise ValueError(f"band must be one of {_one_of(BANDS_LOW_FIRST)}")
    return bands.band(band)


def _keep(cols: PairColumns, bands: Bands, band, verdict, guide, gamma, image_ids) -> np.ndarray:
    """The generated images the filters keep; band: of their best score."""
    if verdict is not None and verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {_one_of(VERDICTS)}")
    if guide is not None and guide not in GUIDES:
        raise ValueError(f"guide must be one of {_one_of(GUIDES)}")
    keep = np.ones(len(cols.ids), bool)
    if image_ids is not None:
        keep &= np.isin(cols.ids, np.asarray(list(image_ids), np.int64))
    if band is not None:
        # Bands never overlap (Bands.validate), so this is classify(best) == band without a string per image.
        keep &= _band(bands, band).contains(cols.best)
    if verdict is not None:
        keep &= cols.verdict == verdict
    if guide is not None:
        keep &= cols.guide == guide
    if gamma is not None:
        keep &= np.abs(cols.gamma - float(gamma)) <= 1e-9
    return keep


def selection_text(sel: dict) -> str:
    """The filters of a selection as the README and the report name them."""
    words = {"image_ids": lambda v: f"{len(v)} chosen image(s)", "band": lambda v: f"band {BandName(v).label}",
             "verdict": lambda v: f"verdict {Verdict(v).value}", "guide": lambda v: Guide(v).label,
             "gamma": lambda v: f"gamma {float(v):g}", "top": "the {} closest".format,
             "training_images": lambda v: "the generated images near training image" + ("s " if len(v) > 1 else " ")
             + ", ".join(f"#{j}" for j in v)}
    parts = [say(sel[k]) for k, say in words.items() if sel.get(k) is not None]
    return ", ".join(parts) or "all generated images"


def classifier_name(guide: Guide, labels_source: str) -> str | None:
    """The file in classifiers/ that guided images of this guide: f_TD, or f_TI (for labels from clusters f_TI
    is the nearest-centre classifier over the stored centres)."""
    if guide == Guide.NONE:
        return None
    if guide == Guide.TD:
        return "td"
    return "clusters" if labels_source == "clusters" else "ti"


@dataclass(frozen=True)
class Pair:
    """One exported pair: a generated image, one of its stored neighbours (its nearest training image unless the
    export chose training images), and where the export keeps both."""

    rank: int
    row: ImageRow
    band: BandName | None  # None: outside the bands
    verdict: Verdict | None
    note: str
    label_name: str
    train_index: int
    train_source: str  # path inside the training folder
    train_sha256: str
    train_file: str  # path inside the export
    gen_file: str
    classifier: str | None  # the file stem in classifiers/ (classifier_name), None for Random
    neighbour: int = 0  # which of the generated image's stored neighbours the training image is: 0, the nearest

    @property
    def score(self) -> float:
        """The generated image's score on this pair's training image (its best score for the nearest)."""
        return float(self.row.nn_score[self.neighbour])

    @property
    def raw(self) -> float:
        return float(self.row.nn_raw[self.neighbour])


@dataclass(frozen=True)
class ChosenImage:
    """A training image an export was asked for (`training_images`): what its page of the report says."""

    index: int
    source: str  # path inside the training folder
    label: str  # its class as the report prints it
    sha256: str
    file: str  # path inside the export
    matched: dict[str, int]  # generated images of the whole audit holding it as a neighbour, per band of their score
    nearest: dict[str, int]  # on it ('' outside the bands); of those, the ones whose nearest training image it is
    pairs: tuple[int, ...]  # the ranks of its pairs in the export, closest first


def band_counts(nn_idx: np.ndarray, nn_score: np.ndarray, bands: Bands, j: int) -> tuple[dict[str, int],
                                                                                         dict[str, int]]:
    """For training image j: how many generated images hold it among their stored neighbours, per band of their
    score on it ('' outside every band; high first), and how many of them hold it as their nearest."""
    rows, slots = np.nonzero(nn_idx == j)
    names = bands.classify(nn_score[rows, slots])
    keys = [str(b) for b in BANDS_HIGH_FIRST] + [""]
    return ({b: int(np.count_nonzero(names == b)) for b in keys},
            {b: int(np.count_nonzero((names == b) & (slots == 0))) for b in keys})
