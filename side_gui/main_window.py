"""The main window: start page, new-audit form, and one open audit (run, gallery + inspector, bands)."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QFileDialog, QLabel, QMainWindow, QMessageBox, QStackedWidget

from side_engine import events as ev
from side_engine.config import AuditConfig

from .audit_view import AuditData, AuditView, read_audit
from .dialogs import show_about, show_error
from .icon import app_icon
from .start_page import NewAuditForm, StartPage
from .worker import GeneratorWorker, Job

RECENT_MAX = 10


@dataclass(frozen=True)
class AuditOpened:
    """First record of an audit run: the folder now holds an openable audit. data: what the view shows, read on
    the worker's thread (seconds for a large audit), or None when the window has the audit open already. pid: the
    engine's process."""

    audit_dir: str
    data: AuditData | None = None
    pid: int | None = None


def audit_job(cfg: AuditConfig | None = None, out: str | None = None, resume: str | None = None,
              shown: bool = False) -> Job:
    """The generator the worker runs: an engine process (side_engine.engine_process) prepares (or reopens) the
    audit and runs it; this relays its events, and reads what the window will show unless it shows this audit
    already (shown). The engine in a process of its own: if it dies, the window does not."""

    def run(control: ev.RunControl) -> Iterator:
        from side_engine.engine_process import EngineProcess, Opened

        with EngineProcess.resume(resume) if resume else EngineProcess.new(cfg.to_toml(), out) as engine:
            for e in engine.relay(control):
                if isinstance(e, Opened):
                    yield AuditOpened(e.audit_dir, None if shown else read_audit(e.audit_dir), e.pid)
                else:
                    yield e

    return run


def read_job(audit_dir: str) -> Job:
    """The generator a reader runs: what the view of an audit shows, read off the GUI thread (2.5 s at 500k)."""

    def run(_control: ev.RunControl) -> Iterator[AuditData]:
        yield read_audit(audit_dir)

    return run


def settle_heap() -> None:
    """What is alive now (Qt, pyqtgraph, the audit on screen) lives as long as the view: moved out of the garbage
    collector's sight, so that a full collection while images stream in scans only what came since. Unfrozen, the
    whole heap took the GUI thread 86, 45 and 19 ms per full collection during an audit (BENCHMARKS.md). Called once
    at start (app.main) and whenever an audit's view is shown: only what came since the last call is collected
    first (11-27 ms for a view of 500,000 images, where unfreezing to collect everything took 160-190 ms). The view
    before stays out of the collector's sight: deleting it must free it by reference counting alone, and
    tests/gui/test_gui_heap.py holds it to that (a reference cycle through it would keep it, frozen, for good). What
    does stay is pyqtgraph's own: two labelled lines and their labels, about 25 small objects a view."""
    gc.collect()
    gc.freeze()


def settings() -> QSettings:
    return QSettings(QSettings.IniFormat, QSettings.UserScope, "side-inspector", "side-gui")


def _resident_gib(pid: int | str) -> float | None:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (OSError, ValueError):
        return None


def _memory_text(engine_pid: int | None = None) -> str:
    """The window's resident memory, and the engine's while it runs (it has a process of its own)."""
    window = _resident_gib("self")
    if window is None:
        import resource

        text = f"RAM peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"
    else:
        text = f"RAM {window:.2f} GiB"
    engine = _resident_gib(engine_pid) if engine_pid is not None else None
    if engine is not None:
        text += f", engine {engine:.2f} GiB"
    return text


def _device_text(configured: str) -> str:
    """The device the engine runs on. "auto" is resolved only once a run has imported torch: importing it just for
    the status bar would stall the GUI thread for seconds."""
    if configured != "auto":
        return configured
    torch = sys.modules.get("torch")
    if torch is None:
        return "auto (CUDA if available)"
    return "cuda" if torch.cuda.is_available() else "cpu (no CUDA)"


class MainWindow(QMainWindow):
    runFinished = Signal(str)  # audit folder; emitted on the GUI thread once the worker's thread is done with it
    auditShown = Signal(str)  # audit folder, once its view is the window's
    openFailed = Signal(str, str)  # the folder that could not be opened, and why (a dialog has said it too)

    def __init__(self):
        super().__init__()
        self.setObjectName("main_window")
        self.setWindowTitle("SIDE Inspector")
        self.setWindowIcon(app_icon())
        self.settings = settings()
        self.worker: GeneratorWorker | None = None
        # Read audits to open; not runs, so they have threads of their own. A set: one may still be ending when
        # the next opening starts.
        self.readers: set[GeneratorWorker] = set()
        self.audit: AuditView | None = None
        self.on_run_done = None  # a callable(ok: bool) for --exit-when-done
        self.confirm_close = self._ask_close
        self._closing = False
        self._opening = ""  # the folder being read to open, until it has been
        self._run_ok = False
        self.engine_pid: int | None = None  # the running audit's engine process

        self.stack = QStackedWidget()
        self.start = StartPage(self.recent())
        self.form = NewAuditForm()
        self.stack.addWidget(self.start)
        self.stack.addWidget(self.form)
        self.setCentralWidget(self.stack)
        self.start.newAudit.connect(lambda: self.stack.setCurrentWidget(self.form))
        self.start.openAudit.connect(self.open_audit_dialog)
        self.start.runDemo.connect(lambda: self.run_demo())
        self.start.compareAudits.connect(self.compare_audits)
        self.start.backToAudit.connect(self.show_open_audit)
        self.form.back.connect(lambda: self.stack.setCurrentWidget(self.start))
        self.form.start.connect(self.start_audit)

        self._menus()
        self.setAcceptDrops(True)
        self.device_label = QLabel(objectName="status_device")
        self.memory_label = QLabel(objectName="status_memory")
        self.statusBar().addPermanentWidget(self.device_label)
        self.statusBar().addPermanentWidget(self.memory_label)
        self.memory_timer = QTimer(self, interval=2000)
        self.memory_timer.timeout.connect(self._update_status)
        self.stack.currentChanged.connect(self._update_status)
        self._update_status()
        geo = self.settings.value("geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        else:
            self.resize(1280, 820)

    # ----- menus and status ---------------------------------------------------------------------------------------
    def _menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        for text, key, slot, name in (
            ("&New audit…", QKeySequence.New, lambda: self.stack.setCurrentWidget(self.form), "action_new"),
            ("&Open audit folder…", QKeySequence.Open, lambda: self.open_audit_dialog(""), "action_open"),
            ("Run the &demo", None, lambda: self.run_demo(), "action_demo"),
            ("&Export pairs…", QKeySequence("Ctrl+E"), self.export_dialog, "action_export"),
            ("&Check images…", QKeySequence("Ctrl+K"), lambda: self.check_images(), "action_check"),
            ("Co&mpare audits…", None, self.compare_audits, "action_compare"),
            ("&Quit", QKeySequence.Quit, self.close, "action_quit"),
        ):
            a = QAction(text, self, objectName=name)
            if key is not None:
                a.setShortcut(key)
            a.triggered.connect(slot)
            m.addAction(a)
            if name in ("action_demo", "action_compare"):
                m.addSeparator()
        self.export_action = self.findChild(QAction, "action_export")
        self.export_action.setEnabled(False)
        self.check_action = self.findChild(QAction, "action_check")
        self.check_action.setEnabled(False)
        h = self.menuBar().addMenu("&Help")
        about = QAction("&About SIDE Inspector", self, objectName="action_about")
        about.triggered.connect(lambda: show_about(self))
        h.addAction(about)

    def audit_name(self) -> str:
        """The open audit's name as the window's title and the start page say it; '' with none open."""
        if self.audit is None:
            return ""
        return self.audit.store.config.name or Path(self.audit.root).name

    def show_open_audit(self) -> None:
        if self.audit is not None:
            self.stack.setCurrentWidget(self.audit)

    def _update_status(self) -> None:
        """Says what is shown: no audit, the audit and its device, or the start page or the new-audit form with the
        audit still open behind them."""
        device = "no audit open"
        if self.audit is not None:
            device = "device: " + _device_text(self.audit.store.config.runtime.device)
            if self.stack.currentWidget() is not self.audit:
                device = f"{self.audit_name()} open behind this page ({device})"
        self.device_label.setText(device)
        self.memory_label.setText(_memory_text(self.engine_pid))

    def showEvent(self, e) -> None:
        super().showEvent(e)
        self.memory_timer.start()

    # ----- recent -------------------------------------------------------------------------------------------------
    def recent(self) -> list[str]:
        value = self.settings.value("recent", [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [p for p in items if (Path(p) / "audit.toml").exists()]

    def _remember(self, audit_dir: str) -> None:
        items = [audit_dir] + [p for p in self.recent() if p != audit_dir]
        self.settings.setValue("recent", items[:RECENT_MAX])
        self.start.set_recent(items[:RECENT_MAX])

    # ----- opening and running ------------------------------------------------------------------------------------
    def open_audit_dialog(self, path: str) -> None:
        if not path:
            path = QFileDialog.getExistingDirectory(self, "Open audit folder", self.settings.value("last_dir", ""))
            if not path:
                return
        self.open_audit(path)

    def open_audit(self, path: str) -> bool:
        """Starts reading the audit on a thread of its own; its view replaces the window's once read (auditShown),
        or a dialog says why it could not be (openFailed). False if refused: a run or another opening is going."""
        if self._refuse_second_run():
            return False
        r = GeneratorWorker(read_job(path))
        r.yielded.connect(self._on_read)
        r.errored.connect(self._on_read_error)
        r.finished.connect(self._on_read_finished)
        self.readers.add(r)
        self._opening = path
        self.statusBar().showMessage(f"Opening {path}…")
        QApplication.setOverrideCursor(Qt.BusyCursor)
        r.start()
        return True

    def _read_done(self) -> None:
        # The reader's thread still has to end, but the audit is read: runs and other openings may start now.
        self._opening = ""
        QApplication.restoreOverrideCursor()
        self.statusBar().clearMessage()

    def _on_read(self, data: AuditData) -> None:
        self._read_done()
        self._show_audit(data)
        self._follow()

    def _follow(self) -> None:
        """An audit not complete may be written by another process (a `side run`, a cluster job), now or once it is
        resumed there: the view follows its store while this window does not run it."""
        if self.audit is not None and not self.audit.complete() and not self.is_running() and not self._closing:
            self.audit.follow()

    def _on_read_error(self, message: str) -> None:
        path = self._opening
        self._read_done()
        show_error(self, "Could not open the audit", message)
        self.openFailed.emit(path, message)

    def _on_read_finished(self) -> None:
        r = self.sender()
        # The thread ends right after `finished`; wait for it so no QThread outlives its reader.
        r.wait()
        self.readers.discard(r)
        if self._closing and not self.readers:
            self.close()

    def _refuse_second_run(self) -> bool:
        """True while an audit runs, with the reason in a dialog: one worker at a time. True, silently, while an
        audit is being read to open: that takes seconds at most, under a busy cursor."""
        if self._opening:
            return True
        if self.is_running():
            show_error(self, "An audit is running",
                       "Cancel the running audit (Run tab) before opening or starting another one.")
            return True
        return False

    def _show_audit(self, data: AuditData | str) -> None:
        view = AuditView(data)
        if self.audit is not None:
            self._save_view_state()
            self.audit.shutdown()
            self.stack.removeWidget(self.audit)
            self.audit.deleteLater()
        self.audit = view
        view.run.cancelRequested.connect(self.cancel_run)
        view.run.pauseToggled.connect(lambda p: self.worker and (self.worker.pause() if p else self.worker.resume()))
        view.run.resumeRequested.connect(lambda: self.start_worker(audit_job(resume=view.root, shown=True)))
        view.reloadNeeded.connect(self.open_audit)
        self.stack.addWidget(view)
        self.stack.setCurrentWidget(view)
        self.setWindowTitle(f"SIDE Inspector: {self.audit_name()}")
        self.start.set_open_audit(self.audit_name())
        self.export_action.setEnabled(True)
        self.check_action.setEnabled(True)
        self.settings.setValue("last_dir", str(Path(view.root).parent))
        self._remember(view.root)
        self._restore_view_state(view)
        view.tabs.setCurrentIndex(1 if view.complete() else 0)
        if len(view.model.order):
            view.gallery.list.setCurrentIndex(view.model.index(0))
        self._update_status()
        QTimer.singleShot(0, settle_heap)  # after the view before has been deleted
        self.auditShown.emit(view.root)

    # Layout and the way pairs are looked at carry over from audit to audit; filters do not, since a gallery that
    # opened filtered would hide pairs from a reviewer who did not notice.
    def _save_view_state(self) -> None:
        self.settings.setValue("gallery_splitter", self.audit.split.saveState())
        self.settings.setValue("gallery_sort", self.audit.gallery.sort.currentData())
        self.settings.setValue("compare_mode", self.audit.inspector.mode.currentIndex())

    def _restore_view_state(self, view: AuditView) -> None:
        state = self.settings.value("gallery_splitter")
        if state is not None:
            view.split.restoreState(state)
        sort = view.gallery.sort.findData(self.settings.value("gallery_sort", "score"))
        view.gallery.sort.setCurrentIndex(max(sort, 0))
        view.inspector.mode.setCurrentIndex(int(self.settings.value("compare_mode", 0)))

    def start_audit(self, cfg, out: str) -> None:
        if self.start_worker(audit_job(cfg=cfg, out=out)):
            self.form.set_busy("Checking the inputs and loading the model…")

    def run_demo(self, quick: bool = False, out: str | None = None, model: str | None = None) -> None:
        from side_engine.demo import DEMO_MODEL, demo_config

        if self._refuse_second_run():
            return
        model_dir = Path(model) if model else DEMO_MODEL
        if not (model_dir / "model_index.json").exists():
            show_error(self, "The demo model is missing",
                       f"{model_dir} holds no trained demo model. Train it with: side train-demo")
            return
        from PySide6.QtCore import QStandardPaths

        out = out or str(Path(QStandardPaths.writableLocation(QStandardPaths.AppDataLocation))
                         / ("demo-audit-quick" if quick else "demo-audit"))
        if (Path(out) / "audit.toml").exists():
            self.start_worker(audit_job(resume=out))
        else:
            self.start_worker(audit_job(cfg=demo_config(quick, model_dir), out=out))

    def is_running(self) -> bool:
        return self.worker is not None

    def start_worker(self, job) -> bool:
        if self._refuse_second_run():
            return False
        w = GeneratorWorker(job)
        w.yielded.connect(self._on_event)
        w.errored.connect(self._on_error)
        # Bound methods only: a lambda would run on the worker's thread and touch widgets from there.
        w.aborted.connect(self._on_aborted)
        w.returned.connect(self._on_returned)
        w.finished.connect(self._on_finished)
        self.worker = w
        self._run_ok = False
        if self.audit is not None:
            # This window writes the audit now (or another): its view stops looking for another writer.
            self.audit.stop_following()
            self.audit.run.set_running(True)
        w.start()
        return True

    def cancel_run(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.statusBar().showMessage("Cancelling after the current batch…")

    def _on_event(self, e) -> None:
        if isinstance(e, AuditOpened):
            self.engine_pid = e.pid
            if self.audit is None or self.audit.root != e.audit_dir:
                self._show_audit(e.data or e.audit_dir)
            self.audit.run.set_running(True)
            self.audit.tabs.setCurrentIndex(0)
            self.form.set_busy("")
            return
        if self.audit is not None:
            self.audit.on_event(e)
        if isinstance(e, ev.AuditFinished):
            self.statusBar().showMessage(f"Audit complete: {e.audit_dir}", 10000)

    def _on_aborted(self) -> None:
        self.statusBar().showMessage(
            "Audit cancelled; everything finished so far is saved. Resume it from the Run tab.", 10000)

    def _on_returned(self, _value) -> None:
        self._run_ok = True

    def _on_error(self, message: str) -> None:
        self.form.set_busy("")
        if self.audit is not None:
            self.audit.run.log.appendPlainText(f"stopped: {message}")
            self.audit.tabs.setCurrentIndex(0)  # where the resume button is
        show_error(self, "The audit stopped", message)

    def _on_finished(self) -> None:
        w, self.worker = self.worker, None
        self.engine_pid = None
        # The thread ends right after `finished`; wait for it so no QThread outlives its worker.
        w.wait()
        if self.audit is not None:
            self.audit.pull_new_images()
            self.audit.bands.rescore()
            self.audit.run.set_running(False, complete=self.audit.complete(),
                                       stored=self.audit.bands.grouped.counts())
            if self.audit.complete() and self._run_ok:
                self.audit.tabs.setCurrentIndex(1)
        self._follow()
        self.runFinished.emit(self.audit.root if self.audit else "")
        if self.on_run_done is not None:
            self.on_run_done(self._run_ok)
        if self._closing:
            self.close()

    # ----- export -------------------------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        if self.audit is None:
            return
        from .export_dialog import ExportDialog

        dlg = ExportDialog(self.audit, self)
        dlg.open()

    # ----- the reviewer's questions -------------------------------------------------------------------------------
    def check_images(self, paths: list[str] | None = None) -> None:
        """Was this picture extracted? Outside images matched against the open audit (check_view.py)."""
        if self.audit is None:
            return
        from .check_view import open_check

        open_check(self, paths)

    def compare_audits(self) -> None:
        from .compare_view import open_compare

        open_compare(self)

    def dragEnterEvent(self, e) -> None:
        if e.mimeData().hasUrls() and all(u.isLocalFile() for u in e.mimeData().urls()):
            e.acceptProposedAction()

    def dropEvent(self, e) -> None:
        """An audit folder dropped on the window opens it; image files are checked against the open audit."""
        paths = [u.toLocalFile() for u in e.mimeData().urls()]
        if len(paths) == 1 and Path(paths[0]).is_dir():
            self.open_audit(paths[0])
        elif self.audit is None:
            show_error(self, "Check images", "Open an audit first: dropped images are checked against the open "
                       "audit's generated and training images.")
        else:
            self.check_images(paths)
        e.acceptProposedAction()

    # ----- closing ------------------------------------------------------------------------------------------------
    def _ask_close(self) -> bool:
        return QMessageBox.question(
            self, "Stop the audit?", "An audit is running. Stop it and quit? Everything finished so far is saved "
            "and the audit can be resumed later.") == QMessageBox.Yes

    def closeEvent(self, e) -> None:
        if self.readers:
            # Close once the audit has been read: its thread cannot be interrupted, and it takes seconds at most.
            self._closing = True
            e.ignore()
            return
        if self.is_running():
            if self._closing or not self.confirm_close():
                e.ignore()
                return
            # Close once the worker has stopped at its next check, so the run ends cleanly.
            self._closing = True
            self.cancel_run()
            e.ignore()
            return
        self.settings.setValue("geometry", self.saveGeometry())
        if self.audit is not None:
            self._save_view_state()
            self.audit.shutdown()
        # Image loads under way end before the window does (those of closed views skip): none runs Python while the
        # interpreter shuts down.
        QThreadPool.globalInstance().waitForDone(5000)
        self.memory_timer.stop()
        super().closeEvent(e)
