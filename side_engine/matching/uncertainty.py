"""How sure the report's numbers are: bootstrap intervals of UMS (of one run, or of the difference between two
audits' runs), and each guided run against Random, image by image (exact McNemar for AMS, sign flips for UMS), with
Bonferroni over the gammas a guide was tried at.

For the report and the Bands tab's error bars, not for a band-edge drag (about 0.1 s per run of thousands of
images). What each number means: docs/REPORT_JSON.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np

from ..vocabulary import Guide
from .metrics import (
    ALL,
    N_FLIPS,
    N_RESAMPLES,
    SEED,
    Band,
    Bands,
    Comparison,
    GroupResult,
    ScoreArrays,
    VsRandom,
    runs_of,
    wilson_interval,
)

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
    the estimate (in a simulation at N_G 2000 it held the true UMS 2% of the time; with shares 97%). No match in a
    band gives [0, 0]: resampling cannot show the unseen."""
    resampled = ums_resamples(nn_idx, nn_score, bands, n_resamples, np.random.default_rng(seed))
    return _percentile_intervals(resampled, bands, level)


def ums_difference_intervals(base: RunScores, other: RunScores, bands: Sequence[Band],
                             other_bands: Sequence[Band] | None = None, n_resamples: int = N_RESAMPLES,
                             seed: int = SEED, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of UMS(other) - UMS(base) per band, for two runs of different audits. Their
    images are independent samples, so each run is resampled on its own, from a stream of its own (seeded: the same
    interval every time), and the resamples are subtracted. other_bands: the other audit's bands where they differ
    (the same names in the same order).

    A run with no stored match in a band resamples to 0 every time: it cannot show what it never saw, and the
    interval would hold only the other run's spread. Its side of the interval is widened by that run's resolution,
    the Wilson upper bound of 0 images of its N (3.84 / (N + 3.84)), as a single run's [0, 0] is read."""
    other_bands = other_bands or bands
    base_rng, other_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    difference = (ums_resamples(other.nn_idx, other.nn_score, other_bands, n_resamples, other_rng)
                  - ums_resamples(base.nn_idx, base.nn_score, bands, n_resamples, base_rng))
    out = _percentile_intervals(difference, bands, level)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    for b, ob in zip(bands, other_bands):
        lo, hi = out[b.name]
        if not ob.contains(other.nn_score).any():
            hi += wilson_interval(0, len(other.nn_score), z)[1]
        if not b.contains(base.nn_score).any():
            lo -= wilson_interval(0, len(base.nn_score), z)[1]
        out[b.name] = (lo, hi)
    return out


def _percentile_intervals(resampled: np.ndarray, bands: Sequence[Band],
                          level: float) -> dict[str, tuple[float, float]]:
    tail = 50 * (1 - level)
    lo, hi = np.percentile(resampled, [tail, 100 - tail], axis=0)
    return {b.name: (float(x), float(y)) for b, x, y in zip(bands, lo, hi)}


def ums_resamples(nn_idx: np.ndarray, nn_score: np.ndarray, bands: Sequence[Band], n_resamples: int,
                  rng: np.random.Generator) -> np.ndarray:
    """(n_resamples, bands) UMS of bootstrap resamples of one run's images, each the sum of its images' shares over
    N_G (see ums_bootstrap_intervals). Draws landing on images without a share change nothing, so only how many
    land on the others is drawn, then which: the cost follows the images in a band, not N_G."""
    n = len(nn_idx)
    shares = np.array([image_shares(nn_idx, nn_score, b) for b in bands]).reshape(len(bands), n)
    rel = np.flatnonzero(shares.any(axis=0))
    if not len(rel):
        return np.zeros((n_resamples, len(bands)))
    shares = shares[:, rel]
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
    return totals / n


def ums_intervals(a: ScoreArrays, bands: Bands,
                  check: Callable[[], None] = lambda: None) -> dict[tuple[Guide, float], dict]:
    """ums_bootstrap_intervals of every (guide, gamma) run. check is called between runs and may raise to drop
    the work (the GUI's worker, when the bands move again)."""
    out = {}
    for key, sel in runs_of(a.guide, a.gamma).items():
        check()
        out[key] = ums_bootstrap_intervals(a.nn_idx[sel], a.nn_score[sel], bands.all())
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
    short = range(k, n + 1) if 2 * k > n else range(k)
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
                           sign_flip_p(_concat_pairs(g_all), _concat_pairs(r_all), n_flips, seed))
    return VsRandom(n=n, ams=ams_, ums=ums_)


def _concat_pairs(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(positions, keys) of several bands' matches as one pair of arrays."""
    positions, keys = zip(*pairs)
    return np.concatenate(positions), np.concatenate(keys)


def vs_random(a: ScoreArrays, bands: Bands) -> dict[tuple[Guide, float], VsRandom]:
    """compare_with_random for every guided run (gamma > 0) against the Random run (no guide, gamma 0)."""
    runs = runs_of(a.guide, a.gamma)
    base = runs.get((Guide.NONE, 0.0))
    if base is None:
        return {}
    take = lambda sel: RunScores(a.idx[sel], a.nn_idx[sel], a.nn_score[sel])  # noqa: E731
    guided = [k for k in runs if k[0] != Guide.NONE and k[1] > 0]
    out = {}
    for key in guided:
        tries = sum(g == key[0] for g, _ in guided)
        c = compare_with_random(take(runs[key]), take(base), bands, n_tests=tries)
        if c is not None:
            out[key] = c
    return out


def with_uncertainty(results: list[GroupResult], a: ScoreArrays, bands: Bands) -> list[GroupResult]:
    """results (score_groups of the rows in a) with their UMS bootstrap intervals and, for guided runs, the
    comparison with Random: what the report prints. About 0.1 s per run of thousands of images."""
    cis = ums_intervals(a, bands)
    versus = vs_random(a, bands)
    return [replace(r, ums_ci=cis[(r.guide, r.gamma)], vs_random=versus.get((r.guide, r.gamma))) for r in results]
