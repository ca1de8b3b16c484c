"""Live bands: edges in spin boxes and as draggable regions on the histogram of best scores (with each band's count),
presets that fit the audit's scores, the AMS/UMS table (bands x runs, each share with its count) and AMS/UMS against
gamma, which save as figures for print (PNG and SVG, with the audit, its bands and N written in). Every number comes
from side_engine.matching.metrics.GroupedScores (the same results as score_groups, without re-sorting on each move);
moving an edge re-scores after a short debounce so a drag stays fluid. 95% intervals: AMS (Wilson) with every
re-score; UMS (bootstrap, side_engine.matching.uncertainty, about 0.1 s a run) on the worker thread, shown when they
come."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from side_engine import events as ev
from side_engine.matching.metrics import (
    BAND_NAMES,
    NL2_BANDS,
    SSCD_BANDS,
    Bands,
    GroupedScores,
    GroupResult,
    ScoreArrays,
    at_chance,
)
from side_engine.matching.uncertainty import ums_intervals
from side_engine.vocabulary import GUIDES, OUTSIDE, BandName, Direction, Guide

from .gallery_view import BAND_COLORS, guide_text
from .plots import ask_and_save, lay_out_for_print, plot_widget, save_figure, set_data
from .worker import GeneratorWorker, Job, ended

PRESETS = {"SSCD (paper)": SSCD_BANDS, "nL2 (paper, reconstructed)": NL2_BANDS}
EDIT_DEBOUNCE_MS = 120  # a drag stays fluid and the table follows it
STREAM_DEBOUNCE_MS = 1000
# Points and error bars of one gamma sit side by side, in these slots of DODGE x the largest gamma: drawn at the same x
# the bars of three bands and two guides hid each other.
SLOTS = {(Guide.NONE, BandName.LOW): -1, (Guide.NONE, BandName.MID): 0, (Guide.NONE, BandName.HIGH): 1,
         (Guide.TD, BandName.LOW): -3, (Guide.TD, BandName.MID): -2, (Guide.TD, BandName.HIGH): -1,
         (Guide.TI, BandName.LOW): 1, (Guide.TI, BandName.MID): 2, (Guide.TI, BandName.HIGH): 3}
# Guided runs drawn as lines: TD solid, TI dashed; Random is a star at gamma 0, one per band in the band's colour.
GUIDE_LINES = ((Guide.TD, Qt.SolidLine), (Guide.TI, Qt.DashLine))
METRICS = {"ams": "AMS", "ums": "UMS"}
DODGE = 0.008
WARNING = QColor("#fdd0a2")  # a guided run whose guidance does not reach its labels
OFF_TARGET = "guidance is not reaching its target labels"


def target_tooltip(rate: float | None, n: int, chance: float | None) -> str:
    """What the on-target figure means, and why a run at chance is flagged; '' for Random."""
    if rate is None:
        return ""
    text = (f"{100 * rate:.0f}% of this run's images are put in their target label by the guiding classifier"
            + ("" if chance is None else f" (chance: {100 * chance:.0f}%)"))
    if at_chance(rate, n, chance):
        text = f"{OFF_TARGET}: {text}, so this run's AMS/UMS say nothing about the model"
    return text


def ums_intervals_job(arrays: ScoreArrays, bands: Bands) -> Job:
    """The worker's job: the UMS bootstrap intervals of every run for these bands, yielded once with their key.
    A cancel (the bands moved again) stops it between runs."""
    def job(control: ev.RunControl) -> Iterator:
        yield (bands, len(arrays.ids)), ums_intervals(arrays, bands, check=control.check)
    return job


class BandPanel(QWidget):
    """Holds the audit's score columns; emits resultsChanged(results, bands) after each re-score."""

    bandsChanged = Signal(object)  # Bands, at once (badges)
    resultsChanged = Signal(object, object)  # list[GroupResult], Bands, debounced

    def __init__(self, bands: Bands, arrays: ScoreArrays, grouped: GroupedScores, parent: QWidget | None = None):
        """grouped: the same rows as arrays (GroupedScores.of), made off the GUI thread on opening."""
        super().__init__(parent)
        self.bands = bands
        self.arrays = arrays
        self.grouped = grouped
        self.results: list[GroupResult] = []
        self.chance: float | None = None
        # What a saved figure says the audit is (describe_audit)
        self.audit_name = ""
        self.descriptor = ""
        self._curves: dict[tuple[str, Guide, BandName], pg.PlotDataItem] = {}
        self._bars: dict[tuple[str, Guide, BandName], pg.ErrorBarItem] = {}
        # UMS intervals by run, for the (bands, rows) they were computed for; the worker computing the next ones
        self.ums_ci: dict[tuple[Guide, float], dict[str, tuple[float, float]]] = {}
        self._ci_key = None
        self._ci_worker: GeneratorWorker | None = None
        self._stale = False
        self._debounce = QTimer(self, singleShot=True, interval=EDIT_DEBOUNCE_MS)
        self._debounce.timeout.connect(self.rescore)
        # The shown plots brought up to date one per turn of the event loop: redrawn together, their repaints came
        # in one turn, 35-50 ms of the GUI thread while an audit streamed in (BENCHMARKS.md, GUI responsiveness).
        self._turns: list[Callable[[], None]] = []
        self._next_turn = QTimer(self, singleShot=True, interval=0)
        self._next_turn.timeout.connect(self._take_turn)
        self._hist_stale = False
        top = bands.direction.top
        bottom = 0.0 if bands.direction is Direction.DISTANCE else -1.0  # a cosine goes down to -1

        self.spins: dict[tuple[BandName, int], QDoubleSpinBox] = {}
        edges = QGridLayout()
        edges.addWidget(QLabel("from"), 0, 1)
        edges.addWidget(QLabel("to"), 0, 2)
        for r, name in enumerate(BAND_NAMES, start=1):
            swatch = QLabel(name.label)
            swatch.setStyleSheet(f"color: white; background: {BAND_COLORS[name].name()}; padding: 2px 6px;"
                                 " border-radius: 3px; font-weight: bold;")
            edges.addWidget(swatch, r, 0)
            for c in (0, 1):
                s = QDoubleSpinBox(objectName=f"band_{name}_{'lo' if c == 0 else 'hi'}", decimals=3,
                                   singleStep=0.01, minimum=bottom, maximum=top)
                s.setKeyboardTracking(False)
                s.valueChanged.connect(self._spin_changed)
                edges.addWidget(s, r, c + 1)
                self.spins[(name, c)] = s
        self.preset = QComboBox(objectName="band_preset")
        self.preset.addItem("Presets…", None)
        self.preset.addItem("As the audit opened (audit.toml)", bands)
        for k, preset in PRESETS.items():
            if preset.direction is bands.direction:  # bands of the other direction cannot score these scores
                self.preset.addItem(k, preset)
        self.preset.activated.connect(self._preset)
        self.problem = QLabel(objectName="band_problem")
        self.problem.setStyleSheet("color: #d62728;")
        self.problem.setWordWrap(True)
        direction = QLabel("Scores are distances: smaller = closer" if bands.direction is Direction.DISTANCE
                           else "Scores are similarities: larger = closer")
        direction.setStyleSheet("color: gray;")
        self.counted = QLabel(objectName="band_counted")
        self.counted.setStyleSheet("color: gray;")
        # On a linear axis the many images in no band set the scale, and a band of a few images looks empty.
        self.log_counts = QCheckBox("log counts", objectName="hist_log", checked=True)
        self.log_counts.toggled.connect(self._update_histogram)

        self.hist = plot_widget("band_histogram")
        self.hist.setLabel("bottom", f"best score ({bands.direction.unit}, {bands.direction.closer})")
        self.hist.setMouseEnabled(x=False, y=False)
        self.hist.hideButtons()
        self.hist.disableAutoRange()
        self.hist_curve = self.hist.plot(stepMode="center", brush=(80, 80, 80, 120), pen=pg.mkPen("k"))
        self.band_counts: dict[BandName, pg.TextItem] = {}
        self.regions: dict[BandName, pg.LinearRegionItem] = {}
        for name in BAND_NAMES:
            c = BAND_COLORS[name]
            reg = pg.LinearRegionItem(brush=pg.mkBrush(c.red(), c.green(), c.blue(), 50),
                                      pen=pg.mkPen(c, width=2), bounds=(bottom, top), swapMode="block")
            reg.setZValue(-10)
            reg.sigRegionChanged.connect(lambda r, n=name: self._region_changed(n, r))
            self.hist.addItem(reg)
            self.regions[name] = reg
            self.band_counts[name] = pg.TextItem(color=c, anchor=(0.5, 0))
            self.hist.addItem(self.band_counts[name], ignoreBounds=True)

        self.table = QTableWidget(objectName="metrics_table")
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)

        self.ams_plot, self.ums_plot = (self._gamma_plot(m) for m in METRICS)
        save = QPushButton("Save plots…", objectName="save_plots")
        save.setToolTip("Both plots as PNG (print resolution) and SVG, with the audit, its bands and N written in")
        save.clicked.connect(self._save_plots)
        self.saved = QLabel(objectName="plots_saved", wordWrap=True)
        self.saved.setStyleSheet("color: gray;")

        left = QVBoxLayout()
        left.addLayout(edges)
        row = QHBoxLayout()
        row.addWidget(self.preset)
        row.addStretch(1)
        left.addLayout(row)
        left.addWidget(direction)
        left.addWidget(self.counted)
        left.addWidget(self.log_counts)
        left.addWidget(self.problem)
        left.addStretch(1)
        head = QHBoxLayout()
        head.addLayout(left)
        head.addWidget(self.hist, 1)
        upper = QWidget()
        upper.setLayout(head)
        plots = QWidget()
        pl = QGridLayout(plots)
        pl.setContentsMargins(0, 0, 0, 0)
        # One key for both plots, above them: a legend inside a plot sat over the curves and the Random stars, and
        # one in a plot's title pushed the plot past its widget's edge where the window was narrow.
        self.key = QLabel(objectName="plots_key", wordWrap=True, alignment=Qt.AlignCenter)
        pl.addWidget(self.key, 0, 0, 1, 2)
        pl.addWidget(self.ams_plot, 1, 0)
        pl.addWidget(self.ums_plot, 1, 1)
        saving = QHBoxLayout()
        saving.addStretch(1)
        saving.addWidget(self.saved)
        saving.addWidget(save)
        pl.addLayout(saving, 2, 0, 1, 2)
        split = QSplitter(Qt.Vertical, objectName="bands_splitter")
        split.addWidget(upper)
        split.addWidget(self.table)
        split.addWidget(plots)
        split.setSizes([240, 160, 360])
        lay = QVBoxLayout(self)
        lay.addWidget(split)

        self._show_bands(bands)
        self._update_histogram()
        self.rescore()

    # ----- editing ---------------------------------------------------------------------------------------------------
    def set_bands(self, bands: Bands) -> None:
        self._show_bands(bands)
        self._apply(bands)

    def _show_bands(self, bands: Bands) -> None:
        for name in BAND_NAMES:
            lo, hi = getattr(bands, name)
            for c, v in ((0, lo), (1, hi)):
                s = self.spins[(name, c)]
                s.blockSignals(True)
                s.setValue(v)
                s.blockSignals(False)
            reg = self.regions[name]
            reg.blockSignals(True)
            reg.setRegion((lo, hi))
            reg.blockSignals(False)

    def _spin_changed(self) -> None:
        bands = Bands(*(tuple(self.spins[(n, c)].value() for c in (0, 1)) for n in BAND_NAMES),
                      direction=self.bands.direction)
        for name in BAND_NAMES:
            reg = self.regions[name]
            reg.blockSignals(True)
            reg.setRegion(getattr(bands, name))
            reg.blockSignals(False)
        self._apply(bands)

    def _region_changed(self, name: BandName, reg: pg.LinearRegionItem) -> None:
        lo, hi = (round(v, 3) for v in reg.getRegion())
        for c, v in ((0, lo), (1, hi)):
            s = self.spins[(name, c)]
            s.blockSignals(True)
            s.setValue(v)
            s.blockSignals(False)
        self._spin_changed()

    def _preset(self, _index: int) -> None:
        bands = self.preset.currentData()
        if bands is not None:
            self.set_bands(bands)
        self.preset.setCurrentIndex(0)

    def _apply(self, bands: Bands) -> None:
        problem = bands.validate()
        self.problem.setText(problem or "")
        if problem:
            return
        self.bands = bands
        self._count_bands()
        self.bandsChanged.emit(bands)
        self._debounce.start(EDIT_DEBOUNCE_MS)

    # ----- data -----------------------------------------------------------------------------------------------------
    def add_arrays(self, new: ScoreArrays) -> None:
        """Rows streamed in since the last call."""
        self.arrays = self.arrays.extend(new)
        self.grouped.extend(new)
        self._hist_stale = True
        if self.isVisible():
            self._in_turns(self._update_histogram)
        # A repaint of the table and plots costs tens of ms of the GUI thread: while rows stream in, at most one a
        # second; a pending edit's shorter wait is kept.
        if not self._debounce.isActive():
            self._debounce.start(STREAM_DEBOUNCE_MS)

    def _update_histogram(self) -> None:
        self._hist_stale = False
        best = self.arrays.best
        direction = self.bands.direction
        lo = 0.0 if direction is Direction.DISTANCE else min(0.0, float(best.min()) if len(best) else 0.0)
        counts, edges = np.histogram(best, bins=80, range=(lo, direction.top))
        log = self.log_counts.isChecked()
        self.hist.setLogMode(y=log)
        self.hist.setLabel("left", "images (log scale)" if log else "images")
        most = max(int(counts.max()) if len(best) else 0, 1)
        if log:
            # Empty bins sit on the baseline, half an image: a bin of one image still shows as a bar.
            self.hist_curve.setFillLevel(np.log10(0.5))
            self.hist_curve.setData(edges, np.where(counts > 0, counts, 0.5))
            top = np.log10(most) + 0.5  # room above the tallest bar for the bands' counts
            self.hist.setYRange(np.log10(0.5), top, padding=0)
            # Powers of ten only: pyqtgraph labels 2, 3, ... 9 of each decade too, over each other.
            self.hist.getAxis("left").setTicks([[(k, f"{10 ** k:g}") for k in range(int(top) + 1)], []])
        else:
            self.hist_curve.setFillLevel(0)
            self.hist_curve.setData(edges, counts)
            self.hist.getAxis("left").setTicks(None)
            top = 1.3 * most
            self.hist.setYRange(0, top, padding=0)
        self.hist.setXRange(lo, direction.top, padding=0.02)
        self._hist_span = (lo, direction.top, top)
        self._count_bands()

    def _count_bands(self) -> None:
        """Each band's images, written at the top of its region, and how many are in none."""
        best = self.arrays.best
        lo, hi, top = self._hist_span
        inside = np.zeros(len(best), dtype=bool)
        for band in self.bands.all():
            hit = band.contains(best)
            inside |= hit
            text = self.band_counts[band.name]
            text.setText(f"{band.name.label}: {int(hit.sum())}")
            text.setPos((max(band.lo, lo) + min(band.hi, hi)) / 2, top)
        self.counted.setText(f"{len(best)} images, {len(best) - int(inside.sum())} of them {OUTSIDE}")

    def cancel_pending(self) -> None:
        self._debounce.stop()
        self._next_turn.stop()
        self._turns.clear()
        if self._ci_worker is not None:
            self._ci_worker.cancel()
            self._ci_worker.wait()
            self._ci_worker = None

    def set_chance(self, chance: float | None) -> None:
        """The on-target rate of guidance that does nothing (1 / labels), against which runs are flagged."""
        self.chance = chance
        self._stale = True
        if self.isVisible():
            self._refresh_views()

    # ----- UMS intervals, off the GUI thread --------------------------------------------------------------------------
    def _current_key(self):
        return self.bands, len(self.arrays.ids)

    def _request_intervals(self) -> None:
        # Only for a shown tab: while images stream in behind another one, each second's re-score would start a
        # bootstrap that the next one cancels.
        if not self.isVisible() or self._ci_key == self._current_key():
            return
        if self._ci_worker is not None:
            self._ci_worker.cancel()  # its finished starts the next one, for whatever is current then
            return
        self._ci_worker = GeneratorWorker(ums_intervals_job(self.arrays, self.bands))
        self._ci_worker.yielded.connect(self._intervals_ready)
        self._ci_worker.finished.connect(self._intervals_finished)
        self._ci_worker.start()

    def _intervals_ready(self, item) -> None:
        key, cis = item
        if key != self._current_key():
            return
        self._ci_key, self.ums_ci = key, cis
        if self.isVisible():
            self._show_ums_tooltips()
            self._in_turns(self._fill_ums_plot)
        else:
            self._stale = True

    def _intervals_finished(self) -> None:
        if ended(self.sender(), self._ci_worker):
            self._ci_worker = None
            self._request_intervals()

    def _ums_ci_now(self) -> dict:
        return self.ums_ci if self._ci_key == self._current_key() else {}

    def rescore(self) -> None:
        self._debounce.stop()
        self.results = sorted(self.grouped.score(self.bands), key=lambda r: (GUIDES.index(r.guide), r.gamma))
        # Table and plots cost tens of ms of the GUI thread per re-score; while images stream in behind another tab
        # they are brought up to date when the tab is shown instead.
        self._stale = True
        if self.isVisible():
            self._refresh_views()
        self.resultsChanged.emit(self.results, self.bands)
        self._request_intervals()

    def _refresh_views(self) -> None:
        """The table now; each plot on a turn of its own."""
        if self._stale:
            self._stale = False
            self._fill_table()
            self._show_ums_tooltips()
            self.key.setText(self._key())
            self._in_turns(self._fill_ams_plot, self._fill_ums_plot)
        if self._hist_stale:
            self._in_turns(self._update_histogram)

    def _in_turns(self, *steps: Callable[[], None]) -> None:
        self._turns += [s for s in steps if s not in self._turns]
        if not self._next_turn.isActive():
            self._next_turn.start()

    def _take_turn(self) -> None:
        if self._turns:
            self._turns.pop(0)()
        if self._turns:
            self._next_turn.start()

    def settle(self) -> None:
        """Every view up to date now (a saved figure, a test): the turns still due, taken at once."""
        self._refresh_views()
        self._next_turn.stop()
        while self._turns:
            self._turns.pop(0)()

    def showEvent(self, e) -> None:
        super().showEvent(e)
        self._refresh_views()
        self._request_intervals()

    def _fill_table(self) -> None:
        n_b = len(BAND_NAMES)
        pct_col, target_col = 2 + 2 * n_b, 4 + 2 * n_b
        cols = (["run", "N"] + [f"AMS {b.label}" for b in BAND_NAMES] + [f"UMS {b.label}" for b in BAND_NAMES]
                + [f"P{self.bands.direction.percentile} best", "Gu", "on target %"])
        self.table.setColumnCount(len(cols))
        self.table.setHorizontalHeaderLabels(cols)
        for c in range(2, 2 + n_b):
            self.table.horizontalHeaderItem(c).setToolTip(
                "Share of the run's images whose best match lies in the band (images / N). "
                "Point at a value for its 95% interval")
        for c in range(2 + n_b, 2 + 2 * n_b):
            self.table.horizontalHeaderItem(c).setToolTip(
                "Distinct training images matched in the band, over the run's N. Point at a value for its 95% interval")
        self.table.horizontalHeaderItem(target_col).setToolTip(
            "Share of a guided run's images that its classifier puts in their target label")
        self.table.setRowCount(len(self.results))
        for r, g in enumerate(self.results):
            values = ([None, g.n] + [g.ams[b] for b in BAND_NAMES] + [g.ums[b] for b in BAND_NAMES]
                      + [g.percentile, g.gu, g.target_rate])
            for c, v in enumerate(values):
                if c == 0:
                    text = guide_text(g.guide, g.gamma)
                elif c == 1:
                    text = str(v)
                elif v is None:
                    text = "—"
                elif c == pct_col:
                    text = f"{v:.3f}"
                elif c == target_col:
                    text = f"{100 * v:.0f}"
                else:
                    # The count beside the share: 0.78% is one image of 128.
                    text = f"{100 * v:.2f}% ({round(v * g.n)}/{g.n})"
                    if 2 + n_b <= c < pct_col and BAND_NAMES[c - 2 - n_b] in g.ums_truncated:
                        text = "≥" + text
                item = QTableWidgetItem(text)
                item.setData(Qt.UserRole, v)
                if c:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if 2 <= c < 2 + n_b:
                    lo, hi = g.ams_ci[BAND_NAMES[c - 2]]
                    item.setToolTip(f"95% interval {100 * lo:.2f}–{100 * hi:.2f} % (Wilson score, N = {g.n})")
                if c == target_col:
                    item.setToolTip(target_tooltip(v, g.n, self.chance))
                    if at_chance(v, g.n, self.chance):
                        item.setText(f"⚠ {text}")
                        item.setBackground(WARNING)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()

    def _show_ums_tooltips(self) -> None:
        """UMS tooltips from the intervals of the current bands, or a note that they are coming."""
        cis = self._ums_ci_now()
        for r, g in enumerate(self.results):
            ci = cis.get((g.guide, g.gamma), {})
            for k, b in enumerate(BAND_NAMES):
                item = self.table.item(r, 2 + len(BAND_NAMES) + k)
                if item is not None:
                    item.setToolTip(f"95% interval {100 * ci[b][0]:.2f}–{100 * ci[b][1]:.2f} % (bootstrap over the "
                                    f"run's images, N = {g.n})" if b in ci else "95% interval: being computed…")

    def table_values(self) -> dict[tuple[str, float], dict[str, float]]:
        """What the table shows, by run: {"ams_high": ..., "ums_low": ...}; tests compare it with the engine."""
        out = {}
        for r, g in enumerate(self.results):
            row = {}
            for k, b in enumerate(BAND_NAMES):
                row[f"ams_{b}"] = self.table.item(r, 2 + k).data(Qt.UserRole)
                row[f"ums_{b}"] = self.table.item(r, 2 + len(BAND_NAMES) + k).data(Qt.UserRole)
            out[(self.table.item(r, 0).text(), g.gamma)] = row
        return out

    # ----- AMS / UMS against gamma ------------------------------------------------------------------------------------
    def describe_audit(self, name: str, descriptor: str) -> None:
        """What a saved figure names: the audit and its descriptor (config matching.descriptor)."""
        self.audit_name, self.descriptor = name, descriptor

    def _key(self) -> str:
        """The plots' key, in the words of the gallery and the table, for the guides the audit has runs of (all
        while it has none); Random's stars in their bands' colours."""
        shown = {g.guide for g in self.results} or set(GUIDES)
        parts = [" ".join(f'<span style="color:{BAND_COLORS[b].name()}"><b>{b.label}</b></span>' for b in BAND_NAMES)]
        parts += [f"{'—' if style == Qt.SolidLine else '- -'} {guide.tag}" for guide, style in GUIDE_LINES
                  if guide in shown]
        if Guide.NONE in shown:
            stars = "".join(f'<span style="color:{BAND_COLORS[b].name()}">★</span>' for b in BAND_NAMES)
            parts.append(f"{stars} {Guide.NONE.tag} (γ=0, one star per band)")
        return " &nbsp; ".join(parts)

    def _gamma_plot(self, metric: str, cached: bool = True) -> pg.PlotWidget:
        w = plot_widget(f"plot_{metric}", cached)
        w.setTitle(f"{METRICS[metric]} against γ", color="k")
        w.setLabel("left", f"{METRICS[metric]} %")
        w.setLabel("bottom", "γ (guidance scale)")
        w.showGrid(x=True, y=True, alpha=0.2)
        return w

    def _fill_ams_plot(self) -> None:
        self._draw(self.ams_plot, "ams", self._curves)
        self._fill_error_bars(self.ams_plot, "ams", lambda g: g.ams_ci, self._bars)

    def _fill_ums_plot(self) -> None:
        """Its points, and the error bars of the intervals there are for the current bands."""
        self._draw(self.ums_plot, "ums", self._curves)
        cis = self._ums_ci_now()
        self._fill_error_bars(self.ums_plot, "ums", lambda g: cis.get((g.guide, g.gamma)), self._bars)

    def _draw(self, plot: pg.PlotWidget, metric: str, curves: dict) -> None:
        """The runs' points of one metric; curves: the plot's items by (metric, guide, band), made on first use.
        Items are made once and then only given new data: clearing and re-adding them took 0.2-0.9 s of the GUI
        thread per re-score while images streamed in."""
        random = [g for g in self.results if g.guide is Guide.NONE]
        for b in BAND_NAMES:
            color = BAND_COLORS[b]
            for guide, style in GUIDE_LINES:
                runs = [g for g in self.results if g.guide == guide]
                curve = curves.get((metric, guide, b))
                if curve is None:
                    if not runs:
                        continue
                    curve = plot.plot(pen=pg.mkPen(color, width=2, style=style), symbol="o", symbolSize=6,
                                      symbolBrush=color)
                    curves[(metric, guide, b)] = curve
                runs = random + runs if runs else []
                set_data(curve, x=[self._x(g, b) for g in runs], y=[100 * getattr(g, metric)[b] for g in runs])
            star = curves.get((metric, Guide.NONE, b))
            if star is None and random:
                star = plot.plot(pen=None, symbol="star", symbolSize=16, symbolBrush=color, symbolPen="k")
                curves[(metric, Guide.NONE, b)] = star
            if star is not None:
                set_data(star, x=[self._x(random[0], b)] if random else [],
                         y=[100 * getattr(random[0], metric)[b]] if random else [])

    def _x(self, g: GroupResult, band: BandName) -> float:
        return g.gamma + SLOTS[(g.guide, band)] * DODGE * max([r.gamma for r in self.results] + [1.0])

    def _fill_error_bars(self, plot: pg.PlotWidget, metric: str, intervals, bars_of: dict) -> None:
        """95% intervals as error bars on every point; intervals(run) -> {band: (lo, hi)}, or None while unknown;
        bars_of: the plot's error bars by (metric, guide, band), made on first use."""
        beam = 0.8 * DODGE * max([g.gamma for g in self.results] + [1.0])
        for b in BAND_NAMES:
            for guide in GUIDES:
                runs = [g for g in self.results if g.guide == guide and intervals(g)]
                bars = bars_of.get((metric, guide, b))
                if bars is None:
                    if not runs:
                        continue
                    bars = pg.ErrorBarItem(pen=pg.mkPen(BAND_COLORS[b], width=1.5), beam=beam)
                    plot.addItem(bars)
                    bars_of[(metric, guide, b)] = bars
                y = np.array([100 * getattr(g, metric)[b] for g in runs])
                lo, hi = (np.array([100 * intervals(g)[b][i] for g in runs]) for i in (0, 1))
                set_data(bars, x=np.array([self._x(g, b) for g in runs]), y=y, top=hi - y, bottom=y - lo, beam=beam)
                bars.setVisible(bool(runs))

    # ----- saved figures -------------------------------------------------------------------------------------------
    def _save_plots(self) -> None:
        ask_and_save(self, "Save the AMS and UMS plots in", self.save_plots, self.saved)

    def file_stem(self) -> str:
        """Saved figures are named after the audit: its name with anything but letters, digits, - and _ as _."""
        return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in self.audit_name) or "audit"

    def caption(self, metric: str) -> str:
        """A saved figure's title: what it shows, of which audit, scored how, with which bands, over how many images."""
        d = self.bands.direction
        ns = sorted({g.n for g in self.results})
        n = ("no images yet" if not ns else f"N = {ns[0]} images per run" if len(ns) == 1
             else f"N = {ns[0]}–{ns[-1]} images per run")
        edges = ", ".join(f"{b.name.label} {b.lo:.3f}–{b.hi:.3f}" for b in self.bands.all())
        descriptor = f"descriptor {html.escape(self.descriptor)}, " if self.descriptor else ""
        name = f" — audit “{html.escape(self.audit_name)}”" if self.audit_name else ""
        guides = "; ".join(f"{g.tag}: guided by {g.label}" for g, _ in GUIDE_LINES
                           if any(r.guide is g for r in self.results)) or "no guided runs yet"
        interval = "Wilson" if metric == "ams" else "bootstrap"
        return (f'<span style="color:black"><span style="font-size:14pt"><b>{METRICS[metric]} against γ</b>{name}'
                f"</span><br>{descriptor}scores {d.unit} ({d.closer}); {n}<br>bands {edges}<br>"
                f"{self._key()}<br>{guides}<br>bars: 95% intervals ({interval})</span>")

    def _figure(self, metric: str, ums_ci: dict) -> pg.PlotWidget:
        """A plot of one metric for print, of a fixed size and with its caption, whatever the window's size."""
        fig = self._gamma_plot(metric, cached=False)
        lay_out_for_print(fig, self.caption(metric))
        self._draw(fig, metric, {})
        intervals = ((lambda g: g.ams_ci) if metric == "ams" else (lambda g: ums_ci.get((g.guide, g.gamma))))
        self._fill_error_bars(fig, metric, intervals, {})
        fig.plotItem.vb.autoRange()  # now: an automatic range follows the items only at the next paint
        return fig

    def save_plots(self, folder: str | Path) -> list[Path]:
        """Each metric's figure in folder as AUDIT_ams_vs_gamma.png and .svg (and _ums_): PNG at print resolution,
        SVG as vectors and text. Raises OSError where the folder cannot be written."""
        self.settle()
        # A saved figure has all its error bars, even when the bootstrap of the worker is not done yet.
        ums_ci = self._ums_ci_now() or ums_intervals(self.arrays, self.bands)
        written = []
        for metric in METRICS:
            fig = self._figure(metric, ums_ci)
            try:
                title = f"{METRICS[metric]} against γ: {self.audit_name or 'audit'}"
                written += save_figure(fig, Path(folder) / f"{self.file_stem()}_{metric}_vs_gamma", title)
            finally:
                fig.close()
                fig.deleteLater()
        return written
