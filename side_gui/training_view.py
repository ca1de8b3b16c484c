"""The Training images tab: the audit read per training image (side_engine/questions/by_image.py).

Every training image with how many generated images matched it in each band, its closest score and the run that
reached it, and how many runs matched it; most at risk first. Rows live in numpy columns and sorting / filtering is a
permutation (arrange), and the view asks only for the rows on screen; thumbnails load lazily on the thread pool
(gallery_view.ThumbnailCache). A million training images take tens of milliseconds to filter by name or sort by a
score, so each sort and filter is arranged on a worker: the header shows the sort at once, the rows follow, and a
newer request cancels an older one. The counts follow the Bands tab's edges and the images streamed in: each
recount runs on a worker (about half a second for a million training images and 500,000 generated ones), with the
rows for the sort and filters asked for when it began, while the tab is shown; a hidden tab recounts when it is
shown, as the Bands tab does.

Choosing a training image lists the generated images that hold it among their k neighbours, closest first (the
closest thousand of a much-copied one, all of them counted in the title), drawn as the gallery draws a pair (here the
generated image beside this training image); choosing one shows the pair in the tab's own pair inspector, with this
training image as the compared neighbour. An inspector of its own keeps both lists in view while pairs are compared,
and leaves the gallery's place and filters as they were.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import IntEnum

import numpy as np
from PySide6.QtCore import QAbstractListModel, QAbstractTableModel, QModelIndex, QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListView,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from side_engine import events as ev
from side_engine.matching.metrics import Bands, ScoreArrays
from side_engine.questions.by_image import Matches, TrainingRisk, by_image, matches_of
from side_engine.store import NO_LABEL, AuditStore, TrainingImages
from side_engine.vocabulary import BANDS_HIGH_FIRST, OUTSIDE, VERDICTS, BandName, Direction

from .band_panel import EDIT_DEBOUNCE_MS, STREAM_DEBOUNCE_MS
from .gallery_view import (
    BAND_COLORS,
    FlowLayout,
    PairDelegate,
    PairList,
    PairModel,
    ThumbnailCache,
    guide_text,
    labelled,
)
from .pair_inspector import PairInspector
from .worker import GeneratorWorker, Job, ended

ROW_THUMB = 36  # a training image in the table: enough to tell digits and faces apart, rows stay dense
MATCHED = "matched"  # the Show filter's choice: matched in any band
NOTE = ("Per training image, the generated images that matched it in each band (it is among their k nearest, the "
        "score in the band). Most at risk first: more high, then mid, then low matches, then the closest score.")
NO_MATCHES = "Choose a training image to see the generated images that hold it among their nearest."
NONE = Matches(rows=np.zeros(0, np.intp), ids=np.zeros(0, np.int64), slot=np.zeros(0, np.intp),
               score=np.zeros(0, np.float32), every=np.zeros(0, np.float32))
# The generated images listed under a training image, closest first. A much-copied image of a large audit is held by
# hundreds of thousands, and laying out a list of 200,000 takes the GUI thread a third of a second.
MAX_MATCHES = 1_000
NO_PAIR = "Choose a training image, then one of the generated images that matched it"


class Col(IntEnum):
    IMAGE = 0
    FILE = 1
    LABEL = 2
    HIGH = 3
    MID = 4
    LOW = 5
    BEST = 6
    BY = 7
    RUNS = 8


BAND_COLUMNS = {Col.HIGH: BandName.HIGH, Col.MID: BandName.MID, Col.LOW: BandName.LOW}
HEADERS = {Col.IMAGE: "Image", Col.FILE: "File", Col.LABEL: "Label", Col.HIGH: "High", Col.MID: "Mid",
           Col.LOW: "Low", Col.BEST: "Best", Col.BY: "Best by", Col.RUNS: "Runs"}
WIDTHS = {Col.IMAGE: 46, Col.FILE: 150, Col.LABEL: 48, Col.HIGH: 42, Col.MID: 42, Col.LOW: 42, Col.BEST: 54,
          Col.BY: 108, Col.RUNS: 42}


def header_tips(direction: Direction) -> dict[Col, str]:
    band = "generated images whose score on this training image (one of their k nearest) is in the {} band"
    return {Col.IMAGE: "The training image (sorts by its index in the training set)",
            Col.FILE: "Its file, relative to the training folder", Col.LABEL: "Its class",
            Col.HIGH: band.format("high"), Col.MID: band.format("mid"), Col.LOW: band.format("low"),
            Col.BEST: f"The closest {direction.unit} any generated image has on it ({direction.closer}), in a band "
                      "or not",
            Col.BY: "The run and the generated image that reached the best score",
            Col.RUNS: "How many runs (guide and gamma; random sampling is one) matched it in a band"}


@dataclass(frozen=True, eq=False)
class Tally:
    """One count of the training images (by_image) with what the table reads of it on every reset: made on a worker.
    Compared by identity: the model tells the latest count from an older one."""

    risk: TrainingRisk
    order: np.ndarray  # risk.order()
    matched: int  # training images matched in any band
    most: int  # the largest count in any band: the count columns widen to show it whole


def tally(arrays: ScoreArrays, bands: Bands, n_train: int) -> Tally:
    """Any thread."""
    risk = by_image(arrays, bands, n_train)
    most = max((int(c.max()) for c in risk.counts.values() if len(c)), default=0)
    return Tally(risk=risk, order=risk.order(), matched=int(np.count_nonzero(risk.matched)), most=most)


@dataclass(frozen=True)
class TrainingColumns:
    """What the tab shows that takes time at a million training images: made by read_training on the opening
    reader's thread."""

    labels: np.ndarray  # int64 class per training image, NO_LABEL where none
    label_values: np.ndarray  # the distinct labels, ascending: the label filter's choices
    search: np.ndarray  # lower-cased relative paths as UTF-8 ('S'): the text filter's haystack
    by_file: np.ndarray  # the training indices sorted by path: sorting by file is then a filter of it
    tally: Tally  # under the audit's bands, of the images read


def read_training(training: TrainingImages, arrays: ScoreArrays, bands: Bands) -> TrainingColumns:
    """Any thread."""
    n = len(training)
    labels = training.labels
    search = np.array([p.lower().encode() for p in training.paths], "S") if n else np.zeros(0, "S1")
    return TrainingColumns(labels=labels, label_values=np.unique(labels), search=search,
                           by_file=np.argsort(search, kind="stable"), tally=tally(arrays, bands, n))


@dataclass(frozen=True)
class Arrangement:
    """Which training images the table shows (the filter bar) and in which order (the header's sort)."""

    show: str | None = None  # MATCHED, a band's name, or None: every training image
    label: int | None = None  # one label (NO_LABEL: none), or None: any
    text: str = ""  # part of the file name, any case
    col: Col = Col.HIGH
    descending: bool = True


RISK_ORDER = Arrangement()  # every training image, most at risk first: the tally's order itself


def arrange(cols: TrainingColumns, t: Tally, a: Arrangement, check: ev.Check = ev.no_check) -> np.ndarray:
    """The training indices the table shows, in order. Any thread; tens of milliseconds at a million training images
    (a sort by a score: about 30 ms), so the table runs this on a worker (check: the worker's cancel)."""
    r = t.risk
    keep = np.ones(len(r), bool)
    if a.show == MATCHED:
        keep &= r.matched
    elif a.show is not None:
        keep &= r.counts[BandName(a.show)] > 0
    if a.label is not None:
        keep &= cols.labels == a.label
    if a.text:
        keep &= np.strings.find(cols.search, a.text.lower().encode()) >= 0
    check()
    if a.col in (Col.IMAGE, Col.FILE):
        # Unique keys, in an order known beforehand: the kept part of it, no sort.
        rows = np.flatnonzero(keep) if a.col == Col.IMAGE else cols.by_file[keep[cols.by_file]]
        return rows[::-1] if a.descending else rows
    rows = t.order[keep[t.order]]
    key = _sort_key(cols, r, a, rows)
    # Stable over the risk order: rows that tie on the column stay most at risk first.
    return rows if key is None else rows[_stable_order(key)]


def _sort_key(cols: TrainingColumns, r: TrainingRisk, a: Arrangement, rows: np.ndarray) -> np.ndarray | None:
    """The sort key of the rows for the chosen column and order; None for the risk order itself."""
    col, descending = a.col, a.descending
    if col == Col.HIGH and descending:
        return None  # the risk order sorts by high matches first
    if col == Col.BEST:
        best = r.best[rows].astype(np.float64)
        return np.where(np.isnan(best), np.inf, -best if descending else best)  # no score: last either way
    if col == Col.BY:
        key = r.best_run[rows]
        return np.where(key < 0, np.iinfo(np.int64).max, -key if descending else key)  # no run: last either way
    if col in BAND_COLUMNS:
        key = r.counts[BAND_COLUMNS[col]][rows]
    else:
        key = {Col.LABEL: cols.labels[rows], Col.RUNS: r.runs[rows]}[col]
    return -key if descending else key


def _stable_order(key: np.ndarray) -> np.ndarray:
    """np.argsort(key, kind="stable"), in linear time where the key is integers spanning fewer than 65,536 values
    (counts, labels, runs): numpy radix-sorts 16-bit integers, three times faster than a merge sort of a million."""
    if key.dtype.kind in "iu" and len(key):
        lo = key.min()
        if int(key.max()) - int(lo) < 1 << 16:
            return np.argsort((key - lo).astype(np.uint16), kind="stable")
    return np.argsort(key, kind="stable")


def arrange_job(cols: TrainingColumns, t: Tally, a: Arrangement) -> Job:
    """The worker's job: the rows of this tally arranged so, yielded once with what they are for."""
    def job(control: ev.RunControl) -> Iterator:
        yield t, a, arrange(cols, t, a, control.check)
    return job


def recount_job(arrays: ScoreArrays, bands: Bands, n_train: int, cols: TrainingColumns, a: Arrangement) -> Job:
    """The worker's job: the tally of these bands and images, with its rows arranged as the table asked when the count
    began (what the table shows then without a second trip), yielded once with their key."""
    def job(control: ev.RunControl) -> Iterator:
        t = tally(arrays, bands, n_train)
        yield (bands, len(arrays.ids)), t, a, arrange(cols, t, a, control.check)
    return job


DISPLAY, DECORATION, TOOLTIP, ALIGNMENT, FOREGROUND, USER = (int(r) for r in (
    Qt.DisplayRole, Qt.DecorationRole, Qt.ToolTipRole, Qt.TextAlignmentRole, Qt.ForegroundRole, Qt.UserRole))
SERVED = frozenset({DISPLAY, DECORATION, TOOLTIP, ALIGNMENT, FOREGROUND, USER + 1})
RIGHT = int(Qt.AlignRight | Qt.AlignVCenter)
GRAY = QColor("gray")  # a count of 0


class TrainingModel(QAbstractTableModel):
    """Training images as columns; `rows` is the visible permutation of training indices, arranged on a worker.

    What the rows show (tally, shown) changes only with them, at one reset; what was asked for last (the latest
    tally, wanted) waits for its rows."""

    repaintRequested = Signal()  # thumbnails arrived: the view repaints what is on screen
    arranged = Signal()  # the rows are those of the latest tally, arranged as last asked
    IndexRole = USER + 1

    def __init__(self, train_root: str, train_paths: list[str], class_names: list[str], cols: TrainingColumns,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.train_root = train_root
        self.train_paths = train_paths
        self.class_names = class_names
        self.cols = cols
        self.tally = self._latest = cols.tally
        self.shown = self.wanted = RISK_ORDER
        self.rows = cols.tally.order
        self._worker: GeneratorWorker | None = None
        self._job: tuple[Tally, Arrangement] | None = None  # what the running worker arranges
        self.tips = header_tips(self.risk.direction)
        self.thumbs = ThumbnailCache(size=ROW_THUMB, parent=self)
        self.thumbs.ready.connect(self.repaintRequested)
        self._loading = QPixmap(ROW_THUMB, ROW_THUMB)
        self._loading.fill(QColor("#404040"))

    @property
    def risk(self) -> TrainingRisk:
        return self.tally.risk

    # ----- data in ---------------------------------------------------------------------------------------------
    def set_tally(self, t: Tally, a: Arrangement, rows: np.ndarray) -> None:
        """A recount, with its rows arranged as `a`: shown at once if that is still the arrangement asked for."""
        self._latest = t
        if a == self.wanted:
            self._show(t, a, rows)
        self._request()

    def set_filter(self, name: str, value) -> None:
        self._want(replace(self.wanted, **{name: value}))

    def sort(self, column: int, order: Qt.SortOrder = Qt.AscendingOrder) -> None:
        self._want(replace(self.wanted, col=Col(column), descending=order == Qt.DescendingOrder))

    def _want(self, a: Arrangement) -> None:
        self.wanted = a
        self._request()

    def pending(self) -> bool:
        """True while the rows shown are not yet those asked for."""
        return self.tally is not self._latest or self.shown != self.wanted

    def _request(self) -> None:
        target = (self._latest, self.wanted)
        if self._worker is not None:
            if self._job != target:
                self._worker.cancel()  # its finished starts the next one, for whatever is asked then
            return
        if self.pending():
            self._job = target
            self._worker = GeneratorWorker(arrange_job(self.cols, *target))
            self._worker.yielded.connect(self._rows_ready)
            self._worker.finished.connect(self._arrange_finished)
            self._worker.start()

    def _rows_ready(self, item) -> None:
        t, a, rows = item
        if t is self._latest and a == self.wanted:
            self._show(t, a, rows)

    def _arrange_finished(self) -> None:
        if ended(self.sender(), self._worker):
            self._worker, self._job = None, None
            self._request()

    def _show(self, t: Tally, a: Arrangement, rows: np.ndarray) -> None:
        self.beginResetModel()
        self.tally, self.shown, self.rows = t, a, rows
        self.endResetModel()
        self.arranged.emit()

    def shutdown(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self._worker.wait()
            self._worker = None
        self.thumbs.shutdown()

    # ----- Qt model ---------------------------------------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(Col)

    def headerData(self, section: int, orientation, role=DISPLAY):
        # Asked for every role of every section at each repaint of the header: compared as ints, as in data().
        if role not in SERVED or orientation != Qt.Horizontal:
            return None
        col = Col(section)
        if role == DISPLAY:
            return HEADERS[col]
        if role == TOOLTIP:
            return self.tips[col]
        if role == FOREGROUND and col in BAND_COLUMNS:
            return BAND_COLORS[BAND_COLUMNS[col]]
        return None

    def data(self, index: QModelIndex, role=DISPLAY):
        # Asked about ten roles per cell at each repaint: the roles not served leave first, compared as ints (a Qt
        # enum member's lookup and comparison costs microseconds).
        if role not in SERVED or not index.isValid():
            return None
        j = int(self.rows[index.row()])
        col = index.column()
        if role == DISPLAY:
            return self.text(j, col)
        if role == self.IndexRole:
            return j
        if role == DECORATION:
            return (self.thumbs.get(self.train_path(j)) or self._loading) if col == Col.IMAGE else None
        if role == ALIGNMENT:
            return RIGHT if col >= Col.HIGH else None
        if role == FOREGROUND:
            return GRAY if col in BAND_COLUMNS and not self.risk.counts[BAND_COLUMNS[col]][j] else None
        return self.tooltip(j, Col(col))

    def text(self, j: int, col: int) -> str:
        r = self.risk
        if col == Col.IMAGE:
            return ""  # the thumbnail; its index in the tooltip and the list of its matches
        if col == Col.FILE:
            return self.train_paths[j]
        if col == Col.LABEL:
            return self.label_name(int(self.cols.labels[j]))
        if col in BAND_COLUMNS:
            return str(int(r.counts[BAND_COLUMNS[col]][j]))
        if col == Col.RUNS:
            return str(int(r.runs[j]))
        if r.best_id[j] < 0:
            return "—"
        if col == Col.BEST:
            return f"{r.best[j]:.3f}"
        return f"{guide_text(r.best_guide[j], float(r.best_gamma[j]))} · #{r.best_id[j]}"

    def tooltip(self, j: int, col: Col) -> str | None:
        if col in (Col.IMAGE, Col.FILE):
            return f"training image #{j}: {self.train_path(j)}"
        if col in (Col.BEST, Col.BY) and self.risk.best_id[j] >= 0:
            d = self.risk.direction
            return (f"closest {d.unit} any generated image has on #{j}: {self.risk.best[j]:.4f} ({d.closer}), "
                    f"image #{self.risk.best_id[j]} of run "
                    f"{guide_text(self.risk.best_guide[j], float(self.risk.best_gamma[j]))}")
        return self.tips[col]

    def label_name(self, label: int) -> str:
        if label == NO_LABEL:
            return "—"
        return self.class_names[label] if 0 <= label < len(self.class_names) else str(label)

    def train_path(self, j: int) -> str:
        return os.path.join(self.train_root, self.train_paths[j])

    def row_of(self, j: int) -> int | None:
        pos = np.flatnonzero(self.rows == j)
        return int(pos[0]) if len(pos) else None


class MatchModel(QAbstractListModel):
    """The generated images that hold one training image among their neighbours, closest first: what
    gallery_view.PairDelegate draws (row_info, thumbs), each pair being the generated image and this training image,
    scored and badged by its score on it. Reads the gallery's columns (PairModel), verdicts included."""

    IdRole = PairModel.IdRole
    repaintRequested = Signal()

    def __init__(self, pairs: PairModel, bands: Bands, parent: QObject | None = None):
        super().__init__(parent)
        self.pairs = pairs
        self.bands = bands
        # The gallery's cache: the same thumbnails at the same size, often loaded already.
        self.thumbs = pairs.thumbs
        self.thumbs.ready.connect(self.repaintRequested)
        self.train = -1
        self.pos = np.zeros(0, np.int64)  # rows of the gallery's columns
        self.slot = np.zeros(0, np.int64)
        self.score = np.zeros(0, np.float32)
        self.band = np.zeros(0, "<U4")
        self.every = np.zeros(0, np.float32)  # the scores of all that hold it, listed or not

    def set_matches(self, j: int, m: Matches) -> None:
        self.beginResetModel()
        self.train = j
        self.pos = np.searchsorted(self.pairs.ids, m.ids)
        self.slot, self.score, self.every = m.slot, m.score, m.every
        self.band = self.bands.classify(m.score)
        self.endResetModel()

    def set_bands(self, bands: Bands) -> None:
        self.bands = bands
        self.band = bands.classify(self.score)
        self.repaintRequested.emit()

    def counts(self) -> dict[BandName, int]:
        """Per band, the generated images that hold it with a score in the band, listed or not."""
        return {name: int(np.count_nonzero(self.bands.band(name).contains(self.every))) for name in BANDS_HIGH_FIRST}

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.pos)

    def data(self, index: QModelIndex, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        row = index.row()
        if role == self.IdRole:
            return int(self.pairs.ids[self.pos[row]])
        if role in (DISPLAY, TOOLTIP):
            info = self.row_info(row)
            band = f"band {info['band']}" if info["band"] else OUTSIDE
            return (f"#{info['id']} {guide_text(info['guide'], info['gamma'])}: training image #{self.train} is its "
                    f"neighbour {int(self.slot[row]) + 1}, score {info['best']:.3f} ({band})")
        return None

    def row_info(self, row: int) -> dict:
        p, i = self.pairs, int(self.pos[row])
        return dict(id=int(p.ids[i]), guide=p.guide[i], gamma=float(p.gamma[i]), label=int(p.label[i]),
                    target=p.target(i, short=True), best=float(self.score[row]), band=str(self.band[row]),
                    verdict=str(p.verdict[i]), path=os.path.join(p.root, p.paths[i]),
                    train_path=os.path.join(p.train_root, p.train_paths[self.train]))

    def row_of_id(self, image_id: int) -> int | None:
        pos = np.flatnonzero(self.pairs.ids[self.pos] == image_id)
        return int(pos[0]) if len(pos) else None


class TrainingPairInspector(PairInspector):
    """The pair inspector comparing a generated image with a chosen training image, whichever of its k neighbours
    that is (the inspector's tiles show the nearest five)."""

    nothing_shown = NO_PAIR


class TrainingView(QWidget):
    """Filter bar, the training images, the generated images that matched the chosen one, and the pair inspector."""

    recounted = Signal()  # the table shows the counts of the current bands and images, arranged as asked
    exportRequested = Signal(int)  # a training index: export the pairs of this training image

    def __init__(self, store: AuditStore, pairs: PairModel, arrays: ScoreArrays, bands: Bands,
                 training: TrainingImages, cols: TrainingColumns, parent: QWidget | None = None):
        super().__init__(parent)
        self.arrays = arrays
        self.bands = bands
        self.n_train = len(training)
        self.model = TrainingModel(pairs.train_root, pairs.train_paths, store.class_names, cols, self)
        self.matches = MatchModel(pairs, bands, self)
        self.inspector = TrainingPairInspector(store, bands, training)
        self.train_idx = -1
        self._counted = (bands, len(arrays.ids))
        self._announce = False  # a recount's tally waits for its rows: `recounted` once they are shown
        self._worker: GeneratorWorker | None = None
        self._debounce = QTimer(self, singleShot=True)
        self._debounce.timeout.connect(self.recount)

        self.table = QTableView(objectName="training_table")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setIconSize(QSize(ROW_THUMB, ROW_THUMB))
        self.table.setWordWrap(False)
        # A file name keeps its end, where names made by numbering differ.
        self.table.setTextElideMode(Qt.ElideLeft)
        self.table.setAlternatingRowColors(True)
        rows = self.table.verticalHeader()
        rows.hide()
        # Fixed heights: the view never measures a row, whatever their number.
        rows.setSectionResizeMode(QHeaderView.Fixed)
        rows.setDefaultSectionSize(ROW_THUMB + 6)
        head = self.table.horizontalHeader()
        head.setSectionsClickable(True)
        head.setSortIndicatorShown(True)
        head.setHighlightSections(False)
        for col, width in WIDTHS.items():
            head.resizeSection(col, width)
        head.setSectionResizeMode(Col.FILE, QHeaderView.Stretch)
        head.setMinimumSectionSize(36)
        self._fit_counts(self.model.tally.most)
        head.setSortIndicator(Col.HIGH, Qt.DescendingOrder)
        self.table.setSortingEnabled(True)
        self.table.selectionModel().currentRowChanged.connect(self._current_row)
        self.model.repaintRequested.connect(self.table.viewport().update)
        self.model.modelAboutToBeReset.connect(self._remember)
        self.model.modelReset.connect(self._restore)
        self._keep = -1

        self.f_show = QComboBox(objectName="training_show")
        self.f_show.addItem("every training image", None)
        self.f_show.addItem("matched in any band", MATCHED)
        for name in BANDS_HIGH_FIRST:
            self.f_show.addItem(f"with a {name.label}-band match", name)
        self.f_label = QComboBox(objectName="training_label")
        self.f_label.addItem("any label", None)
        for label in cols.label_values.tolist():
            self.f_label.addItem("no label" if label == NO_LABEL else f"label {self.model.label_name(label)}", label)
        for combo, name in ((self.f_show, "show"), (self.f_label, "label")):
            combo.currentIndexChanged.connect(lambda _, c=combo, n=name: self.model.set_filter(n, c.currentData()))
        self.search = QLineEdit(objectName="training_search", placeholderText="file name contains…",
                                clearButtonEnabled=True)
        self.search.setMinimumWidth(150)
        # One filter per pause in the typing: at a million names each costs tens of milliseconds.
        self._typed = QTimer(self, singleShot=True, interval=200)
        self._typed.timeout.connect(lambda: self.model.set_filter("text", self.search.text().strip()))
        self.search.textChanged.connect(lambda _: self._typed.start())
        self.count = QLabel(objectName="training_count")
        self.model.modelReset.connect(self._update_count)
        self.model.arranged.connect(self._arranged)
        bar_box = QWidget(objectName="training_filters")
        bar = FlowLayout(bar_box)
        bar.addWidget(labelled("Show", self.f_show))
        bar.addWidget(self.f_label)
        bar.addWidget(self.search)
        bar.addWidget(self.count)
        note = QLabel(NOTE, objectName="training_note", wordWrap=True)
        note.setStyleSheet("color: gray;")

        self.matches_title = QLabel(NO_MATCHES, objectName="matches_title", wordWrap=True)
        self.export_btn = QPushButton("Export pairs of this image…", objectName="export_training_image")
        self.export_btn.setEnabled(False)
        self.export_btn.clicked.connect(lambda: self.exportRequested.emit(self.train_idx))
        self.list = PairList(objectName="training_matches")
        self.list.setViewMode(QListView.IconMode)
        self.list.setResizeMode(QListView.Adjust)
        self.list.setMovement(QListView.Static)
        self.list.setUniformItemSizes(True)
        self.list.setModel(self.matches)
        self.list.setItemDelegate(PairDelegate(self.list))
        self.list.setMinimumHeight(PairDelegate.SIZE.height() + 8)
        self.matches.repaintRequested.connect(self.list.viewport().update)
        self.list.selectionModel().currentChanged.connect(self._current_match)
        self.inspector.verdictChanged.connect(lambda *_: self.list.viewport().update())

        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(bar_box)
        tl.addWidget(note)
        tl.addWidget(self.table, 1)
        bottom = QWidget()
        bl = QVBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        title_row = QHBoxLayout()
        title_row.addWidget(self.matches_title, 1)
        title_row.addWidget(self.export_btn, 0, Qt.AlignBottom)
        bl.addLayout(title_row)
        bl.addWidget(self.list, 1)
        self.left = QSplitter(Qt.Vertical, objectName="training_left")
        self.left.addWidget(top)
        self.left.addWidget(bottom)
        self.left.setSizes([420, 260])
        self.split = QSplitter(Qt.Horizontal, objectName="training_splitter")
        self.split.addWidget(self.left)
        self.split.addWidget(self.inspector)
        self.split.setSizes([640, 500])
        self.split.setStretchFactor(0, 3)
        self.split.setStretchFactor(1, 2)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.split)

        # As in the gallery (the inspector's hint says so): 1, 2, 3 give the verdicts; J / K or → / ← move through
        # the generated images that matched.
        shortcuts = [((str(k + 1),), lambda v=v: self.inspector.set_verdict(v)) for k, v in enumerate(VERDICTS)]
        shortcuts += [(("J", "Right"), lambda: self.step(1)), (("K", "Left"), lambda: self.step(-1))]
        for keys, slot in shortcuts:
            for key in keys:
                QShortcut(QKeySequence(key), self, context=Qt.WidgetWithChildrenShortcut).activated.connect(slot)
        self._update_count()
        self.inspector.show_image(-1)

    # ----- what the counts follow ----------------------------------------------------------------------------------
    def set_bands(self, bands: Bands) -> None:
        """Called on every step of a band drag: the matches' badges at once, the table after a pause."""
        self.bands = bands
        self.inspector.set_bands(bands)
        self.matches.set_bands(bands)
        self._update_matches_title()
        self._schedule(EDIT_DEBOUNCE_MS)

    def set_arrays(self, arrays: ScoreArrays) -> None:
        """The audit's score columns, with the images streamed in since the last call."""
        self.arrays = arrays
        self._schedule(STREAM_DEBOUNCE_MS)

    def _key(self) -> tuple[Bands, int]:
        return self.bands, len(self.arrays.ids)

    def _schedule(self, ms: int) -> None:
        # Only for a shown tab: a hidden one recounts when it is shown.
        if self.isVisible() and not (self._debounce.isActive() and self._debounce.remainingTime() <= ms):
            self._debounce.start(ms)

    def recount(self) -> None:
        """Counts again on the worker, unless the table shows the current bands and images already."""
        self._debounce.stop()
        if self._counted == self._key() or self._worker is not None:
            return  # a running count's end starts the next one, for whatever is current then
        self._worker = GeneratorWorker(recount_job(self.arrays, self.bands, self.n_train, self.model.cols,
                                                   self.model.wanted))
        self._worker.yielded.connect(self._counts_ready)
        self._worker.errored.connect(lambda message: self.count.setText(f"cannot count: {message}"))
        self._worker.finished.connect(self._count_finished)
        self._worker.start()

    def _counts_ready(self, item) -> None:
        key, t, arrangement, rows = item
        if key != self._key():
            return
        self._counted = key
        if self.train_idx >= 0:
            self._show_matches(self.train_idx)
        # Said once the rows show it: at once when the sort and filters are still those the count arranged for,
        # after the model arranges it again otherwise.
        self._announce = True
        self.model.set_tally(t, arrangement, rows)
        self._fit_counts(t.most)

    def _fit_counts(self, most: int) -> None:
        """Counts are cut from the left like file names: a column too narrow for the largest would show its end."""
        need = self.table.fontMetrics().horizontalAdvance(str(most)) + 12
        head = self.table.horizontalHeader()
        for col in (Col.HIGH, Col.MID, Col.LOW):
            if head.sectionSize(col) < need:
                head.resizeSection(col, need)

    def _arranged(self) -> None:
        if self._announce and self._counted == self._key():
            self._announce = False
            self.recounted.emit()

    def _count_finished(self) -> None:
        if ended(self.sender(), self._worker):
            self._worker = None
            if self.isVisible():
                self.recount()

    def showEvent(self, e) -> None:
        super().showEvent(e)
        self.recount()

    def shutdown(self) -> None:
        self._debounce.stop()
        self._typed.stop()
        if self._worker is not None:
            self._worker.cancel()
            self._worker.wait()
            self._worker = None
        self.model.shutdown()
        self.inspector.blink.stop()

    # ----- choosing ------------------------------------------------------------------------------------------------
    def _remember(self) -> None:
        self._keep = self.train_idx

    def _restore(self) -> None:
        row = self.model.row_of(self._keep) if self._keep >= 0 else None
        if row is not None:
            self.table.setCurrentIndex(self.model.index(row, 0))

    def _current_row(self, cur: QModelIndex, _prev: QModelIndex) -> None:
        j = self.model.data(cur, TrainingModel.IndexRole) if cur.isValid() else -1
        if j != self.train_idx:
            self.choose(j)

    def choose(self, j: int) -> None:
        """Shows the generated images that hold training image j among their neighbours (-1: none), the closest
        one in the inspector."""
        self.train_idx = j
        self.export_btn.setEnabled(j >= 0)
        self._show_matches(j)

    def _show_matches(self, j: int) -> None:
        keep = self.inspector.image_id
        self.matches.set_matches(j, matches_of(self.arrays, j, self.bands.direction, MAX_MATCHES) if j >= 0 else NONE)
        self._update_matches_title()
        row = self.matches.row_of_id(keep) if keep >= 0 else None
        if self.matches.rowCount():
            self.list.setCurrentIndex(self.matches.index(row if row is not None else 0))
        else:
            self.inspector.show_image(-1)

    def _current_match(self, cur: QModelIndex, _prev: QModelIndex) -> None:
        if cur.isValid():
            self.inspector.show_pair(self.matches.data(cur, MatchModel.IdRole), self.train_idx)

    def step(self, delta: int) -> None:
        n = self.matches.rowCount()
        if n:
            cur = self.list.currentIndex()
            row = min(max((cur.row() if cur.isValid() else -1) + delta, 0), n - 1)
            self.list.setCurrentIndex(self.matches.index(row))

    def refresh_pair(self, image_id: int) -> None:
        """A verdict given elsewhere (the gallery): the list's badges, and the inspector if it shows that image."""
        self.list.viewport().update()
        if self.inspector.image_id == image_id and self.train_idx >= 0:
            self.inspector.show_pair(image_id, self.train_idx)

    # ----- what it says --------------------------------------------------------------------------------------------
    def _update_count(self) -> None:
        n, matched = len(self.model.risk), self.model.tally.matched
        self.count.setText(f"{len(self.model.rows):,} of {n:,} training images; {matched:,} matched")

    def _update_matches_title(self) -> None:
        j, n, listed = self.train_idx, len(self.matches.every), self.matches.rowCount()
        if j < 0:
            self.matches_title.setText(NO_MATCHES)
            return
        counts = ", ".join(f"{c:,} {name.label}" for name, c in self.matches.counts().items())
        k = self.arrays.nn_idx.shape[1]
        which = "closest first" if listed == n else f"the closest {listed:,} listed"
        self.matches_title.setText(f"<b>#{j}</b> is among the {k} nearest of {n:,} generated image"
                                   f"{'' if n == 1 else 's'}, {which} ({counts}):")

