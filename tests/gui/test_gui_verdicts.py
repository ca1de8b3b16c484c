"""Verdicts and notes are saved in the audit at once and survive closing and reopening it."""

from __future__ import annotations

from PySide6.QtCore import Qt

from side_engine.store import AuditStore

from helpers import new_window, open_audit


def test_verdict_and_note_survive_reopening(window, qtbot, audit_copy):
    open_audit(qtbot, window, audit_copy)
    audit = window.audit
    audit.tabs.setCurrentIndex(1)
    window.activateWindow()
    qtbot.waitActive(window)
    audit.gallery.list.setFocus()
    first = audit.inspector.image_id
    assert first == audit.model.data(audit.model.index(0), audit.model.IdRole)
    qtbot.keyClick(audit.gallery.list, Qt.Key_J)
    second = audit.inspector.image_id
    assert second == audit.model.data(audit.model.index(1), audit.model.IdRole)
    qtbot.keyClick(audit.gallery.list, Qt.Key_1)
    assert audit.inspector.buttons.button(0).isChecked()
    qtbot.keyClicks(audit.inspector.note, "same stroke as training #6")
    qtbot.keyClick(audit.gallery.list, Qt.Key_K)
    assert audit.inspector.image_id == first
    qtbot.mouseClick(audit.inspector.buttons.button(2), Qt.LeftButton)  # Unsure
    window.close()

    store = AuditStore.open(audit_copy)
    assert store.verdict(second) == ("copy", "same stroke as training #6")
    assert store.verdict(first) == ("unsure", "")
    store.close()

    again = new_window(qtbot)
    open_audit(qtbot, again, audit_copy)
    audit = again.audit
    audit.gallery.list.setCurrentIndex(audit.model.index(audit.model.row_of_id(second)))
    assert audit.inspector.buttons.button(0).isChecked()
    assert audit.inspector.note.text() == "same stroke as training #6"
    assert audit.model.verdict[audit.model.ids == second][0] == "copy"
    audit.gallery.f_verdict.setCurrentIndex(audit.gallery.f_verdict.findData("copy"))
    assert audit.model.rowCount() == 1
