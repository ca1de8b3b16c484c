"""A new user's first look: the start page, a finished audit, the most suspicious pair marked Copy, the window's
furniture (status bar, About, remembered layout), on a screen 1280 pixels wide."""

from __future__ import annotations

import re
from importlib.metadata import version

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QMessageBox, QPushButton

from side_engine import events as ev
from side_engine.config import AuditConfig, sweep
from side_engine.matching.metrics import Bands
from side_engine.store import AuditStore, VerdictNote
from side_engine.vocabulary import OUTSIDE, BandName, Direction, Verdict
from side_gui.dialogs import versions
from side_gui.run_panel import RunPanel

from helpers import new_window, open_audit


def open_gallery(window, qtbot, audit_dir):
    open_audit(qtbot, window, audit_dir)
    window.activateWindow()
    qtbot.waitActive(window)
    window.audit.gallery.list.setFocus()
    return window.audit


def test_start_page_explains_the_demo_and_lists_recent_audits_by_name(window, qtbot, audit_copy):
    demo = window.start.findChild(QPushButton, "run_demo")
    assert demo.isVisible()
    # What the demo costs is said before it is clicked.
    assert ("a small model trained on 1700 digits that memorizes a little; about 8 minutes on a laptop CPU, and the "
            "pairs show up while it runs") in [label.text() for label in window.start.findChildren(QLabel)]
    recent = window.start.recent
    assert recent.count() == 1
    assert recent.item(0).text() == "No audits yet. Run the demo to see what an audit looks like."
    assert not recent.item(0).flags() & Qt.ItemIsEnabled  # a hint, not something to open

    open_audit(qtbot, window, audit_copy)
    window.close()
    later = new_window(qtbot)
    item = later.start.recent.item(0)
    assert item.text() == f"tiny\n{audit_copy.resolve()}"
    with qtbot.waitSignal(later.start.openAudit) as opened:
        later.start.recent.itemActivated.emit(item)
    assert opened.args == [str(audit_copy.resolve())]


def test_the_closest_pair_comes_first_and_is_marked_copy_with_key_1(window, qtbot, audit_copy, shown):
    audit = open_gallery(window, qtbot, audit_copy)
    assert audit.tabs.currentWidget() is audit.split  # a finished audit opens on its gallery
    assert audit.gallery.sort.currentData() == "score"
    closest = int(audit.model.ids[np.argmin(audit.model.best)])
    inspector = shown(audit.inspector)
    assert inspector.image_id == closest

    # The difference view says what white means, with this pair's largest difference.
    store = AuditStore.open(audit_copy)
    row = store.image(closest)
    generated = np.asarray(Image.open(store.path(row.path)).convert("L"), dtype=int)
    nearest = store.train_path / store.training_images()[row.best_train].path
    diff = np.abs(generated - np.asarray(Image.open(nearest).convert("L"), dtype=int)).max()
    assert inspector.caption.text() == f"|difference| \u00d7 4, white = equal\nlargest difference {diff} of 255"

    assert inspector.neigh_group.title() == "Top-3 training neighbours"  # the tiny audit keeps k = 3

    qtbot.keyClick(audit.gallery.list, Qt.Key_1)
    assert [inspector.buttons.button(k).isChecked() for k in range(3)] == [True, False, False]
    assert inspector.saved.text() == "Copy: saved in the audit"
    assert store.verdict(closest) == VerdictNote(Verdict.COPY, "")
    store.close()

    # Blinking names the image on screen, and it alternates.
    inspector.mode.setCurrentIndex(inspector.mode.findText("blink"))
    both = {"blinking, now: generated", "blinking, now: nearest training image"}
    first = inspector.caption.text()
    assert first in both
    qtbot.waitUntil(lambda: inspector.caption.text() != first, timeout=3000)
    assert {first, inspector.caption.text()} == both


def test_the_window_fits_a_1280_pixel_screen(window, qtbot, audit_copy, shown):
    audit = open_gallery(window, qtbot, audit_copy)
    qtbot.keyClick(audit.gallery.list, Qt.Key_1)  # the saved note must not widen the inspector
    qtbot.keyClicks(audit.inspector.note, "a note long enough to be wider than the inspector itself, easily")
    for tab in range(audit.tabs.count()):
        audit.tabs.setCurrentIndex(tab)
        assert window.minimumSizeHint().width() <= 1280, audit.tabs.tabText(tab)
    images = (shown(audit.inspector).gen_view, audit.inspector.train_view, audit.inspector.third_view)
    window.resize(1200, 760)
    audit.tabs.setCurrentIndex(1)
    # The three images shrink together, to one size (give or take the pixel a three-way split rounds off).
    qtbot.waitUntil(lambda: window.width() <= 1200 and
                    max(v.pixmap().width() for v in images) - min(v.pixmap().width() for v in images) <= 1)
    assert max(v.pixmap().width() for v in images) < 200


def test_status_bar_shows_device_and_memory_and_about_lists_versions(window, qtbot, audit_copy):
    open_audit(qtbot, window, audit_copy)
    assert window.device_label.text() == "device: cpu"
    assert re.fullmatch(r"RAM \d+\.\d\d GiB", window.memory_label.text())
    window.findChild(QAction, "action_about").trigger()
    about = window.findChild(QMessageBox, "about_dialog")
    assert about.isVisible()
    assert about.text().endswith("<pre>" + versions() + "</pre>")
    lines = versions().splitlines()
    for dist, shown in (("torch", "torch"), ("diffusers", "diffusers"), ("PySide6-Essentials", "PySide6")):
        assert f"{shown} {version(dist)}" in lines
    about.close()


def test_layout_and_sort_are_remembered_filters_are_not(window, qtbot, audit_copy):
    audit = open_gallery(window, qtbot, audit_copy)
    window.resize(1400, 780)
    audit.split.setSizes([700, 700])
    audit.gallery.sort.setCurrentIndex(audit.gallery.sort.findData("gamma"))
    audit.gallery.f_band.setCurrentIndex(audit.gallery.f_band.findData(BandName.HIGH))
    audit.inspector.mode.setCurrentIndex(audit.inspector.mode.findText("overlay 50%"))
    geometry, split = window.saveGeometry(), audit.split.saveState()
    window.close()
    # A close waits for the audit's reader thread if it is still running (on a busy machine it can be): the
    # layout is saved when the window really closes.
    qtbot.waitUntil(lambda: not window.isVisible())

    # Window and splitter come back as saved (Qt then fits them to the screen, offscreen a small one).
    later = new_window(qtbot)
    assert later.settings.value("geometry") == geometry
    open_audit(qtbot, later, audit_copy)
    audit = later.audit
    assert later.settings.value("gallery_splitter") == split
    assert audit.gallery.sort.currentData() == "gamma"
    assert audit.inspector.mode.currentText() == "overlay 50%"
    assert audit.gallery.f_band.currentData() is None  # a filtered gallery would hide pairs unnoticed
    assert audit.model.rowCount() == len(audit.model.ids)


def test_a_second_run_is_refused_with_the_reason(window, qtbot, tiny_config, tmp_path):
    def held(control):
        control.pause()
        control.check()  # the worker waits here until the test cancels it
        yield from ()

    assert window.start_worker(held)
    window.findChild(QAction, "action_demo").trigger()
    window.start_audit(tiny_config, str(tmp_path / "second"))
    errors = window.findChildren(QMessageBox, "error_dialog")
    assert [(e.isVisible(), e.text()) for e in errors] == [
        (True, "Cancel the running audit (Run tab) before opening or starting another one.")] * 2
    assert window.form.busy.text() == ""  # the form is not left saying it is loading
    with qtbot.waitSignal(window.runFinished, timeout=10_000):
        window.cancel_run()


def test_moving_a_band_relabels_the_pair_in_the_inspector(window, qtbot, audit_copy, shown):
    audit = open_gallery(window, qtbot, audit_copy)
    row = audit.store.image(shown(audit.inspector).image_id)
    best = float(np.min(audit.model.best))
    assert row.id == int(audit.model.ids[np.argmin(audit.model.best)])  # the closest pair is the one shown
    pixmap = audit.inspector.gen_view.pixmap().cacheKey()
    assert not audit.inspector.gen_view.pixmap().isNull()  # the image, not "loading…"
    # The closest neighbour's box says its score and where that falls.
    score = f"nL2 {row.nn_score[0]:.4f} to the generated image (smaller = closer), "
    for edge, shown, badge in ((best + 0.001, "high: nL2 in [0, ", "band high"), (best / 2, OUTSIDE, OUTSIDE)):
        audit.bands.set_bands(Bands(low=(edge + 0.001, edge + 0.002), mid=(edge, edge + 0.001), high=(0.0, edge),
                                    direction=Direction.DISTANCE))
        assert audit.inspector.fields["band"].text().startswith(shown)
        assert audit.inspector.neighbours.button(0).toolTip().splitlines()[2] == score + badge
    assert audit.inspector.gen_view.pixmap().cacheKey() == pixmap  # labels change; the images are not reloaded


def test_a_finished_audit_reopened_describes_every_stage(window, qtbot, audit_copy):
    open_audit(qtbot, window, audit_copy)
    rows = window.audit.run.rows
    store = window.audit.store
    expected = {("load", ""): "18 training images", ("sample", ""): "12 unconditional samples (D_syn)"}
    expected |= {(stage, ""): store.stage_info(stage)["summary"] for stage in ("classifier", "labels", "tdkd")}
    expected |= {("extract", run.part): "6 images" for run in sweep(store.config)}
    assert {key: row.summary.text() for key, row in rows.items()} == expected
    assert {row.bar.text() for row in rows.values()} == {"done (already in the audit)"}


def test_the_leg_at_work_stays_in_view_in_a_long_sweep(qtbot):
    cfg = AuditConfig()
    cfg.extraction.gammas = [float(g) for g in range(11)]  # Random and ten gammas: 26 rows
    panel = RunPanel(cfg)
    qtbot.addWidget(panel)
    panel.resize(1000, 600)
    panel.show()
    qtbot.waitExposed(panel)
    last = sweep(cfg)[-1]
    row = panel.rows[("extract", last.part)]
    assert row.bar.visibleRegion().isEmpty()
    panel.on_event(ev.StageStarted("extract", total=cfg.extraction.n_per_gamma, unit="image", part=last.part))
    qtbot.waitUntil(lambda: not row.bar.visibleRegion().isEmpty())


def test_an_audit_is_read_off_the_gui_thread_and_a_wrong_folder_is_named_in_a_dialog(window, qtbot, audit_copy,
                                                                                       tmp_path, monkeypatch):
    import threading

    from side_gui import main_window

    readers = []

    def read(path):
        readers.append(threading.current_thread())
        return real_read(path)

    real_read = main_window.read_audit
    monkeypatch.setattr(main_window, "read_audit", read)
    open_audit(qtbot, window, audit_copy)
    assert len(readers) == 1 and readers[0] is not threading.main_thread()

    why = f"{tmp_path}: not an audit folder (no audit.toml or audit.sqlite)"
    with qtbot.waitSignal(window.openFailed) as failed:
        assert window.open_audit(str(tmp_path))
    assert failed.args == [str(tmp_path), why]
    error = window.findChild(QMessageBox, "error_dialog")
    assert error.text() == why
    assert window.audit.root == str(audit_copy.resolve())  # the open audit stays
    qtbot.waitUntil(lambda: not window.readers)  # and its thread ends
