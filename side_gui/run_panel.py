"""The run panel: one row per stage (and per leg of the gamma sweep) with progress, rate and ETA, or, for what the
audit already holds, how long it took and when; pause, cancel and resume; the TDKD health check against chance and
the training losses as they come in; per guided leg, how often its images land in their target label, flagged where
that is no better than chance; a log, shown once it has something to say."""

from __future__ import annotations

import time
from datetime import datetime

import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from side_engine import events as ev
from side_engine.config import AuditConfig, Run, sweep
from side_engine.matching.metrics import GroupResult, at_chance
from side_engine.store import AuditStore
from side_engine.vocabulary import Guide

from .band_panel import WARNING, target_tooltip
from .gallery_view import guide_text
from .plots import plot_widget
from .watch import StageState

PLOTS_MIN_HEIGHT = 200  # the health and loss plots keep this much; the stages' rows scroll below it
STAGE_TITLES = {"load": "Load model and data", "classifier": "Classifier f_TI", "sample": "Sample D_syn",
                "labels": "Pseudo labels", "tdkd": "TDKD: train f_TD", "extract": "Extract"}


def _leg_title(guide: Guide, gamma: float) -> str:
    """A leg of the sweep named as the gallery and the table name it; Random's says that it is gamma 0."""
    return guide_text(guide, gamma) + (" (γ=0)" if guide is Guide.NONE else "")


def _duration(s: float) -> str:
    s = round(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _clock(t: float) -> str:
    """When a stage ended, to the minute: "1 Dec 16:45"."""
    d = datetime.fromtimestamp(t)
    return f"{d.day} {d:%b %H:%M}"


def _took(seconds: float, ended: float) -> str:
    return f"took {'<1s' if seconds < 1 else _duration(seconds)}, ended {_clock(ended)}"


STORED_TIMES = ("Measured from the end of the step before to the end of this one, as the audit recorded them (it "
                "records when each stage ends): a stop and a resume in between count too.")


def stored_times(store: AuditStore) -> dict[tuple[str, str], tuple[float | None, float]]:
    """(seconds, when it ended) of each finished stage and leg of an audit, as far as its store tells: stages keep
    the time they ended (stages.finished), legs that of their last image (images.created). Each took from the end
    of the one before, the first from the audit's creation (so loading is counted in it); load: (None, when the
    audit was created)."""
    created = store.meta("created")
    if created is None:
        return {}
    ends = {(name, ""): t for name, t in store.db.execute(
        "SELECT name, finished FROM stages WHERE status = 'done' AND finished IS NOT NULL")}
    # The last image of each leg by id, over the (guide, gamma, idx) index: no pass over a large audit's rows.
    last = store.db.execute("SELECT guide, gamma, MAX(id) FROM images GROUP BY guide, gamma").fetchall()
    for guide, gamma, image_id in last:
        (t,) = store.db.execute("SELECT created FROM images WHERE id = ?", (image_id,)).fetchone()
        ends[("extract", Run(Guide(guide), float(gamma)).part)] = t
    order = [(stage, "") for stage in ("classifier", "sample", "labels", "tdkd")]
    order += [("extract", run.part) for run in sweep(store.config)]
    before = datetime.strptime(created, "%Y-%m-%dT%H:%M:%S%z").timestamp()
    out = {("load", ""): (None, before)}
    for key in order:
        if key in ends:
            out[key] = (max(ends[key] - before, 0.0), ends[key])
            before = ends[key]
    return out


class _Row:
    def __init__(self, grid: QGridLayout, r: int, title: str, key: str):
        self.name = QLabel(title)
        self.bar = QProgressBar(objectName=f"progress_{key}")
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("waiting")
        self.rate = QLabel()
        self.rate.setMinimumWidth(160)
        self.summary = QLabel()
        self.summary.setStyleSheet("color: gray;")
        self.summary.setWordWrap(True)
        self.target = QLabel(objectName=f"target_{key}")  # guided legs: the on-target rate
        for c, w in enumerate((self.name, self.bar, self.rate, self.target, self.summary)):
            grid.addWidget(w, r, c)
        self.t0 = 0.0
        self.done0 = 0
        self.unit = ""
        self.followed = ""  # the state last shown by follow()
        self.active = False  # started by this window's run and not finished
        self.record = ""  # what the audit says of a stage it holds: how long it took and when it ended

    def started(self, e: ev.StageStarted) -> None:
        self.active = True
        self.t0 = time.monotonic()
        self.done0 = 0
        self.unit = e.unit
        self.bar.setRange(0, e.total or 0)
        self.bar.setValue(0)
        self.bar.setFormat("%v / %m" if e.total else "running")

    def progress(self, e: ev.Progress) -> None:
        if self.t0 == 0.0:
            self.t0 = time.monotonic()
        if e.total:
            self.bar.setRange(0, e.total)
        self.bar.setValue(e.done)
        if self.done0 == 0 and e.done and time.monotonic() - self.t0 < 0.05:
            # The first report of a resumed leg counts what was already done, not work done now.
            self.done0 = e.done
        dt = time.monotonic() - self.t0
        done = e.done - self.done0
        if dt > 0.5 and done > 0:
            rate = done / dt
            eta = (e.total - e.done) / rate if e.total else None
            self.rate.setText(f"{rate:.1f} {self.unit or 'it'}/s" + (f", ETA {_duration(eta)}" if eta else ""))

    def finished(self, e: ev.StageFinished) -> None:
        self.active = False
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        self.bar.setFormat("done (already in the audit)" if e.skipped else "done")
        self.rate.setText(self.record if e.skipped else _took(e.seconds, time.time()))
        self.summary.setText(e.summary)

    def recorded(self, text: str, tip: str) -> None:
        self.record = text
        self.rate.setText(text)
        self.rate.setToolTip(tip)

    def stopped(self, done: int, total: int | None) -> None:
        """A stage or leg a run left part-way (an earlier one, or one that has just stopped): what the audit holds of
        it, until it is resumed."""
        self.active = False
        self.rate.clear()
        self.bar.setRange(0, total or 0)
        self.bar.setValue(done)
        self.bar.setFormat("%v / %m (stopped)" if total else "stopped")

    def follow(self, s: StageState) -> bool:
        """Shows a stage of a run that another process makes, as its store tells it; True once it has just finished
        while followed."""
        was, self.followed = self.followed, s.state
        if s.state == "done":
            if was != "done":
                self.finished(ev.StageFinished(s.stage, 0.0, s.summary, s.part, skipped=True))
                if was:  # done while followed (between two polls, for a short one), not before
                    self.bar.setFormat("done")
                    return True
        elif s.state == "running":
            if was != "running":
                self.started(ev.StageStarted(s.stage, s.total, s.unit, s.part))
            self.progress(ev.Progress(s.stage, s.done, s.total, s.part))
        elif s.state == "stopped" and s.total:
            self.stopped(s.done, s.total)
        return False


class _Rows(QScrollArea):
    """The stages' rows, asking for their whole height: they scroll only where the window is too short for them."""

    def sizeHint(self) -> QSize:
        return QSize(super().sizeHint().width(), self.widget().sizeHint().height())


class RunPanel(QWidget):
    pauseToggled = Signal(bool)
    cancelRequested = Signal()
    resumeRequested = Signal()

    def __init__(self, cfg: AuditConfig, parent: QWidget | None = None):
        super().__init__(parent)
        self.cfg = cfg
        self.rows: dict[tuple[str, str], _Row] = {}
        self.grid = QGridLayout()
        self.grid.setColumnStretch(4, 1)
        self.grid.setColumnMinimumWidth(1, 220)
        keys = [("load", "")]
        if cfg.labels.source == "classifier":
            keys.append(("classifier", ""))
        for key in keys + [("sample", ""), ("labels", ""), ("tdkd", "")]:
            self._row(*key)
        for run in sweep(cfg):
            self._row("extract", run.part, _leg_title(run.guide, run.gamma))

        self.state = QLabel(objectName="run_state")
        self.pause_btn = QPushButton("Pause", objectName="pause_button", checkable=True)
        self.pause_btn.toggled.connect(self._pause_toggled)
        self.cancel_btn = QPushButton("Cancel", objectName="cancel_button")
        self.cancel_btn.clicked.connect(self.cancelRequested)
        self.resume_btn = QPushButton("Resume audit", objectName="resume_button")
        self.resume_btn.clicked.connect(self.resumeRequested)
        buttons = QHBoxLayout()
        buttons.addWidget(self.state, 1)
        for b in (self.pause_btn, self.cancel_btn, self.resume_btn):
            buttons.addWidget(b)

        self.health = plot_widget("health_plot")
        self.health.setTitle("TDKD health: agreement of f_TD with pseudo labels", color="k")
        self.health.setLabel("bottom", "diffusion step t")
        self.health.setLabel("left", "agreement")
        self.health.setYRange(0, 1)
        self.health.showGrid(x=True, y=True, alpha=0.2)
        # What agreement a guess among K labels reaches: f_TD is no better than that where its bars end below it.
        grey = "#555555"
        self.chance_line = pg.InfiniteLine(
            angle=0, movable=False, pen=pg.mkPen(grey, width=1.5, style=Qt.DashLine), label="chance",
            labelOpts={"position": 0.97, "anchors": [(1, 1), (1, 1)], "color": grey})
        self.loss = plot_widget("loss_plot")
        lines = (("classifier", "#1f77b4", "f_TI"), ("tdkd", "#d62728", "f_TD (distillation)"))
        # Labels from clusters train no f_TI: its name in the key would stand for no curve.
        lines = tuple(line for line in lines if line[0] != "classifier" or cfg.labels.source == "classifier")
        # The key in the title: a legend inside the plot sits on top of one curve or the other.
        self.loss.setTitle("Training loss: " + ", ".join(f'<span style="color:{c}">&#9644; {n}</span>'
                                                         for _, c, n in lines), color="k")
        self.loss.setLabel("bottom", "step")
        self.loss.setLabel("left", "loss")
        self.loss.showGrid(x=True, y=True, alpha=0.2)
        # Small markers too: a short training reports one point, which a line alone would not show.
        self.curves = {s: ([], [], self.loss.plot(pen=pg.mkPen(c, width=2), symbol="o", symbolSize=4,
                                                  symbolBrush=c, symbolPen=None)) for s, c, _ in lines}

        self.log = QPlainTextEdit(objectName="run_log", readOnly=True)
        self.log.setMaximumBlockCount(2000)
        # Shown once it has something to say: a reopened audit's log is empty.
        self.log_box = QGroupBox("Log", objectName="log_box")
        QVBoxLayout(self.log_box).addWidget(self.log)
        self.log_box.hide()
        self.log.textChanged.connect(lambda: self.log_box.setVisible(not self.log.document().isEmpty()))

        stages = QGroupBox("Stages")
        inner = QWidget()
        inner.setLayout(self.grid)
        self.scroll = _Rows(objectName="stages_scroll")
        self.scroll.setWidget(inner)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.NoFrame)
        sl = QVBoxLayout(stages)
        sl.addWidget(self.scroll)
        sl.addLayout(buttons)
        plots = QHBoxLayout()
        plots.addWidget(self.health)
        plots.addWidget(self.loss)
        for plot in (self.health, self.loss):
            plot.setMinimumHeight(PLOTS_MIN_HEIGHT)
        lay = QVBoxLayout(self)
        # The stages as tall as their rows, where the window allows; the plots take the rest.
        lay.addWidget(stages)
        lay.addLayout(plots, 3)
        lay.addWidget(self.log_box, 1)
        self.chance: float | None = None
        self.results: list[GroupResult] = []
        self.set_running(False)

    def set_chance(self, chance: float | None) -> None:
        """The on-target rate of guidance that does nothing, 1 / K for K labels: the legs' flags, and the health
        plot's chance line."""
        self.chance = chance
        self._chance_line()
        self.show_results(self.results)

    def _chance_line(self) -> None:
        if self.chance is None:
            self.health.removeItem(self.chance_line)
            return
        self.chance_line.setValue(self.chance)
        self.chance_line.label.setFormat(f"chance 1/{round(1 / self.chance)}")
        if self.chance_line.scene() is None:
            self.health.addItem(self.chance_line, ignoreBounds=True)

    def show_results(self, results: list[GroupResult]) -> None:
        """The on-target rate of each guided leg (metrics.GroupResult.target_rate); a leg at chance in the warning
        colour: its guidance does not reach its labels."""
        self.results = results
        for g in results:
            row = self.rows.get(("extract", Run(g.guide, g.gamma).part))
            if row is None or g.target_rate is None:
                continue
            low = at_chance(g.target_rate, g.n, self.chance)
            row.target.setText(f"{'⚠ ' if low else ''}on target {100 * g.target_rate:.0f}%")
            row.target.setToolTip(target_tooltip(g.target_rate, g.n, self.chance))
            row.target.setStyleSheet(f"background: {WARNING.name()}; padding: 1px 4px;" if low else "")

    def _row(self, stage: str, part: str, name: str = "") -> _Row:
        key = (stage, part)
        if key not in self.rows:
            title = STAGE_TITLES.get(stage, stage) + (f": {name or part}" if part else "")
            obj = stage + ("_" + "".join(ch if ch.isalnum() else "_" for ch in part) if part else "")
            self.rows[key] = _Row(self.grid, len(self.rows), title, obj)
        return self.rows[key]

    def set_running(self, running: bool, complete: bool = False, read_only: bool = False,
                    stored: dict[tuple[Guide, float], int] | None = None) -> None:
        """stored: images the audit holds per leg, for a leg the run has left part-way (its last progress report may
        lag behind the audit)."""
        self.pause_btn.setEnabled(running)
        self.cancel_btn.setEnabled(running)
        self.resume_btn.setVisible(not running and not complete and not read_only)
        if not running:
            self.pause_btn.setChecked(False)
            held = {("extract", run.part): (stored or {}).get((run.guide, float(run.gamma))) for run in sweep(self.cfg)}
            for key, row in self.rows.items():
                if row.active:  # the run ended (cancelled, failed, its engine died) with this stage under way
                    done = held.get(key)
                    row.stopped(row.bar.value() if done is None else done, row.bar.maximum() or None)
        self.state.setText(
            "Running…" if running else "Audit complete." if complete
            else "This audit is not finished; it is read-only here, so it cannot be resumed." if read_only
            else "This audit is not finished: resume it to go on where it stopped.")

    def set_foreign(self) -> None:
        """Another process is running the audit: it is shown, but paused, cancelled or resumed only where it runs."""
        self.pause_btn.setEnabled(False)
        self.cancel_btn.setEnabled(False)
        self.resume_btn.setVisible(False)
        self.state.setText("Running in another process: shown from the audit as it is written.")

    def follow(self, states: list[StageState]) -> None:
        """Each stage of a run that another process makes, from its store (watch.stage_states)."""
        for s in states:
            row = self._row(s.stage, s.part)
            started = s.state == "running" and row.followed != "running"
            if row.follow(s):
                self.log.appendPlainText(f"{row.name.text()}: {s.summary or 'done'}")
            elif started:
                # As for a run of this window's: keep the stage at work in view.
                self.scroll.ensureWidgetVisible(row.bar)

    def add_curve_points(self, stage: str, points) -> None:
        """Training steps read from the store (store.CurvePoint), drawn once."""
        xs, ys, _ = self.curves.setdefault(stage, ([], [], self.loss.plot()))
        xs.extend(p.step for p in points)
        ys.extend(p.loss for p in points)
        self._redraw(stage)

    def _pause_toggled(self, paused: bool) -> None:
        self.pause_btn.setText("Continue" if paused else "Pause")
        self.state.setText("Paused after the current batch." if paused else "Running…")
        self.pauseToggled.emit(paused)

    def show_stored(self, store: AuditStore, counts: dict[tuple[Guide, float], int],
                    times: dict[tuple[str, str], tuple[float | None, float]]) -> None:
        """Fill the plots from what an opened audit already holds; counts: images stored per (guide, gamma); times:
        stored_times(store), read off the GUI thread."""
        for stage in self.curves:
            for point in store.curve(stage):
                self.curves[stage][0].append(point.step)
                self.curves[stage][1].append(point.loss)
            self._redraw(stage)
        buckets = store.health()
        if buckets:
            self._health(tuple((b.t_lo, b.t_hi, b.agreement) for b in buckets))
        done = {s for s, status in store.stages().items() if status == "done"}
        # Stages that keep no summary of their own are described by what the audit holds.
        held = {"sample": lambda: f"{len(store.syn_done())} unconditional samples (D_syn)",
                "load": lambda: f"{store.n_train} training images"}
        whole = []  # the rows of the stages and legs that the audit holds whole
        for stage in ("classifier", "sample", "labels", "tdkd"):
            if stage in done and (stage, "") in self.rows:
                summary = store.stage_info(stage).get("summary") or (held[stage]() if stage in held else "")
                self.rows[(stage, "")].finished(ev.StageFinished(stage, 0.0, summary, skipped=True))
                whole.append((stage, ""))
        if done:
            self.rows[("load", "")].finished(ev.StageFinished("load", 0.0, held["load"](), skipped=True))
            whole.append(("load", ""))
        n = store.config.extraction.n_per_gamma
        for run in sweep(store.config):
            done = counts.get((run.guide, float(run.gamma)), 0)
            if done >= n:
                self._row("extract", run.part).finished(ev.StageFinished("extract", 0.0, f"{n} images",
                                                                         part=run.part, skipped=True))
                whole.append(("extract", run.part))
            elif done:
                self._row("extract", run.part).stopped(done, n)
        for key in whole:
            if key not in times:
                continue
            seconds, ended = times[key]
            if seconds is None:
                self.rows[key].recorded(f"began {_clock(ended)}", "When the audit was created: loading the model "
                                                                  "and the data is counted in the next stage's time.")
            else:
                self.rows[key].recorded(_took(seconds, ended), STORED_TIMES)

    def on_event(self, e: ev.Event) -> None:
        if isinstance(e, ev.StageStarted):
            row = self._row(e.stage, e.part)
            row.started(e)
            # A long sweep has more legs than the panel shows at once: keep the one at work in view.
            self.scroll.ensureWidgetVisible(row.bar)
        elif isinstance(e, ev.Progress):
            self._row(e.stage, e.part).progress(e)
        elif isinstance(e, ev.StageFinished):
            row = self._row(e.stage, e.part)
            row.finished(e)
            if not e.skipped:
                self.log.appendPlainText(f"{row.name.text()}: {e.summary} ({_duration(e.seconds)})")
        elif isinstance(e, ev.CurvePoint):
            xs, ys, _ = self.curves.setdefault(e.stage, ([], [], self.loss.plot()))
            xs.append(e.step)
            ys.append(e.loss)
            self._redraw(e.stage)
        elif isinstance(e, ev.HealthUpdated):
            self._health(e.buckets)
        elif isinstance(e, ev.Warning):
            self.log.appendPlainText(f"warning: {e.message}")
        elif isinstance(e, ev.AuditFinished):
            self.log.appendPlainText(f"audit complete in {_duration(e.seconds)}")

    def _redraw(self, stage: str) -> None:
        xs, ys, item = self.curves[stage]
        item.setData(xs, ys)

    def _health(self, buckets) -> None:
        self.health.clear()
        x = [(lo + hi) / 2 for lo, hi, _ in buckets]
        w = [max(hi - lo + 1, 1) * 0.9 for lo, hi, _ in buckets]
        y = [a for _, _, a in buckets]
        self.health.addItem(pg.BarGraphItem(x=x, height=y, width=w, brush="#9ecae1", pen="#3182bd"))
        self.health.plot(x, y, pen=pg.mkPen("#08519c", width=2), symbol="o", symbolSize=6, symbolBrush="#08519c")
        self._chance_line()  # clear() took it off
