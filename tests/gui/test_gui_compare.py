"""A reviewer compares the audit of a model with the audit of its retrained version: File → Compare audits, the
open audit as the baseline, the other added; one curve per audit in each plot, the table of differences with their
intervals. Audits whose bands differ are compared only after the reviewer has seen that they differ."""

from __future__ import annotations

import shutil
import sqlite3
import tomllib

import numpy as np
import pytest
import tomli_w
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QDialog, QFileDialog, QMessageBox, QPushButton

from side_engine.questions.compare import compare_audits
from side_engine.vocabulary import BandName, Guide
from side_gui.compare_view import EXCLUDES_ZERO, CompareDialog, CompareSetup

from helpers import open_audit


def retrained(finished_audit, folder):
    """The audit's copy as the audit of a retrained model that copies more and was run at other gammas: other
    weights, its TD run at γ=10 instead of 5, and 4 of its 6 random images with a training image well inside the
    high band (nL2 0.5)."""
    copy = shutil.copytree(finished_audit, folder)
    with sqlite3.connect(copy / "audit.sqlite") as db:
        db.execute("UPDATE files SET sha256 = ? WHERE role = 'model' AND path LIKE '%.safetensors'", ("0" * 64,))
        db.execute("UPDATE images SET gamma = 10.0 WHERE guide = 'td'")
        for image_id, blob in db.execute("SELECT id, nn_score FROM images WHERE guide = 'none' AND idx < 4").fetchall():
            score = np.frombuffer(blob, np.float32).copy()
            score[0] = 0.5
            db.execute("UPDATE images SET best = ?, nn_score = ? WHERE id = ?", (0.5, score.tobytes(), image_id))
    return copy


def with_other_bands(finished_audit, folder):
    copy = shutil.copytree(finished_audit, folder)
    data = tomllib.loads((copy / "audit.toml").read_text())
    data["bands"] = {"low": [1.7, 1.9], "mid": [1.5, 1.7], "high": [0.0, 1.5]}
    (copy / "audit.toml").write_text(tomli_w.dumps(data))
    return copy


def open_setup(window) -> CompareSetup:
    window.findChild(QAction, "action_compare").trigger()
    setup = window.findChild(CompareSetup)
    assert setup is not None and setup.isVisible()
    return setup


def add_folder(setup, qtbot, monkeypatch, folder) -> None:
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    qtbot.mouseClick(setup.add_btn, Qt.LeftButton)


def compared(window, qtbot) -> CompareDialog:
    qtbot.waitUntil(lambda: window.findChild(QDialog, "compare_dialog") is not None, timeout=30_000)
    dlg = window.findChild(CompareDialog)
    assert dlg.isVisible()
    return dlg


def curve_points(dlg, metric: str, audit: int, guide: Guide) -> list[tuple[float, float]]:
    x, y = dlg.curves[(metric, audit, guide)].getData()
    return [(round(float(a)), float(b)) for a, b in zip(x, y)]


def test_compare_an_audit_with_the_audit_of_the_retrained_model(window, qtbot, finished_audit, tmp_path,
                                                                monkeypatch):
    after = retrained(finished_audit, tmp_path / "retrained")
    open_audit(qtbot, window, finished_audit)
    setup = open_setup(window)
    assert setup.paths() == [str(finished_audit.resolve())]  # the open audit is the baseline
    assert not setup.start_btn.isEnabled()
    add_folder(setup, qtbot, monkeypatch, after)
    assert setup.paths() == [str(finished_audit.resolve()), str(after.resolve())]
    qtbot.mouseClick(setup.start_btn, Qt.LeftButton)
    dlg = compared(window, qtbot)
    expected = compare_audits([finished_audit, after])

    # what differs comes first: the model's weights, the gammas, and the runs only one audit holds
    facts = dlg.facts.text()
    assert "<b>model</b>" in facts and "<b>gammas</b>" in facts and "0, 5, 10" in facts
    assert "(accepted)" not in facts
    assert "TD γ=5 only in 1; TD γ=10 only in 2." in dlg.summary.text()

    # one curve per audit and guide, at that audit's runs, with its numbers in the high band
    for metric in ("ams", "ums"):
        assert {i for m, i, _ in dlg.curves if m == metric} == {0, 1}
    assert [x for x, _ in curve_points(dlg, "ams", 0, Guide.TD)] == [0, 5]
    assert [x for x, _ in curve_points(dlg, "ams", 1, Guide.TD)] == [0, 10]
    random_after = next(r for r in expected.results[1] if r.guide is Guide.NONE)
    assert curve_points(dlg, "ams", 1, Guide.NONE) == [(0, pytest.approx(100 * random_after.ams["high"]))]
    assert random_after.ams["high"] == pytest.approx(4 / 6)
    dlg.band.setCurrentIndex(dlg.band.findData(BandName.LOW))
    assert curve_points(dlg, "ams", 1, Guide.NONE) == [(0, pytest.approx(100 * random_after.ams["low"]))]

    # the table: the runs both hold (random, TI γ=5), band by band, the engine's differences and intervals
    model = dlg.model
    assert model.rowCount() == len(expected.changes) == 6
    for row, change in enumerate(expected.changes):
        assert (model.value(row, 1), model.value(row, 2)) == (
            "random" if change.guide is Guide.NONE else f"TI γ={change.gamma:g}", change.band)
        assert model.value(row, 6) == pytest.approx(change.ams.difference)
        assert model.value(row, 7) == pytest.approx(change.ams.interval)
        assert model.value(row, 11) == pytest.approx(change.ums.interval)
        marked = model.index(row, 7).data(Qt.BackgroundRole) == EXCLUDES_ZERO
        assert marked == change.ams.excludes_zero
        assert model.index(row, 7).data().endswith(" *") == change.ams.excludes_zero
    assert model.value(0, 6) == pytest.approx(4 / 6 - next(
        r for r in expected.results[0] if r.guide is Guide.NONE).ams["high"])

    # a researcher takes the table to a spreadsheet and the plots to a paper
    qtbot.mouseClick(dlg.findChild(QPushButton, "compare_copy"), Qt.LeftButton)
    rows = [line.split("\t") for line in QGuiApplication.clipboard().text().splitlines()]
    assert len(rows) == 1 + model.rowCount()
    head = rows[0]
    first = dict(zip(head, rows[1]))
    assert (first["guide"], first["band"], first["n_other"]) == ("none", "high", "6")
    assert float(first["ams_other_%"]) == pytest.approx(100 * 4 / 6, abs=1e-4)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path))
    qtbot.mouseClick(dlg.findChild(QPushButton, "compare_save"), Qt.LeftButton)
    assert sorted(p.name for p in tmp_path.glob("compare_*")) == [
        "compare_ams_low_vs_gamma.png", "compare_ams_low_vs_gamma.svg",
        "compare_ums_low_vs_gamma.png", "compare_ums_low_vs_gamma.svg"]
    assert "Saved 4 files" in dlg.saved.text()


def test_audits_with_other_bands_are_compared_only_after_compare_anyway(window, qtbot, finished_audit, tmp_path,
                                                                         monkeypatch):
    wider = with_other_bands(finished_audit, tmp_path / "wider")
    open_audit(qtbot, window, finished_audit)
    setup = open_setup(window)
    add_folder(setup, qtbot, monkeypatch, wider)

    def asked() -> QMessageBox:
        qtbot.mouseClick(setup.start_btn, Qt.LeftButton)
        shown = lambda: [b for b in setup.findChildren(QMessageBox, "compare_differ") if b.isVisible()]  # noqa: E731
        qtbot.waitUntil(lambda: bool(shown()), timeout=30_000)
        (box,) = shown()
        return box

    box = asked()
    assert "bands differ" in box.text()
    assert "   1: low [1.6, 1.8) mid [1.4, 1.6) high [0, 1.4)" in box.informativeText()
    assert "   2: low [1.7, 1.9) mid [1.5, 1.7) high [0, 1.5)" in box.informativeText()
    qtbot.mouseClick(box.button(QMessageBox.Cancel), Qt.LeftButton)
    qtbot.waitUntil(lambda: "Not compared" in setup.status.text())
    assert window.findChild(QDialog, "compare_dialog") is None and setup.start_btn.isEnabled()

    box = asked()
    qtbot.mouseClick(box.findChild(QPushButton, "compare_anyway"), Qt.LeftButton)
    dlg = compared(window, qtbot)
    assert "⚠ <b>bands</b> (accepted)" in dlg.facts.text()
    assert dlg.model.rowCount() == 9  # the same three runs: each scored under its own bands


def test_the_list_of_audits_is_put_in_order_before_comparing(window, qtbot, finished_audit, tmp_path, monkeypatch):
    a = shutil.copytree(finished_audit, tmp_path / "a")
    b = shutil.copytree(finished_audit, tmp_path / "b")
    window.settings.setValue("recent", [str(a), str(b)])
    setup = open_setup(window)  # no audit open: no baseline yet
    assert setup.paths() == [] and not setup.start_btn.isEnabled()
    assert [setup.recent.itemText(i) for i in range(1, setup.recent.count())] == [str(a), str(b)]
    setup.recent.activated.emit(2)
    assert setup.paths() == [str(b.resolve())]
    assert [setup.recent.itemText(i) for i in range(1, setup.recent.count())] == [str(a)]  # offered once
    add_folder(setup, qtbot, monkeypatch, tmp_path)  # not an audit
    assert setup.paths() == [str(b.resolve())] and "not an audit folder" in setup.status.text()
    add_folder(setup, qtbot, monkeypatch, a)
    assert setup.start_btn.isEnabled() and setup.list.currentRow() == 1
    qtbot.mouseClick(setup.baseline_btn, Qt.LeftButton)
    assert setup.paths() == [str(a.resolve()), str(b.resolve())]
    assert setup.list.item(0).text().endswith("(baseline)")
    qtbot.mouseClick(setup.down_btn, Qt.LeftButton)
    assert setup.paths() == [str(b.resolve()), str(a.resolve())]
    qtbot.mouseClick(setup.remove_btn, Qt.LeftButton)
    assert setup.paths() == [str(b.resolve())] and not setup.start_btn.isEnabled()


def test_cancel_while_reading_closes_without_comparing(window, qtbot, finished_audit, tmp_path, monkeypatch):
    open_audit(qtbot, window, finished_audit)
    setup = open_setup(window)
    add_folder(setup, qtbot, monkeypatch, shutil.copytree(finished_audit, tmp_path / "copy"))
    qtbot.mouseClick(setup.start_btn, Qt.LeftButton)
    assert setup.worker is not None and not setup.add_btn.isEnabled()
    setup.reject()
    qtbot.waitUntil(lambda: window.findChild(CompareSetup) is None, timeout=30_000)
    assert window.findChild(QDialog, "compare_dialog") is None
