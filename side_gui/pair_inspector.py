"""One pair up close: both images large, their difference or a blink/overlay, the top-5 training neighbours,
every piece of metadata, and the verdict (saved in the audit the moment it is given)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QFontMetrics, QImage, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from side_engine.matching.metrics import Bands
from side_engine.store import AuditStore, ImageRow, TrainImage
from side_engine.vocabulary import VERDICTS, BandName, Verdict

from .gallery_view import VERDICT_COLORS, guide_text

BIG = 200
SMALLEST = 120  # the inspector must fit beside the gallery on a 1280-pixel screen
NEIGHBOURS = 5
ABSENT = "none"  # what the metadata says for a score in no band, or a training image without a label


def _gray_or_rgb(path: Path) -> np.ndarray | None:
    """None where the file is gone or unreadable (an audit copied without its images, a training set moved)."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L" if img.mode in ("L", "1", "I;16") else "RGB"))
    except (OSError, ValueError):
        return None


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
        if self._arr is None:
            self.clear()
            return
        self.setPixmap(_to_pixmap(self._arr, min(self.width(), self.height(), BIG)))


class PairInspector(QWidget):
    verdictChanged = Signal(int, object)  # image id, verdict or None
    step = Signal(int)  # ask the gallery for the next (+1) or previous (-1) pair

    def __init__(self, store: AuditStore, bands: Bands, training: list[TrainImage], parent: QWidget | None = None):
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
        self._blink_on = False

        self.gen_view = ImageView("inspector_generated")
        self.train_view = ImageView("inspector_training")
        self.third_view = ImageView("inspector_compare")
        self.mode = QComboBox(objectName="compare_mode")
        self.mode.addItems(["|difference|", "overlay 50%", "blink"])
        # Says what the third image shows: a near-black difference reads as "broken" unless explained, and
        # while blinking the user must know which of the two is on screen.
        self.caption = QLabel(objectName="compare_caption", alignment=Qt.AlignCenter, wordWrap=True)
        self.caption.setStyleSheet("color: gray;")
        self.mode.currentIndexChanged.connect(self._compare_mode)
        self.blink = QTimer(self)
        self.blink.setInterval(450)
        self.blink.timeout.connect(self._blink_tick)

        images = QGridLayout()
        titled = (("Generated", self.gen_view), ("Nearest training image", self.train_view))
        for col, (title, view) in enumerate(titled):
            images.addWidget(QLabel(f"<b>{title}</b>", wordWrap=True), 0, col)
            images.addWidget(view, 1, col)
        for col in range(3):
            # Three images of one size, whatever the width of the titles above them.
            images.setColumnStretch(col, 1)
            images.setColumnMinimumWidth(col, SMALLEST)
        images.addWidget(self.mode, 0, 2)
        images.addWidget(self.third_view, 1, 2)
        images.addWidget(self.caption, 2, 2)

        self.neigh = QHBoxLayout()
        self.neigh_boxes = []
        for _ in range(NEIGHBOURS):
            box = QVBoxLayout()
            img = QLabel(alignment=Qt.AlignCenter)
            img.setFixedSize(72, 72)
            img.setStyleSheet("background: #202020;")
            txt = QLabel(alignment=Qt.AlignCenter)
            box.addWidget(img)
            box.addWidget(txt)
            self.neigh.addLayout(box)
            self.neigh_boxes.append((img, txt))
        self.neigh.addStretch(1)
        self.neigh_group = QGroupBox(f"Top-{NEIGHBOURS} training neighbours", objectName="inspector_neighbours")
        self.neigh_group.setLayout(self.neigh)

        self.meta = QPlainTextEdit(objectName="inspector_meta", readOnly=True)
        # A hash broken over two lines is hard to compare with another copy of it.
        self.meta.setLineWrapMode(QPlainTextEdit.NoWrap)
        self.meta.setMaximumBlockCount(200)

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

    # ----- showing a pair ------------------------------------------------------------------------------------------
    def set_bands(self, bands: Bands) -> None:
        """Called on every step of a band drag: re-labels the pair shown without reading any image again."""
        self.bands = bands
        if self._row is not None:
            self._describe(self._row)

    def show_image(self, image_id: int) -> None:
        row = self.store.image(image_id) if image_id >= 0 else None
        self._row = row
        self.image_id = row.id if row else -1
        enabled = row is not None and not self.store.read_only
        for b in self.buttons.buttons():
            b.setEnabled(enabled)
        self.note.setEnabled(enabled)
        self.saved.clear()
        if row is None:
            for v in (self.train_view, self.third_view):
                v.show_array(None)
            self.gen_view.show_text("Select a pair in the gallery")
            self.caption.clear()
            self.meta.setPlainText("")
            for img, txt in self.neigh_boxes:
                img.clear()
                txt.clear()
            self._gen = self._trn = None
            self._sync_blink()
            return
        gen_path = self.store.path(row.path)
        trn_path = self._train_root / self._train[row.best_train].path
        gen, trn = _gray_or_rgb(gen_path), _gray_or_rgb(trn_path)
        for view, arr, path in ((self.gen_view, gen, gen_path), (self.train_view, trn, trn_path)):
            if arr is None:
                view.show_text(f"cannot read\n{path}")
            else:
                view.show_array(arr)
        if gen is None or trn is None:
            self._gen = self._trn = None
            self.third_view.show_text("nothing to compare: an image of the pair cannot be read")
            self.caption.clear()
            self._sync_blink()
        else:
            self._gen, self._trn = _match(gen, trn)
            self._compare_mode()
        shown = min(len(row.nn_idx), NEIGHBOURS)
        self.neigh_group.setTitle(f"Top-{shown} training neighbours")
        for k, (img, txt) in enumerate(self.neigh_boxes):
            # Audits store k neighbours; with k < 5 the spare slots stay hidden rather than empty.
            img.setVisible(k < len(row.nn_idx))
            txt.setVisible(k < len(row.nn_idx))
        for (img, _), j in zip(self.neigh_boxes, row.nn_idx[:NEIGHBOURS]):
            arr = _gray_or_rgb(self._train_root / self._train[int(j)].path)
            if arr is None:
                img.setText("cannot read")
            else:
                img.setPixmap(_to_pixmap(arr, 72))
        given = self.store.verdict(row.id)
        self._check_button(given.verdict if given else None)
        self.note.setText(given.note if given else "")
        self._describe(row)

    def _check_button(self, verdict: Verdict | None) -> None:
        for k, v in enumerate(VERDICTS):
            self.buttons.button(k).setChecked(verdict == v)

    def _describe(self, row: ImageRow) -> None:
        """The texts that depend on the bands: the neighbours' badges and the metadata."""
        for (_, txt), j, s in zip(self.neigh_boxes, row.nn_idx[:NEIGHBOURS], row.nn_score[:NEIGHBOURS]):
            band = self.bands.classify(np.array([s]))[0]
            txt.setText(f"#{int(j)}  {s:.3f}" + (f"\n{BandName(band).label}" if band else ""))
        t = self._train[row.best_train]
        band = self.bands.classify(np.array([row.best]))[0]
        band = BandName(band).label if band else ABSENT
        t_name = ABSENT if t.label is None else self._label_text(t.label)
        memorized = "memorized" if row.gu is not None and row.gu < 1 / 3 else "not memorized"
        gu = "—" if row.gu is None else f"{row.gu:.3f} ({memorized} by Gu's 1/3)"
        self.meta.setPlainText("\n".join([
            f"image id        {row.id}",
            f"run             {guide_text(row.guide, row.gamma)}  (guide {row.guide}, gamma {row.gamma:g})",
            f"target label    {self._label_text(row.label)}",
            f"index, seed     {row.idx}, {row.seed}",
            f"best score      {row.best:.4f}  band: {band}  ({self.store.descriptor}, {self.bands.direction})",
            f"raw distance    {float(row.nn_raw[0]):.4f}   normaliser {row.normalizer:.4f}",
            f"Gu ratio        {gu}",
            f"generated file  {row.path}",
            f"  sha256        {row.sha256}",
            f"training image  #{t.idx} {t.path}  (label {t_name})",
            f"  sha256        {t.sha256}",
        ]))

    def _label_text(self, label: int) -> str:
        """The class name where it says more than the number (ImageFolder's "0".."9" do not)."""
        name = self._class_names[label] if 0 <= label < len(self._class_names) else str(label)
        return str(label) if name == str(label) else f"{label} ({name})"

    def _compare_mode(self) -> None:
        if self._gen is None:
            self._sync_blink()
            return
        mode = self.mode.currentIndex()
        if mode == 0:
            diff = np.abs(self._gen.astype(np.int16) - self._trn.astype(np.int16)).astype(np.uint8)
            self.third_view.show_array(diff)
            self.caption.setText(f"black = same pixel; largest difference {int(diff.max())} of 255")
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
        self.caption.setText("blinking, now: " + ("generated" if self._blink_on else "nearest training image"))

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
