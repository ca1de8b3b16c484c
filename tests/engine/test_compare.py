"""Comparing audits: a model before and after a mitigation, two checkpoints of one run. An audit against itself
differs by nothing; a known AMS gap is found with an interval that excludes 0 when the samples are large and not
when they are small; audits that measure differently are compared only when the user accepts it."""

import json
import shutil
import sqlite3
import tomllib
from dataclasses import replace

import numpy as np
import pytest
import tomli_w

from side_engine.cli import main
from side_engine.matching.metrics import (
    NL2_BANDS,
    SSCD_BANDS,
    Bands,
    ScoreArrays,
    newcombe_interval,
    wilson_interval,
)
from side_engine.matching.uncertainty import RunScores, ums_bootstrap_intervals, ums_difference_intervals
from side_engine.questions.compare import (
    AuditFacts,
    DifferentAudits,
    ReadAudit,
    compare,
    compare_audits,
    format_comparison,
)
from side_engine.store import FileRecord
from side_engine.vocabulary import BandName, Direction, Guide

OTHER_BANDS = {"low": [1.7, 1.9], "mid": [1.5, 1.7], "high": [0.0, 1.5]}


def synthetic(name: str, runs: dict, *, bands: Bands = NL2_BANDS, descriptor: str = "pixels", model: str = "m0",
              n_train: int = 100_000) -> ReadAudit:
    """An audit held in memory: runs {(guide, gamma): (N, images in the high band)}. Each image's 3 neighbours are
    training images of its own, so UMS high = AMS high; the other images match nothing in any band."""
    guide, gamma, idx, score = [], [], [], []
    for (g, y), (n, high) in runs.items():
        guide += [g] * n
        gamma += [y] * n
        start = len(idx)
        idx += [[3 * i, 3 * i + 1, 3 * i + 2] for i in range(start, start + n)]
        score += [[0.5 if i < high else 1.95, 1.97, 1.99] for i in range(n)]
    arrays = ScoreArrays.of(np.array(guide, object), np.array(gamma), np.array(idx, np.int32),
                            np.array(score, np.float32))
    facts = AuditFacts(path=f"/audits/{name}", name=name, model_path=f"/models/{model}",
                       model_files=(FileRecord("model", "unet.safetensors", model * 32),),
                       training_manifest="ab" * 32, n_train=n_train, descriptor=descriptor, bands=bands, k=3,
                       sampler_revision=2, runs={key: n for key, (n, _) in runs.items()})
    return ReadAudit(facts, arrays)


def high(c, audit: int = 1, guide: Guide = Guide.NONE, gamma: float = 0.0):
    (row,) = [r for r in c.changes if (r.audit, r.guide, r.gamma, r.band) == (audit, guide, gamma, BandName.HIGH)]
    return row


def test_newcombe_interval_matches_newcombe_1998():
    # Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10 (hybrid score, no continuity
    # correction): 56/70 - 48/80, 9/10 - 3/10, and 0/10 - 0/20, where p ± z·se would give the empty interval
    assert newcombe_interval(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=5e-5)
    assert newcombe_interval(9, 10, 3, 10) == pytest.approx((0.1705, 0.8090), abs=5e-5)
    assert newcombe_interval(0, 10, 0, 20) == pytest.approx((-0.1611, 0.2775), abs=5e-5)
    lo, hi = newcombe_interval(48, 80, 56, 70)  # the other way round: the mirror image
    assert (lo, hi) == pytest.approx((-0.3339, -0.0524), abs=5e-5)


def test_an_audit_compared_with_itself_differs_by_nothing(finished_audit):
    c = compare_audits([finished_audit, finished_audit])
    assert c.differences == () and c.lone == () and not c.accepted
    assert [(r.guide, r.gamma) for r in c.changes[::3]] == list(c.audits[0].runs)
    assert len(c.changes) == 3 * len(c.audits[0].runs)
    for r in c.changes:
        for change in (r.ams, r.ums):
            assert change.difference == 0
            lo, hi = change.interval
            assert lo <= 0 <= hi and not change.excludes_zero
    assert c.results[0] == c.results[1]


@pytest.mark.parametrize(("n", "excluded"), [(2000, True), (20, False)])
def test_a_known_ams_gap_is_found_and_its_interval_excludes_zero_only_with_enough_images(n, excluded):
    before = synthetic("before", {(Guide.NONE, 0.0): (n, n // 10)})
    after = synthetic("after", {(Guide.NONE, 0.0): (n, n // 20)})
    r = high(compare([before, after]))
    assert r.ams.baseline == pytest.approx(0.10) and r.ams.other == pytest.approx(0.05)
    assert r.ams.difference == pytest.approx(-0.05)
    assert r.ams.interval == newcombe_interval(n // 20, n, n // 10, n)
    assert r.ums.difference == pytest.approx(-0.05)  # each image matches training images of its own
    assert r.ams.excludes_zero is excluded and r.ums.excludes_zero is excluded
    lo, hi = r.ums.interval
    assert lo < -0.05 < hi


def test_the_ums_interval_of_a_difference_is_wider_than_either_audits_own():
    a = synthetic("a", {(Guide.NONE, 0.0): (1000, 100)}).arrays
    b = synthetic("b", {(Guide.NONE, 0.0): (1000, 100)}).arrays
    run = lambda x: RunScores(x.idx, x.nn_idx, x.nn_score)  # noqa: E731
    band = NL2_BANDS.band("high")
    lo, hi = ums_difference_intervals(run(a), run(b), [band])["high"]
    own_lo, own_hi = ums_bootstrap_intervals(a.nn_idx, a.nn_score, [band])["high"]
    # independent samples: the widths add in quadrature (sqrt 2 times one audit's), and 0 lies inside
    assert lo < 0 < hi
    assert (hi - lo) == pytest.approx(np.sqrt(2) * (own_hi - own_lo), rel=0.2)
    assert ums_difference_intervals(run(a), run(b), [band]) == ums_difference_intervals(run(a), run(b), [band])


def test_a_run_with_no_match_in_a_band_widens_its_side_of_the_ums_interval_by_its_resolution():
    run = lambda x: RunScores(x.idx, x.nn_idx, x.nn_score)  # noqa: E731
    band = NL2_BANDS.band("high")
    never = synthetic("never", {(Guide.NONE, 0.0): (2000, 0)}).arrays
    often = synthetic("often", {(Guide.NONE, 0.0): (100, 40)}).arrays
    own_lo, own_hi = ums_bootstrap_intervals(often.nn_idx, often.nn_score, [band])["high"]
    # the run that saw nothing in the band could hold up to 3.84 / (2000 + 3.84) of it: not a point at 0
    lo, hi = ums_difference_intervals(run(never), run(often), [band])["high"]
    assert hi == pytest.approx(own_hi, abs=0.02)
    assert lo == pytest.approx(own_lo - wilson_interval(0, 2000)[1], abs=0.02) and lo > 0
    lo, hi = ums_difference_intervals(run(never), run(never), [band])["high"]
    assert (lo, hi) == pytest.approx((-wilson_interval(0, 2000)[1], wilson_interval(0, 2000)[1]))
    c = compare([synthetic("never", {(Guide.NONE, 0.0): (2000, 0)}),
                 synthetic("often", {(Guide.NONE, 0.0): (100, 40)})])
    assert high(c).ums.unseen and high(c).ums.excludes_zero and high(c).ams.excludes_zero
    assert "*~" in format_comparison(c)


def test_runs_held_by_one_audit_only_are_listed_as_such():
    before = synthetic("before", {(Guide.NONE, 0.0): (50, 5), (Guide.TD, 5.0): (50, 8)})
    after = synthetic("after", {(Guide.NONE, 0.0): (50, 5), (Guide.TD, 10.0): (40, 8)})
    c = compare([before, after])
    assert {(r.guide, r.gamma) for r in c.changes} == {(Guide.NONE, 0.0)}
    assert [(x.audit, x.missing_in, x.guide, x.gamma, x.n) for x in c.lone] == [
        (0, 1, Guide.TD, 5.0, 50), (1, 0, Guide.TD, 10.0, 40)]
    assert [(d.what, d.values, d.refusing) for d in c.differences] == [
        ("gammas", ("0, 5", "0, 10"), False), ("images per run (N)", ("50", "40–50"), False)]
    text = format_comparison(c)
    assert "TD γ=5    only in audit 1 (N 50)" in text and "TD γ=10   only in audit 2 (N 40)" in text


def test_other_bands_or_descriptors_are_compared_only_when_accepted():
    before = synthetic("before", {(Guide.NONE, 0.0): (100, 10)})
    other_bands = synthetic("after", {(Guide.NONE, 0.0): (100, 10)}, bands=Bands(**OTHER_BANDS,
                                                                                  direction=Direction.DISTANCE))
    sscd = synthetic("sscd", {(Guide.NONE, 0.0): (100, 10)}, descriptor="sscd", bands=SSCD_BANDS)
    with pytest.raises(DifferentAudits) as refused:
        compare([before, other_bands])
    assert [d.what for d in refused.value.differences if d.refusing] == ["bands"]
    message = str(refused.value)
    assert "bands: 1 low [1.6, 1.8) mid [1.4, 1.6) high [0, 1.4); 2 low [1.7, 1.9) mid [1.5, 1.7) high [0, 1.5)" \
        in message and "--accept-differences" in message
    with pytest.raises(DifferentAudits) as refused:
        compare([before, sscd])
    assert [d.what for d in refused.value.differences if d.refusing] == ["descriptor", "bands"]
    c = compare([before, other_bands], accept_differences=True)
    assert c.accepted and high(c).ams.difference == 0  # each audit scored under its own bands


def test_audits_storing_other_numbers_of_neighbours_are_compared_only_when_accepted():
    """UMS counts every stored neighbour in a band: the same images with more neighbours kept count more training
    images, so a k that differs refuses like other bands."""
    three = synthetic("k3", {(Guide.NONE, 0.0): (100, 10)})
    two = synthetic("k2", {(Guide.NONE, 0.0): (100, 10)})
    two = ReadAudit(replace(two.facts, k=2), two.arrays)
    with pytest.raises(DifferentAudits) as refused:
        compare([three, two])
    assert [(d.what, d.values) for d in refused.value.differences if d.refusing] == [
        ("neighbours stored (k)", ("3", "2"))]
    assert compare([three, two], accept_differences=True).accepted


def test_a_different_model_is_a_fact_not_a_refusal():
    c = compare([synthetic("a", {(Guide.NONE, 0.0): (10, 1)}, model="aa"),
                 synthetic("b", {(Guide.NONE, 0.0): (10, 1)}, model="bb")])
    (d,) = c.differences
    assert d.what == "model" and not d.refusing and not c.accepted
    assert d.values == (f"aa (sha256 {c.audits[0].model_sha256[:12]}…)",
                        f"bb (sha256 {c.audits[1].model_sha256[:12]}…)")
    assert c.audits[0].model_sha256 != c.audits[1].model_sha256


# ----- the CLI on the tiny audit ----------------------------------------------------------------------------------
def with_bands(audit, bands: dict):
    """The audit's copy scored under other bands: its audit.toml edited as a user would."""
    cfg = audit / "audit.toml"
    data = tomllib.loads(cfg.read_text())
    data["bands"] = bands
    cfg.write_text(tomli_w.dumps(data))
    return audit


def moved_into_high(audit, per_run: int):
    """The audit's copy as a model that copies more: the first per_run images of each run now have a training
    image at nL2 0.5, well inside the high band (their other neighbours stay behind it)."""
    with sqlite3.connect(audit / "audit.sqlite") as db:
        rows = db.execute("SELECT id, nn_score FROM images WHERE idx < ?", (per_run,)).fetchall()
        for image_id, blob in rows:
            score = np.frombuffer(blob, np.float32).copy()
            score[0] = 0.5
            db.execute("UPDATE images SET best = ?, nn_score = ? WHERE id = ?", (0.5, score.tobytes(), image_id))
    return audit


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_side_report_of_an_audit_and_its_copy_prints_zero_differences(capsys, finished_audit, audit_copy):
    code, out, _ = run_cli(capsys, "report", finished_audit, audit_copy)
    assert code == 0
    assert "they differ in none of" in out and "Newcombe" in out
    lines = out.splitlines()
    # every line but those naming the folders, which are as long as they are
    assert max(len(line) for line in lines if str(finished_audit.parent.parent) not in line) <= 110
    rows = [line for line in lines if line.split()[:1] in (["random"], ["TD"], ["TI"]) and "only in" not in line]
    assert len(rows) == 9  # three runs, three bands
    assert all(line.count("+0.00 [") == 2 for line in rows) and "*" not in "".join(rows)


def test_side_report_json_gives_each_difference_with_its_interval(capsys, finished_audit, audit_copy):
    moved_into_high(audit_copy, per_run=4)
    code, out, _ = run_cli(capsys, "report", finished_audit, audit_copy, "--json")
    assert code == 0
    d = json.loads(out)
    assert [a["path"] for a in d["audits"]] == [str(finished_audit), str(audit_copy.resolve())]
    assert d["differences"] == [] and d["baseline"] == 0
    base_report = d["results"][0]
    for c in (c for c in d["changes"] if c["band"] == "high"):
        base = next(r for r in base_report if (r["guide"], r["gamma"]) == (c["guide"], c["gamma"]))
        assert c["ams"]["baseline"] == base["ams"]["high"]
        assert c["ams"]["other"] == 4 / 6 and c["n_other"] == 6
        assert c["ams"]["difference"] == pytest.approx(4 / 6 - base["ams"]["high"])
        k_base = round(base["ams"]["high"] * 6)
        assert c["ams"]["ci"] == pytest.approx(list(newcombe_interval(4, 6, k_base, 6)))
        assert c["ams"]["excludes_zero"] == (c["ams"]["ci"][0] > 0)


def test_side_report_refuses_audits_with_other_bands_unless_accepted(capsys, finished_audit, audit_copy):
    with_bands(audit_copy, OTHER_BANDS)
    code, out, err = run_cli(capsys, "report", finished_audit, audit_copy)
    assert code == 2 and out == ""
    assert "bands: 1 low [1.6, 1.8) mid [1.4, 1.6) high [0, 1.4); 2 low [1.7, 1.9) mid [1.5, 1.7) high [0, 1.5)" in err
    assert "--accept-differences" in err and "Traceback" not in err
    code, out, _ = run_cli(capsys, "report", finished_audit, audit_copy, "--accept-differences", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["accepted_differences"] is True
    assert [x["what"] for x in d["differences"]] == ["bands"]
    assert d["audits"][1]["bands"] == OTHER_BANDS


def test_side_report_names_a_folder_that_is_not_an_audit(capsys, finished_audit, tmp_path):
    code, _, err = run_cli(capsys, "report", finished_audit, tmp_path)
    assert code == 2 and err.startswith(f"error: {tmp_path}") and len(err.strip().splitlines()) == 1


def test_a_copy_of_the_model_with_other_weights_shows_as_a_fact(capsys, finished_audit, tmp_path):
    copy = shutil.copytree(finished_audit, tmp_path / "retrained")
    with sqlite3.connect(copy / "audit.sqlite") as db:
        db.execute("UPDATE files SET sha256 = ? WHERE role = 'model' AND path LIKE '%.safetensors'", ("0" * 64,))
    code, out, _ = run_cli(capsys, "report", finished_audit, copy)
    assert code == 0
    (line,) = [line for line in out.splitlines() if line.strip().startswith("model:")]
    assert line.count("pipe (sha256") == 2
