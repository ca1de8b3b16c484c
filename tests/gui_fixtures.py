"""Qt fixtures for the GUI tests: no test may leave a QThread running or a QTimer active (as napari's
conftest does), and QSettings go to a temporary folder instead of the user's."""

from __future__ import annotations

import weakref

import pytest


def dangling(threads, timers) -> list[str]:
    """What is still running among the QThreads and QTimers a test started."""
    from shiboken6 import isValid

    out = [f"QThread {t.objectName() or t!r} still running" for t in threads if isValid(t) and t.isRunning()]
    out += [f"QTimer {t.objectName() or t!r} (interval {t.interval()} ms) still active" for t in timers
            if isValid(t) and t.isActive()]
    return out


@pytest.fixture(autouse=True)
def no_dangling_qt(monkeypatch, qapp):
    """Records every QThread.start and QTimer.start of the test and fails it if one outlives it.

    Autouse and not depending on qtbot, so it runs after pytest-qt has closed the test's widgets."""
    from PySide6.QtCore import QThread, QTimer

    threads: weakref.WeakSet = weakref.WeakSet()
    timers: weakref.WeakSet = weakref.WeakSet()
    thread_start, timer_start = QThread.start, QTimer.start

    def start_thread(self, *a, **k):
        threads.add(self)
        return thread_start(self, *a, **k)

    def start_timer(self, *a, **k):
        timers.add(self)
        return timer_start(self, *a, **k)

    monkeypatch.setattr(QThread, "start", start_thread)
    monkeypatch.setattr(QTimer, "start", start_timer)
    yield
    qapp.processEvents()
    problems = dangling(list(threads), list(timers))
    if problems:
        pytest.fail("left running after the test: " + "; ".join(problems))


@pytest.fixture(autouse=True)
def temp_settings(tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(tmp_path / "settings"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def new_window(qtbot):
    """A shown MainWindow that pytest-qt closes after the test, its run (if any) cancelled first."""
    from side_gui.main_window import MainWindow

    def stop_run(w):
        # A test that failed with a run going would otherwise reach pytest-qt's close with the worker alive, and the
        # window's modal "stop the running audit?" question would wait for a click that never comes.
        if w.is_running():
            w.cancel_run()
            qtbot.waitUntil(lambda: not w.is_running(), timeout=30_000)

    w = MainWindow()
    qtbot.addWidget(w, before_close_func=stop_run)
    w.show()
    return w


def open_audit(qtbot, window, path):
    """Opens an audit as the user does (it is read on a thread) and returns its view once the window shows it."""
    with qtbot.waitSignal(window.auditShown, timeout=30_000):
        assert window.open_audit(str(path))
    return window.audit


@pytest.fixture
def window(qtbot):
    return new_window(qtbot)


@pytest.fixture
def model_threads(monkeypatch):
    """The threads that called any torch module during the test: the GUI thread must not be among them."""
    import threading

    import torch

    seen: set = set()
    call = torch.nn.Module.__call__

    def recorded(self, *a, **k):
        seen.add(threading.current_thread())
        return call(self, *a, **k)

    monkeypatch.setattr(torch.nn.Module, "__call__", recorded)
    return seen


@pytest.fixture
def ticker(qtbot):
    """A 20 ms timer counting its ticks: proof the event loop turns (how smoothly is for benchmarks/bench_gui.py)."""
    from PySide6.QtCore import QTimer

    state = {"ticks": 0}

    def tick():
        state["ticks"] += 1

    t = QTimer(interval=20)
    t.timeout.connect(tick)
    t.start()
    yield state
    t.stop()
