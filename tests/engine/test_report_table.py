"""`side report AUDIT --csv FILE`: every generated image with all its scores, as one table a notebook reads
(issue #15; docs/REPORT_CSV.md)."""

from __future__ import annotations

import csv
import errno
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from side_engine import cli
from side_engine.questions import table
from side_engine.store import AuditStore
from side_engine.vocabulary import Guide

NOTE = '=HYPERLINK("x") looks like a formula'


@pytest.fixture
def reviewed(audit_copy):
    """The tiny audit with a verdict and note on one image, a note alone on another, and bands set in its audit.toml
    that hold some of its images each and leave the farthest outside (the default bands hold none of them)."""
    store = AuditStore.open(audit_copy)
    rows = store.images()
    store.set_verdict(rows[3].id, "copy", NOTE)
    store.set_verdict(rows[5].id, None, "Kopie — 著作权")
    best = np.sort([r.best for r in rows])
    store.close()
    a, b, c = (float(best[i] + best[i + 1]) / 2 for i in (4, 10, 15))
    config = audit_copy / "audit.toml"
    config.write_text(config.read_text().replace("low = []\nmid = []\nhigh = []",
                                                 f"low = [{b}, {c}]\nmid = [{a}, {b}]\nhigh = [0.0, {a}]"))
    return audit_copy


def expected(audit) -> list[dict]:
    """Each image's row as the store gives it, read without the table's code: None where a cell is empty."""
    store = AuditStore.open(audit)
    try:
        bands = store.config.band_set()
        training = store.training_images()
        names = store.class_names
        verdicts = store.verdicts()
        on_target = dict(zip(store.score_arrays().ids.tolist(), store.score_arrays().on_target.tolist(), strict=True))
        out = []
        for r in store.images():
            guided = r.guide is not Guide.NONE
            v = verdicts.get(r.id)
            row = {"id": r.id, "guide": str(r.guide), "gamma": r.gamma, "target_label": r.label if guided else None,
                   "target_name": names[r.label] if guided else None, "idx": r.idx, "seed": r.seed,
                   "path": r.path, "sha256": r.sha256, "best": np.float32(r.best),
                   "band": bands.classify(np.array([r.best], np.float32))[0] or None, "best_train": r.best_train,
                   "best_train_path": training[r.best_train].path, "gu": r.gu, "normalizer": r.normalizer,
                   "on_target": None if np.isnan(on_target[r.id]) else bool(on_target[r.id]),
                   "verdict": (v.verdict or None) if v else None, "note": (v.note or None) if v else None}
            for j, (i, s, raw) in enumerate(zip(r.nn_idx, r.nn_score, r.nn_raw, strict=True), start=1):
                row |= {f"nn{j}_idx": int(i), f"nn{j}_score": s, f"nn{j}_raw": raw}
            out.append(row)
        return out
    finally:
        store.close()


def read_csv(path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def as_read(kind: str, cell: str):
    """A CSV cell back as the value it stands for."""
    if cell == "":
        return None
    return {"int64": int, "float64": float, "float32": np.float32, "bool": lambda c: {"1": True, "0": False}[c],
            "string": lambda c: c[1:] if c.startswith("'=") else c}[kind](cell)


def test_the_csv_holds_every_generated_image_with_all_its_scores(reviewed, tmp_path, capsys):
    out = tmp_path / "table.csv"
    assert cli.main(["report", str(reviewed), "--csv", str(out)]) == 0
    want = expected(reviewed)
    k = len([c for c in want[0] if c.startswith("nn") and c.endswith("_idx")])
    cols = table.columns(k)
    assert capsys.readouterr().err.startswith(f"{len(want)} generated image(s) written to {out}")
    got = read_csv(out)
    assert list(got[0]) == [c.name for c in cols] == list(want[0])
    assert [{c.name: as_read(c.kind, row[c.name]) for c in cols} for row in got] == want
    # what the reviewer and the run left in the table
    assert sum(r["verdict"] == "copy" for r in want) == 1 and {r["note"] for r in want} >= {NOTE, "Kopie — 著作权"}
    assert {r["guide"] for r in want} == {"none", "td", "ti"}
    assert {r["band"] for r in want} == {"high", "mid", "low", None}
    assert any(r["target_name"] for r in want) and {r["on_target"] for r in want} >= {True, None}
    # a note that reads as a formula is text to a spreadsheet
    assert next(r["note"] for r in got if r["verdict"] == "copy") == "'" + NOTE


def test_the_parquet_holds_the_same_values_with_their_types(reviewed, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "table.parquet"
    assert cli.main(["report", str(reviewed), "--csv", str(out)]) == 0
    t = pq.read_table(out)
    want = expected(reviewed)
    assert t.column_names == list(want[0])
    types = {"id": pa.int64(), "gamma": pa.float64(), "target_label": pa.int64(), "best": pa.float32(),
             "on_target": pa.bool_(), "note": pa.string(), "nn1_score": pa.float32(), "nn1_raw": pa.float32()}
    assert {n: t.schema.field(n).type for n in types} == types
    float32 = [n for n in t.column_names if t.schema.field(n).type == pa.float32()]
    got = [row | {n: np.float32(row[n]) for n in float32} for row in t.to_pylist()]
    assert got == want
    assert next(r["note"] for r in got if r["verdict"] == "copy") == NOTE  # the exact text


def test_the_table_is_the_same_whatever_its_chunks(reviewed, tmp_path, monkeypatch):
    whole = tmp_path / "whole.csv"
    assert cli.main(["report", str(reviewed), "--csv", str(whole)]) == 0
    monkeypatch.setattr(table, "CHUNK", 7)  # 18 images: chunks of 7, 7 and 4
    chunked = tmp_path / "chunked.csv"
    assert cli.main(["report", str(reviewed), "--csv", str(chunked)]) == 0
    assert chunked.read_bytes() == whole.read_bytes()


def test_parquet_without_pyarrow_is_one_line_naming_the_file(finished_audit, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` now raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    out = tmp_path / "table.parquet"
    assert cli.main(["report", str(finished_audit), "--csv", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {out}: writing Parquet needs pyarrow (pip install pyarrow), or name a .csv file\n"
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_destination_is_refused_and_leaves_nothing(finished_audit, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    out = tmp_path / "notes.txt" / "table.csv"
    assert cli.main(["report", str(finished_audit), "--csv", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out}: cannot be written (") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_write_that_fails_part_way_keeps_the_older_table(finished_audit, tmp_path, capsys, monkeypatch):
    out = tmp_path / "table.csv"
    out.write_text("the table of yesterday\n")
    monkeypatch.setattr(table, "CHUNK", 5)
    written = []
    real = table._chunk

    def disk_fills_after_two_chunks(*args):
        if len(written) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(1)
        return real(*args)

    monkeypatch.setattr(table, "_chunk", disk_fills_after_two_chunks)
    assert cli.main(["report", str(finished_audit), "--csv", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {out}: no space left on its disk; nothing was written\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"] and out.read_text() == "the table of yesterday\n"


def test_every_column_is_documented_with_its_type():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "REPORT_CSV.md").read_text(encoding="utf-8")
    section = doc.split("\n## Columns\n")[1].split("\n## ")[0]  # the generated images' table, not --by-image's
    documented = dict(re.findall(r"^\| `(\w+)` \| (\w+) \|", section, re.MULTILINE))
    want = {c.name.replace("nn1_", "nnJ_"): c.kind for c in table.columns(1)}
    assert documented == want
