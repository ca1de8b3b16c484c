"""AMS / UMS per band, exactly as the method doc defines them, on arrays small enough to count by hand."""

from dataclasses import replace

import numpy as np
import pytest

from side_engine.matching.metrics import (
    NL2_BANDS,
    SSCD_BANDS,
    Bands,
    GroupedScores,
    ScoreArrays,
    ams,
    percentile_of_best,
    score_groups,
    ums,
)
from side_engine.matching.neighbours import ExactIndex
from side_engine.matching.similarity import auto_n_neighbours, calibrated_l2, gu_ratio


def test_bands_are_half_open_and_the_top_band_is_closed():
    high = SSCD_BANDS.band("high")
    mid = SSCD_BANDS.band("mid")
    assert high.contains(np.array([0.6, 1.0])).all()
    assert not mid.contains(np.array([0.6])).any()
    assert mid.contains(np.array([0.5, 0.5999])).all()
    # nL2: nothing reaches the top of the range (2), so its 'high' band [0, 1.4) stays open at 1.4
    assert not NL2_BANDS.band("high").contains(np.array([1.4])).any()
    assert NL2_BANDS.band("mid").contains(np.array([1.4])).all()


def test_ams_and_ums_counted_by_hand():
    # 4 generated images, top-2 neighbours each, cosine scores best first, 10 training images
    nn_idx = np.array([[3, 4], [3, 5], [7, 3], [1, 2]])
    nn_score = np.array([[0.95, 0.55], [0.65, 0.45], [0.52, 0.51], [0.30, 0.20]])
    best = nn_score[:, 0]
    high, mid, low = (SSCD_BANDS.band(n) for n in ("high", "mid", "low"))
    assert ams(best, high) == 2 / 4  # images 0, 1
    assert ams(best, mid) == 1 / 4  # image 2
    assert ams(best, low) == 0.0
    assert ums(nn_idx, nn_score, high, 10) == 1 / 4  # training image 3 only

def test_ums_counts_distinct_training_images_across_all_stored_neighbours():
    nn_idx = np.array([[3, 4], [3, 5], [7, 3]])
    nn_score = np.array([[0.95, 0.55], [0.65, 0.45], [0.52, 0.51]])
    mid = SSCD_BANDS.band("mid")
    # in mid: (0,4) 0.55, (2,7) 0.52, (2,3) 0.51 -> {3, 4, 7}
    assert ums(nn_idx, nn_score, mid, 10) == pytest.approx(3 / 3)


def test_score_groups_per_guide_and_gamma_and_truncation_flag():
    guide = np.array(["none", "none", "td", "td"])
    gamma = np.array([0.0, 0.0, 5.0, 5.0])
    nn_idx = np.array([[0, 1], [2, 3], [0, 1], [0, 2]])
    nn_score = np.array([[1.0, 1.9], [1.5, 1.9], [0.5, 1.2], [0.7, 1.9]])
    res = score_groups(ScoreArrays.of(guide, gamma, nn_idx, nn_score), NL2_BANDS, n_train=4)
    assert [(r.guide, r.gamma, r.n) for r in res] == [("none", 0.0, 2), ("td", 5.0, 2)]
    none, td = res
    assert none.ams == {"low": 0.0, "mid": 0.5, "high": 0.5}
    assert td.ams["high"] == 1.0 and td.ums["high"] == pytest.approx(2 / 2)  # {0, 1}: 1.2 is in high too
    assert td.percentile == pytest.approx(np.percentile([0.5, 0.7], 5))
    # image 2's 2nd neighbour (1.2) is still inside 'high' and every band past it: a 3rd could be too
    assert set(td.ums_truncated) == {"low", "mid", "high"}
    assert "high" not in none.ums_truncated


def _random_audit(rng, n, k=4, n_train=30):
    runs = [("none", 0.0), ("td", 2.0), ("td", 5.0), ("ti", 5.0)]
    r = rng.integers(0, len(runs), n)
    guide = np.array([g for g, _ in runs], object)[r]
    gamma = np.array([y for _, y in runs])[r]
    # scores on a coarse grid, so that many fall exactly on band edges
    nn_score = -np.sort(-rng.integers(0, 21, (n, k)) / 10, axis=1).astype(np.float32)
    nn_idx = rng.integers(0, n_train, (n, k)).astype(np.int32)
    gu = np.where(rng.random(n) < 0.2, np.nan, rng.random(n))
    on_target = np.where(guide == "none", np.nan, rng.random(n) < 0.7)
    return ScoreArrays.of(guide, gamma, nn_idx, nn_score, gu=gu, on_target=on_target), n_train


@pytest.mark.parametrize("seed", range(5))
def test_grouped_scores_equal_score_groups_for_any_bands_and_streamed_rows(seed):
    """The GUI re-scores with the sorted index; it must say exactly what the reference function says."""
    rng = np.random.default_rng(seed)
    a, n_train = _random_audit(rng, 300)
    whole = GroupedScores.of(a, n_train)
    streamed = GroupedScores(n_train, a.nn_score.shape[1])
    for s in range(0, 300, 37):
        streamed.extend(a.take(slice(s, s + 37)))
    edges = [NL2_BANDS, Bands((1.6, 1.8), (1.4, 1.6), (0.0, 1.4), "distance"),
             Bands((0.2, 0.5), (0.5, 0.9), (0.9, 2.0), "distance")]
    for _ in range(10):
        e = np.sort(rng.choice(np.arange(0, 21) / 10, 4, replace=False))
        edges.append(Bands((e[0], e[1]), (e[1], e[2]), (e[2], e[3]), "distance"))
    for bands in edges:
        expected = [r.__dict__ for r in score_groups(a, bands, n_train)]
        assert [r.__dict__ for r in whole.score(bands)] == expected
        assert [r.__dict__ for r in streamed.score(bands)] == expected
    per_run = {(r.guide, r.gamma): r.n for r in score_groups(a, NL2_BANDS, n_train)}
    assert whole.counts() == streamed.counts() == per_run
    sim = replace(a, nn_score=a.nn_score / 2, best=a.best / 2)
    assert ([r.__dict__ for r in GroupedScores.of(sim, n_train).score(SSCD_BANDS)]
            == [r.__dict__ for r in score_groups(sim, SSCD_BANDS, n_train)])


def test_bands_validate_overlap():
    assert Bands((0.4, 0.55), (0.5, 0.6), (0.6, 1.0)).validate() == "bands low and mid overlap"
    assert SSCD_BANDS.validate() is None and NL2_BANDS.validate() is None


def test_percentile_direction():
    best = np.linspace(0, 1, 101)
    assert percentile_of_best(best, "similarity") == pytest.approx(0.95)
    assert percentile_of_best(best, "distance") == pytest.approx(0.05)


def test_calibrated_l2_matches_the_formula():
    l2 = np.array([[0.1, 0.3, 0.5, 0.7]])
    nl2, norm = calibrated_l2(l2, n=3, alpha=0.5)
    assert norm[0] == pytest.approx(0.5 * (0.1 + 0.3 + 0.5) / 3)
    assert nl2[0, 0] == pytest.approx(0.1 / norm[0])
    assert 0 < nl2[0, 0] <= 2
    assert gu_ratio(l2)[0] == pytest.approx(1 / 3)
    assert auto_n_neighbours(50_000) == 50 and auto_n_neighbours(200) == 2 and auto_n_neighbours(10_000) == 10


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_exact_search_in_chunks_equals_brute_force(metric):
    import torch

    g = torch.Generator().manual_seed(0)
    db = torch.randn(257, 12, generator=g)
    q = torch.randn(33, 12, generator=g)
    if metric == "cosine":
        db, q = torch.nn.functional.normalize(db, dim=1), torch.nn.functional.normalize(q, dim=1)
    idx, score = ExactIndex(db, metric, chunk=16).topk(q, 5)
    if metric == "l2":
        full = torch.cdist(q, db).pow(2).div(12).sqrt()
        ref_s, ref_i = full.topk(5, largest=False)
    else:
        ref_s, ref_i = (q @ db.T).topk(5)
    assert torch.equal(idx, ref_i)
    torch.testing.assert_close(score, ref_s, atol=1e-5, rtol=1e-5)


def test_exact_search_finds_an_exact_copy_at_distance_zero():
    import torch

    db = torch.rand(100, 64) * 100 + 1000  # large norms: the expanded form would cancel
    idx, score = ExactIndex(db, "l2", chunk=32).topk(db[[17, 42]], 2)
    assert idx[:, 0].tolist() == [17, 42]
    assert score[:, 0].tolist() == [0.0, 0.0]
