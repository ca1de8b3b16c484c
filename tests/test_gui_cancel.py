"""Cancel mid-run: the window stays responsive, the audit reopens and resumes to completion."""

from __future__ import annotations

from PySide6.QtCore import Qt

from side_engine import events as ev
from side_engine.store import AuditStore

from gui_fixtures import no_dangling_qt, temp_settings, ticker, window  # noqa: F401
from test_gui_audit import fill_form


def test_cancel_mid_run_then_resume_to_completion(window, qtbot, tiny_config, tmp_path, ticker):
    out = fill_form(window, qtbot, tiny_config, tmp_path)
    qtbot.mouseClick(window.form.start_btn, Qt.LeftButton)
    worker = window.worker
    held = []

    def hold_at_first_images(e):
        # Runs on the worker thread: pausing here stops the engine at its next check, so the cancel lands
        # mid-extraction however fast the tiny model is.
        if isinstance(e, ev.ImagesGenerated) and not held:
            worker.pause()
            held.append(e)

    worker.yielded.connect(hold_at_first_images, Qt.DirectConnection)
    qtbot.waitUntil(lambda: bool(held), timeout=180_000)
    ticks = ticker["ticks"]
    qtbot.waitUntil(lambda: ticker["ticks"] > ticks + 5, timeout=5000)  # paused worker, lively window
    with qtbot.waitSignal(window.runFinished, timeout=60_000):
        qtbot.mouseClick(window.audit.run.cancel_btn, Qt.LeftButton)
    store = AuditStore.open(out)
    partial = store.image_count()
    total = 3 * tiny_config.extraction.n_per_gamma
    assert 0 < partial < total
    assert store.meta("status") != "complete"
    assert window.audit.run.resume_btn.isVisible()
    assert ticker["max_gap"] < 1.0, ticker

    with qtbot.waitSignal(window.runFinished, timeout=180_000):
        qtbot.mouseClick(window.audit.run.resume_btn, Qt.LeftButton)
    assert store.image_count() == total
    assert store.meta("status") == "complete"
    assert window.audit.model.rowCount() == total
    assert sorted(window.audit.model.ids.tolist()) == sorted(r.id for r in store.images())
    store.close()
