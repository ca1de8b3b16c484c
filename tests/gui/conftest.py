"""Qt fixtures for every GUI test: no test may leave a QThread running or a QTimer active (as napari's
conftest does), and QSettings go to a temporary folder instead of the user's."""

from __future__ import annotations

import gc
import weakref

import pytest

from helpers import dangling, new_window


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
def unfrozen_heap():
    """The window freezes what is alive for the rest of the app's life (main_window.settle_heap); the tests share one
    process, so what a test froze goes back to the collector after it."""
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def temp_settings(tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(tmp_path / "settings"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture
def window(qtbot):
    return new_window(qtbot)


@pytest.fixture
def model_threads(monkeypatch):
    """The threads of this process that called any torch module during the test. An audit runs in an engine process
    of its own, so none should: the window's process neither runs the model nor dies with it."""
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


@pytest.fixture
def gui_thread():
    """relay(worker) -> an object with the worker's signals, emitted on the GUI thread as the window receives them.

    qtbot runs its waits' handlers in the thread that emits: a wait for a signal of the worker's own thread races with
    that thread (it can fire before the wait's event loop starts). Queued to the GUI thread, it cannot."""
    from PySide6.QtCore import QObject, Qt, Signal

    class Relayed(QObject):
        yielded = Signal(object)
        returned = Signal(object)
        errored = Signal(str)
        aborted = Signal()
        finished = Signal()

    made = []

    def relay(worker):
        r = Relayed()
        for name in ("yielded", "returned", "errored", "aborted", "finished"):
            getattr(worker, name).connect(getattr(r, name), Qt.QueuedConnection)
        made.append(r)
        return r

    return relay


@pytest.fixture
def shown(qtbot):
    """shown(inspector): waits until the images of the pair the inspector shows, decoded on the thread pool, are on
    its screen (its tiles' too), and returns the inspector."""

    def wait(inspector):
        qtbot.waitUntil(lambda: not inspector.loading, timeout=10_000)
        return inspector

    return wait
