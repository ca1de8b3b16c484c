"""One pair up close: both images large, their difference or a blink/overlay, the top-5 training neighbours (any of
which can take the nearest one's place), every piece of metadata, and the verdict (saved in the audit the moment it
is given). It speaks the evidence export's words, so that an exported pair reads as the app showed it.

Its images are decoded on the application's thread pool (a training photo takes 5-20 ms to read, six of them a pair)
and kept in a small LRU, so that J / K back and forth shows a pair again without reading it."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QFont, QFontDatabase, QFontMetrics, QGuiApplication, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from side_engine.matching.metrics import Band, Bands
from side_engine.store import AuditStore, ImageRow, TrainImage, TrainingImages
from side_engine.vocabulary import (
    DIFF_GAIN,
    DIFFERENCE,
    EQUAL,
    GU_CUT,
    NEAREST,
    NO_TARGET,
    OUTSIDE,
    VERDICTS,
    Direction,
    Guide,
    Verdict,
)

from .gallery_view import VERDICT_COLORS

BIG = 200
SMALLEST = 100  # the inspector must fit beside the gallery in a window 1024 pixels wide
NEIGHBOURS = 5
TILE = 56  # a neighbour's image
TILE_W = (64, 104)  # a neighbour's box, narrowest and widest: its lines of text are elided to its width
ABSENT = "none"  # what the metadata says for a training image without a label
HASH_ENDS = 8  # hex digits kept at each end of a SHA-256 shown elided
LOADING = "loading\u2026"  # an image on its way: never the previous pair's image beside this pair's metadata
DECODED_KEPT = 48  # decoded images kept (eight pairs of six): 38 MB of 512 x 512 colour photos
# Above the gallery's thumbnails (priority 0), which a newly opened audit queues by the screenful; the two images
# compared before the tiles.
TILE_PRIORITY, COMPARED_PRIORITY = 1, 2


def gray_or_rgb(path: Path) -> np.ndarray | None:
    """None where the file is gone or unreadable (an audit copied without its images, a training set moved)."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L" if img.mode in ("L", "1", "I;16") else "RGB"))
    except (OSError, ValueError):
        return None


class _Decoded(QObject):
    done = Signal(str, object, bool)  # path, its array (None: unreadable), whether it was read or skipped
    # The files of the pair shown. Replaced whole on the GUI thread, never changed in place: the reads look at it.
    wanted: frozenset[str] = frozenset()


class _Decode(QRunnable):
    def __init__(self, path: str, sink: _Decoded):
        super().__init__()
        self.path, self.sink = path, sink

    def run(self) -> None:
        # Skipped where the pair it was asked for is gone by the time a thread is free: a held J key asks for pairs
        # faster than they are read.
        wanted = self.path in self.sink.wanted
        self.sink.done.emit(self.path, gray_or_rgb(Path(self.path)) if wanted else None, wanted)


class DecodedImages(QObject):
    """The images of the pair shown, decoded on the application's thread pool into an LRU of arrays by path.

    get() returns a kept array at once, or None and reads the file in the background: `arrived` brings its array, or
    None where it cannot be read (not kept: a training folder put back is read again)."""

    arrived = Signal(str, object)

    def __init__(self, capacity: int = DECODED_KEPT, parent: QObject | None = None):
        super().__init__(parent)
        self.capacity = capacity
        self._kept: OrderedDict[str, np.ndarray] = OrderedDict()
        self._pending: dict[str, int] = {}  # path -> priority it was asked at
        # The application's pool, as ThumbnailCache's: a pool of our own, destroyed on the GUI thread, would wait there
        # for its running reads, which wait for the GIL that thread holds.
        self._pool = QThreadPool.globalInstance()
        self._sink = _Decoded()
        self._sink.done.connect(self._done)

    def want(self, paths: list[str]) -> None:
        """The images of the pair shown: reads asked for others and not yet begun are skipped."""
        self._sink.wanted = frozenset(paths)

    def get(self, path: str, priority: int = TILE_PRIORITY) -> np.ndarray | None:
        arr = self._kept.get(path)
        if arr is not None:
            self._kept.move_to_end(path)
        elif path not in self._pending:
            self._read(path, priority)
        return arr

    def _read(self, path: str, priority: int) -> None:
        self._pending[path] = priority
        self._pool.start(_Decode(path, self._sink), priority)

    def _done(self, path: str, arr: np.ndarray | None, read: bool) -> None:
        priority = self._pending.pop(path, TILE_PRIORITY)
        if not read:
            if path in self._sink.wanted:  # wanted again after its read was skipped
                self._read(path, priority)
            return
        if arr is not None:
            self._kept[path] = arr
            while len(self._kept) > self.capacity:
                self._kept.popitem(last=False)
        self.arrived.emit(path, arr)


def _to_pixmap(arr: np.ndarray, size: int) -> QPixmap:
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        q = QImage(arr.data, w, h, w, QImage.Format_Grayscale8)
    else:
        q = QImage(arr.data, w, h, 3 * w, QImage.Format_RGB888)
    smooth = Qt.SmoothTransformation if w > size else Qt.FastTransformation
    return QPixmap.fromImage(q.copy()).scaled(size, size, Qt.KeepAspectRatio, smooth)


def _match(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bring the training image to the generated one's size and channels, as the matcher compared them."""
    if b.shape[:2] != a.shape[:2]:
        b = np.asarray(Image.fromarray(b).resize((a.shape[1], a.shape[0]), Image.BILINEAR))
    if a.ndim != b.ndim:
        a = np.repeat(a[..., None], 3, 2) if a.ndim == 2 else a
        b = np.repeat(b[..., None], 3, 2) if b.ndim == 2 else b
    return a, b


def difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The export's difference tile: DIFF_GAIN x |a - b|, white where equal (dark where the images differ)."""
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return (255 - np.minimum(255, DIFF_GAIN * d)).astype(np.uint8)


def elided_hash(sha256: str) -> str:
    return f"{sha256[:HASH_ENDS]}\u2026{sha256[-HASH_ENDS:]}"


class ImageView(QLabel):
    """An image drawn as large as its box allows, up to BIG: re-rendered from the array when resized."""

    def __init__(self, name: str):
        super().__init__(objectName=name, alignment=Qt.AlignCenter)
        self._arr: np.ndarray | None = None
        self.setMinimumSize(SMALLEST, SMALLEST)
        # No backdrop: in a box narrower than tall it would show as bars above and below the image.
        self.setStyleSheet("color: gray;")

    def sizeHint(self) -> QSize:
        # As tall as the column is wide (up to BIG), so a narrow inspector has no gap above and below its images.
        # From the width only: a hint that followed the pixmap would let the image grow its own box without end.
        side = min(max(self.width(), SMALLEST), BIG)
        return QSize(BIG, side)

    def minimumSizeHint(self) -> QSize:
        return QSize(SMALLEST, SMALLEST)

    def show_array(self, arr: np.ndarray | None) -> None:
        self._arr = arr
        if arr is None:
            self.clear()
        self._render()

    def show_text(self, text: str) -> None:
        self._arr = None
        self.clear()
        self.setText(text)

    def resizeEvent(self, e) -> None:
        super().resizeEvent(e)
        if e.size().width() != e.oldSize().width():
            self.updateGeometry()
        self._render()

    def _render(self) -> None:
        # A text ("loading…", "cannot read") stays as it is: a resize while an image is on its way must not blank it.
        if self._arr is not None:
            self.setPixmap(_to_pixmap(self._arr, min(self.width(), self.height(), BIG)))


class NeighbourTile(QToolButton):
    """A training neighbour: its image over lines of text, each elided to the tile's width as it changes."""

    def __init__(self, k: int):
        super().__init__(objectName=f"neighbour_{k}", checkable=True, autoRaise=True)
        self.setToolButtonStyle(Qt.ToolButtonTextUnderIcon)
        self.setIconSize(QSize(TILE, TILE))
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setMinimumWidth(TILE_W[0])
        self.setMaximumWidth(TILE_W[1])
        self._lines: list[tuple[str, Qt.TextElideMode]] = []

    def set_lines(self, lines: list[tuple[str, Qt.TextElideMode]]) -> None:
        self._lines = lines
        self._elide()

    def sizeHint(self) -> QSize:
        # The narrowest: the text is elided to the width the strip gives, and must not ask for more.
        return QSize(TILE_W[0], super().sizeHint().height())

    def resizeEvent(self, e) -> None:
        super().resizeEvent(e)
        if e.size().width() != e.oldSize().width():
            self._elide()

    def _elide(self) -> None:
        fm = self.fontMetrics()
        self.setText("\n".join(fm.elidedText(text, mode, self.width() - 8) for text, mode in self._lines))


class PairInspector(QWidget):
    verdictChanged = Signal(int, object)  # image id, verdict or None
    step = Signal(int)  # ask the gallery for the next (+1) or previous (-1) pair
    # The generated image and the compared training image are on screen (or said unreadable), with their comparison.
    imagesShown = Signal(int)  # image id

    nothing_shown = "Select a pair in the gallery"

    def __init__(self, store: AuditStore, bands: Bands, training: TrainingImages, parent: QWidget | None = None):
        """training: store.training_images(), read with the rest of the audit off the GUI thread."""
        super().__init__(parent)
        self.store = store
        self.bands = bands
        self.image_id = -1
        self._train_root = store.train_path or Path()
        self._train = training
        self._class_names = store.class_names
        self._gen = self._trn = None
        self._row = None
        self._neighbours: list[TrainImage] = []
        self._shown = 0  # which neighbour the large training view shows: 0, the nearest, until one is clicked
        # The files of the pair shown, the generated one first, then its neighbours' in rank order; and those of them
        # decoded so far (None: unreadable). A decoded image whose path is not among them is for a pair no longer shown.
        self._paths: list[str] = []
        self._images: dict[str, np.ndarray | None] = {}
        self.decoded = DecodedImages(parent=self)
        self.decoded.arrived.connect(self._arrived)
        self._blink_on = False
        # A neighbour whose file cannot be read keeps its tile's size; a click says which file in the large view.
        self._unreadable = QPixmap(TILE, TILE)
        self._unreadable.fill(Qt.darkGray)
        self._waiting = QPixmap(TILE, TILE)  # and one on its way, too, blank
        self._waiting.fill(Qt.transparent)

        self.gen_view = ImageView("inspector_generated")
        self.train_view = ImageView("inspector_training")
        self.third_view = ImageView("inspector_compare")
        self.train_title = QLabel(objectName="inspector_training_title", wordWrap=True)
        self.mode = QComboBox(objectName="compare_mode")
        self.mode.addItems([DIFFERENCE, "overlay 50%", "blink"])
        # Says what the third image shows (an all-white difference reads as "broken" unless explained; while blinking
        # the user must know which of the two is on screen), in a box of two lines whatever it says: a caption
        # that wrapped anew on each blink would move everything below it, the verdict buttons too.
        self.caption = QLabel(objectName="compare_caption", alignment=Qt.AlignRight | Qt.AlignTop, wordWrap=True)
        self.caption.setStyleSheet("color: gray;")
        self.caption.setFixedHeight(2 * self.caption.fontMetrics().lineSpacing() + 2)
        self.mode.currentIndexChanged.connect(self._compare_mode)
        self.blink = QTimer(self)
        self.blink.setInterval(450)
        self.blink.timeout.connect(self._blink_tick)

        images = QGridLayout()
        gen_title = QLabel("<b>Generated</b>", wordWrap=True)
        for col, (title, view) in enumerate(((gen_title, self.gen_view), (self.train_title, self.train_view))):
            # Two lines high whether the title wraps or not: a neighbour's longer title must not move the images.
            title.setMinimumHeight(2 * title.fontMetrics().lineSpacing())
            title.setAlignment(Qt.AlignLeft | Qt.AlignBottom)
            images.addWidget(title, 0, col)
            images.addWidget(view, 1, col)
        for col in range(3):
            # Three images of one size, whatever the width of the titles above them.
            images.setColumnStretch(col, 1)
            images.setColumnMinimumWidth(col, SMALLEST)
        images.addWidget(self.mode, 0, 2, Qt.AlignBottom)
        images.addWidget(self.third_view, 1, 2)
        # Under all three columns, right-aligned under the third: two lines there hold any of its captions.
        images.addWidget(self.caption, 2, 0, 1, 3)

        d = self.bands.direction
        self.neigh_note = QLabel(f"{d.unit} to the generated image ({d.closer}); click one to compare",
                                 objectName="neighbours_note", wordWrap=True)
        self.neigh_note.setStyleSheet("color: gray;")
        strip = QHBoxLayout()
        strip.setSpacing(2)
        self.neigh_group = QGroupBox(f"Top-{NEIGHBOURS} training neighbours", objectName="inspector_neighbours")
        self.neighbours = QButtonGroup(self)
        for k in range(NEIGHBOURS):
            tile = NeighbourTile(k)
            self.neighbours.addButton(tile, k)
            strip.addWidget(tile, 1)
        strip.addStretch(0)  # what the tiles at their widest leave
        self.neighbours.idClicked.connect(self.show_neighbour)
        neigh = QVBoxLayout(self.neigh_group)
        neigh.addWidget(self.neigh_note)
        neigh.addLayout(strip)

        self.fields: dict[str, QLabel] = {}  # the metadata's values, and their rows' names
        self.field_names: dict[str, QLabel] = {}
        self.meta = QScrollArea(objectName="inspector_meta", widgetResizable=True)
        self.meta.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.meta.setWidget(self._metadata_form(self.bands.direction))

        self.buttons = QButtonGroup(self)
        self.buttons.setExclusive(False)
        row = QHBoxLayout()
        # Button k gives VERDICTS[k], and the key k + 1 does the same (AuditView's shortcuts).
        for key, verdict in enumerate(VERDICTS):
            b = QPushButton(f"{verdict.label}  [{key + 1}]", objectName=f"verdict_{verdict}", checkable=True)
            # The given verdict in the gallery's verdict colour: a pressed native button is hard to tell apart.
            b.setStyleSheet(f"QPushButton:checked {{ background: {VERDICT_COLORS[verdict].name()}; color: white; "
                            "font-weight: bold; border: 1px solid #444; border-radius: 3px; padding: 4px 8px; }")
            # Wide enough for the bold checked text, which the unchecked size hint would clip.
            bold = QFont(b.font())
            bold.setBold(True)
            b.setMinimumWidth(QFontMetrics(bold).horizontalAdvance(b.text()) + 24)
            self.buttons.addButton(b, key)
            row.addWidget(b)
        self.buttons.idClicked.connect(self._clicked)
        self.note = QLineEdit(objectName="verdict_note", placeholderText="Note (saved as you type)")
        self.note.textEdited.connect(self._note_edited)
        row.addWidget(self.note, 1)
        # Wrapped rather than widening the inspector (and with it the window) when the saved note appears.
        hint = QLabel("1 / 2 / 3 give the verdict; J / K or ← / → move through the gallery; "
                      "File → Export pairs… (Ctrl+E) exports them", wordWrap=True)
        hint.setStyleSheet("color: gray;")
        self.saved = QLabel(objectName="verdict_saved")
        self.saved.setStyleSheet("color: #2ca02c;")
        hints = QHBoxLayout()
        hints.addWidget(hint, 1)
        hints.addWidget(self.saved)

        lay = QVBoxLayout(self)
        lay.addLayout(images)
        lay.addLayout(row)
        lay.addLayout(hints)
        lay.addWidget(self.neigh_group)
        lay.addWidget(self.meta, 1)
        self.show_image(-1)

    def _metadata_form(self, direction: Direction) -> QWidget:
        """One row per fact, named as the export's pair fields name them; SHA-256s elided with a copy link.

        A grid, not a QFormLayout: with wrapped text in both columns a form gives a value fewer lines than it
        wraps to, and it overlaps the row below."""
        grid = QGridLayout()
        grid.setVerticalSpacing(2)
        grid.setColumnStretch(1, 1)
        mono = QFontDatabase.systemFont(QFontDatabase.FixedFont)
        # The judgement first: a short inspector shows the top rows without scrolling.
        rows = (("best", f"best {direction.unit}"), ("band", "band"), ("gu", "Gu ratio (nearest / 2nd)"),
                ("why", "why they differ"), ("raw", direction.raw_name), ("guidance", "guidance"),
                ("gamma", "gamma"), ("target", "target label"), ("image", "image id"), ("index", "index in sweep"),
                ("seed", "noise seed"), ("nearest", NEAREST), ("nearest sha", "SHA-256"),
                ("generated", "generated file"), ("generated sha", "SHA-256"))
        for r, (key, name) in enumerate(rows):
            label = QLabel(name, wordWrap=True, alignment=Qt.AlignLeft | Qt.AlignTop)
            label.setStyleSheet("color: gray;")
            # Plain text: a file name or a label is the user's, and must not be read as markup.
            value = QLabel(objectName=f"meta_{key.replace(' ', '_')}", wordWrap=True, textFormat=Qt.PlainText)
            value.setTextInteractionFlags(Qt.TextSelectableByMouse)
            if key.endswith("sha"):
                value.setFont(mono)
                value.setTextFormat(Qt.RichText)
                value.setTextInteractionFlags(Qt.LinksAccessibleByMouse)
                value.linkActivated.connect(lambda _, v=value: self._copy_hash(v))
            self.fields[key] = value
            self.field_names[key] = label
            grid.addWidget(label, r, 0)
            grid.addWidget(value, r, 1)
        grid.setRowStretch(len(rows), 1)  # what the rows leave, below them
        body = QWidget()
        body.setLayout(grid)
        return body

    # ----- showing a pair ------------------------------------------------------------------------------------------
    def set_bands(self, bands: Bands) -> None:
        """Called on every step of a band drag: re-labels the pair shown without reading any image again."""
        self.bands = bands
        if self._row is not None:
            self._describe(self._row)

    def show_image(self, image_id: int) -> None:
        self._show(image_id, None)

    def show_pair(self, image_id: int, train_idx: int) -> None:
        """A generated image beside one chosen training image, whichever of its k stored neighbours that is: the
        tiles show the nearest five, and neighbours past them are taken up to this one, so that its title names it by
        its rank. Without it among the neighbours, the image with its nearest."""
        self._show(image_id, train_idx)

    @property
    def loading(self) -> bool:
        """Whether an image of the pair shown, the tiles' too, is still on its way."""
        return any(p not in self._images for p in self._paths)

    def _show(self, image_id: int, train_idx: int | None) -> None:
        row = self.store.image(image_id) if image_id >= 0 else None
        self._row = row
        self.image_id = row.id if row else -1
        enabled = row is not None and not self.store.read_only
        for b in self.buttons.buttons():
            b.setEnabled(enabled)
        self.note.setEnabled(enabled)
        self.saved.clear()
        self._shown = 0
        self._images = {}
        if row is None:
            self._paths = []
            self.decoded.want([])
            self.gen_view.show_text(self.nothing_shown)
            self._neighbours = []
            self._show_training()
            for key in self.fields:
                self._set_field(key, None)
            for tile in self.neighbours.buttons():
                tile.hide()
            return
        self._neighbours = [self._train[int(j)] for j in row.nn_idx[:NEIGHBOURS]]
        tiles = len(self._neighbours)
        slots = np.flatnonzero(row.nn_idx == train_idx) if train_idx is not None else []
        if len(slots):
            self._shown = int(slots[0])
            self._neighbours += [self._train[int(j)] for j in row.nn_idx[tiles:self._shown + 1]]
        self._paths = [str(self.store.path(row.path)), *(str(self._train_root / t.path) for t in self._neighbours)]
        self._ask()
        self._show_generated()
        self.neigh_group.setTitle(f"Top-{tiles} training neighbours")
        for k, tile in enumerate(self.neighbours.buttons()):
            # Audits store k neighbours; with k < 5 the spare tiles stay hidden rather than empty.
            tile.setVisible(k < tiles)
            if k < tiles:
                self._show_tile(k)
        self._show_training()
        given = self.store.verdict(row.id)
        self._check_button(given.verdict if given else None)
        self.note.setText(given.note if given else "")
        self._describe(row)

    def _ask(self) -> None:
        """Takes the pair's images kept from earlier pairs, and asks for the others, the two compared first: they come
        to _arrived."""
        self.decoded.want(self._paths)
        compared = (self._paths[0], self._paths[1 + self._shown]) if self._neighbours else (self._paths[0],)
        for p in dict.fromkeys((*compared, *self._paths)):
            arr = self.decoded.get(p, COMPARED_PRIORITY if p in compared else TILE_PRIORITY)
            if arr is not None:
                self._images[p] = arr

    def _arrived(self, path: str, arr: np.ndarray | None) -> None:
        if path not in self._paths or path in self._images:
            return  # for a pair no longer shown
        self._images[path] = arr
        k = self._paths.index(path) - 1
        if k < 0:
            self._show_generated()
        elif k < NEIGHBOURS:
            self._show_tile(k)
        if k in (-1, self._shown):
            self._show_training()

    def _show_generated(self) -> None:
        path = self._paths[0]
        if path not in self._images:
            self.gen_view.show_text(LOADING)
        elif (arr := self._images[path]) is None:
            self.gen_view.show_text(f"cannot read\n{path}")
        else:
            self.gen_view.show_array(arr)

    def _show_tile(self, k: int) -> None:
        path = self._paths[1 + k]
        arr = self._images.get(path)
        if path not in self._images:
            pixmap = self._waiting
        else:
            pixmap = self._unreadable if arr is None else _to_pixmap(arr, TILE)
        self.neighbours.button(k).setIcon(QIcon(pixmap))

    def show_neighbour(self, k: int) -> None:
        """The k-th nearest training image (0: the nearest) in the large view and the comparison, until another
        pair is shown."""
        if 0 <= k < len(self._neighbours):
            self._shown = k
            self._show_training()

    def _show_training(self) -> None:
        for k, tile in enumerate(self.neighbours.buttons()):
            tile.setChecked(k == self._shown and bool(self._neighbours))
        self._gen = self._trn = None
        if not self._neighbours:
            self.train_title.setText(f"<b>{NEAREST.capitalize()}</b>")
            self.train_view.show_array(None)
            self.third_view.show_array(None)
            self.caption.clear()
            self._sync_blink()
            return
        t = self._neighbours[self._shown]
        self.train_title.setText(f"<b>{NEAREST.capitalize()}</b>" if self._shown == 0 else
                                 f"<b>Neighbour {self._shown + 1}: #{t.idx}</b>")
        gen_path, trn_path = self._paths[0], self._paths[1 + self._shown]
        gen, trn = self._images.get(gen_path), self._images.get(trn_path)
        if trn_path not in self._images:
            self.train_view.show_text(LOADING)
        elif trn is None:
            self.train_view.show_text(f"cannot read\n{trn_path}")
        else:
            self.train_view.show_array(trn)
        here = gen_path in self._images and trn_path in self._images
        if gen is not None and trn is not None:
            self._gen, self._trn = _match(gen, trn)
            self._compare_mode()
        else:
            # Said as soon as one of the two cannot be read, whether or not the other has come.
            unreadable = (gen_path in self._images and gen is None) or (trn_path in self._images and trn is None)
            self.third_view.show_text("nothing to compare: an image of the pair cannot be read" if unreadable else
                                      LOADING)
            self.caption.clear()
            self._sync_blink()
        if here:
            self.imagesShown.emit(self.image_id)

    def _check_button(self, verdict: Verdict | None) -> None:
        for k, v in enumerate(VERDICTS):
            self.buttons.button(k).setChecked(verdict == v)

    def _describe(self, row: ImageRow) -> None:
        """The texts that depend on the bands: the neighbours' lines and the metadata."""
        d = self.bands.direction
        for tile, t, s in zip(self.neighbours.buttons(), self._neighbours, row.nn_score, strict=False):
            band = self._band(float(s))
            # A file name keeps its end, where names made by numbering differ.
            tile.set_lines([(f"{s:.3f} {band.name.label if band else ''}".strip(), Qt.ElideRight),
                            (f"label {self._train_label(t)}", Qt.ElideRight), (Path(t.path).name, Qt.ElideLeft)])
            tile.setToolTip(f"training image #{t.idx}: {t.path}\nlabel {self._train_label(t, named=False)}\n"
                            f"{d.unit} {s:.4f} to the generated image ({d.closer}), "
                            f"{f'band {band.name.label}' if band else OUTSIDE}\nClick to compare it with the generated "
                            "image above.")
        band = self._band(row.best)
        guided = row.guide is not Guide.NONE
        memorized = row.gu is not None and row.gu < GU_CUT
        t = self._train[int(row.nn_idx[0])]
        self._set_field("image", str(row.id))
        self._set_field("guidance", row.guide.label)
        self._set_field("gamma", f"{row.gamma:g}")
        self._set_field("target", self._label_text(row.label) if guided else NO_TARGET)
        self._set_field("index", str(row.idx))
        self._set_field("seed", str(row.seed))
        self._set_field("best", f"{row.best:.4f}  ({d.closer})")
        edges = ", ".join(f"{b.name.label} {b.interval}" for b in self.bands.all())
        self._set_field("band", f"{band.name.label}: {d.unit} in {band.interval}" if band else f"{OUTSIDE} ({edges})")
        raw = f"{float(row.nn_raw[0]):.4f}"
        self._set_field("raw", raw + (f"  ({d.unit} = {raw} / {row.normalizer:.4f})"
                                      if d is Direction.DISTANCE else ""))
        self._set_field("gu", None if row.gu is None else
                        f"{row.gu:.3f}: {'memorized' if memorized else 'not memorized'} by Gu et al.'s test "
                        f"(raw l2 to the nearest under 1/3 of that to the 2nd nearest)")
        self._set_field("why", None if row.gu is None or (band is not None) == memorized else self._why(row, band))
        self._set_field("nearest", f"#{t.idx} {t.path}, label {self._train_label(t, named=False)}")
        self._set_hash("nearest sha", t.sha256)
        self._set_field("generated", row.path)
        self._set_hash("generated sha", row.sha256)

    def _why(self, row: ImageRow, band: Band | None) -> str:
        """Why the band and Gu's ratio disagree, for a pair where they do."""
        unit = self.bands.direction.unit
        if band is not None:
            return (f"The band looks only at how close the nearest training image is ({unit} {row.best:.3f}: band "
                    f"{band.name.label}); Gu's ratio asks whether it is much closer than the second nearest, and here "
                    f"it is not ({row.gu:.3f} \u2265 1/3).")
        return (f"Gu's ratio finds the nearest training image much closer than the second nearest ({row.gu:.3f} < "
                f"1/3); the band looks only at how close it is, and {unit} {row.best:.3f} is {OUTSIDE}.")

    def _band(self, score: float) -> Band | None:
        name = self.bands.classify(np.array([score]))[0]
        return self.bands.band(name) if name else None

    def _set_field(self, key: str, text: str | None) -> None:
        """None hides the row: a fact this audit does not have (Gu's ratio of an embedding)."""
        self.fields[key].setText(text or "")
        for label in (self.fields[key], self.field_names[key]):
            label.setVisible(text is not None)

    def _set_hash(self, key: str, sha256: str) -> None:
        self._set_field(key, f'{elided_hash(sha256)} <a href="copy">copy</a>')
        value = self.fields[key]
        value.setProperty("sha256", sha256)
        value.setToolTip(f"{sha256}\nClick copy to put it on the clipboard.")

    def _copy_hash(self, value: QLabel) -> None:
        sha256 = value.property("sha256")
        QGuiApplication.clipboard().setText(sha256)
        value.setText(f"{elided_hash(sha256)} copied")

    def _label_text(self, label: int) -> str:
        """The class name where it says more than the number (ImageFolder's "0".."9" do not)."""
        name = self._class_names[label] if 0 <= label < len(self._class_names) else str(label)
        return str(label) if name == str(label) else f"{label} ({name})"

    def _train_label(self, t: TrainImage, named: bool = True) -> str:
        """A training image's class; in a neighbour's box (named) its name alone, which says the most in least room."""
        if t.label is None:
            return ABSENT
        if not named:
            return self._label_text(t.label)
        return self._class_names[t.label] if 0 <= t.label < len(self._class_names) else str(t.label)

    def _compare_mode(self) -> None:
        if self._gen is None:
            self._sync_blink()
            return
        mode = self.mode.currentIndex()
        if mode == 0:
            self.third_view.show_array(difference(self._gen, self._trn))
            largest = int(np.abs(self._gen.astype(np.int16) - self._trn.astype(np.int16)).max())
            self.caption.setText(f"{DIFFERENCE}, {EQUAL}\nlargest difference {largest} of 255")
        elif mode == 1:
            blend = ((self._gen.astype(np.uint16) + self._trn) // 2).astype(np.uint8)
            self.third_view.show_array(blend)
            self.caption.setText("both at 50%: strokes that differ look doubled")
        self._sync_blink()

    def _sync_blink(self) -> None:
        # The blink timer runs only while it has something to show: a hidden inspector costs nothing.
        want = self._gen is not None and self.mode.currentIndex() == 2 and self.isVisible()
        if want and not self.blink.isActive():
            self._blink_tick()
            self.blink.start()
        elif not want:
            self.blink.stop()

    def _blink_tick(self) -> None:
        self._blink_on = not self._blink_on
        self.third_view.show_array(self._gen if self._blink_on else self._trn)
        training = NEAREST if self._shown == 0 else f"neighbour {self._shown + 1}"
        self.caption.setText("blinking, now: " + ("generated" if self._blink_on else training))

    def showEvent(self, e) -> None:
        super().showEvent(e)
        self._sync_blink()

    def hideEvent(self, e) -> None:
        super().hideEvent(e)
        self.blink.stop()

    # ----- verdicts --------------------------------------------------------------------------------------------------
    def set_verdict(self, verdict: Verdict | None) -> None:
        """Gives the pair shown this verdict (None takes it back), saved in the audit at once."""
        if self.image_id < 0 or self.store.read_only:
            return
        self.store.set_verdict(self.image_id, verdict)
        self._check_button(verdict)
        self.saved.setText(f"{verdict.label}: saved in the audit" if verdict else "Verdict removed")
        self.verdictChanged.emit(self.image_id, verdict)

    def _clicked(self, k: int) -> None:
        # Clicking the verdict already given takes it back.
        self.set_verdict(VERDICTS[k] if self.buttons.button(k).isChecked() else None)

    def _note_edited(self, text: str) -> None:
        if self.image_id < 0 or self.store.read_only:
            return
        current = self.store.verdict(self.image_id)
        self.store.set_verdict(self.image_id, current.verdict if current else None, text)
        self.saved.setText("Note saved in the audit")
