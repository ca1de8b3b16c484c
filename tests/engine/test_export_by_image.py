"""`side export AUDIT --out DIR --image N`: the evidence of one training image, every generated image that holds it
among its stored neighbours (issue #15)."""

from __future__ import annotations

import csv
import itertools
import json

import numpy as np

from side_engine import cli
from side_engine.evidence import MANIFEST, Columns, count, export_evidence, select
from side_engine.evidence.selection import select_pairs
from side_engine.evidence.verify import verify_export
from side_engine.matching.metrics import Bands
from side_engine.store import AuditStore


def audit_facts(audit):
    """The stored images and training list, read without the export's code."""
    store = AuditStore.open(audit)
    try:
        return store.images(), store.training_images()
    finally:
        store.close()


def near(rows, j) -> list[tuple[float, int, int]]:
    """(score on j, image id, j's place among the image's neighbours) of every image holding j, closest first."""
    return sorted((float(r.nn_score[k]), r.id, k) for r in rows for k in np.flatnonzero(r.nn_idx == j))


def most_matched(rows) -> list[int]:
    """Training indices, the one most generated images hold among their neighbours first."""
    counts = np.bincount(np.concatenate([r.nn_idx for r in rows]))
    return [int(j) for j in np.argsort(-counts, kind="stable")]


def pairs_csv(export) -> list[dict]:
    with open(export / "pairs.csv", encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def pdf_text(export) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(export / "report.pdf").pages)


def test_the_export_of_a_training_image_holds_every_generated_image_near_it(finished_audit, tmp_path, capsys):
    rows, training = audit_facts(finished_audit)
    j = most_matched(rows)[0]
    want = near(rows, j)
    assert len(want) > len({r.id for r in rows if r.best_train == j})  # some hold it, but not as their nearest

    out = tmp_path / "ev"
    assert cli.main(["export", str(finished_audit), "--out", str(out), "--image", str(j)]) == 0
    got = pairs_csv(out)
    assert [(np.float32(p["score"]), int(p["image_id"]), int(p["neighbour"]) - 1) for p in got] == [
        (np.float32(s), i, k) for s, i, k in want]
    assert {p["training_index"] for p in got} == {str(j)}
    assert {p["training_file"] for p in got} == {f"training/{j:06d}.png"}

    body = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert body["selection"]["training_images"] == [j]
    text = pdf_text(out)
    assert f"Training image #{j}: {training[j].path}" in text and training[j].sha256 in text
    assert f"{len(want)} generated image(s) hold it among their 3 stored" in text
    assert f"Pair {len(want)} of {len(want)}: image {want[-1][1]} and training image #{j}" in text
    page = (out / "report.html").read_text(encoding="utf-8")
    assert f'id="training-{j}"' in page and page.count('<a href="#pair-') == len(want)

    capsys.readouterr()
    assert cli.main(["verify", str(out)]) == 0
    assert capsys.readouterr().out.startswith("OK:")


def test_several_training_images_and_the_model_regenerates_them(finished_audit, tiny_model, tmp_path):
    rows, training = audit_facts(finished_audit)
    j1, j2 = sorted(most_matched(rows)[:2])
    out = export_evidence(finished_audit, tmp_path / "ev", training_images=[j2, j1])
    got = [(int(p["image_id"]), int(p["training_index"])) for p in pairs_csv(out)]
    want = [(i, j) for j in (j1, j2) for _, i, _ in near(rows, j)]
    assert sorted(got) == sorted(want)
    assert len({i for i, _ in got}) < len(got)  # images near both make a pair with each
    scores = [float(p["score"]) for p in pairs_csv(out)]
    assert scores == sorted(scores)  # closest first over both images

    text = pdf_text(out)
    for j in (j1, j2):
        assert f"Training image #{j}: {training[j].path}" in text
    report = verify_export(out, tiny_model)
    assert report.ok, report.problems
    assert len(report.regenerated) == len(want)


def test_band_applies_to_the_score_on_the_training_image(finished_audit, tmp_path):
    rows, _ = audit_facts(finished_audit)
    j = most_matched(rows)[0]
    scores = [s for s, _, _ in near(rows, j)]
    lo, hi = (scores[1] + scores[2]) / 2, (scores[-2] + scores[-1]) / 2
    bands = Bands(high=(0.0, lo), mid=(lo, hi), low=(hi, 2.5), direction="distance")
    out = export_evidence(finished_audit, tmp_path / "mid", training_images=[j], band="mid", bands=bands)
    got = pairs_csv(out)
    assert [int(p["image_id"]) for p in got] == [i for s, i, _ in near(rows, j) if lo <= s < hi]
    assert {p["band"] for p in got} == {"mid"}


def test_count_is_what_select_keeps_by_training_image(audit_copy):
    """The GUI's dialog shows count() and the export writes select_pairs(): they must agree."""
    store = AuditStore.open(audit_copy)
    rows = store.images()
    for r, v in zip(rows[::2], ("copy", "unsure", "copy", "not_copy")):
        store.set_verdict(r.id, v)
    cols = Columns.of(store)
    store.close()
    scores = np.sort(cols.nn_score.ravel())
    bands = Bands(high=(0.0, float(scores[10])), mid=(float(scores[10]), float(scores[30])),
                  low=(float(scores[30]), 2.5), direction="distance")
    chosen = most_matched(rows)[:3]
    choices = itertools.product((None, "high", "mid"), (None, "copy"), (None, ("td", 5.0), ("none", 0.0)),
                                (None, 2), (None, cols.ids[:9]), ([chosen[0]], chosen, [10_000]))
    for band, verdict, run, top, ids, train in choices:
        guide, gamma = run or (None, None)
        f = dict(band=band, verdict=verdict, guide=guide, gamma=gamma, top=top, image_ids=ids, training_images=train)
        kept = select_pairs(cols, bands, **f)
        assert count(cols, bands, **f) == len(kept) == len(select(cols, bands, **f)), f
        on = cols.nn_idx[kept.pos, kept.slot]
        assert set(on.tolist()) <= set(train)
        if band:
            assert set(bands.classify(cols.nn_score[kept.pos, kept.slot])) <= {band}


def test_every_pair_of_the_training_images_asked_for_is_kept(audit_copy):
    """A few training images are looked for one comparison each, many with np.isin: either way every stored
    neighbour that is one of them makes a pair, and no other does."""
    store = AuditStore.open(audit_copy)
    rows = store.images()
    cols = Columns.of(store)
    bands = store.config.band_set()
    store.close()
    ranked = most_matched(rows)
    for train in (ranked[:1], ranked[:3], ranked[:12] + [10_000]):
        kept = select_pairs(cols, bands, training_images=train)
        expected = np.argwhere(np.isin(cols.nn_idx, train))
        assert len(ranked) >= 12
        assert sorted(zip(kept.pos.tolist(), kept.slot.tolist())) == sorted(map(tuple, expected.tolist()))
        assert count(cols, bands, training_images=train) == len(expected) > 0


def test_a_training_index_the_audit_lacks_is_one_line(finished_audit, tmp_path, capsys):
    n = len(audit_facts(finished_audit)[1])
    assert cli.main(["export", str(finished_audit), "--out", str(tmp_path / "x"), "--image", str(n)]) == 2
    err = capsys.readouterr().err
    assert err.endswith(f"no training image with index {n} (the audit has {n}: 0 to {n - 1})\n")
    assert err.count("\n") == 1 and list(tmp_path.iterdir()) == []


def test_a_training_image_no_filtered_pair_shows_is_refused(finished_audit, tmp_path, capsys):
    rows, _ = audit_facts(finished_audit)
    j = most_matched(rows)[0]
    # the audit's own bands hold none of the tiny audit's scores
    assert cli.main(["export", str(finished_audit), "--out", str(tmp_path / "x"), "--image", str(j),
                     "--band", "high"]) == 2
    err = capsys.readouterr().err
    assert f"no generated image matches the selection (band high, the generated images near training image #{j})" \
        in err
