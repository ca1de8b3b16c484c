"""The guard in gui_fixtures must see a QThread or QTimer that outlives its test."""

from __future__ import annotations

from PySide6.QtCore import QThread, QTimer

from helpers import dangling


def test_dangling_reports_running_thread_and_active_timer(qtbot):
    timer = QTimer(interval=1000)
    timer.start()
    thread = QThread()
    thread.start()
    try:
        problems = dangling([thread], [timer])
        assert len(problems) == 2 and "QThread" in problems[0] and "QTimer" in problems[1]
    finally:
        timer.stop()
        thread.quit()
        thread.wait()
    assert dangling([thread], [timer]) == []
