"""The gallery and the window's other screens as a reviewer reads them: random images have no target, each cell says
which image is which, a Copy verdict does not look like the high band, the window fits a 1024-pixel screen, the
start page leads back to the open audit, counts are written alike, and About says the licence and what to cite."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QAction, QColor
from PySide6.QtWidgets import QComboBox, QMessageBox

from side_engine.matching.metrics import Bands
from side_engine.vocabulary import BandName, Direction, Guide, Verdict
from side_gui import export_dialog
from side_gui.export_dialog import ExportDialog
from side_gui.gallery_view import BAND_COLORS, PAIR_HEADER, VERDICT_COLORS, PairDelegate, text_color_on

from helpers import open_audit, open_gallery


def shown(model) -> list[dict]:
    return [model.row_info(r) for r in range(model.rowCount())]


def choose(combo: QComboBox, text: str) -> None:
    k = combo.findText(text)
    assert k >= 0, [combo.itemText(i) for i in range(combo.count())]
    combo.setCurrentIndex(k)


def test_a_random_pair_shows_no_target_and_the_label_filter_keeps_random_pairs_apart(window, qtbot, audit_copy):
    audit = open_gallery(window, qtbot, audit_copy)
    model, gallery = audit.model, audit.gallery
    random_ids = {int(i) for i in model.ids[model.guide == Guide.NONE]}
    assert random_ids  # the tiny audit has a random leg
    stored = {int(i): int(y) for i, y in zip(model.ids, model.label, strict=True)}

    row = next(r for r in range(model.rowCount()) if model.row_info(r)["id"] in random_ids)
    info = model.row_info(row)
    assert info["target"] == "no target"
    assert model.data(model.index(row), Qt.ToolTipRole) == f"#{info['id']} random, no target, score {info['best']:.3f}"
    guided = next(r for r in range(model.rowCount()) if model.row_info(r)["id"] not in random_ids)
    name = model.label_name(model.row_info(guided)["label"])
    assert model.row_info(guided)["target"] == name
    assert f", label {name}, " in model.data(model.index(guided), Qt.ToolTipRole)

    # Random pairs are a choice of their own, not hidden among the labels they were never guided to.
    labels = [gallery.f_label.itemText(k) for k in range(gallery.f_label.count())]
    assert labels == ["any label", "class_0", "class_1", "class_2", "no target (random)"]
    choose(gallery.f_label, "no target (random)")
    assert {r["id"] for r in shown(model)} == random_ids
    assert gallery.count.text() == f"{len(random_ids)} of {len(model.ids)} pairs"
    choose(gallery.f_label, "class_0")
    assert shown(model) and all(r["id"] not in random_ids and r["label"] == 0 for r in shown(model))

    # Sorted by label, the random pairs come after every guided one, closest first among them.
    choose(gallery.f_label, "any label")
    gallery.sort.setCurrentIndex(gallery.sort.findData("label"))
    rows = shown(model)
    kinds = [r["id"] in random_ids for r in rows]
    assert kinds == sorted(kinds)
    guided_labels = [r["label"] for r in rows if r["id"] not in random_ids]
    assert guided_labels == sorted(guided_labels)
    random_best = [r["best"] for r in rows if r["id"] in random_ids]
    assert random_best == sorted(random_best)
    # What seeded each image's noise is kept as stored.
    assert {int(i): int(y) for i, y in zip(model.ids, model.label, strict=True)} == stored


def test_the_gallery_says_which_image_is_which_and_its_cells_fill_the_width(window, qtbot, audit_copy):
    audit = open_gallery(window, qtbot, audit_copy)
    gallery = audit.gallery
    assert gallery.header.isVisible() and gallery.header.text() == PAIR_HEADER
    assert "left, the generated image" in PAIR_HEADER and "right, its nearest training image" in PAIR_HEADER
    model, cells = audit.model, gallery.list

    def whole_columns_fill_the_row() -> bool:
        viewport = cells.viewport().width()
        columns = (viewport - 2) // (PairDelegate.SIZE.width() + PairDelegate.GAP)  # as many as fit
        last, wrapped = cells.visualRect(model.index(columns - 1)), cells.visualRect(model.index(columns))
        return last.right() >= viewport - PairDelegate.GAP - 2 and wrapped.top() > last.top()

    for width, height in ((1280, 820), (1024, 700), (1111, 760)):
        window.resize(width, height)
        qtbot.waitUntil(lambda w=width: window.width() == w)
        # No empty strip at the right, whatever the width.
        qtbot.waitUntil(whole_columns_fill_the_row)


def test_a_pair_marked_copy_does_not_look_like_the_high_band(window, qtbot, audit_copy):
    audit = open_gallery(window, qtbot, audit_copy)
    qtbot.keyClick(audit.gallery.list, Qt.Key_1)  # Copy, on the closest pair
    edge = float(np.min(audit.model.best)) + 0.001
    audit.bands.set_bands(Bands(low=(edge + 0.001, edge + 0.002), mid=(edge, edge + 0.001), high=(0.0, edge),
                                direction=Direction.DISTANCE))
    info = audit.model.row_info(0)
    assert (info["band"], info["verdict"]) == (BandName.HIGH, Verdict.COPY)

    cell = audit.gallery.list.visualRect(audit.model.index(0))
    image = audit.gallery.list.viewport().grab(cell).toImage()
    colours = {image.pixelColor(x, y).rgb() for x in range(image.width()) for y in range(image.height())}
    high, copy = BAND_COLORS[BandName.HIGH], VERDICT_COLORS[Verdict.COPY]
    assert high.rgb() in colours and copy.rgb() in colours  # both badges are drawn, each in its own colour
    assert copy != high
    assert not {c.name() for c in VERDICT_COLORS.values()} & {c.name() for c in BAND_COLORS.values()}
    assert all(text_color_on(c) == QColor("white") for c in VERDICT_COLORS.values())  # the inspector's text too


def test_the_window_fits_a_1024_pixel_screen_with_every_filter_in_view(window, qtbot, audit_copy):
    audit = open_gallery(window, qtbot, audit_copy)
    for tab in range(audit.tabs.count()):
        audit.tabs.setCurrentIndex(tab)
        assert window.minimumSizeHint().width() <= 1024, audit.tabs.tabText(tab)
    audit.tabs.setCurrentIndex(1)
    window.resize(1024, 700)
    qtbot.waitUntil(lambda: window.width() == 1024)
    gallery = audit.gallery
    for combo in (gallery.sort, gallery.f_gamma, gallery.f_band, gallery.f_label, gallery.f_verdict):
        box = QRect(combo.mapTo(gallery, QPoint(0, 0)), combo.size())
        assert combo.isVisible() and gallery.rect().contains(box), combo.objectName()
        assert combo.width() >= combo.sizeHint().width(), combo.objectName()  # not squeezed either
    assert gallery.count.isVisible() and gallery.rect().contains(gallery.count.geometry())


def test_the_start_page_leads_back_to_the_open_audit_and_the_status_bar_says_what_is_shown(window, qtbot, audit_copy):
    start = window.start
    assert window.stack.currentWidget() is start
    assert not start.back.isVisible()
    assert window.device_label.text() == "no audit open"

    audit = open_audit(qtbot, window, audit_copy)
    assert window.device_label.text() == "device: cpu"
    window.findChild(QAction, "action_new").trigger()
    assert window.stack.currentWidget() is window.form
    window.form.back.emit()
    assert window.stack.currentWidget() is start
    assert start.back.isVisible() and start.back.text() == "Back to tiny"
    assert window.device_label.text() == "tiny open behind this page (device: cpu)"

    qtbot.mouseClick(start.back, Qt.LeftButton)
    assert window.stack.currentWidget() is audit
    assert window.device_label.text() == "device: cpu"


def test_export_counts_are_written_as_the_gallery_writes_them(window, qtbot, audit_copy, monkeypatch):
    open_gallery(window, qtbot, audit_copy)
    # As many matching pairs as an audit of thousands of images has.
    monkeypatch.setattr(export_dialog, "count", lambda *_a, **_k: 1152)
    qtbot.keyClick(window, Qt.Key_E, Qt.ControlModifier)
    dlg = window.findChild(ExportDialog)
    assert dlg.count.text() == "Exports 1,152 pairs."
    dlg.top_on.setChecked(True)
    dlg.top.setValue(1000)
    assert dlg.count.text() == "Exports the 1,000 closest of the 1,152 matching pairs."
    dlg.reject()


def test_about_says_the_licence_and_how_to_cite_the_method(window, qtbot):
    window.findChild(QAction, "action_about").trigger()
    about = window.findChild(QMessageBox, "about_dialog")
    assert about.isVisible()
    text = about.text()
    assert "<p>Licence: MIT</p>" in text
    assert ("Yunhao Chen, Shujie Wang, Difan Zou, Xingjun Ma. Extracting Training Data from Unconditional Diffusion "
            "Models. arXiv:2410.02467") in text
    about.close()
