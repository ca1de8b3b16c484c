"""One open audit: the run panel, the gallery beside the pair inspector, and the bands; fed by the worker's events."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QSplitter, QTabWidget, QVBoxLayout, QWidget

from side_engine import events as ev
from side_engine.matching.metrics import GroupedScores, ScoreArrays, chance_level
from side_engine.store import AuditStore, TrainImage
from side_engine.vocabulary import VERDICTS

from .band_panel import BandPanel
from .gallery_view import GalleryView, PairColumns, PairModel, read_columns
from .pair_inspector import PairInspector
from .run_panel import RunPanel


@dataclass
class AuditData:
    """What an AuditView shows that takes time to read and sort (seconds at 500k images): made by read_audit on a
    worker thread, so that opening a large audit never stalls the window."""

    store: AuditStore
    arrays: ScoreArrays
    columns: PairColumns
    grouped: GroupedScores
    training: list[TrainImage]  # store.training_images()

    @property
    def train_paths(self) -> list[str]:
        return [t.path for t in self.training]


def read_audit(audit_dir: str) -> AuditData:
    """Any thread. Raises InputError for a folder that holds no readable audit."""
    store = AuditStore.open(audit_dir)
    try:
        arrays = store.score_arrays()
        return AuditData(store=store, arrays=arrays, columns=read_columns(store, arrays),
                         grouped=GroupedScores.of(arrays, store.n_train), training=store.training_images())
    finally:
        # This thread's connection only: the view opens its own on the GUI thread.
        store.close()


class AuditView(QWidget):
    """One open audit. Reads with its own store connection; the worker writes with the pipeline's."""

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
        self.run = RunPanel(cfg)
        self.run.show_stored(self.store, data.grouped.counts())

        self.gallery.currentChanged.connect(self.inspector.show_image)
        self.inspector.verdictChanged.connect(self.model.set_verdict)
        self.bands.bandsChanged.connect(self.model.set_bands)
        self.bands.bandsChanged.connect(self.inspector.set_bands)
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
        self.tabs.addTab(self.bands, "Bands and AMS/UMS")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.tabs)

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
        self.run.set_running(False, complete=self.complete())

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
        if not self.gallery.list.currentIndex().isValid():
            self.gallery.list.setCurrentIndex(self.model.index(0))

    def shutdown(self) -> None:
        self._append.stop()
        self.bands.cancel_pending()
        self.model.thumbs.shutdown()
        self.inspector.blink.stop()
        self.store.close()
