"""Evidence export and verification (issue #4), on the finished tiny audit."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from side_engine import cli
from side_engine.errors import Cancelled, InputError
from side_engine.evidence import MANIFEST, MISSING_GLYPH, MISSING_NOTE, Columns, count, export_evidence, select
from side_engine.evidence.verify import REGEN_TOLERANCE, Regenerator, verify_export
from side_engine.matching.metrics import Bands
from side_engine.store import AuditStore

from helpers import grid_rows


def _manifest(export):
    return json.loads((export / MANIFEST).read_text(encoding="utf-8"))


def _rows(audit):
    store = AuditStore.open(audit)
    try:
        return store.images()
    finally:
        store.close()


@pytest.fixture(scope="module")
def exported(finished_audit, tmp_path_factory):
    """The three closest pairs: one grid page, small enough to tamper with file by file."""
    return export_evidence(finished_audit, tmp_path_factory.mktemp("ev") / "out", top=3)


def test_export_then_verify_with_model_passes(finished_audit, tiny_model, tmp_path, capsys):
    out = tmp_path / "ev"
    assert cli.main(["export", str(finished_audit), "--out", str(out)]) == 0
    body = _manifest(out)
    assert len(body["pairs"]) == len(_rows(finished_audit))
    assert {p["guide"] for p in body["pairs"]} == {"none", "td", "ti"}
    report = verify_export(out, tiny_model)
    assert report.ok, report.problems
    assert len(report.regenerated) == len(body["pairs"])
    assert report.max_difference <= REGEN_TOLERANCE
    assert cli.main(["verify", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"OK: {len(body['files'])} file(s) checked")


def test_export_holds_what_regeneration_needs(exported, finished_audit):
    body = _manifest(exported)
    for p in body["pairs"]:
        assert (exported / p["generated_file"]).is_file() and (exported / p["training_file"]).is_file()
        for key in ("seed", "gamma", "label", "guide", "score", "band", "generated_sha256", "training_sha256"):
            assert p[key] is not None
    assert body["sampler"]["steps"] == 3
    assert (exported / "classifiers" / "td.safetensors").is_file() and (exported / "audit.toml").is_file()
    lines = (exported / "pairs.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + len(body["pairs"]) and "generated_sha256" in lines[0] and "seed" in lines[0]
    # the exported generated images are the audit's own files, byte for byte
    stored = {r.id: r.sha256 for r in _rows(finished_audit)}
    assert all(stored[p["image_id"]] == p["generated_sha256"] for p in body["pairs"])


def test_every_changed_byte_is_caught_and_named(exported, tmp_path):
    files = sorted(p.relative_to(exported).as_posix() for p in exported.rglob("*") if p.is_file())
    assert MANIFEST in files and "report.pdf" in files and "grid.png" in files
    for rel in files:
        copy = tmp_path / rel.replace("/", "_")
        shutil.copytree(exported, copy)
        data = bytearray((copy / rel).read_bytes())
        data[len(data) // 2] ^= 0x01
        (copy / rel).write_bytes(bytes(data))
        report = verify_export(copy)
        assert not report.ok, rel
        assert any(line.startswith(str(copy / rel) + ":") for line in report.problems), (rel, report.problems)


def test_extra_and_missing_files_fail(exported, tmp_path, capsys):
    extra = tmp_path / "extra"
    shutil.copytree(exported, extra)
    (extra / "generated" / "planted.png").write_bytes(b"x")
    assert cli.main(["verify", str(extra)]) == 1
    assert f"{extra / 'generated' / 'planted.png'}: extra file" in capsys.readouterr().err

    missing = tmp_path / "missing"
    shutil.copytree(exported, missing)
    gone = _manifest(missing)["pairs"][0]["training_file"]
    (missing / gone).unlink()
    report = verify_export(missing)
    assert report.problems == [f"{missing / gone}: missing"]


def test_image_regenerated_alone_matches(finished_audit):
    regen = Regenerator.for_audit(finished_audit)
    rows = _rows(finished_audit)
    for guide in ("none", "td", "ti"):
        r = next(r for r in rows if r.guide == guide and r.idx == 5)
        assert regen.label_and_seed(r.idx) == (r.label, r.seed)
        img = regen.regenerate(r.guide, r.gamma, [r.idx])[r.idx]
        stored = np.asarray(Image.open(finished_audit / r.path))
        assert img.shape == stored.shape
        assert np.abs(img.astype(int) - stored.astype(int)).max() <= REGEN_TOLERANCE


def test_wrong_model_fails_regeneration_check(exported, tiny_model, tmp_path):
    other = shutil.copytree(tiny_model, tmp_path / "other")
    weights = other / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    report = verify_export(exported, other)
    assert len(report.problems) == 1 and "not the audited model" in report.problems[0]


def test_rewritten_manifest_with_a_wrong_seed_fails(exported, tiny_model, tmp_path):
    from side_engine.evidence import SUMS, manifest_bytes, sums_bytes

    forged = shutil.copytree(exported, tmp_path / "forged")
    body = _manifest(forged)
    del body["manifest_sha256"]
    body["pairs"][0]["seed"] += 1
    data = manifest_bytes(body)
    (forged / MANIFEST).write_bytes(data)
    (forged / SUMS).write_bytes(sums_bytes(body["files"], hashlib.sha256(data).hexdigest()))
    assert verify_export(forged).ok  # the hashes alone cannot tell ...
    report = verify_export(forged, tiny_model)  # ... regeneration can
    assert report.problems == [(f"{forged / body['pairs'][0]['generated_file']}: its label and seed in "
                                "manifest.json do not follow from audit.toml")]


def test_pdf_text_holds_the_model_hash(exported, finished_audit):
    from pypdf import PdfReader

    store = AuditStore.open(finished_audit)
    weights = [r.sha256 for r in store.files("model") if r.path.endswith(".safetensors")]
    store.close()
    text = "".join(page.extract_text() for page in PdfReader(exported / "report.pdf").pages)
    assert len(weights) == 1 and weights[0] in text
    assert "AMS / UMS" in text and "Pair 3 of 3" in text
    for p in _manifest(exported)["pairs"]:
        assert p["generated_sha256"] in text


def test_report_carries_the_intervals_and_the_comparison_with_random(exported, finished_audit):
    from pypdf import PdfReader

    report = cli.report_dict(finished_audit)
    td = next(r for r in report["results"] if r["guide"] == "td")
    lo, hi = td["ums_ci"]["high"]
    interval = f"{100 * lo:.2f}–{100 * hi:.2f}"
    pdf = "".join(page.extract_text() for page in PdfReader(exported / "report.pdf").pages)
    page = (exported / "report.html").read_text(encoding="utf-8")
    for text in (pdf, page):
        assert "95% intervals" in text and "Against random sampling" in text and "McNemar" in text
        assert interval in text
    # the manifest's results are the report's, intervals and comparison included
    assert _manifest(exported)["results"] == json.loads(json.dumps(report["results"]))


def test_html_is_self_contained(exported):
    page = (exported / "report.html").read_text(encoding="utf-8")
    srcs = page.split('src="')[1:]
    assert len(srcs) == 3 * 3 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<svg" in page and _manifest(exported)["pairs"][0]["generated_sha256"] in page


def test_grid_has_one_row_per_pair(exported, finished_audit, tmp_path):
    assert grid_rows(exported / "grid.png") == len(_manifest(exported)["pairs"]) == 3
    many = export_evidence(finished_audit, tmp_path / "many")
    pages = sorted(many.glob("grid-*.png"))
    assert len(pages) == 6 and not (many / "grid.png").exists()  # 18 pairs, 3 a page
    assert sum(grid_rows(page) for page in pages) == len(_rows(finished_audit))


def _ids(export):
    return [p["image_id"] for p in _manifest(export)["pairs"]]


def test_filters_select_what_they_say(audit_copy, tmp_path):
    rows = _rows(audit_copy)
    best = np.array([r.best for r in rows])
    a, b = np.quantile(best, [0.3, 0.7])
    bands = Bands(high=(0.0, float(a)), mid=(float(a), float(b)), low=(float(b), 2.0), direction="distance")
    mid = export_evidence(audit_copy, tmp_path / "mid", band="mid", bands=bands)
    assert sorted(_ids(mid)) == sorted(r.id for r in rows if a <= r.best < b)
    assert {p["band"] for p in _manifest(mid)["pairs"]} == {"mid"}

    g5 = export_evidence(audit_copy, tmp_path / "g5", gamma=5)
    assert sorted(_ids(g5)) == sorted(r.id for r in rows if r.gamma == 5.0) and len(_ids(g5)) == 12

    top = export_evidence(audit_copy, tmp_path / "top", top=4)
    assert _ids(top) == [r.id for r in sorted(rows, key=lambda r: (r.best, r.id))[:4]]

    assert cli.main(["export", str(audit_copy), "--out", str(tmp_path / "td5"), "--guide", "td", "--gamma", "5"]) == 0
    assert sorted(_ids(tmp_path / "td5")) == sorted(r.id for r in rows if r.guide == "td" and r.gamma == 5.0)
    assert len(_ids(tmp_path / "td5")) == 6

    store = AuditStore.open(audit_copy)
    store.set_verdict(rows[2].id, "copy", "same strokes")
    store.set_verdict(rows[7].id, "copy")
    store.set_verdict(rows[9].id, "unsure")
    store.close()
    copies = export_evidence(audit_copy, tmp_path / "copies", verdict="copy")
    assert sorted(_ids(copies)) == sorted([rows[2].id, rows[7].id])
    notes = {p["image_id"]: (p["verdict"], p["note"]) for p in _manifest(copies)["pairs"]}
    assert notes[rows[2].id] == ("copy", "same strokes")

    calls = []
    chosen = export_evidence(audit_copy, tmp_path / "chosen", image_ids=[rows[1].id, rows[4].id],
                             progress=lambda done, total: calls.append((done, total)))
    assert sorted(_ids(chosen)) == [rows[1].id, rows[4].id]
    assert calls == [(k, 8) for k in range(1, 9)]  # each pair copied, then drawn in grid, PDF and HTML


def test_check_stops_the_export_and_leaves_nothing(finished_audit, tmp_path):
    steps = []

    def stop_at_third_step():
        steps.append(len(steps) + 1)
        if len(steps) == 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        export_evidence(finished_audit, tmp_path / "ev", top=2, check=stop_at_third_step)
    assert steps == [1, 2, 3] and list(tmp_path.iterdir()) == []  # no folder, no hidden partial one


def test_check_stops_the_regeneration(exported, tiny_model):
    def cancel():
        raise Cancelled

    with pytest.raises(Cancelled):
        verify_export(exported, tiny_model, check=cancel)


def test_count_is_what_select_keeps(audit_copy):
    """The GUI shows count() as the choice changes and the export writes select(): they must agree."""
    import itertools

    store = AuditStore.open(audit_copy)
    rows = store.images()
    for r, v in zip(rows[::3], ("copy", "not_copy", "unsure", "copy")):
        store.set_verdict(r.id, v)
    cols = Columns.of(store)
    store.close()
    best = np.sort(cols.best)
    bands = Bands(high=(0.0, float(best[4])), mid=(float(best[4]), float(best[11])), low=(float(best[11]), 2.0),
                  direction="distance")
    choices = itertools.product((None, "high", "mid", "low"), (None, "copy", "unsure"),
                                (None, ("td", 5.0), ("none", 0.0), ("ti", 1.0)), (None, 1, 3), (None, cols.ids[:7]))
    for band, verdict, run, top, ids in choices:
        guide, gamma = run or (None, None)
        f = dict(band=band, verdict=verdict, guide=guide, gamma=gamma, top=top, image_ids=ids)
        kept = select(cols, bands, **f)
        assert count(cols, bands, **f) == len(kept), f
        if band:
            assert set(bands.classify(cols.best[kept])) <= {band}


def test_bad_requests_are_one_line_errors(finished_audit, tmp_path, capsys):
    assert cli.main(["export", str(finished_audit), "--out", str(tmp_path / "x"), "--verdict", "copy"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "no generated image matches" in err and "\n" not in err
    assert not (tmp_path / "x").exists() and not list(tmp_path.iterdir())  # nothing half-written is left

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert cli.main(["export", str(finished_audit), "--out", str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]

    with pytest.raises(InputError, match="no generated image with id 999999"):
        export_evidence(finished_audit, tmp_path / "y", image_ids=[999999])
    assert cli.main(["verify", str(tmp_path / "full")]) == 2


def test_clusters_audit_exports_and_regenerates(tiny_model, tiny_train, tmp_path):
    """With labels from clusters, OL-TI was guided by the nearest-centre classifier over clusters.safetensors."""
    import dataclasses

    from side_engine.config import ClustersConfig, LabelsConfig
    from side_engine.pipeline import AuditPipeline

    from helpers import tiny_config_for

    cfg = dataclasses.replace(tiny_config_for(tiny_model, tiny_train), labels=LabelsConfig(source="clusters"),
                              clusters=ClustersConfig(k=3, cohesion=0.0))
    pipeline = AuditPipeline.prepare(cfg, tmp_path / "audit")
    for _ in pipeline.run():
        pass
    pipeline.store.close()
    out = export_evidence(tmp_path / "audit", tmp_path / "ev", gamma=5)
    ti = [p for p in _manifest(out)["pairs"] if p["guide"] == "ti"]
    assert len(ti) == 6 and {p["classifier_file"] for p in ti} == {"classifiers/clusters.safetensors"}
    report = verify_export(out, tiny_model)
    assert report.ok, report.problems
    assert len(report.regenerated) == 12 and report.max_difference <= REGEN_TOLERANCE


def test_non_latin_notes_and_folders_read_right_everywhere(audit_copy, tmp_path):
    """A German reviewer's note with Japanese in it, in a folder named in Cyrillic: the PDF keeps every character
    its font has and marks the others; the HTML, CSV and manifest keep them all."""
    import csv

    from pypdf import PdfReader

    audit = audit_copy.rename(audit_copy.with_name("Prüfung Кошка"))
    note = "Kopie — 著作権 ≈ identisch"
    image_id = _rows(audit)[0].id
    store = AuditStore.open(audit)
    store.set_verdict(image_id, "copy", note)
    store.close()
    out = export_evidence(audit, tmp_path / "Beweis ü", verdict="copy")
    assert verify_export(out).ok

    text = "".join(page.extract_text() for page in PdfReader(out / "report.pdf").pages)
    assert f"Kopie — {3 * MISSING_GLYPH} ≈ identisch" in text
    assert "Prüfung Кошка" in text and MISSING_NOTE.split(";")[0] in text.replace("\n", " ")
    page = (out / "report.html").read_text(encoding="utf-8")
    assert note in page and "Prüfung Кошка" in page
    with open(out / "pairs.csv", encoding="utf-8-sig", newline="") as f:
        assert [r["note"] for r in csv.DictReader(f)] == [note]
    assert _manifest(out)["pairs"][0]["note"] == note
    assert _manifest(out)["audit"]["folder"] == str(audit)
    assert grid_rows(out / "grid.png") == 1
