"""A reviewer holds a picture and asks the open audit: was this picture extracted? They drop it on the window (or
choose it with File → Check images…), read the closest generated and training images with their scores and bands,
click the closest to see its pair, and export the answer as evidence."""

import threading
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from side_engine.evidence.verify import verify_export
from side_engine.questions.check import Checker
from side_engine.store import AuditStore
from side_engine.vocabulary import BandName
from side_gui.check_view import GENERATED, CheckDialog

from helpers import open_audit


def drop_files(window, paths) -> None:
    """Files dragged onto the window and dropped, as a file manager drops them: Qt delivers the drop to the widget
    that accepted the drag's entry."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    at = QPoint(window.width() // 2, window.height() // 2)
    enter = QDragEnterEvent(at, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(window, QDropEvent(QPointF(at), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))


def checked(qtbot, window, paths) -> CheckDialog:
    """Drops the files and waits until the check dialog shows its answers."""
    before = set(window.findChildren(CheckDialog))
    drop_files(window, paths)
    (dlg,) = set(window.findChildren(CheckDialog)) - before
    assert dlg.objectName() == "check_dialog" and dlg.isVisible() and not dlg.isModal()
    with qtbot.waitSignal(dlg.checkFinished, timeout=30_000):
        pass
    return dlg


def click_generated(qtbot, dlg, row: int, k: int) -> None:
    index = dlg.model.index(row)
    rect = dlg.list.delegate.tile_rect(dlg.list.visualRect(index), GENERATED, k)
    qtbot.mouseClick(dlg.list.viewport(), Qt.LeftButton, pos=rect.center())


def stored_rows(audit):
    store = AuditStore.open(audit)
    try:
        return store.images()
    finally:
        store.close()


def test_a_dropped_generated_image_comes_first_in_the_high_band_and_a_click_shows_its_pair(qtbot, window,
                                                                                           finished_audit):
    view = open_audit(qtbot, window, finished_audit)
    rows = stored_rows(finished_audit)
    picked = rows[-1]
    view.tabs.setCurrentIndex(0)  # the reviewer is on the Run tab when the picture arrives

    dlg = checked(qtbot, window, [finished_audit / picked.path])
    (answer,) = dlg.model.answers
    first = answer.generated[0]
    assert (first.id, first.score, first.band) == (picked.id, 0.0, BandName.HIGH)
    assert "1 picture checked: 1 with a generated image in the high band" in dlg.status.text()
    assert dlg.export_btn.isEnabled()

    click_generated(qtbot, dlg, 0, 0)
    assert view.tabs.currentWidget() is view.split
    assert view.inspector.image_id == picked.id
    assert view.gallery.list.currentIndex().data(view.model.IdRole) == picked.id

    other = answer.generated[1]
    click_generated(qtbot, dlg, 0, 1)
    assert view.inspector.image_id == other.id != picked.id


def test_a_pair_the_gallery_filters_hide_still_shows_in_the_inspector(qtbot, window, finished_audit):
    view = open_audit(qtbot, window, finished_audit)
    picked = stored_rows(finished_audit)[0]
    dlg = checked(qtbot, window, [finished_audit / picked.path])
    view.gallery.f_band.setCurrentIndex(view.gallery.f_band.findData(BandName.HIGH))
    hidden = next(g for g in dlg.model.answers[0].generated if view.model.row_of_id(g.id) is None)
    k = dlg.model.answers[0].generated.index(hidden)
    click_generated(qtbot, dlg, 0, k)
    assert view.inspector.image_id == hidden.id


def test_an_unreadable_picture_is_named_in_an_error_and_the_rest_are_checked(qtbot, window, finished_audit,
                                                                             tmp_path):
    open_audit(qtbot, window, finished_audit)
    broken = tmp_path / "scan.png"
    broken.write_text("not a picture")
    grey = tmp_path / "grey.png"
    Image.new("L", (32, 32), 128).save(grey)
    dlg = checked(qtbot, window, [broken, grey])
    assert [a.image.name for a in dlg.model.answers] == ["grey.png"]
    assert all(m.band is not BandName.HIGH for m in dlg.model.answers[0].generated)
    (box,) = [b for b in dlg.findChildren(QMessageBox) if b.objectName() == "error_dialog"]
    assert str(broken) in box.text() and "unreadable image" in box.text()
    assert "0 with a generated image in the high band" in dlg.status.text()


def test_check_images_from_the_menu_remembers_the_folder(qtbot, window, finished_audit, monkeypatch):
    action = window.findChild(QAction, "action_check")
    assert not action.isEnabled()  # nothing to check against before an audit is open
    open_audit(qtbot, window, finished_audit)
    assert action.isEnabled()
    picked = stored_rows(finished_audit)[2]
    asked = []

    def choose(parent, title, folder, filters):
        asked.append(folder)
        return [str(finished_audit / picked.path)], filters

    monkeypatch.setattr(QFileDialog, "getOpenFileNames", choose)
    action.trigger()
    (dlg,) = window.findChildren(CheckDialog)
    with qtbot.waitSignal(dlg.checkFinished, timeout=30_000):
        pass
    assert dlg.model.answers[0].generated[0].id == picked.id
    assert window.settings.value("check_dir") == str((finished_audit / picked.path).parent)
    dlg.close()
    action.trigger()
    assert asked[1] == str((finished_audit / picked.path).parent)


def test_export_as_evidence_writes_a_folder_that_verify_checks(qtbot, window, finished_audit, tmp_path,
                                                               monkeypatch):
    open_audit(qtbot, window, finished_audit)
    picked = stored_rows(finished_audit)[1]
    dlg = checked(qtbot, window, [finished_audit / picked.path])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "other.txt").write_text("someone else's")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a: str(tmp_path / "busy"))
    with qtbot.waitSignal(dlg.exportFinished, timeout=30_000) as done:
        qtbot.mouseClick(dlg.export_btn, Qt.LeftButton)
    folder = Path(done.args[0])
    # A folder that holds files gets a new one inside it, named for the audit.
    assert folder == tmp_path / "busy" / f"{finished_audit.name}-check"
    assert verify_export(folder).ok
    assert (folder / "outside" / "01.png").read_bytes() == (finished_audit / picked.path).read_bytes()
    assert any(b.objectName() == "check_export_done" and str(folder) in b.text()
               for b in dlg.findChildren(QMessageBox))
    assert dlg.export_btn.isEnabled()


def test_escape_during_a_check_cancels_it_and_closes_once_it_has_stopped(qtbot, window, finished_audit, monkeypatch):
    """The reviewer dropped a picture on a large audit and changes their mind: Esc stops the check's worker (none is
    left running without its dialog) and the dialog closes."""
    open_audit(qtbot, window, finished_audit)
    reading, go_on = threading.Event(), threading.Event()
    read_generated = Checker._generated_descriptors

    def held(self, check):  # the check holds at its first batch of generated PNGs until the test lets it go on
        reading.set()
        go_on.wait(30)
        yield from read_generated(self, check)

    monkeypatch.setattr(Checker, "_generated_descriptors", held)
    drop_files(window, [finished_audit / stored_rows(finished_audit)[0].path])
    (dlg,) = window.findChildren(CheckDialog)
    worker = dlg.worker
    aborted: list[bool] = []
    worker.aborted.connect(lambda: aborted.append(True))
    try:
        qtbot.waitUntil(reading.is_set, timeout=30_000)
        qtbot.keyClick(dlg, Qt.Key_Escape)
        assert dlg.isVisible() and dlg.status.text() == "Cancelling…"  # open until the check has stopped
    finally:
        go_on.set()
    with qtbot.waitSignal(dlg.destroyed, timeout=30_000):  # closed, and deleted as it closes
        pass
    assert aborted == [True] and not worker.is_running()
    assert not window.findChildren(CheckDialog)


@pytest.mark.parametrize("with_audit", [False, True])
def test_dropping_an_audit_folder_opens_it_rather_than_checking_it(qtbot, window, finished_audit, with_audit):
    if with_audit:
        open_audit(qtbot, window, finished_audit)
    with qtbot.waitSignal(window.auditShown, timeout=30_000):
        drop_files(window, [finished_audit])
    assert not window.findChildren(CheckDialog)
