"""One open audit: the run panel, the gallery beside the pair inspector, the training images at risk, and the bands;
fed by the worker's events, or, for a run that another process makes, by a reader that follows the store
(watch.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QLabel, QSplitter, QTabWidget, QVBoxLayout, QWidget

from side_engine import events as ev
from side_engine.matching.metrics import GroupedScores, ScoreArrays, chance_level
from side_engine.store import VERDICTS_NAME, AuditStore, TrainingImages
from side_engine.vocabulary import VERDICTS

from .band_panel import BandPanel
from .gallery_view import GalleryView, PairColumns, PairModel, read_columns
from .pair_inspector import PairInspector
from .run_panel import RunPanel, stored_times
from .training_view import TrainingColumns, TrainingView, read_training
from .watch import Snapshot, follow_job, stage_states
from .worker import GeneratorWorker, ended

FOLLOWING = (f"Another process is writing this audit (a side run from a terminal, or a cluster job): it is shown as "
             f"it is written. Verdicts and notes given here are kept in {VERDICTS_NAME}, beside the audit's database.")
READ_ONLY = ("This audit is read-only here (read-only media, or a folder you may not write): it opens for viewing "
             "and export, but verdicts and notes cannot be saved and the run cannot be resumed. Copy the folder to a "
             "writable disk to give verdicts.")
FOLLOWED_DONE = "The other process has finished this audit: everything it made is shown."
FOLLOWED_STOPPED = ("The other process stopped before the audit was complete: what it finished is shown. Resume it "
                    "here or from a terminal.")


@dataclass
class AuditData:
    """What an AuditView shows that takes time to read and sort (seconds at 500k images): made by read_audit on a
    worker thread, so that opening a large audit never stalls the window."""

    store: AuditStore
    arrays: ScoreArrays
    columns: PairColumns
    grouped: GroupedScores
    training: TrainingImages  # store.training_images()
    times: dict  # run_panel.stored_times: a GROUP BY over every image row, tens of ms at 500k
    training_columns: TrainingColumns  # the Training images tab's counts and columns: a second at 1M images

    @property
    def train_paths(self) -> list[str]:
        return self.training.paths


def read_audit(audit_dir: str) -> AuditData:
    """Any thread. Raises InputError for a folder that holds no readable audit."""
    store = AuditStore.open(audit_dir)
    try:
        arrays = store.score_arrays()
        training = store.training_images()
        return AuditData(store=store, arrays=arrays, columns=read_columns(store, arrays),
                         grouped=GroupedScores.of(arrays, store.n_train), training=training,
                         times=stored_times(store),
                         training_columns=read_training(training, arrays, store.config.band_set()))
    finally:
        # This thread's connection only: the view opens its own on the GUI thread.
        store.close()


class AuditView(QWidget):
    """One open audit. Reads with its own store connection; the worker writes with the pipeline's."""

    # The audit's inputs were recorded after the view read it (it opened as another process created it): the view
    # must be read again.
    reloadNeeded = Signal(str)

    def __init__(self, data: AuditData | str, parent: QWidget | None = None):
        super().__init__(parent)
        if isinstance(data, str):
            data = read_audit(data)
        self.store = data.store
        self.root = str(self.store.root)
        cfg = self.store.config
        bands = cfg.band_set()
        self.model = PairModel(self.root, str(self.store.train_path or ""), data.train_paths, self.store.class_names,
                               bands, data.columns, self)
        self.gallery = GalleryView(self.model)
        self.inspector = PairInspector(self.store, bands, data.training)
        self.bands = BandPanel(bands, data.arrays, data.grouped)
        self.bands.describe_audit(cfg.name or Path(self.root).name, cfg.matching.descriptor)
        self.run = RunPanel(cfg)
        self.run.show_stored(self.store, data.grouped.counts(), data.times)
        self.training = TrainingView(self.store, self.model, data.arrays, bands, data.training,
                                     data.training_columns)
        self.training.export_btn.setVisible(exports_training_images())
        self.training.exportRequested.connect(self.export_training_image)

        self.gallery.currentChanged.connect(self.inspector.show_image)
        self.inspector.verdictChanged.connect(self.model.set_verdict)
        self.inspector.verdictChanged.connect(lambda image_id, _: self.training.refresh_pair(image_id))
        # A verdict given in the Training images tab's inspector: the gallery's badge, and its inspector if it shows
        # the same image.
        self.training.inspector.verdictChanged.connect(self.model.set_verdict)
        self.training.inspector.verdictChanged.connect(self._verdict_in_training)
        self.bands.bandsChanged.connect(self.model.set_bands)
        self.bands.bandsChanged.connect(self.inspector.set_bands)
        self.bands.bandsChanged.connect(self.training.set_bands)
        self.bands.resultsChanged.connect(lambda results, _bands: self.run.show_results(results))
        self._update_chance()
        self.run.show_results(self.bands.results)

        self.split = QSplitter(Qt.Horizontal, objectName="gallery_splitter")
        self.split.addWidget(self.gallery)
        self.split.addWidget(self.inspector)
        self.split.setSizes([620, 520])
        self.tabs = QTabWidget(objectName="audit_tabs")
        self.tabs.addTab(self.run, "Run")
        self.tabs.addTab(self.split, "Gallery")
        self.tabs.addTab(self.training, "Training images")
        self.tabs.addTab(self.bands, "Bands and AMS/UMS")
        # Says that another process writes the audit, and then how it ended; hidden for the window's own runs.
        self.banner = QLabel(objectName="watch_banner", wordWrap=True)
        self.banner.setStyleSheet("background: #fff4ce; border: 1px solid #e0c060; padding: 6px;")
        self.banner.hide()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        if self.store.read_only:
            notice = QLabel(READ_ONLY, objectName="read_only_banner", wordWrap=True)
            notice.setStyleSheet(self.banner.styleSheet())
            lay.addWidget(notice)
        lay.addWidget(self.banner)
        lay.addWidget(self.tabs)
        self._follower: GeneratorWorker | None = None
        self._wake = threading.Event()
        self._token = 0
        self.foreign = False  # another process has been seen writing the audit
        self._n_train = self.store.n_train

        # New images arrive in bursts; one store read and one re-sort per burst keeps the gallery smooth.
        self._append = QTimer(self, singleShot=True, interval=250)
        self._append.timeout.connect(self.pull_new_images)
        # Keys 1, 2, 3 give the verdicts in the order of the inspector's buttons.
        shortcuts = [((str(k + 1),), lambda v=v: self.inspector.set_verdict(v)) for k, v in enumerate(VERDICTS)]
        shortcuts += [(("J", "Right"), lambda: self.gallery.step(1)), (("K", "Left"), lambda: self.gallery.step(-1))]
        for keys, slot in shortcuts:
            for k in keys:
                sc = QShortcut(QKeySequence(k), self.split, context=Qt.WidgetWithChildrenShortcut)
                sc.activated.connect(slot)
        self.run.set_running(False, complete=self.complete(), read_only=self.store.read_only)

    def complete(self) -> bool:
        return self.store.complete

    def _update_chance(self) -> None:
        """The on-target rate at chance (1 / labels) is known once the labels stage has counted the labels."""
        chance = chance_level(self.store.stage_info("labels").get("counts"))
        self.bands.set_chance(chance)
        self.run.set_chance(chance)

    def on_event(self, e) -> None:
        self.run.on_event(e)
        if isinstance(e, ev.StageFinished) and e.stage == "labels":
            self._update_chance()
        if isinstance(e, ev.ImagesGenerated) and not self._append.isActive():
            self._append.start()

    def pull_new_images(self) -> None:
        self._append.stop()
        after = int(self.model.ids[-1]) if len(self.model.ids) else 0
        new = self.store.score_arrays(after_id=after)
        if not len(new.ids):
            return
        self.model.append(read_columns(self.store, new))
        self.gallery.update_choices()
        self.bands.add_arrays(new)
        self.training.set_arrays(self.bands.arrays)
        if not self.gallery.list.currentIndex().isValid():
            self.gallery.list.setCurrentIndex(self.model.index(0))

    # ----- a run of another process -----------------------------------------------------------------------------
    def follow(self) -> None:
        """Starts following the store for a writer of another process (and what it writes), until the audit is
        complete and no writer is left, or stop_following(). Not while this window runs the audit itself."""
        if self._follower is not None:
            return
        self._token += 1
        self._wake = threading.Event()
        after = int(self.model.ids[-1]) if len(self.model.ids) else 0
        # The curves as far as the Run tab draws them already.
        steps = {stage: xs[-1] for stage, (xs, _, _) in self.run.curves.items() if xs}
        w = GeneratorWorker(follow_job(self.root, after, steps, self._token, self._wake))
        w.yielded.connect(self._on_snapshot)
        w.errored.connect(self._on_follow_error)
        w.finished.connect(self._on_follow_finished)
        self._follower = w
        w.start()

    def following(self) -> bool:
        return self._follower is not None

    def stop_following(self) -> None:
        """Stops the reader and waits for its thread (it is between two polls, or in one: milliseconds)."""
        w, self._follower = self._follower, None
        if w is None:
            return
        w.cancel()
        self._wake.set()
        w.wait()

    def _on_follow_finished(self) -> None:
        if ended(self.sender(), self._follower):
            self._follower = None

    def _on_follow_error(self, message: str) -> None:
        self.run.log.appendPlainText(f"could not follow the audit: {message}")

    def _on_snapshot(self, snap: Snapshot) -> None:
        if snap.token != self._token or self._follower is None:
            return  # from a following stopped since
        if snap.n_train and not self._n_train:
            self._n_train = snap.n_train
            self.reloadNeeded.emit(self.root)
            return
        if snap.writer:
            if not self.foreign:
                self.run.log.appendPlainText("Another process is writing this audit: following it from the store.")
            self.foreign = True
            self.banner.setText(FOLLOWING)
            self.banner.show()
            self.run.set_foreign()
        if snap.curves:
            for stage, points in snap.curves.items():
                self.run.add_curve_points(stage, points)
        if snap.health is not None and snap.health:
            self.run.on_event(ev.HealthUpdated(tuple((b.t_lo, b.t_hi, b.agreement) for b in snap.health)))
        if "labels" in snap.stages:
            chance = chance_level(snap.stages["labels"].get("counts"))
            if chance != self.run.chance:
                self.bands.set_chance(chance)
                self.run.set_chance(chance)
        if snap.columns is not None:
            self.model.append(snap.columns)
            self.gallery.update_choices()
            self.bands.add_arrays(snap.arrays)
            self.training.set_arrays(self.bands.arrays)
            if not self.gallery.list.currentIndex().isValid():
                self.gallery.list.setCurrentIndex(self.model.index(0))
        if self.foreign:
            self.run.follow(stage_states(self.store.config, snap))
        if self.foreign and not snap.writer:
            # The writer has let go: finished, or stopped (cancelled, or its process ended).
            self.bands.rescore()
            self.run.set_running(False, complete=snap.complete)
            self.banner.setText(FOLLOWED_DONE if snap.complete else FOLLOWED_STOPPED)
            self.run.log.appendPlainText("The other process has finished the audit." if snap.complete else
                                         "The other process stopped before the audit was complete.")
            self.foreign = False

    def _verdict_in_training(self, image_id: int, _verdict) -> None:
        if self.inspector.image_id == image_id:
            self.inspector.show_image(image_id)

    def export_training_image(self, train_idx: int) -> None:
        """The export dialog for the pairs of one training image (the Training images tab's button)."""
        from .export_dialog import ExportDialog

        if train_idx >= 0 and exports_training_images():
            ExportDialog(self, self.window(), training_image=train_idx).open()

    def shutdown(self) -> None:
        self.stop_following()
        self._append.stop()
        self.bands.cancel_pending()
        self.training.shutdown()
        self.model.thumbs.shutdown()
        self.inspector.blink.stop()
        self.store.close()


def exports_training_images() -> bool:
    """Whether the export dialog can export the pairs of one training image (its training_image keyword)."""
    import inspect

    from .export_dialog import ExportDialog

    return "training_image" in inspect.signature(ExportDialog).parameters
