"""One open audit: the run panel, the gallery beside the pair inspector, and the bands; fed by the worker's events."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QSplitter, QTabWidget, QVBoxLayout, QWidget

from side_engine import events as ev
from side_engine.store import AuditStore

from .band_panel import BandPanel
from .gallery_view import GalleryView, PairModel
from .pair_inspector import PairInspector
from .run_panel import RunPanel


class AuditView(QWidget):
    """One open audit. Reads with its own store connection; the worker writes with the pipeline's."""

    def __init__(self, audit_dir: str, parent=None):
        super().__init__(parent)
        self.store = AuditStore.open(audit_dir)
        self.root = str(self.store.root)
        cfg = self.store.config
        bands = cfg.band_set()
        arrays = self.store.score_arrays()
        self.model = PairModel(self.store, bands, arrays, self)
        self.gallery = GalleryView(self.model)
        self.inspector = PairInspector(self.store, bands)
        self.bands = BandPanel(bands, arrays, int(self.store.meta("n_train") or 0))
        self.run = RunPanel(cfg)
        self.run.show_stored(self.store)

        self.gallery.currentChanged.connect(self.inspector.show_image)
        self.inspector.verdictChanged.connect(self.model.set_verdict)
        self.bands.bandsChanged.connect(self.model.set_bands)
        self.bands.bandsChanged.connect(self.inspector.set_bands)

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
        for keys, slot in ((("1",), lambda: self.inspector.set_verdict("copy")),
                           (("2",), lambda: self.inspector.set_verdict("not_copy")),
                           (("3",), lambda: self.inspector.set_verdict("unsure")),
                           (("J", "Right"), lambda: self.gallery.step(1)),
                           (("K", "Left"), lambda: self.gallery.step(-1))):
            for k in keys:
                sc = QShortcut(QKeySequence(k), self.split, context=Qt.WidgetWithChildrenShortcut)
                sc.activated.connect(slot)
        self.run.set_running(False, complete=self.complete())

    def complete(self) -> bool:
        return self.store.meta("status") == "complete"

    def on_event(self, e) -> None:
        self.run.on_event(e)
        if isinstance(e, ev.ImagesGenerated) and not self._append.isActive():
            self._append.start()

    def pull_new_images(self) -> None:
        self._append.stop()
        after = int(self.model.ids[-1]) if len(self.model.ids) else 0
        new = self.store.score_arrays(after_id=after)
        if not len(new.ids):
            return
        self.model.append(new, self.store)
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
