"""Was this picture extracted? File → Check images… (Ctrl+K), or image files dropped on the window: each outside
picture beside the open audit's closest generated and training images (side_engine/questions/check.py), with scores
and band badges as the gallery shows them. A click on a generated image shows its pair in the window; the answer
exports as evidence (side_engine/evidence/check_export.py).

The check runs on the worker (the descriptors of every stored PNG: seconds at thousands of images), thumbnails load
on the thread pool (gallery_view.ThumbnailCache), and the answers are a model painted by a delegate, so that a drop
of many pictures stays one light list."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QRect, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QFont, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QListView,
    QMessageBox,
    QProgressBar,
    QStyledItemDelegate,
    QToolTip,
    QVBoxLayout,
)

from side_engine import events as ev
from side_engine.dataset import IMAGE_SUFFIXES
from side_engine.matching.metrics import Bands
from side_engine.vocabulary import OUTSIDE, BandName, Direction

from .dialogs import show_error
from .export_dialog import folder_problem, free_folder
from .gallery_view import BAND_COLORS, NO_BAND_COLOR, ThumbnailCache, guide_text, text_color_on
from .worker import GeneratorWorker, Job, WorkerDialog

if TYPE_CHECKING:
    from side_engine.questions.check import Answer, GeneratedMatch, TrainingMatch

    from .main_window import MainWindow

TOP = 5  # closest generated and training images shown per picture
GENERATED, TRAINING = "generated", "training"
PARTS = {"training descriptors": "Computing the training descriptors (the audit keeps none)…",
         "generated images": "Reading the audit's generated images…"}
IMAGE_FILTER = f"Images ({' '.join('*' + s for s in sorted(IMAGE_SUFFIXES))});;All files (*)"


@dataclass(frozen=True)
class Outcome:
    """What a check returns to the dialog: the answers, and one line per picture that could not be read."""

    answers: list[Answer]
    unreadable: list[str]


def check_job(audit_dir: str, paths: list[str], bands: Bands, top: int = TOP) -> Job:
    """The worker's generator: every picture read (an unreadable one is noted, the rest still checked), then the
    answers, with the engine's progress as its events. Holds plain values only, never the dialog."""

    def run(control: ev.RunControl) -> Iterator:
        from side_engine.errors import InputError
        from side_engine.questions.check import Checker

        with Checker(audit_dir, bands=bands) as checker:
            images, unreadable = [], []
            for p in paths:
                control.check()
                try:
                    images.append(checker.read(p))
                except InputError as e:
                    unreadable.append(str(e))
            answers = (yield from checker.answers(images, top, control.check)) if images else []
        return Outcome(answers, unreadable)

    return run


def export_job(audit_dir: str, answers: list[Answer], out_dir: str, bands: Bands) -> Job:
    def run(control: ev.RunControl) -> Iterator:
        from side_engine.evidence.check_export import export_check

        yield from ()  # the worker runs generators; this one has nothing to report on the way
        return str(export_check(audit_dir, answers, out_dir, bands=bands, check=control.check))

    return run


class CheckModel(QAbstractListModel):
    """One row per checked picture."""

    repaintRequested = Signal()
    AnswerRole = Qt.UserRole + 1

    def __init__(self, root: str, train_root: str, direction: Direction, parent: QObject | None = None):
        super().__init__(parent)
        self.root, self.train_root, self.direction = root, train_root, direction
        self.answers: list[Answer] = []
        self.pictures = ThumbnailCache(CheckDelegate.PICTURE, capacity=200, parent=self)
        self.thumbs = ThumbnailCache(CheckDelegate.THUMB, capacity=2000, parent=self)
        for cache in (self.pictures, self.thumbs):
            cache.ready.connect(self.repaintRequested)

    def set_answers(self, answers: list[Answer]) -> None:
        self.beginResetModel()
        self.answers = answers
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.answers)

    def data(self, index: QModelIndex, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        a = self.answers[index.row()]
        if role == self.AnswerRole:
            return a
        if role == Qt.DisplayRole:
            return a.image.name
        return None

    def path_of(self, kind: str, m: GeneratedMatch | TrainingMatch) -> str:
        return str(Path(self.root if kind == GENERATED else self.train_root) / m.path)

    def shutdown(self) -> None:
        self.pictures.shutdown()
        self.thumbs.shutdown()


def band_word(band: BandName | None) -> str:
    """A badge's word, as the gallery's: the band, or a dash outside the bands."""
    return band.label if band else "—"


def generated_lines(g: GeneratedMatch) -> tuple[str, str]:
    """The two lines over a generated match's score: which image, and its run."""
    return f"image {g.id}", guide_text(g.guide, g.gamma)


def training_lines(t: TrainingMatch) -> tuple[str, str]:
    return f"training #{t.index}", Path(t.path).name


class CheckDelegate(QStyledItemDelegate):
    """Paints one checked picture: the picture on the left; on the right its closest generated images over its
    closest training images, each a thumbnail with its score and band badge."""

    PAD = 8
    PICTURE = 128
    THUMB = 88
    LINE = 16
    TILE_W = THUMB + 18
    HEADER = LINE + 4  # a section's title
    SECTION = HEADER + THUMB + 4 + 3 * LINE + PAD
    LEFT = PICTURE + 3 * PAD

    def sizeHint(self, option, index) -> QSize:
        return QSize(self.LEFT + TOP * self.TILE_W + self.PAD, 2 * self.SECTION + self.PAD)

    def tile_rect(self, cell: QRect, kind: str, k: int) -> QRect:
        """Where match k of a section (GENERATED above, TRAINING below) lies in a row's cell: thumbnail and lines."""
        y = cell.top() + self.PAD + (0 if kind == GENERATED else self.SECTION) + self.HEADER
        return QRect(cell.left() + self.LEFT + k * self.TILE_W, y, self.TILE_W - 6, self.THUMB + 4 + 3 * self.LINE)

    def tile_at(self, cell: QRect, a: Answer, pos) -> tuple[str, int] | None:
        for kind, matches in ((GENERATED, a.generated), (TRAINING, a.training)):
            for k in range(len(matches)):
                if self.tile_rect(cell, kind, k).contains(pos):
                    return kind, k
        return None

    def paint(self, p: QPainter, option, index) -> None:
        model: CheckModel = index.model()
        a: Answer = index.data(CheckModel.AnswerRole)
        cell = option.rect
        pad, line = self.PAD, self.LINE
        p.save()
        p.fillRect(cell.adjusted(2, 2, -2, -2), option.palette.alternateBase())
        font = QFont(option.font)
        bold = QFont(font)
        bold.setBold(True)
        text = option.palette.text().color()
        dim = option.palette.placeholderText().color()

        left = cell.left() + pad
        top = cell.top() + pad
        p.setFont(bold)
        p.setPen(text)
        p.drawText(QRect(left, top, self.PICTURE, line), Qt.AlignLeft | Qt.AlignVCenter, "Outside picture")
        box = QRect(left, top + self.HEADER, self.PICTURE, self.PICTURE)
        self._thumb(p, model.pictures, str(a.image), box)
        y = box.bottom() + 4
        p.drawText(QRect(left, y, self.PICTURE + pad, line), Qt.AlignLeft | Qt.AlignVCenter,
                   p.fontMetrics().elidedText(a.image.name, Qt.ElideMiddle, self.PICTURE + pad))
        p.setFont(font)
        p.setPen(dim)
        p.drawText(QRect(left, y + line, self.PICTURE + pad, line), Qt.AlignLeft | Qt.AlignVCenter,
                   f"SHA-256 {a.sha256[:10]}…")

        unit = model.direction.unit
        titles = {GENERATED: f"Closest generated images ({unit}, {model.direction.closer}): click one to see its pair",
                  TRAINING: "Closest training images"}
        sections = ((GENERATED, [(m, generated_lines(m)) for m in a.generated]),
                    (TRAINING, [(m, training_lines(m)) for m in a.training]))
        for kind, matches in sections:
            first = self.tile_rect(cell, kind, 0)
            p.setFont(bold)
            p.setPen(text)
            width = cell.right() - first.left() - pad
            p.drawText(QRect(first.left(), first.top() - self.HEADER, width, line), Qt.AlignLeft | Qt.AlignVCenter,
                       p.fontMetrics().elidedText(titles[kind], Qt.ElideRight, width))
            for k, (m, (name, sub)) in enumerate(matches):
                r = self.tile_rect(cell, kind, k)
                self._thumb(p, model.thumbs, model.path_of(kind, m), QRect(r.left(), r.top(), self.THUMB, self.THUMB))
                ty = r.top() + self.THUMB + 4
                p.setFont(font)
                p.setPen(text)
                fm = p.fontMetrics()
                p.drawText(QRect(r.left(), ty, r.width(), line), Qt.AlignLeft | Qt.AlignVCenter,
                           fm.elidedText(name, Qt.ElideRight, r.width()))
                p.setPen(dim)
                p.drawText(QRect(r.left(), ty + line, r.width(), line), Qt.AlignLeft | Qt.AlignVCenter,
                           fm.elidedText(sub, Qt.ElideMiddle, r.width()))
                self._badge(p, m.band, m.score, QRect(r.left(), ty + 2 * line + 1, r.width(), line - 1), text)
        p.restore()

    def _thumb(self, p: QPainter, cache: ThumbnailCache, path: str, box: QRect) -> None:
        pix = cache.get(path)
        if pix is None or pix.isNull():
            p.fillRect(box, QColor("#404040"))
            return
        target = QRect(0, 0, pix.width(), pix.height())
        target.moveCenter(box.center())
        p.drawPixmap(target, pix)

    def _badge(self, p: QPainter, band: BandName | None, score: float, r: QRect, text: QColor) -> None:
        """The band as the gallery's badge shows it, and the score beside it."""
        color = BAND_COLORS.get(band, NO_BAND_COLOR) if band else NO_BAND_COLOR
        badge = QRect(r.left(), r.top(), 40, r.height())
        p.setPen(Qt.NoPen)
        p.setBrush(color)
        p.drawRoundedRect(badge, 4, 4)
        f = QFont(p.font())
        f.setBold(True)
        f.setPointSizeF(f.pointSizeF() * 0.85)
        p.setFont(f)
        p.setPen(text_color_on(color))
        p.drawText(badge, Qt.AlignCenter, band_word(band))
        f.setBold(False)
        p.setFont(f)
        p.setPen(text)
        p.drawText(QRect(badge.right() + 5, r.top(), r.width() - badge.width() - 5, r.height()),
                   Qt.AlignLeft | Qt.AlignVCenter, f"{score:.4f}")

    def helpEvent(self, event, view, option, index) -> bool:
        """A match's tooltip: its file, score and band in words, and what a click does."""
        model: CheckModel = index.model()
        a: Answer = index.data(CheckModel.AnswerRole)
        hit = self.tile_at(option.rect, a, event.pos())
        if hit is None:
            QToolTip.showText(event.globalPos(), str(a.image), view)
            return True
        kind, k = hit
        m = (a.generated if kind == GENERATED else a.training)[k]
        band = f"band {m.band.label}" if m.band else OUTSIDE
        tip = f"{model.path_of(kind, m)}\n{model.direction.unit} {m.score:.4f}, {band}"
        if kind == GENERATED:
            tip += "\nClick to show this pair in the window."
        QToolTip.showText(event.globalPos(), tip, view)
        return True


class CheckList(QListView):
    """The checked pictures; a click on a generated match emits its image id."""

    generatedClicked = Signal(int)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.delegate = CheckDelegate(self)
        self.setItemDelegate(self.delegate)
        self.setUniformItemSizes(True)
        self.setSelectionMode(QAbstractItemView.NoSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.setMouseTracking(True)

    def match_at(self, pos) -> tuple[str, GeneratedMatch | TrainingMatch] | None:
        index = self.indexAt(pos)
        if not index.isValid():
            return None
        a: Answer = index.data(CheckModel.AnswerRole)
        hit = self.delegate.tile_at(self.visualRect(index), a, pos)
        if hit is None:
            return None
        kind, k = hit
        return kind, (a.generated if kind == GENERATED else a.training)[k]

    def mouseMoveEvent(self, e) -> None:
        hit = self.match_at(e.position().toPoint())
        self.viewport().setCursor(Qt.PointingHandCursor if hit and hit[0] == GENERATED else Qt.ArrowCursor)
        super().mouseMoveEvent(e)

    def mouseReleaseEvent(self, e) -> None:
        hit = self.match_at(e.position().toPoint())
        if e.button() == Qt.LeftButton and hit and hit[0] == GENERATED:
            self.generatedClicked.emit(hit[1].id)
        super().mouseReleaseEvent(e)


class CheckDialog(WorkerDialog):
    """Non-modal: the reviewer keeps it open beside the window while looking at the pairs it points to."""

    checkFinished = Signal()  # the check's worker has ended (answers shown, or an error said)
    exportFinished = Signal(str)  # the folder written, '' after an error or a cancel

    def __init__(self, window: MainWindow, paths: list[str]):
        super().__init__(window)
        self.setObjectName("check_dialog")
        self.setWindowTitle("Check images: was this picture extracted?")
        self.setAttribute(Qt.WA_DeleteOnClose)
        self.main = window
        audit = window.audit
        assert audit is not None  # check_images opens this only with an audit open
        self.root = audit.root
        self.bands = audit.model.bands
        self.paths = paths
        self._outcome: Outcome | None = None
        self._exported = ""

        n_gen, n_train = len(audit.model.ids), len(audit.model.train_paths)
        self.intro = QLabel(f"Each picture is matched, with the audit's own descriptor, against its {n_gen:,} "
                            f"generated and {n_train:,} training images, and scored as the audit scores its pairs "
                            f"(bands as in the Bands tab).", objectName="check_intro", wordWrap=True)
        self.status = QLabel(objectName="check_status", wordWrap=True)
        self.bar = QProgressBar(objectName="check_progress")
        self.bar.setRange(0, 0)
        self.model = CheckModel(self.root, str(audit.store.train_path or ""), self.bands.direction, self)
        self.list = CheckList(objectName="check_results")
        self.list.setModel(self.model)
        self.model.repaintRequested.connect(self.list.viewport().update)
        self.list.generatedClicked.connect(self.show_pair)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.buttons.button(QDialogButtonBox.Close).setObjectName("check_close")
        self.export_btn = self.buttons.addButton("Export as evidence…", QDialogButtonBox.ActionRole)
        self.export_btn.setObjectName("check_export")
        self.export_btn.setEnabled(False)
        self.export_btn.clicked.connect(self.choose_export)
        self.buttons.rejected.connect(self.reject)

        lay = QVBoxLayout(self)
        for w in (self.intro, self.status, self.bar):
            lay.addWidget(w)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.buttons)
        hint = self.list.delegate.sizeHint(None, QModelIndex())
        self.resize(hint.width() + 40, min(760, 2 * hint.height() + 200))
        self._start(check_job(self.root, paths, self.bands), self._checked)
        self.status.setText(f"Checking {len(paths)} picture{'s' if len(paths) != 1 else ''}…")

    # ----- the worker -------------------------------------------------------------------------------------------------
    def _start(self, job: Job, returned) -> None:
        self.worker = GeneratorWorker(job)
        self.worker.yielded.connect(self._on_event)
        self.worker.returned.connect(returned)
        self.worker.errored.connect(self._failed)
        self.worker.finished.connect(self._finished)
        self.bar.setRange(0, 0)
        self.bar.show()
        self.export_btn.setEnabled(False)
        self.worker.start()

    def _on_event(self, e) -> None:
        if isinstance(e, ev.StageStarted):
            self.status.setText(PARTS.get(e.part, "Checking…"))
            self.bar.setRange(0, e.total or 0)
        elif isinstance(e, ev.Progress):
            self.bar.setValue(e.done)

    def _checked(self, outcome: Outcome) -> None:
        self._outcome = outcome

    def _failed(self, message: str) -> None:
        show_error(self, "Check images", message)

    def _finished(self) -> None:
        w, self.worker = self.worker, None
        if w is not None:
            w.wait()  # the thread ends right after `finished`: no QThread outlives its worker
        self.bar.hide()
        outcome, self._outcome = self._outcome, None
        if outcome is not None:
            self.model.set_answers(outcome.answers)
            self.status.setText(self._summary(outcome.answers))
            if outcome.unreadable:
                show_error(self, "Some pictures could not be read",
                           "Not checked:\n" + "\n".join(outcome.unreadable))
            self.checkFinished.emit()
        elif self.model.answers:  # an export ended
            self.status.setText(self._summary(self.model.answers) + (
                f" Exported to {self._exported}." if self._exported else " The export did not finish; nothing was "
                "written."))
            self.exportFinished.emit(self._exported)
        else:
            self.status.setText("The check did not finish.")
            self.checkFinished.emit()
        self.export_btn.setEnabled(bool(self.model.answers))
        if self._close_when_done:
            self.reject()

    def _summary(self, answers: list[Answer]) -> str:
        if not answers:
            return "No picture could be read."
        high = [a for a in answers if a.generated and a.generated[0].band is BandName.HIGH]
        return (f"{len(answers)} picture{'s' if len(answers) != 1 else ''} checked: {len(high)} with a generated "
                f"image in the high band.")

    # ----- what the reviewer does -------------------------------------------------------------------------------------
    def show_pair(self, image_id: int) -> None:
        """The pair of this generated image in the window: selected in the gallery, or, where the gallery's filters
        hide it, shown in the inspector alone."""
        audit = self.main.audit
        if audit is None or audit.root != self.root:
            self.status.setText("The audit this check was made against is no longer open in the window.")
            return
        audit.tabs.setCurrentWidget(audit.split)
        row = audit.model.row_of_id(image_id)
        if row is None:
            audit.inspector.show_image(image_id)
        else:
            index = audit.model.index(row)
            audit.gallery.list.setCurrentIndex(index)
            audit.gallery.list.scrollTo(index)

    def choose_export(self) -> None:
        start = str(self.main.settings.value("check_export_dir", str(Path(self.root).parent)))
        path = QFileDialog.getExistingDirectory(self, "Export the check as evidence into a folder", start)
        if not path:
            return
        self.main.settings.setValue("check_export_dir", path)
        # A folder that already holds files gets a new one inside it rather than a refusal, as in Export pairs.
        if folder_problem(path) is not None:
            path = free_folder(Path(path), f"{Path(self.root).name}-check")
        self.export(path)

    def export(self, folder: str) -> None:
        if self.worker is not None or not self.model.answers:
            return
        self._exported = ""
        self.status.setText(f"Exporting to {folder}…")
        self._start(export_job(self.root, self.model.answers, folder, self.bands), self._on_exported)

    def _on_exported(self, folder: str) -> None:
        self._exported = folder
        box = QMessageBox(QMessageBox.Information, "Check exported", f"Exported the check to\n{folder}\n\nAnyone "
                          f'can check it later with:\nside verify "{folder}"', QMessageBox.Close, self)
        box.setObjectName("check_export_done")
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.setTextInteractionFlags(Qt.TextSelectableByMouse)
        box.addButton("Open folder", QMessageBox.AcceptRole).clicked.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(folder)))
        box.open()

    # ----- closing ----------------------------------------------------------------------------------------------------
    def _closing(self) -> None:
        self.model.shutdown()


def open_check(window: MainWindow, paths: list[str] | None = None) -> CheckDialog | None:
    """The check of these image files (asked for with a file dialog when None) against the window's open audit."""
    if paths is None:
        start = str(window.settings.value("check_dir", str(Path(window.audit.root).parent) if window.audit else ""))
        paths, _ = QFileDialog.getOpenFileNames(window, "Check images against the audit", start, IMAGE_FILTER)
        if not paths:
            return None
        window.settings.setValue("check_dir", str(Path(paths[0]).parent))
    dlg = CheckDialog(window, list(paths))
    dlg.show()
    return dlg
