"""The Training images tab, as a reviewer who must act on an audit uses it (issue #15): open the audit, open Training
images, the training image most matched in the high band is first; select it and the generated images that hold it
among their neighbours are listed, closest first; choose one and the pair inspector compares it with that training
image. The counts follow the band edges and the images streamed in, counted off the GUI thread; the table filters
like the gallery."""

from __future__ import annotations

import sqlite3
import threading

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRect, Qt

from side_engine.matching.metrics import Bands
from side_engine.questions.by_image import by_image
from side_engine.store import AuditStore
from side_engine.vocabulary import BandName, Direction
from side_gui import export_dialog, training_view
from side_gui.training_view import Col, MatchModel, TrainingModel

from helpers import open_audit

HIGH, MID, LOW = BandName.HIGH, BandName.MID, BandName.LOW


@pytest.fixture
def banded(audit_copy):
    """The tiny audit with bands in its audit.toml cut at its own scores (below nL2's top, 2), so that each band
    holds some neighbours and the farthest stay outside: its own bands hold none of them."""
    store = AuditStore.open(audit_copy)
    s = np.unique(store.score_arrays().nn_score)
    store.close()
    s = s[s < 2.0]
    a, b, c = (round(float(s[i] + s[i + 1]) / 2, 4) for i in (len(s) // 4, len(s) // 2, 3 * len(s) // 4))
    config = audit_copy / "audit.toml"
    config.write_text(config.read_text().replace("low = []\nmid = []\nhigh = []",
                                                 f"low = [{b}, {c}]\nmid = [{a}, {b}]\nhigh = [0.0, {a}]"))
    return audit_copy


def counted(audit_dir, bands: Bands, rows=None) -> dict[int, dict]:
    """Per training image, read from the store image by image: matches per band, and the generated images that hold
    it among their neighbours with their score on it."""
    store = AuditStore.open(audit_dir)
    out = {j: {"high": 0, "mid": 0, "low": 0, "holders": []} for j in range(store.n_train)}
    labels = {t.idx: t.label for t in store.training_images()}
    paths = {t.idx: t.path for t in store.training_images()}
    for image in rows if rows is not None else store.images():
        for j, score in zip(image.nn_idx.tolist(), image.nn_score.tolist(), strict=True):
            out[j]["holders"].append((score, image.id))
            name = bands.classify(np.array([score], np.float32))[0]
            if name:
                out[j][name] += 1
    store.close()
    for j, e in out.items():
        e["best"] = min(e["holders"])[0] if e["holders"] else np.inf
        e["label"], e["path"] = labels[j], paths[j]
    return out


def risk(e: dict) -> tuple:
    return -e["high"], -e["mid"], -e["low"], e["best"]


def shown_rows(model: TrainingModel) -> list[int]:
    return [model.data(model.index(r, 0), TrainingModel.IndexRole) for r in range(model.rowCount())]


def shown_counts(model: TrainingModel) -> dict[int, list[int]]:
    return {j: [int(model.text(j, c)) for c in (Col.HIGH, Col.MID, Col.LOW)] for j in shown_rows(model)}


def open_training(window, qtbot, audit_dir):
    audit = open_audit(qtbot, window, audit_dir)
    audit.tabs.setCurrentWidget(audit.training)
    return audit, audit.training


def test_the_most_matched_training_image_is_first_and_selecting_it_shows_its_copies(window, qtbot, banded):
    audit, view = open_training(window, qtbot, banded)
    bands = audit.bands.bands
    expected = counted(banded, bands)

    # Most at risk first: the most high-band matches, then mid, then low, then the closest score.
    rows = shown_rows(view.model)
    assert sorted(rows) == list(range(18))
    assert [risk(expected[j]) for j in rows] == sorted(risk(e) for e in expected.values())
    first = rows[0]
    assert expected[first]["high"] == max(e["high"] for e in expected.values()) > 0
    store = AuditStore.open(banded)
    assert first == int(by_image(store.score_arrays(), bands, store.n_train).order()[0])
    store.close()
    assert shown_counts(view.model) == {j: [e["high"], e["mid"], e["low"]] for j, e in expected.items()}

    # Select it: every generated image that holds it among its neighbours, closest first.
    rect = view.table.visualRect(view.model.index(0, Col.FILE))
    qtbot.mouseClick(view.table.viewport(), Qt.LeftButton, pos=rect.center())
    assert view.train_idx == first
    listed = [view.matches.data(view.matches.index(r), MatchModel.IdRole) for r in range(view.matches.rowCount())]
    assert listed == [i for _, i in sorted(expected[first]["holders"])]
    assert f"#{first}" in view.matches_title.text()
    assert view.export_btn.isEnabled()

    # Choose the one that holds it farthest down its neighbours: the inspector compares that neighbour.
    store = AuditStore.open(banded)
    slots = {i: store.image(i).nn_idx.tolist().index(first) for i in listed}
    store.close()
    chosen = max(listed, key=lambda i: (slots[i], -listed.index(i)))
    index = view.matches.index(listed.index(chosen))
    view.list.scrollTo(index)
    qtbot.mouseClick(view.list.viewport(), Qt.LeftButton, pos=view.list.visualRect(index).center())
    inspector = view.inspector
    assert inspector.image_id == chosen and inspector.fields["image"].text() == str(chosen)
    title = inspector.train_title.text()
    assert (f"Neighbour {slots[chosen] + 1}: #{first}" in title) if slots[chosen] else ("Nearest" in title)
    # The gallery keeps its own place: this tab has its own inspector.
    assert audit.inspector is not inspector


def test_a_training_image_held_by_more_than_the_list_holds_lists_the_closest_and_counts_them_all(window, qtbot, banded,
                                                                                                  monkeypatch):
    """A much-copied image of a large audit is held by hundreds of thousands of generated images: the list holds the
    closest (a thousand; two here), the title counts them all."""
    monkeypatch.setattr(training_view, "MAX_MATCHES", 2)
    audit, view = open_training(window, qtbot, banded)
    expected = counted(banded, audit.bands.bands)
    first = shown_rows(view.model)[0]
    e = expected[first]
    assert len(e["holders"]) > 2
    rect = view.table.visualRect(view.model.index(0, Col.FILE))
    qtbot.mouseClick(view.table.viewport(), Qt.LeftButton, pos=rect.center())
    listed = [view.matches.data(view.matches.index(r), MatchModel.IdRole) for r in range(view.matches.rowCount())]
    assert listed == [i for _, i in sorted(e["holders"])[:2]]
    title = view.matches_title.text()
    assert f"of {len(e['holders'])} generated images, the closest 2 listed" in title
    assert f"({e['high']} high, {e['mid']} mid, {e['low']} low)" in title


def test_the_counts_follow_the_band_edges_counted_off_the_gui_thread(window, qtbot, banded, monkeypatch):
    counted_on = []
    count = training_view.by_image

    def recorded(*args):
        counted_on.append(threading.current_thread())
        return count(*args)

    monkeypatch.setattr(training_view, "by_image", recorded)
    audit, view = open_training(window, qtbot, banded)
    before = shown_counts(view.model)
    assert any(c[0] for c in before.values())

    # In the Bands tab, the high band's upper edge moved down below every score: nothing is high any more.
    audit.tabs.setCurrentWidget(audit.bands)
    edge = audit.bands.spins[(HIGH, 1)]
    edge.setValue(round(float(audit.bands.arrays.nn_score.min()) - 0.01, 3))
    moved = audit.bands.bands
    assert moved.high[1] == edge.value()
    # Hidden, the tab waits (no count pending or running); shown, it counts again.
    assert shown_counts(view.model) == before
    assert not view._debounce.isActive() and view._worker is None
    with qtbot.waitSignal(view.recounted, timeout=10_000):
        audit.tabs.setCurrentWidget(view)
    expected = counted(banded, moved)
    assert shown_counts(view.model) == {j: [e["high"], e["mid"], e["low"]] for j, e in expected.items()}
    assert all(e["high"] == 0 for e in expected.values())
    assert [risk(expected[j]) for j in shown_rows(view.model)] == sorted(risk(e) for e in expected.values())

    # Edited while the tab is shown (a preset, say): counted again at once.
    wide = Bands(low=(0.0, 0.1), mid=(0.1, 0.2), high=(0.2, 2.0), direction=Direction.DISTANCE)
    with qtbot.waitSignal(view.recounted, timeout=10_000):
        audit.bands.set_bands(wide)
    expected = counted(banded, wide)
    assert shown_counts(view.model) == {j: [e["high"], e["mid"], e["low"]] for j, e in expected.items()}
    assert sum(e["high"] for e in expected.values()) > sum(c[0] for c in before.values())
    assert counted_on and threading.main_thread() not in counted_on


def test_new_images_of_a_run_update_the_counts(window, qtbot, banded):
    db = sqlite3.connect(banded / "audit.sqlite")
    with db:
        ids = [i for (i,) in db.execute("SELECT id FROM images ORDER BY id")]
        held = db.execute("SELECT * FROM images WHERE id > ? ORDER BY id", (ids[-7],)).fetchall()
        db.execute("DELETE FROM images WHERE id > ?", (ids[-7],))
    audit, view = open_training(window, qtbot, banded)
    bands = audit.bands.bands
    store = AuditStore.open(banded)
    first_rows = store.images()
    store.close()
    assert len(first_rows) == 12
    before = counted(banded, bands, first_rows)
    assert shown_counts(view.model) == {j: [e["high"], e["mid"], e["low"]] for j, e in before.items()}

    # The run stores six more images: pulled in as the run's events say they were written.
    with db:
        db.executemany(f"INSERT INTO images VALUES ({', '.join('?' * len(held[0]))})", held)
    db.close()
    with qtbot.waitSignal(view.recounted, timeout=10_000):
        audit.pull_new_images()
    after = counted(banded, bands)
    assert shown_counts(view.model) == {j: [e["high"], e["mid"], e["low"]] for j, e in after.items()}
    assert after != before


def arranged(qtbot, model: TrainingModel):
    """Waits for the rows that a filter or sort asked for: they are arranged on a worker."""
    return qtbot.waitSignal(model.arranged, timeout=10_000)


def header_point(view, col: Col) -> QPoint:
    header = view.table.horizontalHeader()
    return QPoint(header.sectionViewportPosition(col) + header.sectionSize(col) // 2, header.height() // 2)


def test_the_training_images_filter_by_label_band_and_file_name_and_sort_by_any_column(window, qtbot, banded):
    audit, view = open_training(window, qtbot, banded)
    expected = counted(banded, audit.bands.bands)
    model = view.model

    # Every label of the training set once, in order (read with the audit, off the GUI thread).
    labels = [view.f_label.itemData(i) for i in range(1, view.f_label.count())]
    assert labels == sorted({e["label"] for e in expected.values()}) and len(labels) > 1
    k = view.f_label.findText("label class_1")
    assert k > 0, [view.f_label.itemText(i) for i in range(view.f_label.count())]
    with arranged(qtbot, model):
        view.f_label.setCurrentIndex(k)
    assert sorted(shown_rows(model)) == [j for j, e in expected.items() if e["label"] == 1]
    assert view.count.text().startswith(f"{model.rowCount()} of 18 training images")
    with arranged(qtbot, model):
        view.f_label.setCurrentIndex(0)

    with arranged(qtbot, model):
        view.f_show.setCurrentIndex(view.f_show.findData(MID))
    assert sorted(shown_rows(model)) == [j for j, e in expected.items() if e["mid"]]
    with arranged(qtbot, model):
        view.f_show.setCurrentIndex(view.f_show.findData(training_view.MATCHED))
    matched = [j for j, e in expected.items() if e["high"] + e["mid"] + e["low"]]
    assert sorted(shown_rows(model)) == matched
    assert view.count.text() == f"{len(matched)} of 18 training images; {len(matched)} matched"
    with arranged(qtbot, model):
        view.f_show.setCurrentIndex(0)

    qtbot.keyClicks(view.search, "IMG_3")  # any case
    qtbot.waitUntil(lambda: model.rowCount() < 18)
    assert sorted(shown_rows(model)) == [j for j, e in expected.items() if "img_3" in e["path"]]
    view.search.clear()
    qtbot.waitUntil(lambda: model.rowCount() == 18)

    # A header's click sorts by it, closest score first for nL2, training images nobody holds last either way.
    header = view.table.horizontalHeader()
    with arranged(qtbot, model):
        qtbot.mouseClick(header.viewport(), Qt.LeftButton, pos=header_point(view, Col.BEST))
    by_best = [expected[j]["best"] for j in shown_rows(model)]
    held = [b for b in by_best if np.isfinite(b)]
    assert held == sorted(held) and by_best[len(held):] == [np.inf] * (18 - len(held))
    with arranged(qtbot, model):
        qtbot.mouseClick(header.viewport(), Qt.LeftButton, pos=header_point(view, Col.BEST))
    by_best = [expected[j]["best"] for j in shown_rows(model)]
    assert by_best[:len(held)] == sorted(held, reverse=True)


def test_a_sort_shows_in_the_header_at_once_its_rows_come_from_a_worker_and_a_newer_click_wins(window, qtbot, banded,
                                                                                              monkeypatch):
    """At a million training images a sort by a score takes tens of milliseconds, more than the GUI thread may
    spend: the header says it at once, the rows follow from a worker, and a sort asked while another one is still
    arranging replaces it. The chosen training image stays chosen."""
    audit, view = open_training(window, qtbot, banded)
    expected = counted(banded, audit.bands.bands)
    model = view.model
    gate = threading.Event()  # holds the worker, as a million rows would
    asked = []
    arrange = training_view.arrange

    def held(cols, t, a, check):
        asked.append((threading.current_thread(), a.col, a.descending))
        gate.wait(10)
        return arrange(cols, t, a, check)

    monkeypatch.setattr(training_view, "arrange", held)
    rect = view.table.visualRect(model.index(2, Col.FILE))
    qtbot.mouseClick(view.table.viewport(), Qt.LeftButton, pos=rect.center())
    chosen, before = view.train_idx, shown_rows(model)
    assert chosen == before[2]
    shown = []
    model.arranged.connect(lambda: shown.append((model.shown.col, model.shown.descending)))

    header = view.table.horizontalHeader()
    qtbot.mouseClick(header.viewport(), Qt.LeftButton, pos=header_point(view, Col.BEST))
    assert (header.sortIndicatorSection(), header.sortIndicatorOrder()) == (Col.BEST, Qt.AscendingOrder)
    qtbot.waitUntil(lambda: len(asked) == 1)
    assert shown_rows(model) == before and model.pending()  # the GUI thread goes on meanwhile
    # Clicked again before those rows came: farthest first now.
    qtbot.mouseClick(header.viewport(), Qt.LeftButton, pos=header_point(view, Col.BEST))
    assert header.sortIndicatorOrder() == Qt.DescendingOrder
    with arranged(qtbot, model):
        gate.set()
    assert shown == [(Col.BEST, True)]  # the first click's rows were never shown
    assert [(col, descending) for _, col, descending in asked] == [(Col.BEST, False), (Col.BEST, True)]
    assert threading.main_thread() not in [thread for thread, *_ in asked]
    by_best = [expected[j]["best"] for j in shown_rows(model)]
    held_scores = [b for b in by_best if np.isfinite(b)]
    assert by_best[:len(held_scores)] == sorted(held_scores, reverse=True)
    assert shown_rows(model) != before
    # The same training image is still the chosen row, wherever it moved.
    assert view.train_idx == chosen
    assert model.data(view.table.currentIndex(), TrainingModel.IndexRole) == chosen


def test_a_recount_while_sorted_and_filtered_brings_its_rows_arranged_from_its_worker(window, qtbot, banded,
                                                                                     monkeypatch):
    """During a run a recount arrives every few seconds: its rows come sorted and filtered with it, off the GUI
    thread, so the table shows them without sorting a million rows again."""
    asked = []
    arrange = training_view.arrange

    def recorded(cols, t, a, check):
        asked.append((threading.current_thread(), a))
        return arrange(cols, t, a, check)

    monkeypatch.setattr(training_view, "arrange", recorded)
    audit, view = open_training(window, qtbot, banded)
    model = view.model
    with arranged(qtbot, model):
        view.table.sortByColumn(Col.BEST, Qt.AscendingOrder)
    with arranged(qtbot, model):
        view.f_show.setCurrentIndex(view.f_show.findData(HIGH))
    before = shown_rows(model)

    asked.clear()
    wide = Bands(low=(0.0, 0.1), mid=(0.1, 0.2), high=(0.2, 2.0), direction=Direction.DISTANCE)
    with qtbot.waitSignal(view.recounted, timeout=10_000):
        audit.bands.set_bands(wide)
    expected = counted(banded, wide)
    rows = shown_rows(model)
    assert sorted(rows) == [j for j, e in expected.items() if e["high"]] and rows != before
    by_best = [expected[j]["best"] for j in rows]
    assert by_best == sorted(by_best)
    assert shown_counts(model) == {j: [expected[j]["high"], expected[j]["mid"], expected[j]["low"]] for j in rows}
    # Arranged once, by the recount's own job.
    assert [a for _, a in asked] == [model.wanted] and asked[0][0] is not threading.main_thread()


def test_the_tab_fits_a_1024_pixel_screen_with_every_column_and_filter_in_view(window, qtbot, banded):
    _, view = open_training(window, qtbot, banded)
    window.resize(1024, 700)
    qtbot.waitUntil(lambda: window.width() == 1024)
    header = view.table.horizontalHeader()
    assert header.sectionViewportPosition(Col.RUNS) + header.sectionSize(Col.RUNS) <= view.table.viewport().width()
    assert header.sectionSize(Col.FILE) >= 100  # room for a file name
    for w in (view.f_show, view.f_label, view.search, view.count):
        box = QRect(w.mapTo(view, QPoint(0, 0)), w.size())
        assert w.isVisible() and view.rect().contains(box), w.objectName()


def test_export_pairs_of_this_image_opens_the_export_for_that_training_image(window, qtbot, banded, monkeypatch):
    opened = []

    class Dialog:
        def __init__(self, audit, parent=None, training_image: int | None = None):
            opened.append((audit, training_image))

        def open(self):
            pass

    monkeypatch.setattr(export_dialog, "ExportDialog", Dialog)
    audit, view = open_training(window, qtbot, banded)
    assert view.export_btn.isVisible() and not view.export_btn.isEnabled()  # nothing chosen yet
    rect = view.table.visualRect(view.model.index(0, Col.FILE))
    qtbot.mouseClick(view.table.viewport(), Qt.LeftButton, pos=rect.center())
    qtbot.mouseClick(view.export_btn, Qt.LeftButton)
    assert opened == [(audit, view.train_idx)]


def test_without_an_export_of_one_training_image_the_button_is_not_offered(window, qtbot, banded, monkeypatch):
    class Dialog:
        def __init__(self, audit, parent=None):
            raise AssertionError("not to be opened")

    monkeypatch.setattr(export_dialog, "ExportDialog", Dialog)
    _, view = open_training(window, qtbot, banded)
    assert view.export_btn.isHidden()


def test_a_count_of_many_digits_shows_whole(window, qtbot, audit_copy):
    """Counts are cut from the left like file names: a column too narrow for 85,034 would show '…034'."""
    from side_gui.training_view import Col

    _, view = open_training(window, qtbot, audit_copy)
    head = view.table.horizontalHeader()
    view._fit_counts(85034)
    need = view.table.fontMetrics().horizontalAdvance("85034")
    assert all(head.sectionSize(c) > need for c in (Col.HIGH, Col.MID, Col.LOW))
