"""Audits that are not as the engine left them: a corrupt or truncated audit.sqlite is named in a dialog, a missing
image file is said in the inspector, and an audit on read-only media opens for viewing and says that verdicts
cannot be saved there."""

from __future__ import annotations

import os

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox

from side_engine.store import AuditStore
from side_gui.audit_view import READ_ONLY

from helpers import open_gallery, read_only_view


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_database_is_named_in_a_dialog_and_the_window_stays(window, qtbot, audit_copy, damage):
    db = audit_copy / "audit.sqlite"
    if damage == "truncated":
        with open(db, "r+b") as f:
            f.truncate(1000)
    else:
        db.write_bytes(b"not a database at all" * 100)
    with qtbot.waitSignal(window.openFailed) as failed:
        assert window.open_audit(str(audit_copy))
    path, why = failed.args
    assert path == str(audit_copy) and why.startswith(f"{db.resolve()}: ")
    dialog = window.findChild(QMessageBox, "error_dialog")
    assert dialog.isVisible() and dialog.text() == why and "\n" not in why
    assert window.audit is None and window.isVisible()


def test_a_missing_image_file_is_said_in_the_inspector(window, qtbot, audit_copy, shown):
    store = AuditStore.open(audit_copy)
    gone = store.images()[0]
    store.close()
    (audit_copy / gone.path).unlink()
    audit = open_gallery(window, qtbot, audit_copy)
    row = [audit.model.data(audit.model.index(r), audit.model.IdRole) for r in range(audit.model.rowCount())]
    audit.gallery.list.setCurrentIndex(audit.model.index(row.index(gone.id)))
    assert shown(audit.inspector).image_id == gone.id
    assert audit.inspector.gen_view.text() == f"cannot read\n{(audit_copy / gone.path).resolve()}"
    assert audit.inspector.third_view.text().startswith("nothing to compare")
    # The next pair shows as ever.
    qtbot.keyClick(audit.gallery.list, Qt.Key_J)
    assert shown(audit.inspector).gen_view.text() == "" and not audit.inspector.gen_view.pixmap().isNull()


@pytest.fixture
def read_only(audit_copy, tmp_path):
    with read_only_view(audit_copy, tmp_path / "read-only") as view:
        yield view


def test_a_read_only_audit_opens_for_viewing_and_says_verdicts_cannot_be_saved(window, qtbot, read_only, shown):
    assert not os.access(read_only, os.W_OK)
    audit = open_gallery(window, qtbot, read_only)
    notice = audit.findChild(QLabel, "read_only_banner")
    assert notice is not None and notice.isVisible() and notice.text() == READ_ONLY
    store = AuditStore.open(read_only)
    assert audit.model.rowCount() == store.image_count() > 0
    assert shown(audit.inspector).image_id >= 0 and not audit.inspector.gen_view.pixmap().isNull()
    assert not any(b.isEnabled() for b in audit.inspector.buttons.buttons())
    assert not audit.inspector.note.isEnabled()
    qtbot.keyClick(audit.gallery.list, Qt.Key_1)  # the Copy key: nothing to save, nothing raised
    assert store.verdicts() == {}
    assert not (read_only / "verdicts.sqlite").exists()
    store.close()
