"""Intervals and the comparison with Random: hand-computed values, the direction of each test, and the recount
that the fast sign-flip arithmetic must reproduce."""

import numpy as np
import pytest

from side_engine.matching.metrics import (
    ALL,
    NL2_BANDS,
    SSCD_BANDS,
    GroupedScores,
    ScoreArrays,
    at_chance,
    chance_level,
    score_groups,
    target_rate,
    ums,
    wilson_interval,
)
from side_engine.matching.uncertainty import (
    RunScores,
    binomial_tail_half,
    compare_with_random,
    flipped_differences,
    image_shares,
    mcnemar_p,
    sign_flip_p,
    ums_bootstrap_intervals,
    vs_random,
    with_uncertainty,
)

HIGH = SSCD_BANDS.band("high")


def test_wilson_interval_matches_the_hand_computation():
    # 3 of 10, z = 1.96: centre (0.3 + 0.19208) / 1.38416, half-width 1.96 / 1.38416 * sqrt(0.021 + 0.009604)
    lo, hi = wilson_interval(3, 10)
    assert lo == pytest.approx(0.10779, abs=1e-5) and hi == pytest.approx(0.60322, abs=1e-5)
    # none of 20: not the empty interval [0, 0] that p ± z·se gives, but up to z² / (n + z²)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(1.959964**2 / (20 + 1.959964**2), rel=1e-6)
    assert wilson_interval(20, 20)[1] == 1.0


def test_binomial_tail_counted_by_hand():
    assert binomial_tail_half(5, 5) == 1 / 32
    assert binomial_tail_half(4, 5) == 6 / 32
    assert binomial_tail_half(1, 5) == 31 / 32
    assert binomial_tail_half(0, 5) == 1.0 and binomial_tail_half(6, 5) == 0.0
    assert binomial_tail_half(2, 3) == 0.5


def _run(rng, n, n_train=400, k=5, in_band=0.1):
    """A run whose images match a random training image inside the high band with probability in_band."""
    nn_idx = rng.integers(0, n_train, (n, k))
    nn_score = np.sort(rng.uniform(0.0, 0.55, (n, k)), axis=1)[:, ::-1]
    hit = rng.random(n) < in_band
    nn_score[hit, 0] = rng.uniform(0.6, 1.0, hit.sum())
    return nn_idx, nn_score


def test_image_shares_sum_to_the_union_of_matches():
    nn_idx = np.array([[3, 4], [3, 5], [7, 3]])
    nn_score = np.array([[0.95, 0.65], [0.65, 0.45], [0.52, 0.61]])
    shares = image_shares(nn_idx, nn_score, HIGH)
    # in high: (0,3) (0,4) (1,3) (2,3): training image 3 is matched by all three images, 4 by image 0 only
    assert shares.tolist() == pytest.approx([1 / 3 + 1, 1 / 3, 1 / 3])
    assert shares.sum() == pytest.approx(ums(nn_idx, nn_score, HIGH, 10) * 3)


def test_ums_bootstrap_interval_holds_the_estimate_and_narrows_as_n_grows():
    rng = np.random.default_rng(0)
    widths = []
    for n in (100, 1000, 10000):
        nn_idx, nn_score = _run(rng, n, n_train=20 * n)
        point = ums(nn_idx, nn_score, HIGH, 20 * n)
        lo, hi = ums_bootstrap_intervals(nn_idx, nn_score, [HIGH])["high"]
        assert lo < point < hi
        widths.append(hi - lo)
    assert widths[0] > 2 * widths[1] > 4 * widths[2]
    again = ums_bootstrap_intervals(nn_idx, nn_score, [HIGH])
    assert again == ums_bootstrap_intervals(nn_idx, nn_score, [HIGH])  # fixed seed: the same report every time
    assert ums_bootstrap_intervals(nn_idx, nn_score * 0, [HIGH]) == {"high": (0.0, 0.0)}


def test_mcnemar_p_is_small_for_many_more_hits_on_the_same_indices_and_near_one_for_fewer():
    random = np.zeros(200, bool)
    random[:5] = True
    guided = np.zeros(200, bool)
    guided[:25] = True
    assert mcnemar_p(guided, random) == pytest.approx(2.0**-20)  # 20 discordant pairs, all for guidance
    assert mcnemar_p(random, guided) == 1.0
    assert mcnemar_p(random, random) == 1.0
    mixed = np.zeros(200, bool)
    mixed[3:9] = True  # 4 more, 3 fewer than Random
    assert mcnemar_p(mixed, random) == pytest.approx(binomial_tail_half(4, 7))


def test_flipped_differences_equal_the_unions_recounted_after_each_swap():
    rng = np.random.default_rng(1)
    for _ in range(100):
        n, n_train = rng.integers(1, 10), rng.integers(1, 12)

        def matches():
            pairs = np.unique(np.c_[rng.integers(0, n, 3 * n), rng.integers(0, n_train, 3 * n)], axis=0)
            return pairs[:, 0], pairs[:, 1]

        g, r = matches(), matches()
        swap = rng.random((6, n)) < 0.5
        recount = []
        for s in swap:
            g_union = {k for p, k in zip(*g) if not s[p]} | {k for p, k in zip(*r) if s[p]}
            r_union = {k for p, k in zip(*r) if not s[p]} | {k for p, k in zip(*g) if s[p]}
            recount.append(len(g_union) - len(r_union))
        assert flipped_differences(g, r, np.packbits(swap.T, axis=1), len(swap)).tolist() == recount


def test_sign_flip_p_is_small_when_guidance_matches_many_more_training_images_and_near_one_when_fewer():
    pos = np.arange(100)
    many = (pos, pos)  # 100 images, 100 distinct training images
    few = (pos[:20], np.zeros(20, int))  # 20 images, all the same training image
    p = sign_flip_p(many, few)
    assert p < 0.01 and p == sign_flip_p(many, few)
    assert sign_flip_p(few, many) > 0.99
    assert sign_flip_p(many, many) > 0.4  # equal runs: nothing to see
    assert sign_flip_p((pos[:0], pos[:0]), (pos[:0], pos[:0])) == 1.0


def test_compare_with_random_pairs_images_by_index_and_uses_only_the_common_ones():
    rng = np.random.default_rng(2)
    nn_idx, nn_score = _run(rng, 300, in_band=0.02)
    random = RunScores(np.arange(300), nn_idx, nn_score)
    g_idx, g_score = _run(rng, 300, in_band=0.3)
    order = rng.permutation(300)[:250]  # stored in another order, and 50 indices missing
    guided = RunScores(order, g_idx[order], g_score[order])
    c = compare_with_random(guided, random, SSCD_BANDS)
    assert c.n == 250
    on_common = SSCD_BANDS.band("high").contains(nn_score[order, 0]).mean()
    assert c.ams["high"].random == pytest.approx(on_common)
    assert c.ams["high"].ratio == pytest.approx(c.ams["high"].guided / on_common)
    assert c.ams["high"].p < 1e-6 and c.ums["high"].p < 0.01
    assert c.ums[ALL].guided == pytest.approx(sum(c.ums[b].guided for b in ("low", "mid", "high")))
    assert c.ams[ALL].guided == pytest.approx(sum(c.ams[b].guided for b in ("low", "mid", "high")))
    backwards = compare_with_random(random, guided, SSCD_BANDS)
    assert backwards.ams["high"].p > 0.99 and backwards.ums["high"].p > 0.99
    assert compare_with_random(RunScores(np.array([1000]), g_idx[:1], g_score[:1]), random, SSCD_BANDS) is None


def test_vs_random_applies_bonferroni_over_the_gammas_of_each_guide():
    rng = np.random.default_rng(3)
    runs = [("none", 0.0, 0.02), ("td", 2.0, 0.1), ("td", 5.0, 0.1), ("ti", 5.0, 0.1)]
    parts = [_run(rng, 200, in_band=q) for _, _, q in runs]
    guide = np.repeat([g for g, _, _ in runs], 200)
    gamma = np.repeat([y for _, y, _ in runs], 200)
    idx = np.tile(np.arange(200), len(runs))
    nn_idx, nn_score = (np.concatenate(c) for c in zip(*parts))
    a = ScoreArrays.of(guide, gamma, nn_idx, nn_score, idx=idx)
    versus = vs_random(a, SSCD_BANDS)
    assert set(versus) == {("td", 2.0), ("td", 5.0), ("ti", 5.0)}
    for key, tries in ((("td", 2.0), 2), (("ti", 5.0), 1)):
        for c in [*versus[key].ams.values(), *versus[key].ums.values()]:
            assert c.p_bonferroni == pytest.approx(min(1.0, tries * c.p))
    results = with_uncertainty(score_groups(a, SSCD_BANDS, 400), a, SSCD_BANDS)
    assert [r.vs_random is None for r in results] == [True, False, False, False]
    assert all(set(r.ums_ci) == {"low", "mid", "high"} for r in results)
    assert results[1].vs_random == versus[("td", 2.0)]


def test_target_rate_is_the_share_of_known_on_target_images_in_both_scorers():
    guide = np.array(["none", "none", "td", "td", "td", "td"])
    gamma = np.array([0.0, 0.0, 5.0, 5.0, 5.0, 5.0])
    on_target = np.array([np.nan, np.nan, 1.0, 0.0, 1.0, np.nan])
    nn_idx = np.zeros((6, 2), int)
    nn_score = np.full((6, 2), 1.9)
    a = ScoreArrays.of(guide, gamma, nn_idx, nn_score, on_target=on_target)
    expected = score_groups(a, NL2_BANDS, 4)
    assert [r.target_rate for r in expected] == [None, pytest.approx(2 / 3)]
    grouped = GroupedScores.of(a, 4)
    assert [r.__dict__ for r in grouped.score(NL2_BANDS)] == [r.__dict__ for r in expected]
    assert target_rate(np.array([np.nan])) is None


def test_a_guided_run_is_flagged_when_its_on_target_rate_cannot_be_told_from_chance():
    chance = chance_level([40, 35, 25])
    assert chance == pytest.approx(1 / 3)
    assert at_chance(0.35, 200, chance) and at_chance(0.5, 6, chance)
    assert not at_chance(0.9, 200, chance)
    assert not at_chance(None, 200, chance) and not at_chance(0.3, 200, None)
