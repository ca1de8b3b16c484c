"""The engine dying inside the app (killed for lack of memory, a crash in native code): it runs in a process of its
own, so the window stays, says the run stopped and how, keeps every verdict, and resumes the audit."""

from __future__ import annotations

import os
import signal

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from side_engine.store import AuditStore, VerdictNote
from side_engine.vocabulary import Verdict

from helpers import fill_form, hold_at_next_images, slow_leg, stopped_early


def test_the_engine_killed_mid_run_leaves_the_window_its_verdicts_and_a_resume(window, qtbot, tiny_config, tmp_path):
    slow_leg(tiny_config)
    out = fill_form(window, qtbot, tiny_config, tmp_path)
    qtbot.mouseClick(window.form.start_btn, Qt.LeftButton)
    held = hold_at_next_images(window.worker)
    qtbot.waitUntil(lambda: bool(held) and window.audit is not None and window.audit.model.rowCount() > 0,
                    timeout=180_000)
    pid = window.engine_pid
    assert pid is not None and pid != os.getpid()

    # A reviewer marks the first pair while the run is under way.
    audit = window.audit
    audit.tabs.setCurrentIndex(1)
    audit.gallery.list.setCurrentIndex(audit.model.index(0))
    marked = audit.inspector.image_id
    qtbot.mouseClick(audit.inspector.buttons.button(0), Qt.LeftButton)  # Copy

    with qtbot.waitSignal(window.runFinished, timeout=60_000):
        os.kill(pid, signal.SIGKILL)
    dialog = window.findChild(QMessageBox, "error_dialog")
    assert dialog is not None and dialog.isVisible()
    assert dialog.windowTitle() == "The audit stopped"
    assert "killed by SIGKILL" in dialog.text() and "resume" in dialog.text()
    dialog.close()
    assert window.isVisible() and not window.is_running() and window.audit is audit
    assert audit.run.resume_btn.isVisible()
    assert "killed by SIGKILL" in audit.run.log.toPlainText()

    store = AuditStore.open(out)
    stored = stopped_early(store, tiny_config)
    # The leg at work when the engine died says so, with what the audit holds of it.
    legs = [row.bar.text() for (stage, _), row in audit.run.rows.items() if stage == "extract"]
    assert [t for t in legs if "stopped" in t] == [f"{stored} / 24 (stopped)"]
    assert store.verdict(marked) == VerdictNote(Verdict.COPY, "")
    with qtbot.waitSignal(window.runFinished, timeout=180_000):
        qtbot.mouseClick(audit.run.resume_btn, Qt.LeftButton)
    total = 3 * tiny_config.extraction.n_per_gamma
    assert store.complete and store.image_count() == total
    assert audit.model.rowCount() == total
    assert store.verdict(marked) == VerdictNote(Verdict.COPY, "")
    store.close()
