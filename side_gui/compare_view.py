"""File → Compare audits…: did the mitigation work, did the later checkpoint memorize more? Two or more audits are
picked (the open one as the baseline), read and scored on the worker (side_engine.questions.compare, seconds with
the intervals), and shown side by side: what differs between them, AMS and UMS against γ of every audit in one
plot per metric for the chosen band, and the table of differences (other minus baseline) with their 95% intervals,
those that exclude 0 marked. Audits whose descriptors, bands or k differ are compared only after "Compare anyway"."""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from side_engine import events as ev
from side_engine.matching.metrics import GroupResult
from side_engine.questions.compare import (
    AuditComparison,
    Change,
    ReadAudit,
    RunChange,
    compare,
    fact_differences,
    read_audit,
)
from side_engine.store import CONFIG_NAME
from side_engine.vocabulary import BANDS_HIGH_FIRST, BandName, Guide

from .band_panel import GUIDE_LINES, METRICS
from .dialogs import show_error
from .gallery_view import BAND_COLORS, guide_text
from .plots import ask_and_save, lay_out_for_print, plot_widget, save_figure
from .worker import GeneratorWorker, Job, WorkerDialog, ended

if TYPE_CHECKING:
    from .main_window import MainWindow

# One colour per audit, the baseline black: Okabe and Ito's palette, told apart with every colour vision.
AUDIT_COLORS = tuple(QColor(c) for c in ("#000000", "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00"))
DODGE = 0.01  # points of one γ side by side, this share of the largest γ apart: their error bars apart
GUIDE_SLOT = {Guide.NONE: 0.0, Guide.TD: -0.5, Guide.TI: 0.5}
EXCLUDES_ZERO = QColor("#c6dbef")  # a difference whose 95% interval excludes 0
REFUSED = QColor("#b35806")  # descriptors, bands or k that differ: accepted, and still said
NO_AUDIT = "Add the audits to compare: two or more."
AUDIT_COLUMN = 140  # pixels at most for the table's audit column


def audit_color(i: int) -> QColor:
    return AUDIT_COLORS[i % len(AUDIT_COLORS)]


def read_job(paths: Sequence[str]) -> Job:
    """The worker's job: each audit read (its facts and scores), yielding (done, total, path) before each."""
    def run(control: ev.RunControl) -> Iterator:
        read = []
        for i, p in enumerate(paths):
            control.check()
            yield i, len(paths), p
            read.append(read_audit(p))
        return read
    return run


def compare_job(read: Sequence[ReadAudit], accept: bool) -> Job:
    """The worker's job: every audit scored with its intervals and the differences to the baseline."""
    def run(control: ev.RunControl) -> Iterator:
        yield from ()
        return compare(read, accept_differences=accept, check=control.check)
    return run


def open_compare(window: MainWindow) -> CompareSetup:
    """Starts a comparison: the open audit, if any, as the baseline."""
    dlg = CompareSetup(window)
    if window.audit is not None:
        dlg.add(str(window.audit.root))
    dlg.open()
    return dlg


class CompareSetup(WorkerDialog):
    """Which audits, in which order (the first is the baseline); then reads them, asks where they measure
    differently, compares them on the worker and opens the CompareDialog."""

    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.setObjectName("compare_setup")
        self.setWindowTitle("Compare audits")
        self.setAttribute(Qt.WA_DeleteOnClose)
        self.main = window
        self._read: list[ReadAudit] | None = None
        self._comparison: AuditComparison | None = None

        intro = QLabel("The first audit is the baseline: each other audit is compared with it, run by run and band by "
                       "band (the other minus the baseline).", wordWrap=True)
        self.list = QListWidget(objectName="compare_list")
        self.list.setSelectionMode(QAbstractItemView.SingleSelection)
        self.list.currentRowChanged.connect(self._update)
        self.add_btn = QPushButton("Add folder…", objectName="compare_add")
        self.add_btn.clicked.connect(self._browse)
        self.recent = QComboBox(objectName="compare_recent")
        self.recent.activated.connect(self._add_recent)
        self.baseline_btn = QPushButton("Make baseline", objectName="compare_make_baseline")
        self.baseline_btn.clicked.connect(lambda: self._move_to(0))
        self.up_btn = QPushButton("Up", objectName="compare_up")
        self.up_btn.clicked.connect(lambda: self._move_to(self.list.currentRow() - 1))
        self.down_btn = QPushButton("Down", objectName="compare_down")
        self.down_btn.clicked.connect(lambda: self._move_to(self.list.currentRow() + 1))
        self.remove_btn = QPushButton("Remove", objectName="compare_remove")
        self.remove_btn.clicked.connect(self._remove)
        self.status = QLabel(NO_AUDIT, objectName="compare_status", wordWrap=True)
        self.bar = QProgressBar(objectName="compare_progress", visible=False)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Cancel)
        self.start_btn = self.buttons.addButton("Compare", QDialogButtonBox.AcceptRole)
        self.start_btn.setObjectName("compare_start")
        self.start_btn.setDefault(True)
        self.buttons.accepted.connect(self.start)
        self.buttons.rejected.connect(self.reject)

        side = QVBoxLayout()
        for w in (self.add_btn, self.recent, self.baseline_btn, self.up_btn, self.down_btn, self.remove_btn):
            side.addWidget(w)
        side.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.list, 1)
        row.addLayout(side)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addLayout(row, 1)
        lay.addWidget(self.status)
        lay.addWidget(self.bar)
        lay.addWidget(self.buttons)
        self.resize(640, 320)
        self._update()

    # ----- the list ---------------------------------------------------------------------------------------------------
    def paths(self) -> list[str]:
        return [self.list.item(i).data(Qt.UserRole) for i in range(self.list.count())]

    def add(self, path: str) -> bool:
        """Adds an audit folder to the end of the list; False (with the reason shown) if it is not one or is there."""
        p = str(Path(path).expanduser().resolve())
        if not (Path(p) / CONFIG_NAME).is_file():
            self.status.setText(f"{p} is not an audit folder (it has no {CONFIG_NAME}).")
            return False
        if p in self.paths():
            self.status.setText(f"{p} is in the list already.")
            return False
        self.list.addItem(p)
        item = self.list.item(self.list.count() - 1)
        item.setData(Qt.UserRole, p)
        self.list.setCurrentRow(self.list.count() - 1)
        self.status.setText("")
        self._update()
        return True

    def _browse(self) -> None:
        start = str(Path(self.paths()[-1]).parent) if self.paths() else str(self.main.settings.value("last_dir", ""))
        path = QFileDialog.getExistingDirectory(self, "Add an audit folder", start)
        if path:
            self.add(path)

    def _add_recent(self, index: int) -> None:
        path = self.recent.itemData(index)
        self.recent.setCurrentIndex(0)
        if path:
            self.add(path)

    def _move_to(self, row: int) -> None:
        current = self.list.currentRow()
        if current < 0 or not 0 <= row < self.list.count():
            return
        item = self.list.takeItem(current)
        self.list.insertItem(row, item)
        self.list.setCurrentRow(row)
        self._update()

    def _remove(self) -> None:
        current = self.list.currentRow()
        if current >= 0:
            self.list.takeItem(current)
            self._update()

    def _update(self) -> None:
        """Item texts (the baseline marked), the recent audits not in the list, and which buttons apply."""
        for i in range(self.list.count()):
            item = self.list.item(i)
            item.setText(f"{i + 1}. {item.data(Qt.UserRole)}" + ("  (baseline)" if i == 0 else ""))
        shown = set(self.paths())
        self.recent.blockSignals(True)
        self.recent.clear()
        self.recent.addItem("Add a recent audit…", None)
        for p in self.main.recent():
            if str(Path(p).resolve()) not in shown:
                self.recent.addItem(p, p)
        self.recent.setEnabled(self.recent.count() > 1 and self.worker is None)
        self.recent.blockSignals(False)
        row, n, idle = self.list.currentRow(), self.list.count(), self.worker is None
        self.baseline_btn.setEnabled(idle and row > 0)
        self.up_btn.setEnabled(idle and row > 0)
        self.down_btn.setEnabled(idle and 0 <= row < n - 1)
        self.remove_btn.setEnabled(idle and row >= 0)
        self.add_btn.setEnabled(idle)
        self.list.setEnabled(idle)
        self.start_btn.setEnabled(idle and n >= 2)
        if idle and n < 2 and not self.status.text():
            self.status.setText(NO_AUDIT)

    # ----- reading and comparing, on the worker -----------------------------------------------------------------------
    def start(self) -> None:
        if self.worker is not None or len(self.paths()) < 2:
            return
        self._read = None
        self.bar.setRange(0, len(self.paths()))
        self._run(read_job(self.paths()), self._read_done)

    def _run(self, job: Job, done) -> None:
        self.worker = GeneratorWorker(job)
        self.worker.yielded.connect(self._progress)
        self.worker.returned.connect(done)
        self.worker.errored.connect(self._failed)
        self.worker.aborted.connect(self._aborted)
        self.worker.finished.connect(self._finished)
        self.bar.setVisible(True)
        self._update()
        self.worker.start()

    def _progress(self, item) -> None:
        done, total, path = item
        self.bar.setValue(done)
        self.status.setText(f"Reading audit {done + 1} of {total}: {path}")

    def _read_done(self, read: list[ReadAudit]) -> None:
        self._read = read

    def _compared(self, comparison: AuditComparison) -> None:
        self._comparison = comparison

    def _failed(self, message: str) -> None:
        self.status.setText("Could not compare the audits.")
        show_error(self, "Could not compare the audits", message)

    def _aborted(self) -> None:
        self.status.setText("Cancelled.")

    def _finished(self) -> None:
        if not ended(self.sender(), self.worker):
            return
        self.worker = None
        self.bar.setVisible(False)
        self._update()
        if self._close_when_done:
            super().reject()
        elif self._comparison is not None:
            self._show(self._comparison)
        elif self._read is not None:
            self._next_after_reading(self._read)

    def _next_after_reading(self, read: list[ReadAudit]) -> None:
        """Compares at once, or first asks where the audits measure differently."""
        self._read = None
        refusing = [d for d in fact_differences([r.facts for r in read]) if d.refusing]
        if not refusing:
            self._compare(read, accept=False)
            return
        box = QMessageBox(QMessageBox.Warning, "The audits measure differently",
                          "Their " + " and ".join(d.what for d in refusing) + " differ, so the same AMS or UMS means "
                          "something else in each:", QMessageBox.Cancel, self)
        box.setObjectName("compare_differ")
        box.setInformativeText("\n\n".join(f"{d.what}:\n" + "\n".join(f"   {i}: {v}" for i, v in enumerate(d.values, 1))
                                           for d in refusing)
                               + "\n\nCompare anyway scores each audit under its own descriptor and bands, and the "
                               "comparison says so.")
        anyway = box.addButton("Compare anyway", QMessageBox.AcceptRole)
        anyway.setObjectName("compare_anyway")
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.finished.connect(lambda _r: self._answered(box.clickedButton() is anyway, read))
        self.status.setText("Their " + " and ".join(d.what for d in refusing) + " differ: compare them anyway?")
        box.open()

    def _answered(self, anyway: bool, read: list[ReadAudit]) -> None:
        if anyway:
            self._compare(read, accept=True)
        else:
            self.status.setText("Not compared: the audits measure differently.")

    def _compare(self, read: list[ReadAudit], accept: bool) -> None:
        self.status.setText(f"Scoring {len(read)} audits with their intervals…")
        self.bar.setRange(0, 0)
        self._run(compare_job(read, accept), self._compared)

    def _show(self, comparison: AuditComparison) -> None:
        self._comparison = None
        CompareDialog(comparison, self.parentWidget()).show()
        self.accept()



# ----- the comparison ---------------------------------------------------------------------------------------------
COLUMNS = ("audit", "run", "band", "N", "AMS\nbase %", "AMS\nother %", "Δ AMS\npp", "Δ AMS\n95% interval",
           "UMS\nbase %", "UMS\nother %", "Δ UMS\npp", "Δ UMS\n95% interval")
HEADER_TIPS = {
    3: "Images in the run: baseline / other (one number when equal). UMS compares fairly only at equal N",
    6: "Other minus baseline, in percentage points",
    7: "Newcombe's hybrid score interval of the difference of two proportions (Newcombe 1998); * excludes 0",
    10: "Other minus baseline, in percentage points",
    11: "Bootstrap of the difference, each audit's images resampled on their own (1000 resamples, fixed seed); "
        "* excludes 0, ~ a run with no match in the band (that side is its resolution at its N)",
}


def _pp(v: float) -> str:
    return f"{100 * v:+.2f}"


def interval_text(c: Change) -> str:
    lo, hi = c.interval
    return f"[{_pp(lo)}, {_pp(hi)}]" + (" *" if c.excludes_zero else "") + (" ~" if c.unseen else "")


class DifferenceModel(QAbstractTableModel):
    """The comparison's rows (one per other audit, shared run and band: a few dozen, bounded by the runs of a sweep),
    as the table shows them; the numbers behind each cell under Qt.UserRole."""

    def __init__(self, comparison: AuditComparison, parent=None):
        super().__init__(parent)
        self.c = comparison
        self.rows: tuple[RunChange, ...] = comparison.changes

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role=Qt.DisplayRole):
        if orientation != Qt.Horizontal:
            return None
        if role == Qt.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ToolTipRole:
            return HEADER_TIPS.get(section)
        return None

    def change(self, row: int, col: int) -> Change | None:
        r = self.rows[row]
        return r.ams if 4 <= col < 8 else r.ums if col >= 8 else None

    def value(self, row: int, col: int):
        """What a cell stands for: a number (a share, a difference, an interval) or the text of the first columns."""
        r = self.rows[row]
        if col == 0:
            return r.audit + 1
        if col == 1:
            return guide_text(r.guide, r.gamma)
        if col == 2:
            return str(r.band)
        if col == 3:
            return (r.n_baseline, r.n_other)
        c = self.change(row, col)
        assert c is not None
        return (c.baseline, c.other, c.difference, c.interval)[(col - 4) % 4]

    def data(self, index: QModelIndex, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        r = self.rows[row]
        c = self.change(row, col)
        if role == Qt.DisplayRole:
            if col == 0:
                return f"{r.audit + 1}  {self.c.audits[r.audit].label}"
            if col == 3:
                return str(r.n_baseline) if r.n_baseline == r.n_other else f"{r.n_baseline} / {r.n_other}"
            if c is None:
                return self.value(row, col)
            kind = (col - 4) % 4
            return (f"{100 * c.baseline:.2f}", f"{100 * c.other:.2f}", _pp(c.difference), interval_text(c))[kind]
        if role == Qt.UserRole:
            return self.value(row, col)
        if role == Qt.TextAlignmentRole:
            return Qt.AlignLeft | Qt.AlignVCenter if col < 3 else Qt.AlignRight | Qt.AlignVCenter
        if c is None or (col - 4) % 4 < 2:
            if role == Qt.ForegroundRole and col == 0:
                return audit_color(r.audit)
            if role == Qt.ToolTipRole and col == 0:
                return self.c.audits[r.audit].path
            return None
        if role == Qt.BackgroundRole and c.excludes_zero:
            return EXCLUDES_ZERO
        if role == Qt.FontRole and c.excludes_zero:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ToolTipRole:
            what = "AMS" if col < 8 else "UMS"
            tip = (f"The 95% interval of the {what} difference excludes 0: the audits differ beyond what sampling "
                   "explains" if c.excludes_zero else f"The 95% interval of the {what} difference includes 0")
            if c.unseen:
                tip += ("; one run has no match in this band, so resampling cannot vary it and its side of the "
                        "interval is its resolution at its N")
            return tip
        return None

    def tsv(self) -> str:
        """The table for a spreadsheet: one row per difference, the numbers in % and percentage points, the
        interval's ends in columns of their own."""
        head = ["audit", "audit_name", "guide", "gamma", "band", "n_baseline", "n_other"]
        for m in ("ams", "ums"):
            head += [f"{m}_baseline_%", f"{m}_other_%", f"{m}_difference_pp", f"{m}_ci_lo_pp", f"{m}_ci_hi_pp",
                     f"{m}_excludes_0"]
        lines = ["\t".join(head)]
        for r in self.rows:
            cells = [str(r.audit + 1), self.c.audits[r.audit].label, str(r.guide), f"{r.gamma:g}", str(r.band),
                     str(r.n_baseline), str(r.n_other)]
            for c in (r.ams, r.ums):
                cells += [f"{100 * v:.4f}" for v in (c.baseline, c.other, c.difference, *c.interval)]
                cells.append("yes" if c.excludes_zero else "no")
            lines.append("\t".join(cells))
        return "\n".join(lines) + "\n"


def facts_html(c: AuditComparison) -> str:
    """A table with a column per audit (its name in its plots' colour, its folder) and a row per fact in which they
    differ, those that change what the numbers mean first, marked as accepted; then the runs only one audit holds."""
    cell = lambda text, style="": f'<td style="padding: 1px 10px 1px 0; {style}">{text}</td>'  # noqa: E731
    rows = ["<tr>" + cell("") + "".join(cell(f'<b style="color:{audit_color(i).name()}">■ {i + 1}'
                                             + (" (baseline)" if i == 0 else "") + "</b>")
                                        for i in range(len(c.audits))) + "</tr>",
            "<tr>" + cell("audit") + "".join(cell(html.escape(a.label)) for a in c.audits) + "</tr>",
            "<tr>" + cell("folder") + "".join(cell(html.escape(a.path), "color: gray;") for a in c.audits) + "</tr>"]
    for d in c.differences:
        style = f"color: {REFUSED.name()};" if d.refusing else ""
        what = f"⚠ <b>{html.escape(d.what)}</b> (accepted)" if d.refusing else f"<b>{html.escape(d.what)}</b>"
        rows.append("<tr>" + cell(what, style) + "".join(cell(html.escape(v), style) for v in d.values) + "</tr>")
    head = ("<b>They differ in the facts below</b>" if c.differences else
            "<b>They differ in no recorded fact</b> (descriptor, bands, model, training set, k, sampler, runs, N)")
    if any(d.refusing for d in c.differences):
        head += (f' <span style="color:{REFUSED.name()}">— they measure differently: each audit is scored under its '
                 "own descriptor and bands</span>")
    return (f"{head}; every difference below is the other audit minus audit 1.<table cellspacing='0'>"
            + "".join(rows) + "</table>")


def summary_text(c: AuditComparison) -> str:
    """Under the table: how many differences exclude 0, how to read that, and the runs the table leaves out."""
    n = len(c.changes)
    marked = sum(x.excludes_zero for r in c.changes for x in (r.ams, r.ums))
    text = (f"{marked} of the {2 * n} differences have a 95% interval that excludes 0 (bold, shaded, *). Each "
            "interval stands alone: among many, about 1 in 20 of those that truly are 0 excludes it by chance."
            if n else "The audits share no run, so there is nothing to subtract: their curves are above.")
    runs = sorted({key for a in c.audits for key in a.runs}, key=lambda k: (k[1], k[0]))
    lone = []
    for key in runs:
        holders = [str(i + 1) for i, a in enumerate(c.audits) if key in a.runs]
        if len(holders) < len(c.audits):
            missing = [str(i + 1) for i, a in enumerate(c.audits) if key not in a.runs]
            lone.append(f"{guide_text(*key)} only in {holders[0]}" if len(holders) == 1 else
                        f"{guide_text(*key)} in {', '.join(holders)}, not in {', '.join(missing)}")
    if lone:
        text += " Runs that not every audit holds (in the plots, not the table): " + "; ".join(lone) + "."
    return text


class CompareDialog(QDialog):
    """The comparison: what differs, AMS and UMS against γ of every audit for one band, the differences table."""

    def __init__(self, comparison: AuditComparison, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("compare_dialog")
        self.setWindowTitle("Compare audits: " + " · ".join(a.label for a in comparison.audits))
        self.setAttribute(Qt.WA_DeleteOnClose)
        self.c = comparison
        self.curves: dict[tuple[str, int, Guide], pg.PlotDataItem] = {}

        self.facts = QLabel(facts_html(comparison), objectName="compare_facts", wordWrap=True)
        self.facts.setTextFormat(Qt.RichText)
        self.facts.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.facts.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        facts_area = QScrollArea(objectName="compare_facts_area", widgetResizable=True)
        facts_area.setWidget(self.facts)
        facts_area.setFrameShape(QScrollArea.NoFrame)

        self.band = QComboBox(objectName="compare_band")
        for name in BANDS_HIGH_FIRST:
            self.band.addItem(f"{name.label} band", name)
        self.band.currentIndexChanged.connect(self._fill_plots)
        self.key = QLabel(objectName="compare_key", wordWrap=True)
        self.ams_plot, self.ums_plot = (self._gamma_plot(m) for m in METRICS)
        band_row = QHBoxLayout()
        band_row.addWidget(QLabel("Band"))
        band_row.addWidget(self.band)
        band_row.addWidget(self.key, 1)
        plots = QWidget()
        pl = QGridLayout(plots)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addLayout(band_row, 0, 0, 1, 2)
        pl.addWidget(self.ams_plot, 1, 0)
        pl.addWidget(self.ums_plot, 1, 1)

        self.model = DifferenceModel(comparison, self)
        self.table = QTableView(objectName="compare_table")
        self.table.setModel(self.model)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        self.table.resizeColumnsToContents()
        # the audit's name is in the facts above, in its colour: here its number and as much of it as fits
        self.table.setColumnWidth(0, min(self.table.columnWidth(0), AUDIT_COLUMN))
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
        self.summary = QLabel(summary_text(comparison), objectName="compare_summary", wordWrap=True)
        self.summary.setStyleSheet("color: gray;")

        self.saved = QLabel(objectName="compare_saved", wordWrap=True)
        self.saved.setStyleSheet("color: gray;")
        copy = QPushButton("Copy table", objectName="compare_copy")
        copy.setToolTip("The differences as tab-separated values, for a spreadsheet")
        copy.clicked.connect(self.copy_table)
        save = QPushButton("Save plots…", objectName="compare_save")
        save.setToolTip("Both plots of the shown band as PNG (print resolution) and SVG, naming the audits")
        save.clicked.connect(self._save_plots)
        close = QPushButton("Close", objectName="compare_close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.saved, 1)
        buttons.addWidget(copy)
        buttons.addWidget(save)
        buttons.addWidget(close)

        lower = QWidget()
        ll = QVBoxLayout(lower)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.table, 1)
        ll.addWidget(self.summary)
        split = QSplitter(Qt.Vertical, objectName="compare_splitter")
        split.addWidget(facts_area)
        split.addWidget(plots)
        split.addWidget(lower)
        split.setStretchFactor(1, 3)
        split.setStretchFactor(2, 2)
        lay = QVBoxLayout(self)
        lay.addWidget(split, 1)
        lay.addLayout(buttons)

        screen = (parent.screen() if parent is not None else QGuiApplication.primaryScreen()).availableGeometry()
        w, h = min(1180, screen.width() - 40), min(860, screen.height() - 60)
        self.resize(w, h)
        facts_h = min(self.facts.heightForWidth(w - 40) + 8, h // 4)
        split.setSizes([facts_h, (h - facts_h) * 3 // 5, (h - facts_h) * 2 // 5])
        self._fill_plots()

    # ----- plots ---------------------------------------------------------------------------------------------------
    def current_band(self) -> BandName:
        return BandName(self.band.currentData())

    def _gamma_plot(self, metric: str, cached: bool = True) -> pg.PlotWidget:
        w = plot_widget(f"compare_plot_{metric}", cached)
        w.setTitle(f"{METRICS[metric]} against γ", color="k")
        w.setLabel("left", f"{METRICS[metric]} %")
        w.setLabel("bottom", "γ (guidance scale)")
        # percentages as they are: a run of small shares would otherwise read "AMS % (x0.001)"
        w.getAxis("left").enableAutoSIPrefix(False)
        w.showGrid(x=True, y=True, alpha=0.2)
        return w

    def key_html(self, bars: bool = True) -> str:
        """The plots' key: each audit in its colour, how guides are drawn, and the band shown."""
        band = self.current_band()
        audits = " &nbsp; ".join(f'<span style="color:{audit_color(i).name()}"><b>— {i + 1}</b> '
                                 f"{html.escape(a.label)}</span>" for i, a in enumerate(self.c.audits))
        guides = {r.guide for rs in self.c.results for r in rs}
        styles = [f"{'—' if style == Qt.SolidLine else '- -'} {g.tag}" for g, style in GUIDE_LINES if g in guides]
        if Guide.NONE in guides:
            styles.append(f"★ {Guide.NONE.tag} (γ=0)")
        return (f"{audits}<br>{' &nbsp; '.join(styles)}; band "
                f'<span style="color:{BAND_COLORS[band].name()}"><b>{band.label}</b></span>'
                + ("; bars: 95% intervals" if bars else ""))

    def _x(self, i: int, guide: Guide, gamma: float, span: float) -> float:
        """Each audit's points of one γ in a group of their own, TD left of TI within it, so that no error bar
        hides another."""
        return gamma + (2 * (i - (len(self.c.audits) - 1) / 2) + GUIDE_SLOT[guide]) * DODGE * span

    def _fill_plots(self) -> None:
        self.key.setText(self.key_html())
        self.curves.clear()
        for plot, metric in ((self.ams_plot, "ams"), (self.ums_plot, "ums")):
            plot.clear()
            self._draw(plot, metric, self.curves)

    def _draw(self, plot: pg.PlotWidget, metric: str, curves: dict) -> None:
        """Every audit's runs of one metric in the chosen band, in the audit's colour: guided runs as lines from
        Random's point, Random as a star, each point with its 95% interval (AMS Wilson, UMS bootstrap)."""
        band = self.current_band()
        span = max([r.gamma for rs in self.c.results for r in rs] + [1.0])
        for i, results in enumerate(self.c.results):
            color = audit_color(i)
            random = [g for g in results if g.guide is Guide.NONE]
            for guide, style in GUIDE_LINES:
                runs = [g for g in results if g.guide == guide]
                if not runs:
                    continue
                runs = random + runs
                curves[(metric, i, guide)] = plot.plot(
                    [self._x(i, g.guide, g.gamma, span) for g in runs], [100 * getattr(g, metric)[band] for g in runs],
                    pen=pg.mkPen(color, width=2, style=style), symbol="o", symbolSize=6, symbolBrush=color)
            if random:
                curves[(metric, i, Guide.NONE)] = plot.plot(
                    [self._x(i, Guide.NONE, random[0].gamma, span)], [100 * getattr(random[0], metric)[band]], pen=None,
                    symbol="star", symbolSize=16, symbolBrush=color, symbolPen="k")
            self._error_bars(plot, metric, i, results, span)

    def _error_bars(self, plot: pg.PlotWidget, metric: str, i: int, results: Sequence[GroupResult],
                    span: float) -> None:
        band = self.current_band()
        runs = [g for g in results if band in getattr(g, f"{metric}_ci")]
        if not runs:
            return
        y = np.array([100 * getattr(g, metric)[band] for g in runs])
        lo, hi = (np.array([100 * getattr(g, f"{metric}_ci")[band][k] for g in runs]) for k in (0, 1))
        plot.addItem(pg.ErrorBarItem(x=np.array([self._x(i, g.guide, g.gamma, span) for g in runs]), y=y, top=hi - y,
                                     bottom=y - lo, beam=0.8 * DODGE * span, pen=pg.mkPen(audit_color(i), width=1.5)))

    # ----- copying and saving -------------------------------------------------------------------------------------
    def copy_table(self) -> None:
        QGuiApplication.clipboard().setText(self.model.tsv())
        self.saved.setText(f"Copied {self.model.rowCount()} rows to the clipboard (tab-separated).")

    def _save_plots(self) -> None:
        ask_and_save(self, "Save the comparison's plots in", self.save_plots, self.saved)

    def caption(self, metric: str) -> str:
        """A saved figure's title: what it shows, of which audits, in which band, over how many images."""
        band = self.current_band()
        ns = sorted({r.n for rs in self.c.results for r in rs})
        n = "no images" if not ns else f"N = {ns[0]}" if len(ns) == 1 else f"N = {ns[0]}–{ns[-1]}"
        measures = {(a.bands.band(band).interval, a.descriptor) for a in self.c.audits}
        if len(measures) == 1:
            ((interval, descriptor),) = measures
            edges = f"{interval}, descriptor {html.escape(descriptor)}, in every audit"
        else:
            edges = "; ".join(f"{i + 1}: {a.bands.band(band).interval} ({html.escape(a.descriptor)})"
                              for i, a in enumerate(self.c.audits))
        interval = "Wilson" if metric == "ams" else "bootstrap"
        return (f'<span style="color:black"><span style="font-size:14pt"><b>{METRICS[metric]} against γ, '
                f"{band.label} band</b></span><br>{self.key_html(bars=False)}<br>band {edges}; {n} images per run<br>"
                f"bars: 95% intervals ({interval})</span>")

    def _figure(self, metric: str) -> pg.PlotWidget:
        """One metric's plot for print, of a fixed size with its caption, whatever the window's size."""
        fig = self._gamma_plot(metric, cached=False)
        lay_out_for_print(fig, self.caption(metric))
        self._draw(fig, metric, {})
        fig.plotItem.vb.autoRange()
        return fig

    def save_plots(self, folder: str | Path) -> list[Path]:
        """compare_ams_BAND_vs_gamma.png and .svg, and the same for UMS, in folder. Raises OSError where it cannot
        be written."""
        band = self.current_band()
        names = " vs ".join(a.label for a in self.c.audits)
        written = []
        for metric in METRICS:
            fig = self._figure(metric)
            try:
                written += save_figure(fig, Path(folder) / f"compare_{metric}_{band}_vs_gamma",
                                       f"{METRICS[metric]} against γ, {band.label} band: {names}")
            finally:
                fig.close()
                fig.deleteLater()
        return written
