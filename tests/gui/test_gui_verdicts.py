"""Verdicts and notes are saved in the audit at once and survive closing and reopening it."""

from __future__ import annotations

from PySide6.QtCore import Qt

from side_engine.store import AuditStore, VerdictNote
from side_engine.vocabulary import Verdict

from helpers import new_window, open_audit, open_gallery


def checked(inspector) -> list[bool]:
    """The verdict buttons' states: Copy, Not a copy, Unsure."""
    return [inspector.buttons.button(k).isChecked() for k in range(3)]


def shown_ids(model) -> list[int]:
    return [model.data(model.index(r), model.IdRole) for r in range(model.rowCount())]


def test_verdict_and_note_survive_reopening(window, qtbot, audit_copy):
    audit = open_gallery(window, qtbot, audit_copy)
    first = audit.inspector.image_id
    assert first == audit.model.data(audit.model.index(0), audit.model.IdRole)
    qtbot.keyClick(audit.gallery.list, Qt.Key_J)
    second = audit.inspector.image_id
    assert second == audit.model.data(audit.model.index(1), audit.model.IdRole)
    qtbot.keyClick(audit.gallery.list, Qt.Key_1)
    assert checked(audit.inspector) == [True, False, False]
    qtbot.keyClicks(audit.inspector.note, "same stroke as training #6")
    qtbot.keyClick(audit.gallery.list, Qt.Key_K)
    assert audit.inspector.image_id == first
    qtbot.mouseClick(audit.inspector.buttons.button(2), Qt.LeftButton)  # Unsure
    window.close()

    store = AuditStore.open(audit_copy)
    assert store.verdict(second) == VerdictNote(Verdict.COPY, "same stroke as training #6")
    assert store.verdict(first) == VerdictNote(Verdict.UNSURE, "")
    store.close()

    again = new_window(qtbot)
    open_audit(qtbot, again, audit_copy)
    audit = again.audit
    audit.gallery.list.setCurrentIndex(audit.model.index(audit.model.row_of_id(second)))
    assert checked(audit.inspector) == [True, False, False]
    assert audit.inspector.note.text() == "same stroke as training #6"
    assert audit.model.verdict[audit.model.ids == second][0] == Verdict.COPY
    audit.gallery.f_verdict.setCurrentIndex(audit.gallery.f_verdict.findData(Verdict.COPY))
    assert shown_ids(audit.model) == [second]


def test_a_note_without_a_verdict_is_kept_and_the_pair_stays_without_one(window, qtbot, audit_copy):
    audit = open_audit(qtbot, window, audit_copy)
    audit.tabs.setCurrentIndex(1)
    first = audit.inspector.image_id
    qtbot.keyClicks(audit.inspector.note, "look again")
    assert audit.inspector.saved.text() == "Note saved in the audit"
    assert audit.store.verdict(first) == VerdictNote(None, "look again")
    window.close()

    again = new_window(qtbot)
    audit = open_audit(qtbot, again, audit_copy)
    assert audit.inspector.image_id == first
    assert checked(audit.inspector) == [False, False, False]
    assert audit.inspector.note.text() == "look again"
    assert audit.model.verdict[audit.model.ids == first][0] == ""
    audit.gallery.f_verdict.setCurrentIndex(audit.gallery.f_verdict.findData(""))
    assert shown_ids(audit.model)[0] == first and len(shown_ids(audit.model)) == len(audit.model.ids)
