"""AMS / UMS per similarity band and per (guide, gamma), the percentile statistic and Gu's ratio.

Pure functions of the stored scores and the bands, so that moving a band edge re-scores at once.
Definitions: docs/side-method.md section 5 (SIDE v7, eq. 6-9).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BAND_NAMES = ("low", "mid", "high")


@dataclass(frozen=True)
class Band:
    name: str
    lo: float
    hi: float
    closed_hi: bool = False  # the band that ends at the top of the score's range includes its upper edge

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
    direction: str = "similarity"

    @property
    def top(self) -> float:
        return 2.0 if self.direction == "distance" else 1.0

    def band(self, name: str) -> Band:
        lo, hi = getattr(self, name)
        return Band(name, float(lo), float(hi), closed_hi=np.isclose(hi, self.top))

    def all(self) -> tuple[Band, ...]:
        return tuple(self.band(n) for n in BAND_NAMES)

    def validate(self) -> str | None:
        """The problem with these bands, or None."""
        spans = sorted((getattr(self, n)[0], getattr(self, n)[1], n) for n in BAND_NAMES)
        for lo, hi, n in spans:
            if not lo < hi:
                return f"band {n} is empty: [{lo}, {hi})"
        for (_, hi0, n0), (lo1, _, n1) in zip(spans, spans[1:]):
            if lo1 < hi0 - 1e-12:
                return f"bands {n0} and {n1} overlap"
        return None

    def classify(self, best: np.ndarray) -> np.ndarray:
        """Band name per score ('' where none): what the gallery's badges show."""
        out = np.full(np.shape(best), "", dtype="<U4")
        for b in self.all():
            out[b.contains(best)] = b.name
        return out


SSCD_BANDS = Bands(low=(0.40, 0.50), mid=(0.50, 0.60), high=(0.60, 1.00), direction="similarity")
NL2_BANDS = Bands(low=(1.6, 1.8), mid=(1.4, 1.6), high=(0.0, 1.4), direction="distance")


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
    return float(np.percentile(best, 95 if direction == "similarity" else 5))


def gu_fraction(gu_ratio: np.ndarray, threshold: float = 1 / 3) -> float | None:
    """Gu et al.: memorized if l2(nearest) / l2(second nearest) < 1/3, in pixel space."""
    g = np.asarray(gu_ratio, dtype=float)
    g = g[np.isfinite(g)]
    return float((g < threshold).mean()) if g.size else None


@dataclass(frozen=True)
class GroupResult:
    guide: str
    gamma: float
    n: int
    ams: dict[str, float]
    ums: dict[str, float]
    percentile: float
    gu: float | None = None
    # band names where some image's k-th stored neighbour is itself in the band, so UMS may undercount
    ums_truncated: tuple[str, ...] = field(default_factory=tuple)

    def as_json(self) -> dict:
        return {"gamma": self.gamma, "guide": self.guide, "n": self.n, "ams": dict(self.ams),
                "ums": dict(self.ums), "percentile": self.percentile, "gu": self.gu}


def _may_extend_past_k(nn_score: np.ndarray, band: Band, direction: str) -> bool:
    """True when some image's k-th stored neighbour is not yet beyond the band's far edge, so a
    (k+1)-th neighbour could still fall inside it and UMS may undercount."""
    if nn_score.size == 0:
        return False
    last = nn_score[:, -1]
    return bool((last < band.hi).any() if direction == "distance" else (last >= band.lo).any())


def score_groups(
    guide: np.ndarray,
    gamma: np.ndarray,
    nn_idx: np.ndarray,
    nn_score: np.ndarray,
    bands: Bands,
    n_train: int,
    gu_ratio: np.ndarray | None = None,
) -> list[GroupResult]:
    """AMS/UMS per band for every (guide, gamma) group; rows of nn_score are sorted best first."""
    guide = np.asarray(guide)
    gamma = np.asarray(gamma, dtype=float)
    results = []
    band_list = bands.all()
    keys = sorted({(str(g), float(y)) for g, y in zip(guide, gamma)}, key=lambda k: (k[1], k[0]))
    for g, y in keys:
        sel = np.flatnonzero((guide == g) & (gamma == y))
        idx, sc = nn_idx[sel], nn_score[sel]
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
                gu=gu_fraction(gu_ratio[sel]) if gu_ratio is not None else None,
                ums_truncated=truncated,
            )
        )
    return results


class GroupedScores:
    """The stored scores of one audit, sorted once per (guide, gamma) run, so that scoring new bands costs a few
    binary searches per run plus one pass over the neighbours that fall inside a band.

    score(bands) returns exactly what score_groups returns for the same arrays; extend() merges streamed rows in
    without re-sorting. This is what the GUI re-scores with while an edge is dragged (benchmarks/bench_rescore.py)."""

    def __init__(self, n_train: int, k: int):
        self.n_train = n_train
        self.k = k
        self._runs: dict[tuple[str, float], dict] = {}

    @classmethod
    def of(cls, guide, gamma, nn_idx, nn_score, n_train: int, gu_ratio=None) -> "GroupedScores":
        g = cls(n_train, np.shape(nn_score)[1] if np.ndim(nn_score) == 2 else 0)
        g.extend(guide, gamma, nn_idx, nn_score, gu_ratio)
        return g

    def extend(self, guide, gamma, nn_idx, nn_score, gu_ratio=None) -> None:
        guide = np.asarray(guide).astype(str)
        gamma = np.asarray(gamma, dtype=float)
        nn_score = np.asarray(nn_score)
        nn_idx = np.asarray(nn_idx)
        if not len(guide):
            return
        gu_ratio = np.full(len(guide), np.nan) if gu_ratio is None else np.asarray(gu_ratio, dtype=float)
        # Few runs, many rows: find the runs on a combined code instead of comparing strings per run.
        names, gcode = np.unique(guide, return_inverse=True)
        gammas, ycode = np.unique(gamma, return_inverse=True)
        code = gcode * len(gammas) + ycode
        order = np.argsort(code, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(code[order]) != 0])
        for s, e in zip(starts, np.r_[starts[1:], len(order)]):
            sel = order[s:e]
            key = (str(names[gcode[sel[0]]]), float(gammas[ycode[sel[0]]]))
            self._merge(key, nn_idx[sel], nn_score[sel], gu_ratio[sel])

    def _merge(self, key, idx: np.ndarray, sc: np.ndarray, gu: np.ndarray) -> None:
        flat_s = sc.ravel()
        o = np.argsort(flat_s, kind="stable")
        # intp, not the stored int32: numpy's scatter casts other index types on every call, 3x slower.
        flat_s, flat_i = flat_s[o], idx.ravel()[o].astype(np.intp)
        best = np.sort(sc[:, 0])
        last = sc[:, -1]
        run = self._runs.get(key)
        if run is None:
            self._runs[key] = dict(scores=flat_s, idx=flat_i, best=best, last_min=last.min(), last_max=last.max(),
                                   gu=gu, n=len(sc))
            return
        # Streaming appends: insert the new sorted values where they belong, one linear pass, no re-sort.
        at = np.searchsorted(run["scores"], flat_s, side="right")
        run["scores"] = np.insert(run["scores"], at, flat_s)
        run["idx"] = np.insert(run["idx"], at, flat_i)
        run["best"] = np.insert(run["best"], np.searchsorted(run["best"], best, side="right"), best)
        run["last_min"] = min(run["last_min"], last.min())
        run["last_max"] = max(run["last_max"], last.max())
        run["gu"] = np.concatenate([run["gu"], gu])
        run["n"] += len(sc)
        run.pop("percentile", None)
        run.pop("gu_fraction", None)

    def __len__(self) -> int:
        return sum(r["n"] for r in self._runs.values())

    def counts(self) -> dict[tuple[str, float], int]:
        """Images stored per (guide, gamma) run."""
        return {key: r["n"] for key, r in self._runs.items()}

    @staticmethod
    def _span(sorted_values: np.ndarray, band: Band) -> tuple[int, int]:
        """Positions [a, b) of the values band.contains() accepts, compared in the values' own dtype as contains does."""
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
            ams_, ums_ = {}, {}
            for b in band_list:
                a, e = self._span(r["best"], b)
                ams_[b.name] = (e - a) / n
                a, e = self._span(r["scores"], b)
                hit = np.zeros(self.n_train, dtype=bool)
                hit[r["idx"][a:e]] = True
                ums_[b.name] = float(np.count_nonzero(hit)) / n
            truncated = tuple(b.name for b in band_list
                              if (r["last_min"] < b.hi if bands.direction == "distance" else r["last_max"] >= b.lo))
            out.append(GroupResult(guide=key[0], gamma=key[1], n=n, ams=ams_, ums=ums_, percentile=r["percentile"],
                                   gu=r["gu_fraction"], ums_truncated=truncated))
        return out
