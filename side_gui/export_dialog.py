"""Export: the evidence folder (docs/EVIDENCE.md) of the pairs the reviewer chooses, with the CLI's choices (band,
verdict, one run of the sweep, the N closest) plus "only the pairs selected in the gallery"; or, opened for one
training image (the Training images tab), the pairs of that image, as `side export --image N` writes them.

The dialog counts the pairs as the choice changes with the engine's own filters (evidence.count) over the
gallery's in-memory columns, so the number shown is the number written and recounting costs about a millisecond.
The export runs on the worker thread; progress, cancel and errors come back as signals, and it ends with a
message that can open the folder."""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from side_engine import events as ev
from side_engine.config import sweep
from side_engine.evidence import Columns, count
from side_engine.matching.metrics import Bands
from side_engine.vocabulary import BANDS_HIGH_FIRST, VERDICTS, BandName, Verdict

from .dialogs import show_error
from .gallery_view import PairModel, guide_text
from .worker import GeneratorWorker, Job, WorkerDialog

if TYPE_CHECKING:
    from .audit_view import AuditView

TOP_DEFAULT = 12
PROGRESS_EVERY_S = 0.1


def export_job(audit_dir: str, out_dir: str, filters: dict, bands: Bands,
               report: Callable[[int, int], None], key: tuple[str, bytes | None] | None = None) -> Job:
    """The worker's generator: export_evidence, whose progress (done, total) goes to `report` (a signal's emit: safe
    from the worker thread) at most every PROGRESS_EVERY_S, and which stops at the worker's cancel (control.check).
    key: (private key file, its passphrase or None) to sign with, loaded here: a passphrase's key derivation takes
    up to a second."""

    def run(control: ev.RunControl) -> Iterator:
        from side_engine.evidence import export_evidence
        from side_engine.evidence.signing import load_private_key

        sign_key = load_private_key(*key) if key else None

        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done == total or now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                report(done, total)

        yield from ()  # the worker runs generators; this one reports through `report` instead of yielding
        return str(export_evidence(audit_dir, out_dir, bands=bands, progress=progress, check=control.check,
                                   sign_key=sign_key, **filters))

    return run


def free_folder(parent: Path, name: str) -> str:
    """The first of NAME, NAME-2, NAME-3, ... in parent that is absent or empty."""
    for k in range(1, 10_000):
        p = parent / (name + (f"-{k}" if k > 1 else ""))
        if not p.exists() or (p.is_dir() and not any(p.iterdir())):
            return str(p)
    return str(parent / f"{name}-new")


def folder_problem(text: str) -> str | None:
    if not text.strip():
        return "Choose a folder for the export."
    p = Path(text).expanduser()
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        return f"{p} already exists and is not empty: choose a new folder."
    return None


def key_state(text: str) -> tuple[str, str | None, bool]:
    """(what to show under the key field, a problem that blocks the export or None, whether the key needs its
    passphrase). The fingerprint comes from KEY.pub where it lies beside the key, else from the key itself; neither
    reading derives a passphrase's key, so this is quick enough to run as the field is typed in."""
    from side_engine.errors import InputError
    from side_engine.evidence.signing import load_private_key, load_public_key, public_of

    if not text.strip():
        return "Not signed: the hashes will show that nothing changed, not who exported it.", None, False
    path = Path(text).expanduser()
    if not path.is_file():
        return "", f"{path}: no such key file.", False
    pub = path.with_name(path.name + ".pub")
    try:
        fingerprint = load_public_key(pub).fingerprint if pub.is_file() else None
    except InputError:
        fingerprint = None
    try:
        fingerprint = public_of(load_private_key(path)).fingerprint
        needs = False
    except InputError as e:
        if "passphrase" not in e.problem:
            return "", str(e), False
        needs = True
    shown = f"Signs as {fingerprint}" if fingerprint else "Signs with this key"
    return shown + (" (its passphrase is asked for on export)" if needs else "") + ".", None, needs


def pair_count(n: int) -> str:
    """A count of pairs as the gallery prints counts: "1 pair", "1,152 pairs"."""
    return f"{n:,} pair{'s' if n != 1 else ''}"


def band_item(bands: Bands, name: BandName) -> str:
    """A band as the band filter lists it: its name and its interval under these bands."""
    return f"{name.label}  {bands.band(name).interval}"


class ProgressRelay(QObject):
    """Carries the export's progress from the worker thread. The job holds this small object, never the dialog: a
    job that held the dialog could drop its last reference on the worker thread, and shiboken would then destroy
    the dialog (and whatever it keeps alive) from the main thread with the GIL held, which deadlocks against a
    signal the worker is emitting at that moment (seen once in a full suite run)."""

    progressed = Signal(int, int)


class ExportDialog(WorkerDialog):
    progressed = Signal(int, int)  # (done, total), emitted on the worker thread by the relay; slots here get it queued
    exportFinished = Signal(str)  # the folder written, '' after an error or a cancel; the worker's thread has ended

    def __init__(self, audit: AuditView, parent: QWidget | None = None, training_image: int | None = None):
        """training_image: export the pairs of this training image (its index in the audit) instead: every generated
        image that holds it among its stored neighbours, closest on it first."""
        super().__init__(parent)
        self.setObjectName("export_dialog")
        self.training_image = training_image
        self.setWindowTitle("Export evidence" if training_image is None else
                            f"Export evidence of training image #{training_image}")
        # A new dialog for every export: the closed one must not linger as a hidden child of the window.
        self.setAttribute(Qt.WA_DeleteOnClose)
        self.audit = audit
        self._near: tuple[int, Columns] | None = None  # (rows looked at, the columns of those near the image)
        m = audit.model
        self.selected = audit.gallery.selected_ids()
        self.audit_name = Path(audit.root).name

        n = len(self.selected)
        self.only_selected = QCheckBox("Only the pair selected in the gallery" if n == 1 else
                                       f"Only the {n:,} pairs selected in the gallery", objectName="export_selected")
        self.only_selected.setEnabled(bool(n))
        # One selected pair is just the gallery's current one; several are a deliberate choice, unless the dialog
        # came for a training image.
        self.only_selected.setChecked(n > 1 and training_image is None)
        self.band = QComboBox(objectName="export_band")
        self.band.addItem("any band", None)
        for name in BANDS_HIGH_FIRST:
            self.band.addItem(band_item(m.bands, name), name)
        self.verdict = QComboBox(objectName="export_verdict")
        self.verdict.addItem("any verdict", None)
        for verdict in VERDICTS:
            self.verdict.addItem(f"marked {verdict.label}", verdict)
        if training_image is None and np.any(m.verdict == Verdict.COPY):
            self.verdict.setCurrentIndex(self.verdict.findData(Verdict.COPY))
        self.run = QComboBox(objectName="export_run")
        # The audit's planned sweep: reading the runs off the stored images would sort every row on this thread.
        self.runs = [(r.guide, r.gamma) for r in sweep(audit.store.config)]
        self.run.addItems(["all runs"] + [guide_text(g, y) for g, y in self.runs])
        self.top_on = QCheckBox("Only the closest", objectName="export_top_on")
        self.top = QSpinBox(objectName="export_top", minimum=1, maximum=1_000_000, value=TOP_DEFAULT)
        self.top.setEnabled(False)
        self.top_on.toggled.connect(self.top.setEnabled)
        name = f"{self.audit_name}-evidence" + ("" if training_image is None else f"-training-{training_image}")
        self.folder = QLineEdit(free_folder(Path(audit.root).parent, name), objectName="export_folder")
        self.browse = QPushButton("Browse…", objectName="export_browse")
        self.browse.clicked.connect(self._browse)
        from .main_window import settings

        self.settings = settings()
        # The key file's path is remembered, never its content or passphrase.
        self.key = QLineEdit(str(self.settings.value("signing_key", "")), objectName="export_key",
                             placeholderText="none: the export is not signed")
        self.key.setToolTip("An Ed25519 private key (ssh-keygen -t ed25519, or side keygen). It signs manifest.json; "
                            "its public key and fingerprint go in README.txt and the report.")
        self.key_browse = QPushButton("Choose…", objectName="export_key_browse")
        self.key_browse.clicked.connect(self._choose_key)
        self.key_note = QLabel(objectName="export_key_fingerprint", wordWrap=True)
        self.key_note.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.count = QLabel(objectName="export_count")
        moved = m.bands != audit.store.config.band_set()
        self.bands_note = QLabel("Bands as set in the Bands tab, not the audit's (the export records this).",
                                 objectName="export_bands_note", visible=moved)
        self.status = QLabel(objectName="export_status", wordWrap=True)
        self.bar = QProgressBar(objectName="export_progress", visible=False)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Cancel)
        self.export_btn = self.buttons.addButton("Export", QDialogButtonBox.AcceptRole)
        self.export_btn.setObjectName("export_start")
        self.export_btn.setDefault(True)
        self.buttons.accepted.connect(self.start_export)
        self.buttons.rejected.connect(self.reject)

        top_row = QHBoxLayout()
        top_row.addWidget(self.top_on)
        top_row.addWidget(self.top)
        top_row.addWidget(QLabel("pairs"))
        top_row.addStretch(1)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(self.browse)
        form = QFormLayout()
        form.addRow("Band", self.band)
        form.addRow("Verdict", self.verdict)
        form.addRow("Run", self.run)
        form.addRow("", top_row)
        form.addRow("", self.only_selected)
        form.addRow("Into folder", folder_row)
        key_row = QHBoxLayout()
        key_row.addWidget(self.key, 1)
        key_row.addWidget(self.key_browse)
        form.addRow("Sign with key", key_row)
        form.addRow("", self.key_note)
        intro = QLabel("Writes the pairs, closest first, with a PDF and HTML report, a printable grid, and "
                       "everything needed to check and regenerate them (README.txt in the folder says how).",
                       wordWrap=True)
        lay = QVBoxLayout(self)
        if training_image is not None:
            path = m.train_paths[training_image] if 0 <= training_image < len(m.train_paths) else ""
            self.training_note = QLabel(
                f"<b>Training image #{training_image}</b> {html.escape(path)}: its pairs are every generated image "
                "that holds it among its stored neighbours, nearest or not, closest on it first. The band is that of "
                "the score on it. The report gets a page for it.", objectName="export_training", wordWrap=True)
            self.training_note.setTextFormat(Qt.RichText)
            lay.addWidget(self.training_note)
        lay.addWidget(intro)
        lay.addLayout(form)
        for w in (self.bands_note, self.count, self.bar, self.status, self.buttons):
            lay.addWidget(w)
        self.resize(560, self.sizeHint().height())

        for combo in (self.band, self.verdict, self.run):
            combo.currentIndexChanged.connect(self.update_count)
        self.only_selected.toggled.connect(self.update_count)
        self.top_on.toggled.connect(self.update_count)
        self.top.valueChanged.connect(self.update_count)
        self.folder.textChanged.connect(self.update_count)
        self.key.textChanged.connect(self._key_changed)
        self.progressed.connect(self._on_progress)
        self._key_changed()

    # ----- the choice ---------------------------------------------------------------------------------------------
    def filters(self) -> dict:
        run = self.runs[self.run.currentIndex() - 1] if self.run.currentIndex() > 0 else None
        return {"band": self.band.currentData(), "verdict": self.verdict.currentData(),
                "guide": run[0] if run else None, "gamma": run[1] if run else None,
                "top": self.top.value() if self.top_on.isChecked() else None,
                "image_ids": self.selected if self.only_selected.isChecked() else None,
                "training_images": None if self.training_image is None else [self.training_image]}

    def columns(self) -> PairModel | Columns:
        """What the count reads: the gallery's columns, or for a training image those of the generated images near
        it with their stored neighbours. An image not near it makes no pair, so count() over these is the export's
        count. They are found once, and again when images arrive (the dialog is window-modal: no verdict changes
        meanwhile), so a recount is count() alone: 5-8 ms at 500,000 images, most of them near the image."""
        m = self.audit.model
        j = self.training_image
        if j is None:
            return m
        a = self.audit.bands.arrays  # the score columns of the gallery's rows, in the same order
        n = min(len(m.ids), len(a.ids))
        if self._near is None or self._near[0] != n:
            # Over the flat neighbour column, a sixth of the time of any(axis=1) over the 2-d one (1 ms at 500k x 10);
            # its rows come in order, so a row listed twice is dropped without a sort.
            rows = np.flatnonzero(a.nn_idx[:n].reshape(-1) == j) // a.nn_idx.shape[1]
            rows = rows[np.r_[True, rows[1:] != rows[:-1]]] if len(rows) else rows
            # Where half the images or more hold it, every row (views, not a copy of most columns): the same count.
            take = slice(0, n) if 2 * len(rows) >= n else rows
            self._near = (n, Columns(m.ids[take], m.guide[take], m.gamma[take], m.best[take], m.verdict[take],
                                     a.nn_idx[take], a.nn_score[take]))
        return self._near[1]

    def update_count(self) -> None:
        f = self.filters()
        m = self.audit.model
        matching = count(self.columns(), m.bands, **{**f, "top": None})
        n = matching if f["top"] is None else min(matching, f["top"])
        if not n:
            text = "No pair matches this choice."
        elif n < matching:
            text = f"Exports the {n:,} closest of the {matching:,} matching pairs."
        else:
            text = f"Exports {pair_count(n)}."
        self.count.setText(text)
        problem = folder_problem(self.folder.text()) or self._key_problem
        self.status.setText(problem or "")
        self.export_btn.setEnabled(bool(n) and problem is None and self.worker is None)

    def _key_changed(self) -> None:
        # The key file is read when its field changes, not with every other choice the count follows.
        note, self._key_problem, self._needs_passphrase = key_state(self.key.text())
        self.key_note.setText(note)
        self.update_count()

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export into folder", str(Path(self.folder.text()).parent))
        if not path:
            return
        # A folder that already holds files gets a new one inside it rather than a refusal.
        if folder_problem(path) is not None:
            path = free_folder(Path(path), f"{self.audit_name}-evidence")
        self.folder.setText(path)

    def _choose_key(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Private key to sign the export with",
                                              self.key.text() or str(Path.home() / ".ssh"))
        if path:
            self.key.setText(path)

    def _signing(self) -> tuple[str, bytes | None] | bool | None:
        """The key to sign with and its passphrase; None for no signature, False if the passphrase was not given."""
        path = self.key.text().strip()
        if not path:
            return None
        if not self._needs_passphrase:
            return path, None
        from PySide6.QtWidgets import QInputDialog

        secret, ok = QInputDialog.getText(self, "Passphrase", f"Passphrase for {path}", QLineEdit.Password)
        return (path, secret.encode()) if ok else False

    # ----- the export ---------------------------------------------------------------------------------------------
    def start_export(self) -> None:
        if not self.export_btn.isEnabled():
            return
        key = self._signing()
        if key is False:
            return
        self.settings.setValue("signing_key", self.key.text().strip())
        out = str(Path(self.folder.text()).expanduser())
        # Bands moved in the Bands tab apply to the export too (recorded as such in its manifest).
        self._relay = ProgressRelay(self)
        # direct: the dialog's own signal is emitted where the export runs, as its listeners expect
        self._relay.progressed.connect(self.progressed, Qt.DirectConnection)
        job = export_job(self.audit.root, out, self.filters(), self.audit.model.bands, self._relay.progressed.emit,
                         key)
        self.worker = GeneratorWorker(job)
        self.worker.returned.connect(self._exported)
        self.worker.errored.connect(self._failed)
        # Bound methods only: a lambda would run on the worker's thread and touch widgets from there.
        self.worker.aborted.connect(self._aborted)
        self.worker.finished.connect(self._finished)
        self._result, self._n = "", count(self.columns(), self.audit.model.bands, **self.filters())
        self._set_busy(True)
        self.status.setText(f"Exporting {pair_count(self._n)}…")
        self.worker.start()

    def _set_busy(self, busy: bool) -> None:
        for w in (self.only_selected, self.band, self.verdict, self.run, self.top_on, self.folder, self.browse,
                  self.key, self.key_browse):
            w.setEnabled(not busy and (w is not self.only_selected or bool(self.selected)))
        self.top.setEnabled(not busy and self.top_on.isChecked())
        self.bar.setVisible(busy)
        self.bar.setRange(0, 0)
        self.export_btn.setEnabled(False)

    def _on_progress(self, done: int, total: int) -> None:
        self.bar.setRange(0, total)
        self.bar.setValue(done)

    def _exported(self, folder: str) -> None:
        self._result = folder

    def _aborted(self) -> None:
        self.status.setText("Export cancelled; nothing was written.")

    def _failed(self, message: str) -> None:
        self.status.setText("The export failed; nothing was written.")
        show_error(self, "Export failed", message)

    def _finished(self) -> None:
        w, self.worker = self.worker, None
        w.wait()  # the thread ends right after `finished`: no QThread outlives its worker
        self._set_busy(False)
        self.update_count()
        folder = self._result
        self.exportFinished.emit(folder)
        if folder:
            self._announce(folder)
            self.accept()
        elif self._close_when_done:
            super().reject()

    def _announce(self, folder: str) -> None:
        n = self._n
        box = QMessageBox(QMessageBox.Information, "Evidence exported",
                          f"Exported {pair_count(n)} to\n{folder}\n\nAnyone can check it later with:"
                          f'\nside verify "{folder}"' + (f' --trust "{self.key.text().strip()}.pub"'
                                                         if self.key.text().strip() else ""),
                          QMessageBox.Close, self.parentWidget() or self)
        box.setObjectName("export_done")
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.setTextInteractionFlags(Qt.TextSelectableByMouse)  # the folder and the command, to paste elsewhere
        box.addButton("Open folder", QMessageBox.AcceptRole).clicked.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(folder)))
        box.open()

