"""A reviewer reads the Bands and Run tabs of a finished audit: only the presets that fit its scores, each share
with its count, the counts of each band on the histogram, plots that say what they show and can be saved for a
report, each stage's time, and the health plot against chance."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime

import numpy as np
import pyqtgraph as pg
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QLabel, QPushButton

from side_engine.config import sweep
from side_engine.matching.metrics import BAND_NAMES, NL2_BANDS, Bands
from side_engine.vocabulary import BandName, Direction, Guide

from helpers import open_audit


def open_bands(window, qtbot, audit_dir):
    view = open_audit(qtbot, window, audit_dir)
    view.tabs.setCurrentWidget(view.bands)
    return view.bands


def halves(panel) -> Bands:
    """Bands that cut the audit's scores in two at the median, so that the low band holds images."""
    best = np.sort(panel.arrays.best)
    cut = round(float(best[len(best) // 2]), 3)
    return Bands(low=(cut, 2.0), mid=(0.5, cut), high=(0.0, 0.5), direction=Direction.DISTANCE)


def test_a_pixel_audit_offers_only_the_presets_of_its_distances(window, qtbot, audit_copy):
    panel = open_bands(window, qtbot, audit_copy)
    offered = {panel.preset.itemText(i): panel.preset.itemData(i) for i in range(1, panel.preset.count())}
    assert offered == {"As the audit opened (audit.toml)": NL2_BANDS, "nL2 (paper, reconstructed)": NL2_BANDS}

    moved = halves(panel)
    panel.set_bands(moved)
    panel.preset.setCurrentIndex(1)
    panel.preset.activated.emit(1)
    assert panel.bands == NL2_BANDS and panel.problem.text() == ""
    assert panel.preset.currentIndex() == 0  # the list is ready for the next choice


def test_each_share_is_shown_with_its_count(window, qtbot, audit_copy):
    panel = open_bands(window, qtbot, audit_copy)
    bands = halves(panel)
    with qtbot.waitSignal(panel.resultsChanged, timeout=5000):
        panel.set_bands(bands)
    a = panel.arrays
    random_best = a.best[a.guide == Guide.NONE]
    k, n = int(bands.band(BandName.LOW).contains(random_best).sum()), len(random_best)
    assert k > 0
    table = panel.table
    header = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    row = {header[c]: table.item(0, c).text() for c in range(table.columnCount())}
    assert row["run"] == "random"
    assert row["AMS low"] == f"{100 * k / n:.2f}% ({k}/{n})"
    assert row["AMS high"] == f"0.00% (0/{n})"


def test_the_histogram_counts_each_band_on_a_log_axis(window, qtbot, audit_copy):
    panel = open_bands(window, qtbot, audit_copy)
    bands = halves(panel)
    panel.set_bands(bands)
    best = panel.arrays.best
    shown = {name: panel.band_counts[name].toPlainText() for name in BAND_NAMES}
    assert shown == {b.name: f"{b.name.label}: {int(b.contains(best).sum())}" for b in bands.all()}
    assert panel.log_counts.isChecked() and panel.hist.plotItem.ctrl.logYCheck.isChecked()
    assert panel.hist.getAxis("left").labelText == "images (log scale)"
    panel.log_counts.setChecked(False)
    assert not panel.hist.plotItem.ctrl.logYCheck.isChecked()
    assert panel.hist.getAxis("left").labelText == "images"


def test_the_plots_name_runs_as_the_table_does_and_label_their_axes(window, qtbot, audit_copy):
    panel = open_bands(window, qtbot, audit_copy)
    key = panel.findChild(QLabel, "plots_key").text()
    for words in (f"— {Guide.TD.tag}", f"- - {Guide.TI.tag}", f"{Guide.NONE.tag} (γ=0, one star per band)"):
        assert words in key
    assert Guide.TD.short not in key and Guide.TI.short not in key
    assert key.count("★") == len(BAND_NAMES)  # Random's star of each band, in the band's colour
    assert [p.getAxis("left").labelText for p in (panel.ams_plot, panel.ums_plot)] == ["AMS %", "UMS %"]


def test_save_plots_writes_print_figures_that_name_the_audit(window, qtbot, audit_copy, tmp_path, monkeypatch):
    panel = open_bands(window, qtbot, audit_copy)
    # What the window tells the panel of the audit it shows.
    panel.describe_audit("tiny", "pixels")
    out = tmp_path / "figures"
    out.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    qtbot.mouseClick(panel.findChild(QPushButton, "save_plots"), Qt.LeftButton)
    names = [f"tiny_{m}_vs_gamma.{ext}" for m in ("ams", "ums") for ext in ("png", "svg")]
    assert sorted(p.name for p in out.iterdir()) == names
    assert panel.saved.text() == f"Saved 4 files (PNG and SVG) in {out}"
    assert panel.saved.toolTip().splitlines() == names
    with Image.open(out / "tiny_ams_vs_gamma.png") as png:
        assert png.width == 2400 and round(png.info["dpi"][0]) == 300
    n = panel.results[0].n
    for metric in ("AMS", "UMS"):
        svg = (out / f"tiny_{metric.lower()}_vs_gamma.svg").read_text()
        text = " ".join(re.findall(r">([^<]+)<", svg))
        assert f"{metric} against γ" in text and "tiny" in text
        assert f"N = {n} images per run" in text
        assert "descriptor pixels" in text and "low 1.600–1.800" in text
        assert "<image" not in svg  # vectors and text, no bitmaps


def test_a_reopened_audit_says_how_long_each_stage_took_and_when(window, qtbot, audit_copy):
    db = sqlite3.connect(audit_copy / "audit.sqlite")
    (created,) = db.execute("SELECT value FROM meta WHERE key = 'created'").fetchone()
    (classifier_end,) = db.execute("SELECT finished FROM stages WHERE name = 'classifier'").fetchone()
    db.close()
    view = open_audit(qtbot, window, audit_copy)
    rows = view.run.rows
    ended = datetime.fromtimestamp(classifier_end)
    # The first stage took from the audit's creation (a few seconds here).
    took = classifier_end - datetime.strptime(created, "%Y-%m-%dT%H:%M:%S%z").timestamp()
    assert rows[("classifier", "")].rate.text() == (
        f"took {'<1s' if took < 1 else f'{round(took)}s'}, ended {ended.day} {ended:%b %H:%M}")
    keys = [(s, "") for s in ("classifier", "sample", "labels", "tdkd")]
    keys += [("extract", run.part) for run in sweep(view.store.config)]
    for key in keys:
        assert re.fullmatch(r"took (<1s|\d+s|\d+m\d\ds), ended \d{1,2} \w{3} \d\d:\d\d", rows[key].rate.text()), key
        assert "end of the step before" in rows[key].rate.toolTip()
    assert rows[("load", "")].rate.text().startswith("began ")


def test_the_run_tab_of_a_reopened_audit_fits_and_draws_chance(window, qtbot, audit_copy):
    view = open_audit(qtbot, window, audit_copy)
    run = view.run
    # Chance among the tiny audit's 3 labels, dashed, with its name.
    lines = [i for i in run.health.plotItem.items if isinstance(i, pg.InfiniteLine)]
    assert len(lines) == 1 and lines[0].value() == 1 / 3 and lines[0].angle == 0
    assert lines[0].label.toPlainText() == "chance 1/3"
    assert lines[0].pen.style() == Qt.DashLine
    assert run.loss.getAxis("left").labelText == "loss"

    # No empty box: the log shows, with its title, once it says something.
    assert not run.log_box.isVisible()
    view.tabs.setCurrentWidget(run)
    window.resize(1024, 700)
    qtbot.waitUntil(lambda: run.height() < 650)
    assert run.scroll.verticalScrollBar().maximum() == 0  # every stage in view
    run.log.appendPlainText("audit complete in 1s")
    assert run.log_box.isVisible() and run.log_box.title() == "Log"


def test_an_embedding_audit_offers_only_the_presets_of_its_similarities(qtbot):
    from side_engine.matching.metrics import SSCD_BANDS, GroupedScores, ScoreArrays
    from side_gui.band_panel import BandPanel

    rng = np.random.default_rng(0)
    scores = np.sort(rng.uniform(-0.2, 1.0, (40, 2)), axis=1)[:, ::-1]  # cosines, best first
    arrays = ScoreArrays.of([Guide.NONE] * 40, [0.0] * 40, rng.integers(0, 30, (40, 2)), scores)
    panel = BandPanel(SSCD_BANDS, arrays, GroupedScores.of(arrays, 30))
    qtbot.addWidget(panel)
    offered = [panel.preset.itemText(i) for i in range(1, panel.preset.count())]
    assert offered == ["As the audit opened (audit.toml)", "SSCD (paper)"]
    high = int(SSCD_BANDS.band(BandName.HIGH).contains(arrays.best).sum())
    assert panel.band_counts[BandName.HIGH].toPlainText() == f"high: {high}"
