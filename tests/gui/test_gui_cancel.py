"""Stopping a run: cancel mid-run, reopen, resume; quit mid-run (asked first), reopen, resume to completion.
The window stays responsive throughout and nothing touches a widget from the worker's thread."""

from __future__ import annotations

from PySide6.QtCore import Qt

from side_engine.store import AuditStore
from side_gui.main_window import MainWindow

from helpers import fill_form, hold_at_next_images, new_window, open_audit, slow_leg, stopped_early


def reopen(qtbot, audit_dir) -> MainWindow:
    w = new_window(qtbot)
    open_audit(qtbot, w, audit_dir)
    return w


def stopped_legs(window) -> dict[str, str]:
    return {row.name.text(): row.bar.text() for (stage, _), row in window.audit.run.rows.items()
            if stage == "extract" and "stopped" in row.bar.text()}


def test_cancel_mid_run_then_resume_to_completion(window, qtbot, tiny_config, tmp_path, ticker, qtlog,
                                                   model_threads, gui_thread):
    slow_leg(tiny_config)
    out = fill_form(window, qtbot, tiny_config, tmp_path)
    qtbot.mouseClick(window.form.start_btn, Qt.LeftButton)
    held = hold_at_next_images(window.worker)
    qtbot.waitUntil(lambda: bool(held), timeout=180_000)
    ticks = ticker["ticks"]
    qtbot.waitUntil(lambda: ticker["ticks"] > ticks + 5, timeout=5000)  # paused worker, lively window
    # The cancel reaches the engine at its next check, which stops the run (aborted), not as an error.
    run = gui_thread(window.worker)
    with qtbot.waitSignals([run.aborted, window.runFinished], order="strict", timeout=60_000):
        qtbot.mouseClick(window.audit.run.cancel_btn, Qt.LeftButton)
    store = AuditStore.open(out)
    stopped_early(store, tiny_config)
    total = 3 * tiny_config.extraction.n_per_gamma
    assert not store.complete
    assert window.audit.run.resume_btn.isVisible()
    assert window.statusBar().currentMessage() == (
        "Audit cancelled; everything finished so far is saved. Resume it from the Run tab.")
    assert model_threads == set()
    assert [r.message for r in qtlog.records if "different thread" in r.message] == []

    with qtbot.waitSignal(window.runFinished, timeout=180_000):
        qtbot.mouseClick(window.audit.run.resume_btn, Qt.LeftButton)
    assert store.image_count() == total
    assert store.complete
    assert window.audit.model.rowCount() == total
    assert sorted(window.audit.model.ids.tolist()) == sorted(r.id for r in store.images())
    store.close()


def test_quit_mid_run_asks_stops_cleanly_and_the_audit_resumes_later(window, qtbot, tiny_config, tmp_path,
                                                                      gui_thread):
    slow_leg(tiny_config)
    out = fill_form(window, qtbot, tiny_config, tmp_path)
    qtbot.mouseClick(window.form.start_btn, Qt.LeftButton)
    held = hold_at_next_images(window.worker)
    qtbot.waitUntil(lambda: bool(held), timeout=180_000)

    asked = []
    window.confirm_close = lambda: asked.append("no") or False
    window.close()
    assert asked == ["no"] and window.isVisible() and window.is_running()

    window.confirm_close = lambda: asked.append("yes") or True
    run = gui_thread(window.worker)
    with qtbot.waitSignals([run.aborted, window.runFinished], order="strict", timeout=60_000):
        window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)
    assert asked == ["no", "yes"] and not window.is_running()

    store = AuditStore.open(out)
    partial = stopped_early(store, tiny_config)
    total = 3 * tiny_config.extraction.n_per_gamma
    assert not store.complete

    again = reopen(qtbot, out)
    # The leg the quit interrupted shows what the audit holds of it, and under the gallery's name for it.
    n = tiny_config.extraction.n_per_gamma
    assert stopped_legs(again) == {"Extract: random (γ=0)": f"{partial} / {n} (stopped)"}
    assert again.audit.model.rowCount() == partial
    with qtbot.waitSignal(again.runFinished, timeout=180_000):
        qtbot.mouseClick(again.audit.run.resume_btn, Qt.LeftButton)
    assert store.image_count() == total and store.complete
    assert again.audit.model.rowCount() == total
    assert stopped_legs(again) == {}
    store.close()
