"""AMS / UMS per similarity band and per (guide, gamma), the percentile statistic and Gu's ratio.

Pure functions of the stored scores and the bands, so that moving a band edge re-scores at once.
Definitions: docs/side-method.md section 5 (SIDE v7, eq. 6-9). Uncertainty (intervals, tests against Random):
docs/REPORT_JSON.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from itertools import pairwise

import numpy as np

from ..vocabulary import BANDS_LOW_FIRST, BandName, Direction, Guide

BAND_NAMES = BANDS_LOW_FIRST
ALL = "all"  # the comparison over the three bands together
Z95 = 1.959963984540054  # standard normal quantile 0.975
N_RESAMPLES = 1000  # bootstrap resamples: enough for 2.5% and 97.5% percentiles, half the time of 2000
N_FLIPS = 2000  # sign flips: p-values down to 1/2001
SEED = 0  # fixed, so that a report reads the same every time it is made


@dataclass(frozen=True)
class Band:
    name: BandName
    lo: float
    hi: float
    closed_hi: bool = False  # the band that ends at the top of the score's range includes its upper edge

    @property
    def interval(self) -> str:
        """[lo, hi) or [lo, hi]: how reports print the band."""
        return f"[{self.lo:g}, {self.hi:g}{']' if self.closed_hi else ')'}"

    def contains(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values)
        upper = v <= self.hi if self.closed_hi else v < self.hi
        return (v >= self.lo) & upper


@dataclass(frozen=True)
class Bands:
    """Three non-overlapping bands in the descriptor's own units.

    direction "distance": smaller = closer (nL2, range (0, 2]); "similarity": larger = closer (cosine, up to 1)."""

    low: tuple[float, float]
    mid: tuple[float, float]
    high: tuple[float, float]
    direction: Direction = Direction.SIMILARITY

    def __post_init__(self) -> None:
        object.__setattr__(self, "direction", Direction(self.direction))

    @property
    def top(self) -> float:
        return self.direction.top

    def band(self, name: str) -> Band:
        lo, hi = getattr(self, name)
        return Band(BandName(name), float(lo), float(hi), closed_hi=bool(np.isclose(hi, self.top)))

    def all(self) -> tuple[Band, ...]:
        return tuple(self.band(n) for n in BAND_NAMES)

    def validate(self) -> str | None:
        """The problem with these bands, or None."""
        spans = sorted((getattr(self, n)[0], getattr(self, n)[1], n) for n in BAND_NAMES)
        for lo, hi, n in spans:
            if not lo < hi:
                return f"band {n} is empty: [{lo}, {hi})"
        for (_, hi0, n0), (lo1, _, n1) in pairwise(spans):
            if lo1 < hi0 - 1e-12:
                return f"bands {n0} and {n1} overlap"
        return None

    def classify(self, best: np.ndarray) -> np.ndarray:
        """Band name per score ('' where none): what the gallery's badges show."""
        out = np.full(np.shape(best), "", dtype="<U4")
        for b in self.all():
            out[b.contains(best)] = b.name
        return out


SSCD_BANDS = Bands(low=(0.40, 0.50), mid=(0.50, 0.60), high=(0.60, 1.00), direction=Direction.SIMILARITY)
NL2_BANDS = Bands(low=(1.6, 1.8), mid=(1.4, 1.6), high=(0.0, 1.4), direction=Direction.DISTANCE)


def ams(best: np.ndarray, band: Band) -> float:
    """Fraction of generated images whose best match lies in the band."""
    best = np.asarray(best)
    return float(band.contains(best).mean()) if best.size else 0.0


def ums(nn_idx: np.ndarray, nn_score: np.ndarray, band: Band, n_train: int) -> float:
    """Number of distinct training images matched inside the band by any generated image, over N_G.

    Counts the stored top-k neighbours of each image (nn_idx, nn_score: (N_G, k))."""
    n = len(nn_idx)
    if n == 0:
        return 0.0
    hit = np.zeros(n_train, dtype=bool)
    hit[nn_idx[band.contains(nn_score)]] = True
    return float(hit.sum()) / n


def percentile_of_best(best: np.ndarray, direction: str) -> float:
    """95th percentile of the best similarity (Somepalli), or the 5th of the best distance."""
    if len(best) == 0:
        return float("nan")
    return float(np.percentile(best, Direction(direction).percentile))


def gu_fraction(gu_ratio: np.ndarray, threshold: float = 1 / 3) -> float | None:
    """Gu et al.: memorized if l2(nearest) / l2(second nearest) < 1/3, in pixel space."""
    g = np.asarray(gu_ratio, dtype=float)
    g = g[np.isfinite(g)]
    return float((g < threshold).mean()) if g.size else None


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of the proportion k/n: unlike p ± z·se it stays inside [0, 1] and does not shrink
    to a point at k = 0, the usual count in the high band."""
    if n <= 0:
        return (0.0, 1.0)
    p, z2 = k / n, z * z / n
    centre = (p + z2 / 2) / (1 + z2)
    half = z / (1 + z2) * math.sqrt(p * (1 - p) / n + z2 / (4 * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe_interval(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """95% interval of the difference k1/n1 - k2/n2 of two independent proportions: Newcombe's hybrid score
    interval (Newcombe 1998, Statistics in Medicine 17:873-890, method 10), which combines the two Wilson intervals.
    Like them it stays inside [-1, 1] and keeps a width where a count is 0, where p ± z·se collapses."""
    p1, p2 = (k1 / n1 if n1 > 0 else 0.0), (k2 / n2 if n2 > 0 else 0.0)
    (l1, u1), (l2, u2) = wilson_interval(k1, n1, z), wilson_interval(k2, n2, z)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def target_rate(on_target: np.ndarray) -> float | None:
    """Share of a run's images that its guiding classifier puts in their target label; None where unknown (Random,
    audits made before the column)."""
    t = np.asarray(on_target, dtype=float)
    t = t[np.isfinite(t)]
    return float(t.mean()) if t.size else None


def chance_level(label_counts: Sequence | None) -> float | None:
    """The on-target rate of guidance that does nothing: 1 / number of labels (the labels stage's "counts")."""
    return 1.0 / len(label_counts) if label_counts else None


def at_chance(rate: float | None, n: int, chance: float | None) -> bool:
    """True when a guided run's on-target rate cannot be told from chance (its Wilson interval reaches down to it):
    guidance that does not reach its labels cannot raise AMS, so its AMS/UMS say nothing about the model."""
    if rate is None or chance is None or n <= 0:
        return False
    return wilson_interval(round(rate * n), n)[0] <= chance


def p_text(p: float) -> str:
    """A p-value in at most five characters: 0.012, 3e-05."""
    return f"{p:.3f}" if p >= 0.001 else f"{p:.0e}"


def ratio_text(ratio: float | None, guided: float) -> str:
    """guided / Random; ∞ when only Random is at 0, '-' when both are."""
    if ratio is not None:
        return f"{ratio:.2f}"
    return "∞" if guided > 0 else "-"


@dataclass
class ScoreArrays:
    """Columns of generated images' scores, one row per image: what every scoring function takes."""

    ids: np.ndarray
    guide: np.ndarray  # Guide values, as stored
    gamma: np.ndarray
    label: np.ndarray
    best: np.ndarray
    nn_idx: np.ndarray  # (N, k) training indices of the stored neighbours, best first
    nn_score: np.ndarray  # (N, k) their scores
    gu: np.ndarray  # Gu's ratio; NaN where not computed
    # 1.0 where the guiding classifier puts the image (at t = 0) in its target label, 0.0 where not, NaN where the
    # image has no guide (Random) or the audit predates the column
    on_target: np.ndarray
    # the image's index in its run: the same index starts from the same noise in every run (paired comparisons)
    idx: np.ndarray

    @classmethod
    def of(cls, guide, gamma, nn_idx, nn_score, *, gu=None, on_target=None, idx=None, label=None,
           ids=None) -> ScoreArrays:
        """Columns from what is known; the rest filled as unknown (NaN) or counted (ids, idx from 0)."""
        nn_score = np.asarray(nn_score)
        n = len(nn_score)
        unknown = np.full(n, np.nan)
        count = np.arange(n, dtype=np.int64)
        return cls(ids=count if ids is None else np.asarray(ids, np.int64), guide=np.asarray(guide, object),
                   gamma=np.asarray(gamma, float),
                   label=np.zeros(n, np.int64) if label is None else np.asarray(label, np.int64),
                   best=nn_score[:, 0] if n else np.zeros(0, nn_score.dtype), nn_idx=np.asarray(nn_idx),
                   nn_score=nn_score, gu=unknown if gu is None else np.asarray(gu, float),
                   on_target=unknown.copy() if on_target is None else np.asarray(on_target, float),
                   idx=count if idx is None else np.asarray(idx, np.int64))

    @classmethod
    def empty(cls, k: int) -> ScoreArrays:
        return cls.of(np.zeros(0, object), np.zeros(0), np.zeros((0, k), np.int32), np.zeros((0, k), np.float32))

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, sel) -> ScoreArrays:
        """The rows sel picks (a boolean mask or positions)."""
        return ScoreArrays(*(getattr(self, f.name)[sel] for f in fields(self)))

    def extend(self, more: ScoreArrays) -> ScoreArrays:
        """These columns followed by more's: streaming readers append new rows instead of re-reading all."""
        if not len(self.ids):
            return more
        if not len(more.ids):
            return self
        return ScoreArrays(*(np.concatenate([getattr(self, f.name), getattr(more, f.name)]) for f in fields(self)))


@dataclass(frozen=True)
class Comparison:
    """One statistic of a guided run and of Random over the same image indices, with the one-sided p-value of
    "guided > Random" and that p times the number of gammas the guide was tried at (users look at the best one)."""

    guided: float
    random: float
    p: float
    p_bonferroni: float

    @property
    def ratio(self) -> float | None:
        return self.guided / self.random if self.random > 0 else None

    def as_json(self) -> dict:
        return {"ratio": self.ratio, "p": self.p, "p_bonferroni": self.p_bonferroni, "guided": self.guided,
                "random": self.random}


@dataclass(frozen=True)
class VsRandom:
    """A guided run against Random, image by image: n indices both runs hold; per band and "all" (AMS: any band;
    UMS: the sum of the bands' UMS)."""

    n: int
    ams: dict[str, Comparison]
    ums: dict[str, Comparison]

    def as_json(self) -> dict:
        return {"n": self.n, "ams": {k: c.as_json() for k, c in self.ams.items()},
                "ums": {k: c.as_json() for k, c in self.ums.items()}}


@dataclass(frozen=True)
class GroupResult:
    guide: Guide
    gamma: float
    n: int
    ams: dict[str, float]
    ums: dict[str, float]
    percentile: float
    gu: float | None = None
    # band names where some image's k-th stored neighbour is itself in the band, so UMS may undercount
    ums_truncated: tuple[str, ...] = field(default_factory=tuple)
    ams_ci: dict[str, tuple[float, float]] = field(default_factory=dict)  # Wilson 95%, always
    # bootstrap 95% and the comparison with Random: only from with_uncertainty, too slow for a band-edge drag
    ums_ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    vs_random: VsRandom | None = None
    target_rate: float | None = None  # share of images the guiding classifier puts in their target label

    def as_json(self) -> dict:
        return {"gamma": self.gamma, "guide": self.guide, "n": self.n, "ams": dict(self.ams),
                "ums": dict(self.ums), "percentile": self.percentile, "gu": self.gu,
                "ams_ci": {b: list(ci) for b, ci in self.ams_ci.items()},
                "ums_ci": {b: list(ci) for b, ci in self.ums_ci.items()},
                "target_rate": self.target_rate,
                "vs_random": None if self.vs_random is None else self.vs_random.as_json()}


def _may_extend_past_k(nn_score: np.ndarray, band: Band, direction: str) -> bool:
    """True when some image's k-th stored neighbour is not yet beyond the band's far edge, so a
    (k+1)-th neighbour could still fall inside it and UMS may undercount."""
    if nn_score.size == 0:
        return False
    last = nn_score[:, -1]
    return bool((last < band.hi).any() if direction == Direction.DISTANCE else (last >= band.lo).any())


def score_groups(a: ScoreArrays, bands: Bands, n_train: int) -> list[GroupResult]:
    """AMS/UMS per band for every (guide, gamma) run of the rows in a; rows of nn_score are sorted best first."""
    results = []
    band_list = bands.all()
    for (g, y), sel in runs_of(a.guide, a.gamma).items():
        idx, sc = a.nn_idx[sel], a.nn_score[sel]
        best = sc[:, 0]
        truncated = tuple(b.name for b in band_list if _may_extend_past_k(sc, b, bands.direction))
        results.append(
            GroupResult(
                guide=g,
                gamma=y,
                n=len(sel),
                ams={b.name: ams(best, b) for b in band_list},
                ums={b.name: ums(idx, sc, b, n_train) for b in band_list},
                percentile=percentile_of_best(best, bands.direction),
                gu=gu_fraction(a.gu[sel]),
                ums_truncated=truncated,
                ams_ci={b.name: wilson_interval(int(np.count_nonzero(b.contains(best))), len(sel))
                        for b in band_list},
                target_rate=target_rate(a.on_target[sel]),
            )
        )
    return results


def runs_of(guide, gamma) -> dict[tuple[Guide, float], np.ndarray]:
    """Row positions of each (guide, gamma) run, sorted by gamma then guide (the report's order)."""
    guide = np.asarray(guide)
    gamma = np.asarray(gamma, dtype=float)
    # the few distinct keys first: an enum member made per row costs more than the rest of the scoring
    keys = sorted({(str(g), float(y)) for g, y in zip(guide, gamma)}, key=lambda k: (k[1], k[0]))
    return {(Guide(g), y): np.flatnonzero((guide == g) & (gamma == y)) for g, y in keys}


class GroupedScores:
    """The stored scores of one audit, sorted once per (guide, gamma) run, so that scoring new bands costs a few
    binary searches per run plus one pass over the neighbours that fall inside a band.

    score(bands) returns exactly what score_groups returns for the same arrays; extend() merges streamed rows in
    without re-sorting. This is what the GUI re-scores with while an edge is dragged (benchmarks/bench_rescore.py)."""

    def __init__(self, n_train: int, k: int):
        self.n_train = n_train
        self.k = k
        self._runs: dict[tuple[Guide, float], dict] = {}

    @classmethod
    def of(cls, a: ScoreArrays, n_train: int) -> GroupedScores:
        g = cls(n_train, a.nn_score.shape[1])
        g.extend(a)
        return g

    def extend(self, a: ScoreArrays) -> None:
        if not len(a.ids):
            return
        guide, gamma, nn_idx, nn_score = a.guide.astype(str), a.gamma, a.nn_idx, a.nn_score
        gu_ratio, on_target = a.gu, a.on_target
        # Few runs, many rows: find the runs on a combined code instead of comparing strings per run.
        names, gcode = np.unique(guide, return_inverse=True)
        gammas, ycode = np.unique(gamma, return_inverse=True)
        code = gcode * len(gammas) + ycode
        order = np.argsort(code, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(code[order]) != 0])
        for s, e in zip(starts, np.r_[starts[1:], len(order)]):
            sel = order[s:e]
            key = (Guide(str(names[gcode[sel[0]]])), float(gammas[ycode[sel[0]]]))
            self._merge(key, nn_idx[sel], nn_score[sel], gu_ratio[sel], on_target[sel])

    def _merge(self, key: tuple[Guide, float], idx: np.ndarray, sc: np.ndarray, gu: np.ndarray,
               hit: np.ndarray) -> None:
        flat_s = sc.ravel()
        o = np.argsort(flat_s, kind="stable")
        # intp, not the stored int32: numpy's scatter would cast any other index type on every call.
        flat_s, flat_i = flat_s[o], idx.ravel()[o].astype(np.intp)
        best = np.sort(sc[:, 0])
        last = sc[:, -1]
        run = self._runs.get(key)
        if run is None:
            self._runs[key] = dict(scores=flat_s, idx=flat_i, best=best, last_min=last.min(), last_max=last.max(),
                                   gu=gu, on_target=hit, n=len(sc))
            return
        # Streaming appends: insert the new sorted values where they belong, one linear pass, no re-sort.
        at = np.searchsorted(run["scores"], flat_s, side="right")
        run["scores"] = np.insert(run["scores"], at, flat_s)
        run["idx"] = np.insert(run["idx"], at, flat_i)
        run["best"] = np.insert(run["best"], np.searchsorted(run["best"], best, side="right"), best)
        run["last_min"] = min(run["last_min"], last.min())
        run["last_max"] = max(run["last_max"], last.max())
        run["gu"] = np.concatenate([run["gu"], gu])
        run["on_target"] = np.concatenate([run["on_target"], hit])
        run["n"] += len(sc)
        run.pop("percentile", None)
        run.pop("gu_fraction", None)
        run.pop("target_rate", None)

    def __len__(self) -> int:
        return sum(r["n"] for r in self._runs.values())

    def counts(self) -> dict[tuple[Guide, float], int]:
        """Images stored per (guide, gamma) run."""
        return {key: r["n"] for key, r in self._runs.items()}

    @staticmethod
    def _span(sorted_values: np.ndarray, band: Band) -> tuple[int, int]:
        """Positions [a, b) of the values band.contains() accepts, compared in the values' own dtype, as contains
        compares them."""
        lo = np.asarray(band.lo).astype(sorted_values.dtype)
        hi = np.asarray(band.hi).astype(sorted_values.dtype)
        a = int(np.searchsorted(sorted_values, lo, side="left"))
        b = int(np.searchsorted(sorted_values, hi, side="right" if band.closed_hi else "left"))
        return a, max(a, b)

    def score(self, bands: Bands) -> list[GroupResult]:
        band_list = bands.all()
        out = []
        for key in sorted(self._runs, key=lambda k: (k[1], k[0])):
            r = self._runs[key]
            n = r["n"]
            if "percentile" not in r:
                r["percentile"] = percentile_of_best(r["best"], bands.direction)
                r["gu_fraction"] = gu_fraction(r["gu"])
                r["target_rate"] = target_rate(r["on_target"])
            ams_, ums_, ams_ci = {}, {}, {}
            for b in band_list:
                a, e = self._span(r["best"], b)
                ams_[b.name] = (e - a) / n
                ams_ci[b.name] = wilson_interval(e - a, n)
                a, e = self._span(r["scores"], b)
                hit = np.zeros(self.n_train, dtype=bool)
                hit[r["idx"][a:e]] = True
                ums_[b.name] = float(np.count_nonzero(hit)) / n
            truncated = tuple(b.name for b in band_list
                              if (r["last_min"] < b.hi if bands.direction == Direction.DISTANCE
                                  else r["last_max"] >= b.lo))
            out.append(GroupResult(guide=key[0], gamma=key[1], n=n, ams=ams_, ums=ums_, percentile=r["percentile"],
                                   gu=r["gu_fraction"], ums_truncated=truncated, ams_ci=ams_ci,
                                   target_rate=r["target_rate"]))
        return out
