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
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPoint,
    QRect,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLayoutItem,
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
# Purple and green (ColorBrewer's PRGn ends) part for every colour vision, and neither is a band's colour: a pair
# marked Copy must not read as the high band. All dark enough for white text (contrast 5.7 and more).
VERDICT_COLORS = {Verdict.COPY: QColor("#762a83"), Verdict.NOT_COPY: QColor("#1b7837"),
                  Verdict.UNSURE: QColor("#5f5f5f")}
THUMB = 88
# The label filter's choice for the unguided (random) images, which have no target; stored labels are never negative.
NO_TARGET = -1
PAIR_HEADER = "Each pair: left, the generated image; right, its nearest training image."


def guide_text(guide: str, gamma: float) -> str:
    """A run's name as the gallery, the tables and the export dialog print it: "random" or "TD γ=5"."""
    guide = Guide(guide)
    return guide.tag if guide is Guide.NONE else f"{guide.tag} γ={gamma:g}"


def text_color_on(color: QColor) -> QColor:
    """White or black, whichever reads better on a badge of this colour (WCAG contrast): the mid and low bands'
    orange and olive, and the grey of no band, are too light for white text."""

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    lum = 0.2126 * linear(color.redF()) + 0.7152 * linear(color.greenF()) + 0.0722 * linear(color.blueF())
    return QColor("white") if 1.05 / (lum + 0.05) >= (lum + 0.05) / 0.05 else QColor("black")


def load_qimage(path: Path, size: int | None = None) -> QImage:
    """Small images are scaled up without smoothing: a 16-pixel digit should look like its pixels."""
    img = QImage(str(path))
    if img.isNull() or size is None:
        return img
    smooth = img.width() > size
    return img.scaled(size, size, Qt.KeepAspectRatio, Qt.SmoothTransformation if smooth else Qt.FastTransformation)


class _Loaded(QObject):
    done = Signal(str, QImage)
    closed = False  # set by ThumbnailCache.shutdown: loads not yet begun are skipped


class _LoadThumb(QRunnable):
    def __init__(self, path: str, size: int, sink: _Loaded):
        super().__init__()
        self.path, self.size, self.sink = path, size, sink

    def run(self) -> None:
        if not self.sink.closed:
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
        """This cache's loads that have not begun are skipped when their turn comes, and a load under way only ends.
        The pool is the application's: clearing it dropped the queued loads of every other view (the gallery's
        thumbnails, the pair inspector's images) when one dialog closed; taking back our own loads cannot be done
        safely, since the pool deletes a load the moment it has run."""
        self._closed = True
        self._sink.closed = True


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
    runs: set[tuple[Guide, float]]  # the (guide, gamma) pairs among these rows, and the target labels of the guided
    labels: set[int]  # ones: the filters' choices, found where the columns are read (np.unique over 500k rows: 0.1 s)


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
                       paths=paths, runs=runs, labels={int(y) for y in np.unique(a.label[guide != Guide.NONE])})


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
        if f["label"] == NO_TARGET:
            keep &= self.guide == Guide.NONE
        elif f["label"] is not None:
            # A random image's stored label only seeded its noise: it is no target, and no label shows it.
            keep &= (self.label == f["label"]) & (self.guide != Guide.NONE)
        if f["verdict"] is not None:
            keep &= self.verdict == f["verdict"]
        rows = np.flatnonzero(keep)
        closest = self.best[rows] if self.bands.direction is Direction.DISTANCE else -self.best[rows]
        if self.sort_key == "score":
            perm = np.argsort(closest, kind="stable")
        elif self.sort_key == "gamma":
            perm = np.lexsort((closest, self.gamma[rows], self.guide[rows]))
        elif self.sort_key == "label":
            # The random images, which have no target, after every target label, closest first among them.
            random = self.guide[rows] == Guide.NONE
            perm = np.lexsort((closest, np.where(random, 0, self.label[rows]), random))
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
            run = guide_text(self.guide[i], self.gamma[i])
            return f"#{self.ids[i]} {run}, {self.target(i)}, score {self.best[i]:.3f}"
        return None

    def row_info(self, row: int) -> dict:
        i = int(self.order[row])
        return dict(id=int(self.ids[i]), guide=self.guide[i], gamma=float(self.gamma[i]), label=int(self.label[i]),
                    target=self.target(i, short=True), best=float(self.best[i]), band=str(self.band[i]),
                    verdict=str(self.verdict[i]),
                    path=os.path.join(self.root, self.paths[i]),
                    train_path=os.path.join(self.train_root, self.train_paths[int(self.best_train[i])]))

    def label_name(self, label: int) -> str:
        return self.class_names[label] if 0 <= label < len(self.class_names) else str(label)

    def target(self, i: int, short: bool = False) -> str:
        """What image i was guided towards: "label 3" ("3" short), or "no target" for a random (unguided) one, whose
        stored label only seeded its noise."""
        if self.guide[i] == Guide.NONE:
            return "no target"
        name = self.label_name(int(self.label[i]))
        return name if short else f"label {name}"

    def row_of_id(self, image_id: int) -> int | None:
        pos = np.flatnonzero(self.ids[self.order] == image_id)
        return int(pos[0]) if len(pos) else None


class PairDelegate(QStyledItemDelegate):
    """Paints one pair: generated | nearest training image, score, band badge, gamma, target label, verdict. A cell
    fills its column of the list's grid (PairList), the pair centred in it."""

    PAD = 6
    GAP = 4  # between two cells
    SIZE = QSize(2 * THUMB + 3 * PAD, THUMB + 2 * PAD + 34)  # the narrowest a cell is

    def sizeHint(self, option, index) -> QSize:
        grid = self.parent().gridSize()
        if not grid.isValid():
            return self.SIZE
        return QSize(max(grid.width() - self.GAP, self.SIZE.width()), self.SIZE.height())

    def paint(self, p: QPainter, option, index) -> None:
        model: PairModel = index.model()
        info = model.row_info(index.row())
        cell = option.rect
        p.save()
        if option.state & QStyle.State_Selected:
            p.fillRect(cell, option.palette.highlight())
        else:
            p.fillRect(cell.adjusted(2, 2, -2, -2), option.palette.alternateBase())
        r = QRect(0, 0, self.SIZE.width(), cell.height())
        r.moveCenter(cell.center())
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
        p.setPen(text_color_on(color))
        f = QFont(option.font)
        f.setPointSizeF(f.pointSizeF() * 0.85)
        f.setBold(True)
        p.setFont(f)
        p.drawText(badge, Qt.AlignCenter, BandName(info["band"]).label if info["band"] else "—")
        text = option.palette.highlightedText() if option.state & QStyle.State_Selected else option.palette.text()
        p.setPen(text.color())
        p.drawText(QRect(badge.right() + pad, badge.top(), r.width() - badge.width() - 3 * pad, 16),
                   Qt.AlignVCenter | Qt.AlignLeft, f"{info['best']:.3f}")
        f.setBold(False)
        p.setFont(f)
        line = f"{guide_text(info['guide'], info['gamma'])} · {info['target']}"
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


class PairList(QListView):
    """The gallery's list. Its grid takes as many whole cells as the width holds and shares out the rest among them,
    so that no empty strip is left at the right whatever the window's width."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # A scroll bar that came and went with the rows shown (a filter) would change the width after the grid was
        # fitted to it, and one cell too wide wraps a whole column away.
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOn)

    def resizeEvent(self, e) -> None:
        super().resizeEvent(e)
        # Less two pixels: the icon mode's layout starts a new row where a cell would reach the viewport's last pixel.
        width = self.viewport().width() - 2
        smallest = PairDelegate.SIZE.width() + PairDelegate.GAP
        grid = QSize(width // max(1, width // smallest), PairDelegate.SIZE.height() + PairDelegate.GAP)
        if grid != self.gridSize():
            self.setGridSize(grid)


class FlowLayout(QLayout):
    """Widgets in rows that wrap where the width ends: the filter bar stays whole in a narrow gallery (a 1024-pixel
    screen) instead of setting the window's minimum width."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 6):
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self.setSpacing(spacing)
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, i: int) -> QLayoutItem | None:
        return self._items[i] if 0 <= i < len(self._items) else None

    def takeAt(self, i: int) -> QLayoutItem | None:
        return self._items.pop(i) if 0 <= i < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._place(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._place(rect, move=True)

    def sizeHint(self) -> QSize:
        shown = [item.sizeHint() for item in self._items if not item.isEmpty()]
        return QSize(sum(h.width() for h in shown) + self.spacing() * max(len(shown) - 1, 0),
                     max((h.height() for h in shown), default=0))

    def minimumSize(self) -> QSize:
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        return size

    def _place(self, rect: QRect, move: bool) -> int:
        """Lays the items out in rect (when move) and returns the height they take."""
        x, y, row = rect.x(), rect.y(), 0
        for item in self._items:
            if item.isEmpty():
                continue
            hint = item.sizeHint()
            if row and x + hint.width() > rect.right() + 1:
                x, y, row = rect.x(), y + row + self.spacing(), 0
            if move:
                item.setGeometry(QRect(QPoint(x, y), hint))
            x += hint.width() + self.spacing()
            row = max(row, hint.height())
        return y + row - rect.y()


class GalleryView(QWidget):
    """Filter bar + the virtualised list."""

    currentChanged = Signal(int)  # image id, -1 for none

    def __init__(self, model: PairModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.list = PairList(objectName="gallery")
        self.list.setViewMode(QListView.IconMode)
        self.list.setResizeMode(QListView.Adjust)
        self.list.setMovement(QListView.Static)
        self.list.setUniformItemSizes(True)
        self.list.setLayoutMode(QListView.Batched)
        self.list.setBatchSize(500)
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
        self.filter_bar = QWidget(objectName="gallery_filters")
        bar = FlowLayout(self.filter_bar)
        bar.addWidget(labelled("Sort", self.sort))
        bar.addWidget(labelled("Show", self.f_gamma))
        for w in (self.f_band, self.f_label, self.f_verdict):
            bar.addWidget(w)
        self.header = QLabel(PAIR_HEADER, objectName="gallery_header", wordWrap=True)
        under = QHBoxLayout()
        under.addWidget(self.header, 1)
        under.addWidget(self.count)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.filter_bar)
        lay.addLayout(under)
        lay.addWidget(self.list, 1)
        self.update_choices()
        self._update_count()

    def update_choices(self) -> None:
        """Gamma and label filters offer what the audit holds so far."""
        m = self.model
        groups = sorted(m.runs, key=lambda k: (k[1], k[0]))
        _refill(self.f_gamma, "any gamma", [(guide_text(g, y), (g, y)) for g, y in groups])
        targets = [(m.label_name(y), y) for y in sorted(m.labels)]
        if any(g is Guide.NONE for g, _ in m.runs):
            targets.append(("no target (random)", NO_TARGET))
        _refill(self.f_label, "any label", targets)

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


def labelled(text: str, widget: QWidget) -> QWidget:
    """A word and the control it names, kept on one row of the filter bar."""
    box = QWidget()
    lay = QHBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(QLabel(text))
    lay.addWidget(widget)
    return box


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
