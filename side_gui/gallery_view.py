"""The gallery: every generated image beside its nearest training image, score printed, band badge.

Rows live in numpy columns and sorting/filtering is a numpy permutation, so a list of 100,000 pairs re-sorts
in milliseconds; the view asks only for the rows on screen (uniform item sizes) and thumbnails load lazily on
a thread pool into an LRU cache.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QRect, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QVBoxLayout,
    QWidget,
)

from side_engine.matching.metrics import Bands, ScoreArrays
from side_engine.store import AuditStore
from side_engine.vocabulary import BANDS_HIGH_FIRST, VERDICTS, BandName, Direction, Guide, Verdict

BAND_COLORS = {BandName.HIGH: QColor("#d62728"), BandName.MID: QColor("#ff7f0e"), BandName.LOW: QColor("#bcbd22")}
NO_BAND_COLOR = QColor("#9e9e9e")
VERDICT_COLORS = {Verdict.COPY: QColor("#d62728"), Verdict.NOT_COPY: QColor("#2ca02c"),
                  Verdict.UNSURE: QColor("#7f7f7f")}
THUMB = 88


def guide_text(guide: str, gamma: float) -> str:
    """A run's name as the gallery, the tables and the export dialog print it: "random" or "TD γ=5"."""
    guide = Guide(guide)
    return guide.tag if guide is Guide.NONE else f"{guide.tag} γ={gamma:g}"


def load_qimage(path: Path, size: int | None = None) -> QImage:
    """Small images are scaled up without smoothing: a 16-pixel digit should look like its pixels."""
    img = QImage(str(path))
    if img.isNull() or size is None:
        return img
    smooth = img.width() > size
    return img.scaled(size, size, Qt.KeepAspectRatio, Qt.SmoothTransformation if smooth else Qt.FastTransformation)


class _Loaded(QObject):
    done = Signal(str, QImage)


class _LoadThumb(QRunnable):
    def __init__(self, path: str, size: int, sink: _Loaded):
        super().__init__()
        self.path, self.size, self.sink = path, size, sink

    def run(self) -> None:
        self.sink.done.emit(self.path, load_qimage(Path(self.path), self.size))


class ThumbnailCache(QObject):
    """LRU of thumbnails by path; get() returns None and loads in the background on a miss."""

    ready = Signal(str)

    def __init__(self, size: int = THUMB, capacity: int = 4000, parent=None):
        super().__init__(parent)
        self.size = size
        self.capacity = capacity
        self._cache: OrderedDict[str, QPixmap] = OrderedDict()
        self._pending: set[str] = set()
        # The application's pool, not one of our own: a pool that the garbage collector destroys on the GUI thread
        # waits there for its running loads, which wait for the GIL that thread holds (a hang seen in the tests).
        self._pool = QThreadPool.globalInstance()
        self._closed = False
        self._sink = _Loaded()
        self._sink.done.connect(self._store)

    def get(self, path: str) -> QPixmap | None:
        pix = self._cache.get(path)
        if pix is not None:
            self._cache.move_to_end(path)
            return pix
        if path not in self._pending and not self._closed:
            self._pending.add(path)
            self._pool.start(_LoadThumb(path, self.size, self._sink))
        return None

    def _store(self, path: str, image: QImage) -> None:
        self._pending.discard(path)
        self._cache[path] = QPixmap.fromImage(image)
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        self.ready.emit(path)

    def shutdown(self) -> None:
        self._closed = True
        self._pool.clear()
        self._pool.waitForDone(5000)


SORTS = {"score": "Score (closest first)", "gamma": "Gamma", "label": "Label", "time": "Time (newest first)"}


@dataclass
class PairColumns:
    """The gallery's columns for some generated images, in id order; made by read_columns on any thread."""

    ids: np.ndarray
    guide: np.ndarray  # '<U4' Guide values: fixed-width strings, not objects, so filters and sorts stay vectorised
    gamma: np.ndarray
    label: np.ndarray
    best: np.ndarray
    best_train: np.ndarray
    verdict: np.ndarray  # '<U8' Verdict values, '' where none
    paths: list[str]  # relative to the audit folder: a Path object per row costs seconds at 500k rows
    runs: set[tuple[Guide, float]]  # the (guide, gamma) pairs among these rows, and their labels: the filters' choices,
    labels: set[int]  # found where the columns are read (np.unique over 500k rows takes 0.1 s)


def read_columns(store: AuditStore, a: ScoreArrays) -> PairColumns:
    """The gallery's columns for the rows of `a`, with their file names and verdicts from the store."""
    n = len(a.ids)
    paths: list[str] = []
    if n:
        rows = store.db.execute("SELECT id, path FROM images WHERE id >= ? AND id <= ? ORDER BY id",
                                (int(a.ids[0]), int(a.ids[-1]))).fetchall()
        if len(rows) == n:
            paths = [p for _, p in rows]
        else:
            by_id = dict(rows)
            paths = [by_id[int(i)] for i in a.ids]
    verdict = np.zeros(n, "<U8")
    stored = store.verdicts()
    if stored and n:
        vid = np.fromiter(stored, np.int64, len(stored))
        pos = np.minimum(np.searchsorted(a.ids, vid), n - 1)
        hit = a.ids[pos] == vid
        verdict[pos[hit]] = [stored[int(i)].verdict or "" for i in vid[hit]]
    guide = a.guide.astype("<U4")
    runs = {(Guide(str(g)), float(y)) for g in np.unique(guide) for y in np.unique(a.gamma[guide == g])}
    return PairColumns(ids=a.ids, guide=guide, gamma=a.gamma, label=a.label, best=a.best,
                       best_train=a.nn_idx[:, 0].astype(np.int64) if n else np.zeros(0, np.int64), verdict=verdict,
                       paths=paths, runs=runs, labels={int(y) for y in np.unique(a.label)})


class PairModel(QAbstractListModel):
    """Generated images of one audit as columns; `order` is the visible permutation."""

    # Badges or thumbnails changed for rows anywhere: views repaint what is on screen. Not dataChanged over every
    # row: an icon-mode QListView walks the whole range, calling rowCount() once per row (seconds at 500k rows).
    repaintRequested = Signal()

    IdRole = Qt.UserRole + 1
    BandRole = Qt.UserRole + 2
    ScoreRole = Qt.UserRole + 3

    def __init__(self, root: str, train_root: str, train_paths: list[str], class_names: list[str], bands: Bands,
                 columns: PairColumns, parent: QObject | None = None):
        super().__init__(parent)
        self.root = root
        self.bands = bands
        self.class_names = class_names
        self.train_root = train_root
        self.train_paths = train_paths
        self.ids = np.zeros(0, np.int64)
        self.guide = np.zeros(0, "<U4")
        self.gamma = np.zeros(0)
        self.label = np.zeros(0, np.int64)
        self.best = np.zeros(0, np.float32)
        self.best_train = np.zeros(0, np.int64)
        self.verdict = np.zeros(0, "<U8")
        self.band = np.zeros(0, "<U4")
        self.paths: list[str] = []
        self.runs: set[tuple[Guide, float]] = set()
        self.labels: set[int] = set()
        self.order = np.zeros(0, np.int64)
        self.sort_key = "score"
        self.filters: dict[str, object] = {"gamma": None, "band": None, "label": None, "verdict": None}
        self.thumbs = ThumbnailCache(parent=self)
        self.thumbs.ready.connect(self.repaintRequested)
        self.append(columns)

    # ----- data in ---------------------------------------------------------------------------------------------
    def append(self, c: PairColumns) -> None:
        if not len(c.ids):
            return
        for name in ("ids", "guide", "gamma", "label", "best", "best_train", "verdict"):
            # Opening a large audit appends to an empty model: take the columns as they are, no copy.
            old = getattr(self, name)
            setattr(self, name, np.concatenate([old, getattr(c, name)]) if len(old) else getattr(c, name))
        self.band = np.concatenate([self.band, self.bands.classify(c.best)])
        self.paths += c.paths
        self.runs |= c.runs
        self.labels |= c.labels
        self.refresh()

    def set_bands(self, bands: Bands) -> None:
        self.bands = bands
        self.band = self.bands.classify(self.best)
        if self.filters["band"] is not None:
            self.refresh()
        else:
            self.repaintRequested.emit()

    def set_verdict(self, image_id: int, verdict: Verdict | None) -> None:
        pos = np.flatnonzero(self.ids == image_id)
        if not len(pos):
            return
        self.verdict[pos[0]] = verdict or ""
        row = np.flatnonzero(self.order == pos[0])
        if len(row):
            self.dataChanged.emit(self.index(int(row[0])), self.index(int(row[0])))

    # ----- sort and filter ------------------------------------------------------------------------------------
    def set_sort(self, key: str) -> None:
        self.sort_key = key
        self.refresh()

    def set_filter(self, name: str, value) -> None:
        self.filters[name] = value
        self.refresh()

    def refresh(self) -> None:
        keep = np.ones(len(self.ids), bool)
        f = self.filters
        if f["gamma"] is not None:
            guide, gamma = f["gamma"]
            keep &= (self.guide == guide) & np.isclose(self.gamma, gamma)
        if f["band"] is not None:
            keep &= self.band == f["band"]
        if f["label"] is not None:
            keep &= self.label == f["label"]
        if f["verdict"] is not None:
            keep &= self.verdict == f["verdict"]
        rows = np.flatnonzero(keep)
        closest = self.best[rows] if self.bands.direction is Direction.DISTANCE else -self.best[rows]
        if self.sort_key == "score":
            perm = np.argsort(closest, kind="stable")
        elif self.sort_key == "gamma":
            perm = np.lexsort((closest, self.gamma[rows], self.guide[rows]))
        elif self.sort_key == "label":
            perm = np.lexsort((closest, self.label[rows]))
        else:
            perm = np.argsort(-self.ids[rows], kind="stable")
        self.beginResetModel()
        self.order = rows[perm]
        self.endResetModel()

    # ----- Qt model ---------------------------------------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.order)

    def data(self, index: QModelIndex, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        i = int(self.order[index.row()])
        if role == self.IdRole:
            return int(self.ids[i])
        if role == self.BandRole:
            return str(self.band[i])
        if role == self.ScoreRole:
            return float(self.best[i])
        if role in (Qt.DisplayRole, Qt.ToolTipRole):
            return (f"#{self.ids[i]} {guide_text(self.guide[i], self.gamma[i])}, "
                    f"label {self.label_name(self.label[i])}, score {self.best[i]:.3f}")
        return None

    def row_info(self, row: int) -> dict:
        i = int(self.order[row])
        return dict(id=int(self.ids[i]), guide=self.guide[i], gamma=float(self.gamma[i]), label=int(self.label[i]),
                    best=float(self.best[i]), band=str(self.band[i]), verdict=str(self.verdict[i]),
                    path=os.path.join(self.root, self.paths[i]),
                    train_path=os.path.join(self.train_root, self.train_paths[int(self.best_train[i])]))

    def label_name(self, label: int) -> str:
        return self.class_names[label] if 0 <= label < len(self.class_names) else str(label)

    def row_of_id(self, image_id: int) -> int | None:
        pos = np.flatnonzero(self.ids[self.order] == image_id)
        return int(pos[0]) if len(pos) else None


class PairDelegate(QStyledItemDelegate):
    """Paints one pair: generated | nearest training image, score, band badge, gamma, label, verdict."""

    PAD = 6

    def sizeHint(self, option, index) -> QSize:
        return QSize(2 * THUMB + 3 * self.PAD, THUMB + 2 * self.PAD + 34)

    def paint(self, p: QPainter, option, index) -> None:
        model: PairModel = index.model()
        info = model.row_info(index.row())
        r = option.rect
        p.save()
        if option.state & QStyle.State_Selected:
            p.fillRect(r, option.palette.highlight())
        else:
            p.fillRect(r.adjusted(2, 2, -2, -2), option.palette.alternateBase())
        pad = self.PAD
        for k, path in enumerate((info["path"], info["train_path"])):
            box = QRect(r.left() + pad + k * (THUMB + pad), r.top() + pad, THUMB, THUMB)
            pix = model.thumbs.get(path)
            if pix is None:
                p.fillRect(box, QColor("#404040"))
            else:
                target = QRect(0, 0, pix.width(), pix.height())
                target.moveCenter(box.center())
                p.drawPixmap(target, pix)
        color = BAND_COLORS.get(info["band"], NO_BAND_COLOR)
        badge = QRect(r.left() + pad, r.top() + THUMB + 2 * pad, 44, 16)
        p.setPen(Qt.NoPen)
        p.setBrush(color)
        p.drawRoundedRect(badge, 4, 4)
        p.setPen(QColor("white"))
        f = QFont(option.font)
        f.setPointSizeF(f.pointSizeF() * 0.85)
        f.setBold(True)
        p.setFont(f)
        p.drawText(badge, Qt.AlignCenter, BandName(info["band"]).label if info["band"] else "—")
        p.setPen(option.palette.text().color())
        p.drawText(QRect(badge.right() + pad, badge.top(), r.width() - badge.width() - 3 * pad, 16),
                   Qt.AlignVCenter | Qt.AlignLeft, f"{info['best']:.3f}")
        f.setBold(False)
        p.setFont(f)
        line = f"{guide_text(info['guide'], info['gamma'])} · {model.label_name(info['label'])}"
        p.drawText(QRect(r.left() + pad, badge.bottom() + 2, r.width() - 2 * pad, 16), Qt.AlignVCenter | Qt.AlignLeft,
                   line)
        if info["verdict"]:
            # A filled badge, as the band's: coloured text alone did not read on the selection's highlight.
            f.setBold(True)
            p.setFont(f)
            verdict = Verdict(info["verdict"])
            text = verdict.label
            w = p.fontMetrics().horizontalAdvance(text) + 10
            tag = QRect(r.right() - pad - w, badge.top(), w, 16)
            p.setPen(Qt.NoPen)
            p.setBrush(VERDICT_COLORS[verdict])
            p.drawRoundedRect(tag, 4, 4)
            p.setPen(QColor("white"))
            p.drawText(tag, Qt.AlignCenter, text)
        p.restore()


class GalleryView(QWidget):
    """Filter bar + the virtualised list."""

    currentChanged = Signal(int)  # image id, -1 for none

    def __init__(self, model: PairModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.list = QListView(objectName="gallery")
        self.list.setViewMode(QListView.IconMode)
        self.list.setResizeMode(QListView.Adjust)
        self.list.setMovement(QListView.Static)
        self.list.setUniformItemSizes(True)
        self.list.setLayoutMode(QListView.Batched)
        self.list.setBatchSize(500)
        self.list.setSpacing(2)
        self.list.setSelectionMode(QListView.ExtendedSelection)
        self.list.setModel(model)
        model.repaintRequested.connect(self.list.viewport().update)
        self.list.setItemDelegate(PairDelegate(self.list))
        self.list.selectionModel().currentChanged.connect(self._current)
        model.modelAboutToBeReset.connect(self._remember)
        model.modelReset.connect(self._restore)
        self._keep_id = -1

        self.sort = QComboBox(objectName="gallery_sort")
        for key, text in SORTS.items():
            self.sort.addItem(text, key)
        self.sort.currentIndexChanged.connect(lambda _: model.set_sort(self.sort.currentData()))
        self.f_gamma = QComboBox(objectName="filter_gamma")
        self.f_band = QComboBox(objectName="filter_band")
        for name in BANDS_HIGH_FIRST:
            self.f_band.addItem(name.label, name)
        self.f_band.insertItem(0, "any band", None)
        self.f_band.addItem("no band", "")
        self.f_band.setCurrentIndex(0)
        self.f_label = QComboBox(objectName="filter_label")
        self.f_verdict = QComboBox(objectName="filter_verdict")
        self.f_verdict.addItem("any verdict", None)
        for verdict in VERDICTS:
            self.f_verdict.addItem(verdict.label, verdict)
        self.f_verdict.addItem("no verdict", "")
        for combo, name in ((self.f_gamma, "gamma"), (self.f_band, "band"), (self.f_label, "label"),
                            (self.f_verdict, "verdict")):
            combo.currentIndexChanged.connect(lambda _, c=combo, n=name: model.set_filter(n, c.currentData()))
        self.count = QLabel(objectName="gallery_count")
        model.modelReset.connect(self._update_count)
        bar = QHBoxLayout()
        for w in (QLabel("Sort"), self.sort, QLabel("Show"), self.f_gamma, self.f_band, self.f_label, self.f_verdict):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.count)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(bar)
        lay.addWidget(self.list, 1)
        self.update_choices()
        self._update_count()

    def update_choices(self) -> None:
        """Gamma and label filters offer what the audit holds so far."""
        m = self.model
        groups = sorted(m.runs, key=lambda k: (k[1], k[0]))
        _refill(self.f_gamma, "any gamma", [(guide_text(g, y), (g, y)) for g, y in groups])
        _refill(self.f_label, "any label", [(m.label_name(y), y) for y in sorted(m.labels)])

    def _update_count(self) -> None:
        self.count.setText(f"{len(self.model.order):,} of {len(self.model.ids):,} pairs")

    def _remember(self) -> None:
        cur = self.list.currentIndex()
        self._keep_id = self.model.data(cur, PairModel.IdRole) if cur.isValid() else -1

    def _restore(self) -> None:
        row = self.model.row_of_id(self._keep_id) if self._keep_id >= 0 else None
        if row is not None:
            self.list.setCurrentIndex(self.model.index(row))

    def _current(self, cur: QModelIndex, _prev: QModelIndex) -> None:
        self.currentChanged.emit(self.model.data(cur, PairModel.IdRole) if cur.isValid() else -1)

    def step(self, delta: int) -> None:
        n = self.model.rowCount()
        if not n:
            return
        cur = self.list.currentIndex()
        row = min(max((cur.row() if cur.isValid() else -1) + delta, 0), n - 1)
        self.list.setCurrentIndex(self.model.index(row))

    def selected_ids(self) -> list[int]:
        return [self.model.data(i, PairModel.IdRole) for i in self.list.selectionModel().selectedIndexes()]


def _refill(combo: QComboBox, any_text: str, items: list[tuple[str, object]]) -> None:
    current = combo.currentData()
    if combo.count() == len(items) + 1 and all(combo.itemData(k + 1) == v for k, (_, v) in enumerate(items)):
        return
    combo.blockSignals(True)
    combo.clear()
    combo.addItem(any_text, None)
    for text, value in items:
        combo.addItem(text, value)
    k = combo.findData(current) if current is not None else 0
    combo.setCurrentIndex(max(k, 0))
    combo.blockSignals(False)
