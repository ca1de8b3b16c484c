"""Export: choose pairs (selected, all in a band, all marked Copy), write a PNG contact sheet of them and,
where side_engine has its evidence exporter, the evidence package. Runs on the worker thread."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QRadioButton, QVBoxLayout)

from side_engine import events as ev
from side_engine.metrics import BAND_NAMES
from side_engine.store import AuditStore

from .dialogs import show_error
from .worker import GeneratorWorker

CELL = 128
PER_ROW = 4
PER_SHEET = 48


def _tile(path: Path) -> Image.Image:
    img = Image.open(path).convert("RGB")
    if max(img.size) < CELL:
        # Nearest keeps a 16-pixel image's pixels visible.
        return img.resize((CELL, CELL), Image.NEAREST)
    img.thumbnail((CELL, CELL), Image.LANCZOS)
    return img


def write_grid(audit_dir: str, ids: list[int], out_dir: str, control: ev.RunControl | None = None):
    """Generator: writes pairs_001.png, ... (generated | nearest training image, caption); returns the paths."""
    store = AuditStore.open(audit_dir)
    train_root = Path(store.meta("train_path") or "")
    train = store.training_images()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        sheets = [ids[i:i + PER_SHEET] for i in range(0, len(ids), PER_SHEET)]
        for s, chunk in enumerate(sheets, start=1):
            rows = (len(chunk) + PER_ROW - 1) // PER_ROW
            cell_w, cell_h = 2 * CELL + 12, CELL + 30
            sheet = Image.new("RGB", (PER_ROW * cell_w, rows * cell_h), "white")
            draw = ImageDraw.Draw(sheet)
            for k, image_id in enumerate(chunk):
                if control is not None:
                    control.check()
                row = store.image(image_id)
                x, y = (k % PER_ROW) * cell_w + 4, (k // PER_ROW) * cell_h + 4
                sheet.paste(_tile(store.path(row.path)), (x, y))
                sheet.paste(_tile(train_root / train[row.best_train][1]), (x + CELL + 4, y))
                run = "random" if row.guide == "none" else f"{row.guide} g={row.gamma:g}"
                draw.text((x, y + CELL + 3), f"#{row.id} {run} score {row.best:.3f} train #{row.best_train}",
                          fill="black")
            path = out / f"pairs_{s:03d}.png"
            sheet.save(path)
            written.append(str(path))
            yield ev.Progress("export", s, len(sheets))
    finally:
        store.close()
    return written


def export_job(audit_dir: str, ids: list[int], out_dir: str, evidence: bool, bands):
    def run(control: ev.RunControl):
        paths = yield from write_grid(audit_dir, ids, out_dir, control)
        if evidence:
            from side_engine.evidence import export_evidence

            paths.append(str(export_evidence(audit_dir, Path(out_dir) / "evidence", image_ids=ids, bands=bands)))
        return paths

    return run


def evidence_available() -> bool:
    return importlib.util.find_spec("side_engine.evidence") is not None


class ExportDialog(QDialog):
    def __init__(self, audit, parent=None):
        super().__init__(parent)
        self.setObjectName("export_dialog")
        self.setWindowTitle("Export pairs")
        self.audit = audit
        self.worker: GeneratorWorker | None = None
        selected = audit.gallery.selected_ids()
        self.which = QButtonGroup(self)
        self.r_sel = QRadioButton(f"Selected pairs ({len(selected)})", objectName="export_selected")
        self.r_band = QRadioButton("All in band", objectName="export_band")
        self.band = QComboBox(objectName="export_band_name")
        self.band.addItems(list(reversed(BAND_NAMES)))
        self.r_copy = QRadioButton("All marked Copy", objectName="export_copy")
        for k, r in enumerate((self.r_sel, self.r_band, self.r_copy)):
            self.which.addButton(r, k)
        (self.r_sel if selected else self.r_band).setChecked(True)
        self.r_sel.setEnabled(bool(selected))
        self.folder = QLineEdit(str(Path(audit.root) / "export"), objectName="export_folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.evidence = QCheckBox("Also write the evidence package (manifest, hashes, verify script)",
                                  objectName="export_evidence")
        self.evidence.setChecked(evidence_available())
        self.evidence.setEnabled(evidence_available())
        self.status = QLabel()
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self._export)
        self.buttons.rejected.connect(self.reject)
        band_row = QHBoxLayout()
        band_row.addWidget(self.r_band)
        band_row.addWidget(self.band)
        band_row.addStretch(1)
        folder_row = QHBoxLayout()
        folder_row.addWidget(QLabel("Folder"))
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        lay = QVBoxLayout(self)
        for item in (self.r_sel, band_row, self.r_copy, folder_row, self.evidence, self.status, self.buttons):
            (lay.addLayout if isinstance(item, QHBoxLayout) else lay.addWidget)(item)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export folder", self.folder.text())
        if path:
            self.folder.setText(path)

    def chosen_ids(self) -> list[int]:
        m = self.audit.model
        if self.r_sel.isChecked():
            return self.audit.gallery.selected_ids()
        if self.r_band.isChecked():
            return [int(i) for i in m.ids[m.band == self.band.currentText()]]
        return [int(i) for i in m.ids[m.verdict == "copy"]]

    def _export(self) -> None:
        ids = self.chosen_ids()
        if not ids:
            self.status.setText("No pairs match this choice.")
            return
        self.buttons.setEnabled(False)
        self.status.setText(f"Exporting {len(ids)} pairs…")
        self.worker = GeneratorWorker(export_job(self.audit.root, ids, self.folder.text(), self.evidence.isChecked(),
                                                 self.audit.bands.bands))
        self.worker.yielded.connect(lambda e: self.status.setText(f"Sheet {e.done} of {e.total}…"))
        self.worker.returned.connect(self._done)
        self.worker.errored.connect(lambda msg: show_error(self, "Export failed", msg))
        self.worker.finished.connect(self._finished)
        self.worker.start()

    def _done(self, paths) -> None:
        self.status.setText("Wrote:\n" + "\n".join(paths[:6]) + ("\n…" if len(paths) > 6 else ""))

    def _finished(self) -> None:
        self.worker.wait()
        self.worker = None
        self.buttons.setEnabled(True)
        self.buttons.button(QDialogButtonBox.Ok).setText("Export again")
