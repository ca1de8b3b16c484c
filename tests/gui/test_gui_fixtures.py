"""The guard in gui_fixtures must see a QThread or QTimer that outlives its test."""

from __future__ import annotations

from PySide6.QtCore import QThread, QTimer

from helpers import dangling


def test_dangling_reports_running_thread_and_active_timer(qtbot):
    timer = QTimer(interval=1000, objectName="left_timer")
    timer.start()
    thread = QThread(objectName="left_thread")
    thread.start()
    try:
        assert dangling([thread], [timer]) == ["QThread 'left_thread' still running",
                                               "QTimer 'left_timer' (interval 1000 ms) still active"]
    finally:
        timer.stop()
        thread.quit()
        thread.wait()
    assert dangling([thread], [timer]) == []
