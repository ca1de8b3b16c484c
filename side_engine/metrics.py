"""AMS / UMS per similarity band and per (guide, gamma), the percentile statistic and Gu's ratio.

Pure functions of the stored scores and the bands, so that moving a band edge re-scores at once.
Definitions: docs/side-method.md section 5 (SIDE v7, eq. 6-9). Uncertainty (intervals, tests against Random):
docs/REPORT_JSON.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

BAND_NAMES = ("low", "mid", "high")
ALL = "all"  # the comparison over the three bands together
Z95 = 1.959963984540054  # standard normal quantile 0.975
N_RESAMPLES = 1000  # bootstrap resamples: enough for 2.5% and 97.5% percentiles, half the time of 2000
N_FLIPS = 2000  # sign flips: p-values down to 1/2001
SEED = 0  # fixed, so that a report reads the same every time it is made


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


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of the proportion k/n: unlike p ± z·se it stays inside [0, 1] and does not shrink
    to a point at k = 0, the usual count in the high band."""
    if n <= 0:
        return (0.0, 1.0)
    p, z2 = k / n, z * z / n
    centre = (p + z2 / 2) / (1 + z2)
    half = z / (1 + z2) * math.sqrt(p * (1 - p) / n + z2 / (4 * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


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
    guide: str
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
    return bool((last < band.hi).any() if direction == "distance" else (last >= band.lo).any())


def score_groups(
    guide: np.ndarray,
    gamma: np.ndarray,
    nn_idx: np.ndarray,
    nn_score: np.ndarray,
    bands: Bands,
    n_train: int,
    gu_ratio: np.ndarray | None = None,
    on_target: np.ndarray | None = None,
) -> list[GroupResult]:
    """AMS/UMS per band for every (guide, gamma) group; rows of nn_score are sorted best first."""
    results = []
    band_list = bands.all()
    for (g, y), sel in _runs(guide, gamma).items():
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
                ams_ci={b.name: wilson_interval(int(np.count_nonzero(b.contains(best))), len(sel))
                        for b in band_list},
                target_rate=target_rate(on_target[sel]) if on_target is not None else None,
            )
        )
    return results


def _runs(guide, gamma) -> dict[tuple[str, float], np.ndarray]:
    """Row positions of each (guide, gamma) run, sorted by gamma then guide (the report's order)."""
    guide = np.asarray(guide)
    gamma = np.asarray(gamma, dtype=float)
    keys = sorted({(str(g), float(y)) for g, y in zip(guide, gamma)}, key=lambda k: (k[1], k[0]))
    return {(g, y): np.flatnonzero((guide == g) & (gamma == y)) for g, y in keys}


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
    def of(cls, guide, gamma, nn_idx, nn_score, n_train: int, gu_ratio=None, on_target=None) -> "GroupedScores":
        g = cls(n_train, np.shape(nn_score)[1] if np.ndim(nn_score) == 2 else 0)
        g.extend(guide, gamma, nn_idx, nn_score, gu_ratio, on_target)
        return g

    def extend(self, guide, gamma, nn_idx, nn_score, gu_ratio=None, on_target=None) -> None:
        guide = np.asarray(guide).astype(str)
        gamma = np.asarray(gamma, dtype=float)
        nn_score = np.asarray(nn_score)
        nn_idx = np.asarray(nn_idx)
        if not len(guide):
            return
        gu_ratio = np.full(len(guide), np.nan) if gu_ratio is None else np.asarray(gu_ratio, dtype=float)
        on_target = np.full(len(guide), np.nan) if on_target is None else np.asarray(on_target, dtype=float)
        # Few runs, many rows: find the runs on a combined code instead of comparing strings per run.
        names, gcode = np.unique(guide, return_inverse=True)
        gammas, ycode = np.unique(gamma, return_inverse=True)
        code = gcode * len(gammas) + ycode
        order = np.argsort(code, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(code[order]) != 0])
        for s, e in zip(starts, np.r_[starts[1:], len(order)]):
            sel = order[s:e]
            key = (str(names[gcode[sel[0]]]), float(gammas[ycode[sel[0]]]))
            self._merge(key, nn_idx[sel], nn_score[sel], gu_ratio[sel], on_target[sel])

    def _merge(self, key, idx: np.ndarray, sc: np.ndarray, gu: np.ndarray, hit: np.ndarray) -> None:
        flat_s = sc.ravel()
        o = np.argsort(flat_s, kind="stable")
        # intp, not the stored int32: numpy's scatter casts other index types on every call, 3x slower.
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
                              if (r["last_min"] < b.hi if bands.direction == "distance" else r["last_max"] >= b.lo))
            out.append(GroupResult(guide=key[0], gamma=key[1], n=n, ams=ams_, ums=ums_, percentile=r["percentile"],
                                   gu=r["gu_fraction"], ums_truncated=truncated, ams_ci=ams_ci,
                                   target_rate=r["target_rate"]))
        return out


# ----- uncertainty: intervals and the comparison with Random, for the report (not for a band-edge drag) --------------
CHUNK = 4_000_000  # elements per temporary (resamples x images) array: tens of MB, whatever the run's size


@dataclass(frozen=True)
class RunScores:
    """One run's stored neighbours (rows best first) and each row's image index, which pairs it across runs."""

    idx: np.ndarray
    nn_idx: np.ndarray
    nn_score: np.ndarray


def _band_pairs(nn_idx: np.ndarray, nn_score: np.ndarray, band: Band) -> tuple[np.ndarray, np.ndarray]:
    """(row, training index) of every stored neighbour inside the band."""
    rows, cols = np.nonzero(band.contains(nn_score))
    return rows, np.asarray(nn_idx)[rows, cols].astype(np.int64)


def image_shares(nn_idx: np.ndarray, nn_score: np.ndarray, band: Band) -> np.ndarray:
    """Each image's share of the band's distinct training matches: a training image matched by m images gives 1/m to
    each, so the shares sum to the size of the union and UMS is their mean."""
    img, key = _band_pairs(nn_idx, nn_score, band)
    matched_by = np.bincount(key)
    return np.bincount(img, weights=1.0 / matched_by[key], minlength=len(nn_idx))


def ums_bootstrap_intervals(nn_idx: np.ndarray, nn_score: np.ndarray, bands: Sequence[Band],
                            n_resamples: int = N_RESAMPLES, seed: int = SEED,
                            level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of one run's UMS per band, resampling its images with replacement.

    A resample is scored as the sum of its images' shares (image_shares), not as the union of their matches: a union
    counts an image drawn twice once, and a resample holds only ~63% distinct images, so its union sits far below
    the estimate (in a simulation at N_G 2000 it held the true UMS 2% of the time; with shares 97%). Draws landing
    on images without a share change nothing, so only how many land on the others is drawn, then which: the cost
    follows the images in a band, not N_G. No match in a band gives [0, 0]: resampling cannot show the unseen."""
    n = len(nn_idx)
    shares = np.array([image_shares(nn_idx, nn_score, b) for b in bands]).reshape(len(bands), n)
    rel = np.flatnonzero(shares.any(axis=0))
    if not len(rel):
        return {b.name: (0.0, 0.0) for b in bands}
    shares = shares[:, rel]
    rng = np.random.default_rng(seed)
    landed = rng.binomial(n, len(rel) / n, n_resamples)
    totals = np.empty((n_resamples, len(bands)))
    step = max(1, CHUNK // len(rel))
    for a in range(0, n_resamples, step):
        t = landed[a:a + step]
        # int32: numpy draws and repeats 32-bit integers several times faster, and a chunk's indices fit
        draws = (np.repeat(np.arange(len(t), dtype=np.int32) * np.int32(len(rel)), t)
                 + rng.integers(0, len(rel), int(t.sum()), dtype=np.int32))
        times_drawn = np.bincount(draws, minlength=len(t) * len(rel)).reshape(len(t), len(rel))
        totals[a:a + len(t)] = times_drawn.astype(np.float64) @ shares.T
    tail = 50 * (1 - level)
    lo, hi = np.percentile(totals / n, [tail, 100 - tail], axis=0)
    return {b.name: (float(x), float(y)) for b, x, y in zip(bands, lo, hi)}


def ums_intervals(guide, gamma, nn_idx, nn_score, bands: Bands,
                  should_stop: Callable[[], None] = lambda: None) -> dict[tuple[str, float], dict]:
    """ums_bootstrap_intervals of every (guide, gamma) run. should_stop is called between runs and may raise to drop
    the work (the GUI's worker, when the bands move again)."""
    out = {}
    for key, sel in _runs(guide, gamma).items():
        should_stop()
        out[key] = ums_bootstrap_intervals(nn_idx[sel], nn_score[sel], bands.all())
    return out


def mcnemar_p(guided_hit: np.ndarray, random_hit: np.ndarray) -> float:
    """Exact one-sided McNemar p of "more images in the band under guidance", images paired by index: only pairs
    whose two images disagree carry information, and with no effect each falls either way with probability 1/2."""
    b = int(np.count_nonzero(guided_hit & ~random_hit))
    c = int(np.count_nonzero(random_hit & ~guided_hit))
    return binomial_tail_half(b, b + c)


def binomial_tail_half(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), exact: integer sums over the shorter tail (scipy.stats would add a
    second to every `side report` just to import)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    short = range(k, n + 1) if 2 * k > n else range(0, k)
    term, total = math.comb(n, short.start), 0
    for x in short:
        total += term
        term = term * (n - x) // (x + 1)
    return (total if 2 * k > n else 2**n - total) / 2**n


def flipped_differences(guided: tuple[np.ndarray, np.ndarray], random: tuple[np.ndarray, np.ndarray],
                        swap_bits: np.ndarray, n_flips: int) -> np.ndarray:
    """Per flip: distinct training images matched by the guided set minus those matched by the Random set, after the
    guided and Random images of every position swapped in that flip trade places. guided, random: (position,
    training index) of each match; swap_bits: (positions, ceil(n_flips / 8)) uint8, each position's swaps packed
    8 flips to a byte (np.packbits: flip f is bit 7 - f % 8 of byte f // 8).

    Without recounting unions: call x = 1 when a match's image is in the guided set after the flips. A training
    image is then in the guided union unless all its x are 0, in the Random union unless all are 1, so it adds
    1[all x = 1] - 1[all x = 0]; if one position matches it from both runs it is in both unions always and adds 0.
    For one or two matches that is linear in x (2x - 1; x1 + x2 - 1), a product with the swaps; for three or more,
    "all equal" is a bitwise AND of the matches' packed swaps."""
    (g_pos, g_key), (r_pos, r_key) = guided, random
    pos, key = np.r_[g_pos, r_pos].astype(np.intp), np.r_[g_key, r_key]
    from_random = np.r_[np.zeros(len(g_pos), bool), np.ones(len(r_pos), bool)]
    o = np.lexsort((from_random, pos, key))
    pos, key, from_random = pos[o], key[o], from_random[o]
    both = np.flatnonzero((key[1:] == key[:-1]) & (pos[1:] == pos[:-1]))
    keep = ~np.isin(key, key[both])
    pos, key, from_random = pos[keep], key[keep], from_random[keep]
    if not len(key):
        return np.zeros(n_flips, np.int64)
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    t = np.diff(np.r_[starts, len(key)])
    per_row = np.repeat(t, t)
    # linear part: x is the swap bit for a Random match and 1 - the bit for a guided one
    small = per_row <= 2
    c = np.where(per_row == 1, 2.0, 1.0)[small]
    w = np.bincount(pos[small], weights=np.where(from_random[small], c, -c), minlength=len(swap_bits))
    linear = np.empty(8 * swap_bits.shape[1])
    for j in range(8):  # bit plane j holds flips j, j + 8, ...: a product per plane, no unpacked copy of all bits
        linear[j::8] = w @ ((swap_bits >> (7 - j)) & 1).astype(np.float64)
    out = (linear[:n_flips] + c[~from_random[small]].sum() - np.count_nonzero(t <= 2)).round().astype(np.int64)
    big = ~small
    if big.any():
        bits = swap_bits[pos[big]]
        bits[~from_random[big]] ^= 0xFF
        first = np.flatnonzero(np.r_[True, key[big][1:] != key[big][:-1]])
        all_one = np.bitwise_and.reduceat(bits, first, axis=0)
        all_zero = np.bitwise_and.reduceat(~bits, first, axis=0)
        count = lambda b: np.unpackbits(b, axis=1, count=n_flips).sum(axis=0, dtype=np.int64)  # noqa: E731
        out += count(all_one) - count(all_zero)
    return out


def sign_flip_p(guided: tuple[np.ndarray, np.ndarray], random: tuple[np.ndarray, np.ndarray],
                n_flips: int = N_FLIPS, seed: int = SEED) -> float:
    """One-sided p of "the guided images match more distinct training images than Random's", by paired
    randomisation. guided, random: (position, training index) of each match, the position shared by the two images
    of an index. With no effect those two images (same noise, same label) are exchangeable, so swapping each pair
    with probability 1/2 draws the difference of the two unions from its null distribution; p = (1 + #>=)/(1 + n)."""
    (g_pos, g_key), (r_pos, r_key) = guided, random
    observed = len(np.unique(g_key)) - len(np.unique(r_key))
    pos, inverse = np.unique(np.r_[g_pos, r_pos], return_inverse=True)  # positions without a match change nothing
    if not len(pos):
        return 1.0
    g, r = (inverse[:len(g_pos)], g_key), (inverse[len(g_pos):], r_key)
    swap_bits = np.random.default_rng(seed).integers(0, 256, (len(pos), -(-n_flips // 8)), dtype=np.uint8)
    at_least = int(np.count_nonzero(flipped_differences(g, r, swap_bits, n_flips) >= observed))
    return (1 + at_least) / (1 + n_flips)


def compare_with_random(guided: RunScores, random: RunScores, bands: Bands, n_tests: int = 1,
                        n_flips: int = N_FLIPS, seed: int = SEED) -> VsRandom | None:
    """AMS and UMS of a guided run against Random's on the image indices both hold, per band and over all three,
    each with a paired one-sided test (AMS: exact McNemar; UMS: sign flips). n_tests: how many gammas this guide
    was tried at, for the Bonferroni p. None when the runs share no index."""
    _, gi, ri = np.intersect1d(guided.idx, random.idx, assume_unique=True, return_indices=True)
    n = len(gi)
    if n == 0:
        return None
    g_nn, g_sc, r_nn, r_sc = guided.nn_idx[gi], guided.nn_score[gi], random.nn_idx[ri], random.nn_score[ri]
    comparison = lambda g, r, p: Comparison(float(g), float(r), p, min(1.0, p * n_tests))  # noqa: E731
    g_any, r_any = np.zeros(n, bool), np.zeros(n, bool)
    # "all" for UMS is the sum of the bands' UMS: count (band, training image) pairs, keys offset per band
    offset = int(max(g_nn.max(), r_nn.max())) + 1
    g_all, r_all = [], []
    ams_, ums_ = {}, {}
    for j, b in enumerate(bands.all()):
        g_hit, r_hit = b.contains(g_sc[:, 0]), b.contains(r_sc[:, 0])
        g_any |= g_hit
        r_any |= r_hit
        ams_[b.name] = comparison(g_hit.mean(), r_hit.mean(), mcnemar_p(g_hit, r_hit))
        gp, rp = _band_pairs(g_nn, g_sc, b), _band_pairs(r_nn, r_sc, b)
        ums_[b.name] = comparison(len(np.unique(gp[1])) / n, len(np.unique(rp[1])) / n,
                                  sign_flip_p(gp, rp, n_flips, seed))
        g_all.append((gp[0], gp[1] + j * offset))
        r_all.append((rp[0], rp[1] + j * offset))
    ams_[ALL] = comparison(g_any.mean(), r_any.mean(), mcnemar_p(g_any, r_any))
    ums_[ALL] = comparison(sum(c.guided for c in ums_.values()), sum(c.random for c in ums_.values()),
                           sign_flip_p(tuple(map(np.concatenate, zip(*g_all))),
                                       tuple(map(np.concatenate, zip(*r_all))), n_flips, seed))
    return VsRandom(n=n, ams=ams_, ums=ums_)


def vs_random(guide, gamma, idx, nn_idx, nn_score, bands: Bands) -> dict[tuple[str, float], VsRandom]:
    """compare_with_random for every guided run (gamma > 0) against the Random run (guide 'none', gamma 0)."""
    runs = _runs(guide, gamma)
    base = runs.get(("none", 0.0))
    if base is None:
        return {}
    take = lambda sel: RunScores(np.asarray(idx)[sel], nn_idx[sel], nn_score[sel])  # noqa: E731
    guided = [k for k in runs if k[0] != "none" and k[1] > 0]
    out = {}
    for key in guided:
        tries = sum(g == key[0] for g, _ in guided)
        c = compare_with_random(take(runs[key]), take(base), bands, n_tests=tries)
        if c is not None:
            out[key] = c
    return out


def with_uncertainty(results: list[GroupResult], guide, gamma, idx, nn_idx, nn_score,
                     bands: Bands) -> list[GroupResult]:
    """results (score_groups of the same rows) with their UMS bootstrap intervals and, for guided runs, the
    comparison with Random: what the report prints. About 0.1 s per run of thousands of images."""
    cis = ums_intervals(guide, gamma, nn_idx, nn_score, bands)
    versus = vs_random(guide, gamma, idx, nn_idx, nn_score, bands)
    return [replace(r, ums_ci=cis[(r.guide, r.gamma)], vs_random=versus.get((r.guide, r.gamma))) for r in results]
