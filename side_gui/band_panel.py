"""Live bands: edges in spin boxes and as draggable regions on the histogram of best scores, presets, the
AMS/UMS table (bands x runs) and AMS/UMS against gamma. Every number comes from
side_engine.matching.metrics.GroupedScores (the same results as score_groups, without re-sorting on each move); moving
an edge re-scores after a short debounce so a drag stays fluid. 95% intervals: AMS (Wilson) with every re-score; UMS
(bootstrap, side_engine.matching.uncertainty, about 0.1 s a run) on the worker thread, shown when they come."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
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
from side_engine.vocabulary import GUIDES, BandName, Direction, Guide

from .gallery_view import BAND_COLORS, guide_text
from .plots import plot_widget
from .worker import GeneratorWorker, Job, ended

PRESETS = {"SSCD (paper)": SSCD_BANDS, "nL2 (paper, reconstructed)": NL2_BANDS}
EDIT_DEBOUNCE_MS = 120  # a drag stays fluid and the table follows it
STREAM_DEBOUNCE_MS = 1000
# Points and error bars of one gamma sit side by side, in these slots of DODGE x the largest gamma: drawn at the same x
# the bars of three bands and two guides hid each other.
SLOTS = {(Guide.NONE, BandName.LOW): -1, (Guide.NONE, BandName.MID): 0, (Guide.NONE, BandName.HIGH): 1,
         (Guide.TD, BandName.LOW): -3, (Guide.TD, BandName.MID): -2, (Guide.TD, BandName.HIGH): -1,
         (Guide.TI, BandName.LOW): 1, (Guide.TI, BandName.MID): 2, (Guide.TI, BandName.HIGH): 3}
# Guided runs drawn as lines: SIDE solid, OL-TI dashed; Random is a star at gamma 0.
GUIDE_LINES = ((Guide.TD, Qt.SolidLine), (Guide.TI, Qt.DashLine))
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
        self._curves: dict[tuple[str, Guide, BandName], pg.PlotDataItem] = {}
        self._bars: dict[tuple[str, Guide, BandName], pg.ErrorBarItem] = {}
        # UMS intervals by run, for the (bands, rows) they were computed for; the worker computing the next ones
        self.ums_ci: dict[tuple[Guide, float], dict[str, tuple[float, float]]] = {}
        self._ci_key = None
        self._ci_worker: GeneratorWorker | None = None
        self._stale = False
        self._debounce = QTimer(self, singleShot=True, interval=EDIT_DEBOUNCE_MS)
        self._debounce.timeout.connect(self.rescore)
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
        for k in PRESETS:
            self.preset.addItem(k, k)
        self.preset.activated.connect(self._preset)
        self.problem = QLabel(objectName="band_problem")
        self.problem.setStyleSheet("color: #d62728;")
        self.problem.setWordWrap(True)
        direction = QLabel("Scores are distances: smaller = closer" if bands.direction is Direction.DISTANCE
                           else "Scores are similarities: larger = closer")
        direction.setStyleSheet("color: gray;")

        self.hist = plot_widget("band_histogram")
        self.hist.setLabel("bottom", "best score")
        self.hist.setLabel("left", "images")
        self.hist.setMouseEnabled(x=False, y=False)
        self.hist.hideButtons()
        self.hist_curve = self.hist.plot(stepMode="center", fillLevel=0, brush=(80, 80, 80, 120), pen=pg.mkPen("k"))
        self.regions: dict[BandName, pg.LinearRegionItem] = {}
        for name in BAND_NAMES:
            c = BAND_COLORS[name]
            reg = pg.LinearRegionItem(brush=pg.mkBrush(c.red(), c.green(), c.blue(), 50),
                                      pen=pg.mkPen(c, width=2), bounds=(bottom, top), swapMode="block")
            reg.setZValue(-10)
            reg.sigRegionChanged.connect(lambda r, n=name: self._region_changed(n, r))
            self.hist.addItem(reg)
            self.regions[name] = reg

        self.table = QTableWidget(objectName="metrics_table")
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)

        self.ams_plot, self.ums_plot = (self._gamma_plot(t) for t in ("AMS (%)", "UMS (%)"))
        save = QPushButton("Save plots…", objectName="save_plots")
        save.clicked.connect(self._save_plots)

        left = QVBoxLayout()
        left.addLayout(edges)
        row = QHBoxLayout()
        row.addWidget(self.preset)
        row.addStretch(1)
        left.addLayout(row)
        left.addWidget(direction)
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
        pl.addWidget(self.ams_plot, 0, 0)
        pl.addWidget(self.ums_plot, 0, 1)
        pl.addWidget(save, 1, 1, Qt.AlignRight)
        split = QSplitter(Qt.Vertical, objectName="bands_splitter")
        split.addWidget(upper)
        split.addWidget(self.table)
        split.addWidget(plots)
        split.setSizes([260, 200, 300])
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
        key = self.preset.currentData()
        if key is None:
            return
        preset = PRESETS[key]
        if preset.direction != self.bands.direction:
            self.problem.setText(f"{key} bands are {preset.direction}s; this audit's scores are "
                                 f"{self.bands.direction}s")
        else:
            self.set_bands(preset)
        self.preset.setCurrentIndex(0)

    def _apply(self, bands: Bands) -> None:
        problem = bands.validate()
        self.problem.setText(problem or "")
        if problem:
            return
        self.bands = bands
        self.bandsChanged.emit(bands)
        self._debounce.start(EDIT_DEBOUNCE_MS)

    # ----- data -----------------------------------------------------------------------------------------------------
    def add_arrays(self, new: ScoreArrays) -> None:
        """Rows streamed in since the last call."""
        self.arrays = self.arrays.extend(new)
        self.grouped.extend(new)
        self._update_histogram()
        # A repaint of the table and plots costs tens of ms of the GUI thread: while rows stream in, at most one a
        # second; a pending edit's shorter wait is kept.
        if not self._debounce.isActive():
            self._debounce.start(STREAM_DEBOUNCE_MS)

    def _update_histogram(self) -> None:
        best = self.arrays.best
        direction = self.bands.direction
        lo = 0.0 if direction is Direction.DISTANCE else min(0.0, float(best.min()) if len(best) else 0.0)
        counts, edges = np.histogram(best, bins=80, range=(lo, direction.top))
        self.hist_curve.setData(edges, counts)

    def cancel_pending(self) -> None:
        self._debounce.stop()
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
            self._show_ums_intervals()
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
        if self._stale:
            self._stale = False
            self._fill_table()
            self._fill_plots()
            self._show_ums_intervals()

    def showEvent(self, e) -> None:
        super().showEvent(e)
        self._refresh_views()
        self._request_intervals()

    def _fill_table(self) -> None:
        n_b = len(BAND_NAMES)
        pct_col, target_col = 2 + 2 * n_b, 4 + 2 * n_b
        cols = (["run", "N"] + [f"AMS {b.label} %" for b in BAND_NAMES] + [f"UMS {b.label} %" for b in BAND_NAMES]
                + [f"P{self.bands.direction.percentile} best", "Gu %", "on target %"])
        self.table.setColumnCount(len(cols))
        self.table.setHorizontalHeaderLabels(cols)
        for c in range(2, 2 + 2 * n_b):
            self.table.horizontalHeaderItem(c).setToolTip("Point at a value for its 95% interval")
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
                    text = f"{100 * v:.2f}"
                    if 2 + n_b <= c < pct_col and BAND_NAMES[c - 2 - n_b] in g.ums_truncated:
                        text += "≥"
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

    def _show_ums_intervals(self) -> None:
        """UMS tooltips and error bars from the intervals of the current bands, or a note that they are coming."""
        cis = self._ums_ci_now()
        for r, g in enumerate(self.results):
            ci = cis.get((g.guide, g.gamma), {})
            for k, b in enumerate(BAND_NAMES):
                item = self.table.item(r, 2 + len(BAND_NAMES) + k)
                if item is not None:
                    item.setToolTip(f"95% interval {100 * ci[b][0]:.2f}–{100 * ci[b][1]:.2f} % (bootstrap over the "
                                    f"run's images, N = {g.n})" if b in ci else "95% interval: being computed…")
        self._fill_error_bars(self.ums_plot, "ums", lambda g: cis.get((g.guide, g.gamma)))

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
    def _gamma_plot(self, title: str) -> pg.PlotWidget:
        w = plot_widget(f"plot_{title.split()[0].lower()}")
        # The key goes in the title: a legend inside the plot sat over the curves and the Random star.
        bands = " ".join(f'<span style="color:{BAND_COLORS[b].name()}"><b>{b.label}</b></span>' for b in BAND_NAMES)
        w.setTitle(f'<span style="color:black">{title} against γ &nbsp; {bands} &nbsp; — {Guide.TD.short} &nbsp; - - '
                   f'{Guide.TI.short} &nbsp; ★ {Guide.NONE.short} (γ=0)</span>')
        w.setLabel("bottom", "γ (guidance scale)")
        w.showGrid(x=True, y=True, alpha=0.2)
        return w

    def _fill_plots(self) -> None:
        # Curves are made once and then only given new data: clearing and re-adding plot items (and their legend
        # entries) took 0.2-0.9 s of the GUI thread per re-score while images streamed in.
        random = [g for g in self.results if g.guide is Guide.NONE]
        for plot, metric in ((self.ams_plot, "ams"), (self.ums_plot, "ums")):
            for b in BAND_NAMES:
                color = BAND_COLORS[b]
                for guide, style in GUIDE_LINES:
                    runs = [g for g in self.results if g.guide == guide]
                    curve = self._curves.get((metric, guide, b))
                    if curve is None:
                        if not runs:
                            continue
                        curve = plot.plot(pen=pg.mkPen(color, width=2, style=style), symbol="o", symbolSize=6,
                                          symbolBrush=color)
                        self._curves[(metric, guide, b)] = curve
                    runs = random + runs if runs else []
                    curve.setData([self._x(g, b) for g in runs], [100 * getattr(g, metric)[b] for g in runs])
                star = self._curves.get((metric, Guide.NONE, b))
                if star is None and random:
                    star = plot.plot(pen=None, symbol="star", symbolSize=16, symbolBrush=color, symbolPen="k")
                    self._curves[(metric, Guide.NONE, b)] = star
                if star is not None:
                    star.setData([self._x(random[0], b)] if random else [],
                                 [100 * getattr(random[0], metric)[b]] if random else [])
        self._fill_error_bars(self.ams_plot, "ams", lambda g: g.ams_ci)

    def _x(self, g: GroupResult, band: BandName) -> float:
        return g.gamma + SLOTS[(g.guide, band)] * DODGE * max([r.gamma for r in self.results] + [1.0])

    def _fill_error_bars(self, plot: pg.PlotWidget, metric: str, intervals) -> None:
        """95% intervals as error bars on every point; intervals(run) -> {band: (lo, hi)}, or None while unknown."""
        beam = 0.8 * DODGE * max([g.gamma for g in self.results] + [1.0])
        for b in BAND_NAMES:
            for guide in GUIDES:
                runs = [g for g in self.results if g.guide == guide and intervals(g)]
                bars = self._bars.get((metric, guide, b))
                if bars is None:
                    if not runs:
                        continue
                    bars = pg.ErrorBarItem(pen=pg.mkPen(BAND_COLORS[b], width=1.5), beam=beam)
                    plot.addItem(bars)
                    self._bars[(metric, guide, b)] = bars
                y = np.array([100 * getattr(g, metric)[b] for g in runs])
                lo, hi = (np.array([100 * intervals(g)[b][i] for g in runs]) for i in (0, 1))
                bars.setData(x=np.array([self._x(g, b) for g in runs]), y=y, top=hi - y, bottom=y - lo, beam=beam)
                bars.setVisible(bool(runs))

    def _save_plots(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save AMS/UMS plots", "ams_ums_vs_gamma.png",
                                              "PNG (*.png);;SVG (*.svg)")
        if path:
            self.save_plots(path)

    def save_plots(self, path: str) -> list[str]:
        """Writes one file per metric: NAME_ams.EXT and NAME_ums.EXT."""
        import pyqtgraph.exporters as ex

        self._refresh_views()
        base, _, ext = path.rpartition(".")
        written = []
        for plot, metric in ((self.ams_plot, "ams"), (self.ums_plot, "ums")):
            exporter = (ex.SVGExporter if ext.lower() == "svg" else ex.ImageExporter)(plot.plotItem)
            out = f"{base}_{metric}.{ext}"
            exporter.export(out)
            written.append(out)
        return written
