"""The audit read per training image (issue #15): which training images were matched, in which band, how closely,
by how many runs; and `side report AUDIT --by-image [--csv FILE]`, which prints or writes that table."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from side_engine import cli
from side_engine.matching.metrics import NL2_BANDS, SSCD_BANDS, Bands, ScoreArrays
from side_engine.questions import by_image as by_image_module
from side_engine.questions.by_image import COLUMNS, by_image, matches_of
from side_engine.store import AuditStore
from side_engine.vocabulary import BANDS_HIGH_FIRST, BandName, Direction, Guide


def hand_built() -> ScoreArrays:
    """Four generated images (ids 10-13), two neighbours each, against five training images, scored by nL2 under
    NL2_BANDS (high below 1.4, mid to 1.6, low to 1.8):
    #0: two images of the same run (TD 5) in high;  #1: only outside every band (1.9, 1.95);
    #2: Random in mid, TD 5 in low;  #3: Random and TI 5 tie at 1.5 (mid);  #4: nobody's neighbour."""
    return ScoreArrays.of(guide=[Guide.TD, Guide.TD, Guide.NONE, Guide.TI], gamma=[5.0, 5.0, 0.0, 5.0],
                          nn_idx=np.array([[0, 1], [0, 2], [3, 2], [3, 1]], np.int32),
                          nn_score=np.array([[1.2, 1.9], [1.3, 1.7], [1.5, 1.55], [1.5, 1.95]], np.float32),
                          ids=[10, 11, 12, 13])


def test_each_training_image_counts_its_matches_per_band_its_closest_score_and_its_runs():
    r = by_image(hand_built(), NL2_BANDS, 5)
    assert r.counts[BandName.HIGH].tolist() == [2, 0, 0, 0, 0]
    assert r.counts[BandName.MID].tolist() == [0, 0, 1, 2, 0]
    assert r.counts[BandName.LOW].tolist() == [0, 0, 1, 0, 0]
    # Two images of one run are one run; Random is a run like the others; outside every band is no match.
    assert r.runs.tolist() == [1, 0, 2, 2, 0]
    assert r.matched.tolist() == [True, False, True, True, False]
    # The closest score, in a band or not; the tie at 1.5 goes to the first image in id order.
    np.testing.assert_array_equal(r.best, np.array([1.2, 1.9, 1.55, 1.5, np.nan], np.float32))
    assert r.best_id.tolist() == [10, 10, 12, 12, -1]
    assert r.best_guide.tolist() == ["td", "td", "none", "none", ""]
    np.testing.assert_array_equal(r.best_gamma, [5.0, 5.0, 0.0, 0.0, np.nan])
    # More high first, then mid (#3 before #2), then low; unmatched last, the one with a score before the one without.
    assert r.order().tolist() == [0, 3, 2, 1, 4]


def test_equal_counts_are_ordered_by_the_closest_score_then_by_index():
    a = ScoreArrays.of(guide=[Guide.TD] * 3, gamma=[5.0] * 3, nn_idx=np.array([[2], [0], [1]], np.int32),
                       nn_score=np.array([[1.3], [1.3], [1.1]], np.float32))
    r = by_image(a, NL2_BANDS, 3)
    assert r.counts[BandName.HIGH].tolist() == [1, 1, 1]
    assert r.order().tolist() == [1, 0, 2]  # 1.1 is closest; 0 and 2 tie at 1.3 and keep index order


def test_a_cosine_descriptor_counts_the_largest_score_as_the_closest():
    # Scored by cosine (larger = closer) under SSCD_BANDS: high from 0.6, mid from 0.5, low from 0.4.
    a = ScoreArrays.of(guide=[Guide.TD, Guide.NONE, Guide.TD], gamma=[5.0, 0.0, 5.0],
                       nn_idx=np.array([[0, 1], [1, 0], [2, 0]], np.int32),
                       nn_score=np.array([[0.95, 0.62], [0.7, 0.65], [0.55, 0.3]], np.float32), ids=[1, 2, 3])
    r = by_image(a, SSCD_BANDS, 3)
    assert [r.counts[b].tolist() for b in BANDS_HIGH_FIRST] == [[2, 2, 0], [0, 0, 1], [0, 0, 0]]
    np.testing.assert_array_equal(r.best, np.array([0.95, 0.7, 0.55], np.float32))
    assert r.best_id.tolist() == [1, 2, 3]
    assert r.runs.tolist() == [2, 2, 1]
    assert r.order().tolist() == [0, 1, 2]  # #0 and #1 tie on counts, and 0.95 is closer than 0.7
    m = matches_of(a, 1, Direction.SIMILARITY)
    assert m.ids.tolist() == [2, 1] and m.slot.tolist() == [0, 1]
    np.testing.assert_array_equal(m.score, np.array([0.7, 0.62], np.float32))


def test_the_matches_of_a_training_image_are_every_image_that_holds_it_closest_first():
    a = hand_built()
    m = matches_of(a, 2, Direction.DISTANCE)
    assert m.ids.tolist() == [12, 11] and m.slot.tolist() == [1, 1] and m.rows.tolist() == [2, 1]
    np.testing.assert_array_equal(m.score, np.array([1.55, 1.7], np.float32))
    outside = matches_of(a, 1, Direction.DISTANCE)  # neighbours outside every band are listed too
    assert outside.ids.tolist() == [10, 13]
    assert len(matches_of(a, 4, Direction.DISTANCE)) == 0


@pytest.mark.parametrize("direction", list(Direction))
def test_the_closest_matches_of_a_much_copied_training_image_are_the_head_of_the_whole_list(direction):
    """A training image held by 200,000 generated images lists the closest few: the same ones, in the same order
    (ties in id order), as the head of its whole list; the scores of all are kept for the counts per band."""
    rng = np.random.default_rng(1)
    n, k = 400, 4
    nn_idx = np.array([rng.permutation(6)[:k] for _ in range(n)], np.int32)  # six training images: each held often
    nn_score = rng.choice([0.5, 0.6, 0.7, 0.8], (n, k)).astype(np.float32)  # few values: ties everywhere
    a = ScoreArrays.of(guide=[Guide.NONE] * n, gamma=[0.0] * n, nn_idx=nn_idx, nn_score=nn_score,
                       ids=np.arange(100, 100 + n))
    whole = matches_of(a, 2, direction)
    assert len(whole) == int((nn_idx == 2).sum()) > 200
    for limit in (1, 7, 60, len(whole), len(whole) + 5):
        head = matches_of(a, 2, direction, limit)
        assert len(head) == min(limit, len(whole))
        for field in ("rows", "ids", "slot", "score"):
            assert getattr(head, field).tolist() == getattr(whole, field)[:limit].tolist(), (limit, field)
        assert head.every.tolist() == whole.every.tolist() == nn_score[nn_idx == 2].tolist()


def test_a_neighbour_beyond_the_training_set_is_damage():
    with pytest.raises(ValueError, match="outside the 3 training images"):
        by_image(hand_built(), NL2_BANDS, 3)


def spread_bands(audit) -> Bands:
    """nL2 bands cut at the tiny audit's own scores (those under nL2's top, 2), so that each band holds some
    neighbours and the farthest stay outside; the audit's own bands hold none of its scores."""
    store = AuditStore.open(audit)
    s = np.unique(store.score_arrays().nn_score)
    store.close()
    s = s[s < 2.0]
    a, b, c = (float(s[i] + s[i + 1]) / 2 for i in (len(s) // 4, len(s) // 2, 3 * len(s) // 4))
    return Bands(low=(b, c), mid=(a, b), high=(0.0, a), direction=Direction.DISTANCE)


def counted_one_by_one(store: AuditStore, bands: Bands) -> dict[int, dict]:
    """What by_image should find, image by image and neighbour by neighbour, from the stored rows."""
    rows: dict[int, dict] = {j: {"high": 0, "mid": 0, "low": 0, "runs": set(), "best": None, "by": None}
                             for j in range(store.n_train)}
    closer = (lambda x, y: x < y) if bands.direction is Direction.DISTANCE else (lambda x, y: x > y)
    for image in store.images():
        for j, score in zip(image.nn_idx.tolist(), image.nn_score.tolist(), strict=True):
            row = rows[j]
            for band in bands.all():
                if band.contains(np.float32(score)):
                    row[str(band.name)] += 1
                    row["runs"].add((image.guide, image.gamma))
            if row["best"] is None or closer(score, row["best"]):
                row["best"], row["by"] = score, (image.id, str(image.guide), image.gamma)
    return rows


@pytest.mark.parametrize("own_bands", [True, False], ids=["audit's bands", "bands cut at its scores"])
def test_the_counts_of_a_stored_audit_are_those_of_a_count_image_by_image(finished_audit, own_bands):
    store = AuditStore.open(finished_audit)
    try:
        bands = store.config.band_set() if own_bands else spread_bands(finished_audit)
        expected = counted_one_by_one(store, bands)
        r = by_image(store.score_arrays(), bands, store.n_train)
    finally:
        store.close()
    assert len(r) == len(expected) == 18
    if not own_bands:
        assert all(r.counts[b].sum() for b in BANDS_HIGH_FIRST)  # each band is tried
    for j, e in expected.items():
        assert [int(r.counts[b][j]) for b in BANDS_HIGH_FIRST] == [e["high"], e["mid"], e["low"]], j
        assert r.runs[j] == len(e["runs"]), j
        if e["best"] is None:
            assert r.best_id[j] == -1 and np.isnan(r.best[j])
        else:
            assert (float(r.best[j]), (int(r.best_id[j]), str(r.best_guide[j]), float(r.best_gamma[j]))) == (
                pytest.approx(e["best"]), e["by"]), j
    risk = [(-e["high"], -e["mid"], -e["low"], e["best"] if e["best"] is not None else np.inf, j)
            for j, e in expected.items()]
    assert r.order().tolist() == [j for *_, j in sorted(risk)]


def test_a_million_training_images_against_500k_generated_images_count_in_seconds():
    """The scale the issue asks for: numpy over 5 million neighbours, nothing per image in Python."""
    import time

    rng = np.random.default_rng(0)
    n, k, n_train = 500_000, 10, 1_000_000
    a = ScoreArrays.of(guide=np.array(["none", "td", "ti"], object)[rng.integers(0, 3, n)],
                       gamma=rng.choice([0.0, 5.0, 10.0], n), nn_idx=rng.integers(0, n_train, (n, k), np.int32),
                       nn_score=np.sort(rng.uniform(1.0, 2.0, (n, k)).astype(np.float32), axis=1))
    start = time.perf_counter()
    r = by_image(a, NL2_BANDS, n_train)
    r.order()
    assert time.perf_counter() - start < 10
    in_band = sum(int(r.counts[b].sum()) for b in BANDS_HIGH_FIRST)
    assert in_band == int(((a.nn_score >= 0.0) & (a.nn_score < 1.8)).sum())


# ----- side report AUDIT --by-image ---------------------------------------------------------------------------------
@pytest.fixture
def banded(audit_copy):
    """The tiny audit with the bands cut at its scores written into its audit.toml."""
    bands = spread_bands(audit_copy)
    config = audit_copy / "audit.toml"
    config.write_text(config.read_text().replace(
        "low = []\nmid = []\nhigh = []", f"low = [{bands.low[0]}, {bands.low[1]}]\nmid = [{bands.mid[0]}, "
        f"{bands.mid[1]}]\nhigh = [0.0, {bands.high[1]}]"))
    return audit_copy, bands


def test_the_report_by_image_prints_the_matched_training_images_most_at_risk_first(banded, capsys):
    audit, bands = banded
    store = AuditStore.open(audit)
    expected = counted_one_by_one(store, bands)
    paths = [t.path for t in store.training_images()]
    store.close()
    assert cli.main(["report", str(audit), "--by-image"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "most at risk first" in out[0] and "rank" in out[1] and "file" in out[1]
    rows = [line.split() for line in out[2:-1]]
    matched = [j for j, e in expected.items() if e["high"] + e["mid"] + e["low"]]
    assert 0 < len(matched) < 18
    assert sorted(int(r[1]) for r in rows) == sorted(matched)  # every matched image once, no other
    for rank, r in enumerate(rows, start=1):
        j = int(r[1])
        e = expected[j]
        assert int(r[0]) == rank
        assert [int(c) for c in r[2:5]] == [e["high"], e["mid"], e["low"]]
        assert (float(r[5]), int(r[6]), r[7], float(r[8])) == (pytest.approx(e["best"], abs=5e-4), *e["by"])
        assert int(r[9]) == len(e["runs"])
        assert r[-1] == paths[j] and r[-2] == paths[j].split("/")[0]  # the label: the class folder's name
    risk = [(-e["high"], -e["mid"], -e["low"], e["best"]) for e in (expected[int(r[1])] for r in rows)]
    assert risk == sorted(risk)
    assert out[-1] == f"{18 - len(matched)} of 18 training images were matched in no band by any generated image."


def test_the_report_by_image_writes_every_training_image_as_csv_and_parquet(banded, tmp_path, capsys, monkeypatch):
    audit, bands = banded
    # Five rows at a time, as a million training images are written 100,000 at a time: the 18 rows in four parts.
    monkeypatch.setattr(by_image_module, "PART", 5)
    store = AuditStore.open(audit)
    expected = counted_one_by_one(store, bands)
    training = store.training_images()
    names = store.class_names
    store.close()
    out = tmp_path / "out" / "training.csv"
    assert cli.main(["report", str(audit), "--by-image", "--csv", str(out)]) == 0
    said = capsys.readouterr()
    assert said.out == "" and "18 training image(s) written" in said.err
    with open(out, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["rank", "train_idx", "path", "sha256", "label", "label_name", "high", "mid", "low",
                             "runs", "best", "best_id", "best_guide", "best_gamma"]
    assert sorted(int(r["train_idx"]) for r in rows) == list(range(18))
    assert [int(r["rank"]) for r in rows] == list(range(1, 19))
    for r in rows:
        j = int(r["train_idx"])
        e, t = expected[j], training[j]
        assert (r["path"], r["sha256"], int(r["label"]), r["label_name"]) == (t.path, t.sha256, t.label,
                                                                              names[t.label])
        assert [int(r[b]) for b in ("high", "mid", "low")] == [e["high"], e["mid"], e["low"]]
        assert int(r["runs"]) == len(e["runs"])
        if e["best"] is None:  # nobody's neighbour
            assert r["best"] == r["best_id"] == r["best_guide"] == r["best_gamma"] == ""
        else:
            assert np.float32(r["best"]) == np.float32(e["best"])  # written as the float32 it is
            assert (int(r["best_id"]), r["best_guide"], float(r["best_gamma"])) == e["by"]
    assert any(e["best"] is None for e in expected.values())

    pq = pytest.importorskip("pyarrow.parquet")
    parquet = tmp_path / "training.parquet"
    assert cli.main(["report", str(audit), "--by-image", "--csv", str(parquet)]) == 0
    table = pq.read_table(parquet).to_pylist()

    ints = ("train_idx", "high", "mid", "low", "runs", "best_id")
    assert [[t[c] for c in ints] + [t["best_guide"]] for t in table] == [
        [None if r[c] == "" else int(r[c]) for c in ints] + [r["best_guide"] or None] for r in rows]
    assert [None if t["best"] is None else np.float32(t["best"]) for t in table] == [
        None if r["best"] == "" else np.float32(r["best"]) for r in rows]


def test_the_report_by_image_names_what_it_cannot_read_or_write(finished_audit, tmp_path, capsys, monkeypatch):
    assert cli.main(["report", str(tmp_path / "nowhere"), "--by-image"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nowhere'}: audit folder does not exist"
    assert cli.main(["report", str(finished_audit), "--by-image", "--csv", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as where pyarrow is not installed
    out = tmp_path / "t.parquet"
    assert cli.main(["report", str(finished_audit), "--by-image", "--csv", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "needs pyarrow" in err and not out.exists()


def test_json_with_a_table_is_refused_in_one_line_that_says_what_goes_together(finished_audit, tmp_path, capsys):
    out = tmp_path / "t.csv"
    for table in (["--by-image"], ["--csv", str(out)], ["--by-image", "--csv", str(out)]):
        assert cli.main(["report", str(finished_audit), "--json", *table]) == 2
        said = capsys.readouterr()
        assert said.out == "" and said.err.count("\n") == 1, table
        assert "--json goes with the summary report" in said.err and "--by-image and --csv give tables" in said.err
    assert not out.exists()
    # Without a table, --json is the summary.
    assert cli.main(["report", str(finished_audit), "--json"]) == 0
    assert "bands" in json.loads(capsys.readouterr().out)


def test_every_column_of_the_table_is_documented_with_its_type():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "REPORT_CSV.md").read_text(encoding="utf-8")
    section = doc.split("## Training images: side report --by-image", 1)[1].split("\n## ", 1)[0]
    assert dict(re.findall(r"^\| `(\w+)` \| (\w+) \|", section, re.MULTILINE)) == {c.name: c.kind for c in COLUMNS}
