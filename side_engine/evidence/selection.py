"""Which pairs an export holds: the filters over an audit's generated images, and the row each kept pair becomes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..matching.metrics import Bands, ScoreArrays
from ..store import AuditStore, ImageRow
from ..vocabulary import BANDS_LOW_FIRST, GUIDES, VERDICTS, BandName, Direction, Guide, Verdict


class PairColumns(Protocol):
    """What select() and count() read: one value per generated image, aligned. Columns is one; the GUI gallery's
    own columns are another, so its export dialog counts exactly the pairs an export of that choice writes."""

    ids: np.ndarray
    guide: np.ndarray
    gamma: np.ndarray
    best: np.ndarray
    verdict: np.ndarray


@dataclass
class Columns:
    ids: np.ndarray
    guide: np.ndarray  # Guide values
    gamma: np.ndarray
    best: np.ndarray  # float32 as the audit stores it: the same band as the gallery's badges and AMS/UMS
    verdict: np.ndarray  # Verdict values, '' where none

    @classmethod
    def of(cls, store: AuditStore, a: ScoreArrays | None = None) -> Columns:
        """The columns of every generated image; `a` saves reading the scores again when the caller has them."""
        a = store.score_arrays() if a is None else a
        given = store.verdicts()
        verdicts = [(v.verdict or "") if (v := given.get(int(i))) else "" for i in a.ids]
        return cls(a.ids, a.guide, a.gamma, a.best, np.array(verdicts, dtype=object))


def select(cols: PairColumns, bands: Bands, *, band: str | None = None, verdict: str | None = None,
           guide: str | None = None, gamma: float | None = None, top: int | None = None,
           image_ids: Iterable[int] | None = None) -> np.ndarray:
    """Positions in cols of the pairs the filters keep, closest match first (ties by id); top N applies last."""
    pos = np.flatnonzero(_keep(cols, bands, band, verdict, guide, gamma, image_ids))
    sign = 1.0 if bands.direction is Direction.DISTANCE else -1.0
    pos = pos[np.lexsort((cols.ids[pos], sign * cols.best[pos].astype(float)))]
    return pos if top is None else pos[:top]


def count(cols: PairColumns, bands: Bands, *, band: str | None = None, verdict: str | None = None,
          guide: str | None = None, gamma: float | None = None, top: int | None = None,
          image_ids: Iterable[int] | None = None) -> int:
    """len(select(...)) without the sort, which costs 200 ms at 500,000 images: cheap enough to recount a dialog's
    choice at every change on the GUI thread."""
    n = int(np.count_nonzero(_keep(cols, bands, band, verdict, guide, gamma, image_ids)))
    return n if top is None else min(n, top)


def _one_of(members: tuple) -> tuple[str, ...]:
    return tuple(str(m) for m in members)


def _keep(cols: PairColumns, bands: Bands, band, verdict, guide, gamma, image_ids) -> np.ndarray:
    if band is not None and band not in BANDS_LOW_FIRST:
        raise ValueError(f"band must be one of {_one_of(BANDS_LOW_FIRST)}")
    if verdict is not None and verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {_one_of(VERDICTS)}")
    if guide is not None and guide not in GUIDES:
        raise ValueError(f"guide must be one of {_one_of(GUIDES)}")
    keep = np.ones(len(cols.ids), bool)
    if image_ids is not None:
        keep &= np.isin(cols.ids, np.asarray(list(image_ids), np.int64))
    if band is not None:
        # Bands never overlap (Bands.validate), so this is classify(best) == band without a string per image.
        keep &= bands.band(band).contains(cols.best)
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
             "gamma": lambda v: f"gamma {float(v):g}", "top": "the {} closest".format}
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
    """One exported pair: a generated image, its nearest training image, and where the export keeps both."""

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
