"""The one worker type: runs a generator on its own QThread and relays what it yields as signals.

Everything that touches a model or many image files goes through here (audits, exports), so the GUI thread
only ever receives small immutable records. Progress records are rate-limited: a stage can report thousands
of steps a second, and every signal costs a trip through the GUI's event loop.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot
from PySide6.QtWidgets import QDialog, QLabel, QWidget

from side_engine import events as ev
from side_engine.errors import Cancelled, EngineStopped, InputError

# What a worker runs: given the run's control, a generator of records for the GUI thread. Engine functions it calls
# get control.check, the one cancel hook (side_engine.events.Check).
Job = Callable[[ev.RunControl], Iterator]


class GeneratorWorker(QObject):
    """Call start(); then exactly one of returned / errored / aborted, followed by finished."""

    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(str)  # one line for the window; the traceback goes to stderr for bug reports
    aborted = Signal()
    finished = Signal()

    def __init__(self, make: Job, throttle_s: float = 0.1):
        super().__init__()
        self._make = make
        self._throttle = throttle_s
        self.control = ev.RunControl()
        self._thread: QThread | None = None
        self._last_progress: dict[tuple[str, str], float] = {}

    def start(self) -> None:
        self._thread = QThread()
        self._thread.setObjectName("side-worker")
        self.moveToThread(self._thread)
        self._thread.started.connect(self._run)
        self._thread.start()

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.isRunning()

    def wait(self, ms: int = 30_000) -> bool:
        """Block until the thread has ended; only for shutdown, after cancel()."""
        return self._thread is None or self._thread.wait(ms)

    def cancel(self) -> None:
        self.control.cancel()

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def _emit(self, item) -> None:
        if isinstance(item, ev.Progress) and item.done != item.total:
            key = (item.stage, item.part)
            now = time.monotonic()
            # A stage's first report always goes through, however soon after the machine started.
            if key in self._last_progress and now - self._last_progress[key] < self._throttle:
                return
            self._last_progress[key] = now
        self.yielded.emit(item)

    @Slot()
    def _run(self) -> None:
        try:
            gen = self._make(self.control)
            while True:
                try:
                    item = next(gen)
                except StopIteration as stop:
                    self.returned.emit(stop.value)
                    break
                self._emit(item)
        except Cancelled:
            self.aborted.emit()
        except (InputError, EngineStopped) as e:
            self.errored.emit(str(e))
        except Exception as e:  # noqa: BLE001 - shown in the window instead of killing the thread silently
            traceback.print_exc()
            self.errored.emit(f"{type(e).__name__}: {e}")
        finally:
            # Quit from inside the thread: a queued quit would wait for the GUI thread, which may be in wait().
            self._thread.quit()
            self.finished.emit()


def ended(sender: QObject | None, current: GeneratorWorker | None) -> bool:
    """For a slot of `finished`: True when the worker that finished is the one its owner still holds, once its thread
    has ended (right after `finished`); False for a worker the owner has already stopped and waited for."""
    if sender is None or sender is not current:
        return False
    assert isinstance(sender, GeneratorWorker)
    sender.wait()
    return True


class WorkerDialog(QDialog):
    """A dialog whose work runs on a GeneratorWorker (self.worker, which the subclass starts and clears when its
    `finished` comes). Esc, Cancel, Close and the title bar's close button all come to reject() (since Qt 6.3 a
    rejected dialog closes without a closeEvent): running work is cancelled first, self.status says so, and the
    dialog closes once it has stopped, where the subclass's end of work sees `_close_when_done`. When the app quits,
    the work is stopped at once: no worker's thread may outlive it."""

    status: QLabel

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.worker: GeneratorWorker | None = None
        self._close_when_done = False
        QCoreApplication.instance().aboutToQuit.connect(self._stop_now)

    def reject(self) -> None:
        if self.worker is not None:
            self._close_when_done = True
            self.status.setText("Cancelling…")
            self.worker.cancel()
            return
        self._closing()
        super().reject()

    def _closing(self) -> None:
        """What the subclass lets go of as it closes."""

    def _stop_now(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait()
