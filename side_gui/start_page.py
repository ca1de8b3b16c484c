"""The start page (new audit, open, recent, demo) and the new-audit form, checked as the user types.

The form checks only what is cheap to check (paths, numbers); the engine's prepare() checks the rest on the
worker thread before it writes anything, and its one-line InputError is shown in a dialog.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from side_engine.config import AuditConfig, load_config

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
LABEL_SOURCES = [("Train a classifier on the training folder's class subfolders", "folders"),
                 ("Use my classifier (safetensors file)", "user"),
                 ("Clusters (no labels needed)", "clusters")]


def _has_image(folder: Path, limit: int = 2000) -> bool:
    """Stops at the first image: a folder of a million files must not stall typing."""
    seen = 0
    for _, _, files in os.walk(folder):
        for f in files:
            if Path(f).suffix.lower() in IMAGE_EXT:
                return True
            seen += 1
            if seen > limit:
                return False
    return False


def _model_problem(folder: Path, scheduler: str) -> str:
    """The layouts the engine's target loader accepts, checked by file names only (no JSON is read)."""
    if (folder / "model_index.json").exists():
        for part in ("unet/config.json", "scheduler/scheduler_config.json"):
            if not (folder / part).exists():
                return f"a pipeline folder without {part}"
        return ""
    if (folder / "config.json").exists():
        candidates = [Path(scheduler)] if scheduler else [folder, folder.parent / "scheduler"]
        if not any((d / "scheduler_config.json").exists() for d in candidates):
            return ("a bare UNet folder with no scheduler: it needs scheduler_config.json in it or a scheduler "
                    "folder beside it")
        return ""
    return "no model_index.json or config.json: not a diffusers model folder"


class PathField(QWidget):
    """A line edit with a Browse button; the error label is placed by the form."""

    changed = Signal()

    def __init__(self, name: str, folder: bool, caption: str, filt: str = ""):
        super().__init__()
        self.edit = QLineEdit(objectName=name)
        self.edit.textChanged.connect(self.changed)
        browse = QPushButton("Browse…")
        browse.clicked.connect(lambda: self._browse(folder, caption, filt))
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.edit, 1)
        lay.addWidget(browse)

    def _browse(self, folder: bool, caption: str, filt: str) -> None:
        path = (QFileDialog.getExistingDirectory(self, caption, self.edit.text()) if folder
                else QFileDialog.getOpenFileName(self, caption, self.edit.text(), filt)[0])
        if path:
            self.edit.setText(path)

    def text(self) -> str:
        return self.edit.text().strip()


class NewAuditForm(QWidget):
    """Emits start(config, audit_folder) once every field is valid and Start is pressed."""

    start = Signal(object, str)
    back = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        # Settings the form does not show (classifier, TDKD, matching details) come from this config,
        # the engine's defaults unless a config file was loaded.
        self.base = AuditConfig()
        self.model = PathField("model_path", True, "Model folder (diffusers pipeline or UNet)")
        self.train = PathField("train_path", True, "Training image folder")
        self.source = QComboBox(objectName="label_source")
        for text, key in LABEL_SOURCES:
            self.source.addItem(text, key)
        self.user_clf = PathField("classifier_path", False, "Classifier", "safetensors (*.safetensors)")
        self.gammas = QLineEdit("0, 5, 10, 20", objectName="gammas")
        self.n_per_gamma = QSpinBox(objectName="n_per_gamma", minimum=1, maximum=1_000_000, value=64)
        self.steps = QSpinBox(objectName="ddim_steps", minimum=1, maximum=1000, value=50)
        self.seed = QSpinBox(objectName="seed", minimum=0, maximum=2**31 - 1, value=0)
        self.descriptor = QComboBox(objectName="descriptor")
        self.descriptor.addItem("Pixels (Carlini's nL2)", "pixels")
        self.descriptor.addItem("SSCD (TorchScript file)", "sscd")
        self.sscd = PathField("sscd_path", False, "SSCD TorchScript file", "TorchScript (*.pt *.torchscript)")
        self.out = PathField("audit_folder", True, "Folder for the new audit")

        for widget, tip in (
                (self.source, ("Where the class labels that guide extraction come from: a classifier trained on "
                               "the training folder's class subfolders, your own classifier, or clusters of the "
                               "model's own samples (needs no labels and no training images).")),
                (self.gammas, ("Guidance scales to sweep. 0 is the Random baseline (plain sampling); larger values "
                               "pull samples harder toward one class.")),
                (self.n_per_gamma, "Generated images per gamma (and per guide)."),
                (self.steps, "DDIM sampling steps per image."),
                (self.seed, "Seed of every image's noise: the same seed gives the same images again."),
                (self.descriptor, ("How generated and training images are compared: raw pixels (Carlini's "
                                   "calibrated l2) or SSCD copy-detection embeddings from a local TorchScript "
                                   "file.")),
                (self.sscd.edit, ("The TorchScript file is code: it runs when it embeds an image. Use only a "
                                  "file from a source you trust (SSCD's authors); SIDE does not check it."))):
            widget.setToolTip(tip)

        self.errors: dict[str, QLabel] = {}
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.ExpandingFieldsGrow)
        for key, label, widget in (
            ("model", "Model folder", self.model), ("train", "Training folder", self.train),
            ("source", "Label source", self.source), ("user_clf", "Classifier file", self.user_clf),
            ("gammas", "Gammas", self.gammas), ("n", "Images per gamma", self.n_per_gamma),
            ("steps", "DDIM steps", self.steps), ("seed", "Seed", self.seed),
            ("descriptor", "Descriptor", self.descriptor), ("sscd", "SSCD file", self.sscd),
            ("out", "Audit folder", self.out),
        ):
            err = QLabel(objectName=f"error_{key}")
            err.setStyleSheet("color: #d62728;")
            err.setWordWrap(True)
            self.errors[key] = err
            box = QVBoxLayout()
            box.setSpacing(1)
            box.addWidget(widget)
            box.addWidget(err)
            form.addRow(label, box)

        load = QPushButton("Load settings from a config file…", objectName="load_config")
        load.clicked.connect(self._load_dialog)
        back = QPushButton("Back")
        back.clicked.connect(self.back)
        self.start_btn = QPushButton("Start audit", objectName="start_audit")
        self.start_btn.setDefault(True)
        self.start_btn.clicked.connect(self._start)
        self.busy = QLabel(objectName="form_busy")
        buttons = QHBoxLayout()
        buttons.addWidget(load)
        buttons.addStretch(1)
        buttons.addWidget(self.busy)
        buttons.addWidget(back)
        buttons.addWidget(self.start_btn)
        group = QGroupBox("New audit")
        group.setLayout(form)
        lay = QVBoxLayout(self)
        lay.addWidget(group)
        lay.addLayout(buttons)
        lay.addStretch(1)

        for f in (self.model, self.train, self.user_clf, self.sscd, self.out):
            f.changed.connect(self.validate)
        for w in (self.source, self.descriptor):
            w.currentIndexChanged.connect(self.validate)
        self.gammas.textChanged.connect(self.validate)
        self.validate()

    # ----- values <-> config -------------------------------------------------------------------------------------
    def load_config_file(self, path: str) -> None:
        """Fill the form from a TOML config; its hidden settings (training steps, ...) are kept as the base."""
        cfg = load_config(path)
        self.base = cfg
        self.model.edit.setText(cfg.model.path)
        self.train.edit.setText(cfg.data.train)
        key = "clusters" if cfg.labels.source == "clusters" else "user" if cfg.labels.classifier else "folders"
        self.source.setCurrentIndex(self.source.findData(key))
        self.user_clf.edit.setText(cfg.labels.classifier)
        self.gammas.setText(", ".join(f"{g:g}" for g in cfg.extraction.gammas))
        self.n_per_gamma.setValue(cfg.extraction.n_per_gamma)
        self.steps.setValue(cfg.extraction.steps)
        self.seed.setValue(cfg.extraction.seed)
        self.descriptor.setCurrentIndex(max(self.descriptor.findData(cfg.matching.descriptor), 0))
        self.sscd.edit.setText(cfg.matching.path)

    def _load_dialog(self) -> None:
        from .dialogs import show_error

        path, _ = QFileDialog.getOpenFileName(self, "Audit config", "", "TOML (*.toml)")
        if path:
            try:
                self.load_config_file(path)
            except Exception as e:  # noqa: BLE001 - InputError or unreadable file: the user needs the reason
                show_error(self, "Could not load the config", str(e))

    def config(self) -> AuditConfig:
        cfg = copy.deepcopy(self.base)
        cfg.model.path = self.model.text()
        cfg.data.train = self.train.text()
        key = self.source.currentData()
        cfg.labels.source = "clusters" if key == "clusters" else "classifier"
        cfg.labels.classifier = self.user_clf.text() if key == "user" else ""
        cfg.extraction.gammas = self._gammas()[0]
        cfg.extraction.n_per_gamma = self.n_per_gamma.value()
        cfg.extraction.steps = self.steps.value()
        cfg.extraction.seed = self.seed.value()
        cfg.matching.descriptor = self.descriptor.currentData()
        cfg.matching.path = self.sscd.text() if cfg.matching.descriptor != "pixels" else ""
        if not cfg.name:
            cfg.name = Path(cfg.model.path).name
        return cfg

    # ----- validation --------------------------------------------------------------------------------------------
    def _gammas(self) -> tuple[list[float], str]:
        parts = [p for p in self.gammas.text().replace(";", ",").replace(" ", ",").split(",") if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            return [], "write numbers separated by commas, e.g. 0, 5, 10"
        if not values:
            return [], "give at least one gamma (0 = the Random baseline)"
        if any(v < 0 or v != v for v in values):
            return [], "gammas must be 0 or more"
        if len(set(values)) != len(values):
            return [], "a gamma is repeated"
        return values, ""

    def problems(self) -> dict[str, str]:
        p: dict[str, str] = {}
        model = self.model.text()
        if not model:
            p["model"] = "choose the diffusers model folder"
        elif not Path(model).is_dir():
            p["model"] = "no such folder"
        elif problem := _model_problem(Path(model), self.base.model.scheduler):
            p["model"] = problem
        train = self.train.text()
        key = self.source.currentData()
        if not train:
            p["train"] = "choose the folder of training images"
        elif not Path(train).is_dir():
            p["train"] = "no such folder"
        elif not _has_image(Path(train)):
            p["train"] = "holds no images (png, jpg, bmp, webp, tif)"
        elif key == "folders" and sum(d.is_dir() for d in Path(train).iterdir()) < 2:
            p["train"] = "needs one subfolder per class (at least two) to train a classifier; or use clusters"
        self._row_visible(self.user_clf, key == "user")
        if key == "user":
            clf = self.user_clf.text()
            if not clf:
                p["user_clf"] = "choose the classifier's .safetensors file"
            elif not Path(clf).is_file():
                p["user_clf"] = "no such file"
        _, gerr = self._gammas()
        if gerr:
            p["gammas"] = gerr
        sscd = self.descriptor.currentData() != "pixels"
        self._row_visible(self.sscd, sscd)
        if sscd:
            if not self.sscd.text():
                p["sscd"] = "choose the SSCD TorchScript file (e.g. sscd_disc_mixup.torchscript.pt)"
            elif not Path(self.sscd.text()).is_file():
                p["sscd"] = "no such file"
        out = self.out.text()
        if not out:
            p["out"] = "choose a new or empty folder for the audit"
        elif Path(out).exists() and not Path(out).is_dir():
            p["out"] = "is a file"
        elif Path(out).is_dir() and any(Path(out).iterdir()):
            p["out"] = ("already holds an audit: open it from the start page instead"
                        if (Path(out) / "audit.toml").exists() else "folder is not empty")
        return p

    def _row_visible(self, widget: QWidget, visible: bool) -> None:
        form: QFormLayout = self.findChild(QGroupBox).layout()
        for r in range(form.rowCount()):
            item = form.itemAt(r, QFormLayout.FieldRole)
            if item and item.layout() and item.layout().indexOf(widget) >= 0:
                form.setRowVisible(r, visible)

    def validate(self) -> bool:
        p = self.problems()
        for key, label in self.errors.items():
            label.setText(p.get(key, ""))
            label.setVisible(key in p)
        self.start_btn.setEnabled(not p)
        return not p

    def set_busy(self, text: str) -> None:
        self.busy.setText(text)
        self.start_btn.setEnabled(not text and self.validate())

    def _start(self) -> None:
        if self.validate():
            self.start.emit(self.config(), self.out.text())


def audit_name(folder: str) -> str:
    """The name in an audit's audit.toml, read without validating the rest; the folder name if there is none."""
    import tomllib

    try:
        with open(Path(folder) / "audit.toml", "rb") as f:
            name = tomllib.load(f).get("name", "")
    except (OSError, tomllib.TOMLDecodeError):
        name = ""
    return name if isinstance(name, str) and name else Path(folder).name


QUESTIONS = (
    ("Which generated images copy a training image?", "the Gallery tab, each pair in the inspector"),
    ("Which training images came out, and how often?", "the Training images tab, or side report --by-image"),
    ("Was this picture extracted?", "drop image files on the window, or File → Check images… (side check)"),
    ("What changed between two audits?", "File → Compare audits… (side report A B)"),
)


def questions_box() -> QGroupBox:
    """What an open audit answers and where: the reviewer's questions, as the README lists them too."""
    box = QGroupBox("What an audit answers", objectName="questions")
    rows = "".join(f"<tr><td><b>{q}</b></td><td style='padding-left:16px; color:gray'>{where}</td></tr>"
                   for q, where in QUESTIONS)
    text = QLabel(f"<table cellspacing='3'>{rows}</table>", wordWrap=True)
    text.setTextInteractionFlags(Qt.TextSelectableByMouse)
    QVBoxLayout(box).addWidget(text)
    return box


class StartPage(QWidget):
    newAudit = Signal()
    openAudit = Signal(str)  # empty: ask for a folder
    runDemo = Signal()
    compareAudits = Signal()
    backToAudit = Signal()  # to the audit still open in the window (File → New, then Back, leads here from it)

    def __init__(self, recent: list[str], parent=None):
        super().__init__(parent)
        title = QLabel("<h1>SIDE Inspector</h1><p>Audit an unconditional diffusion model for memorized training "
                       "images: surrogate-conditioned extraction (SIDE), nearest training images, AMS/UMS per "
                       "similarity band.</p>")
        title.setWordWrap(True)
        buttons = QVBoxLayout()
        self.back = QPushButton(objectName="back_to_audit")
        self.back.setMinimumHeight(36)
        self.back.clicked.connect(self.backToAudit)
        # The button and the space under it, hidden together: the other buttons then start level with the list.
        self.back_box = QWidget()
        box = QVBoxLayout(self.back_box)
        box.setContentsMargins(0, 0, 0, 8)
        box.addWidget(self.back)
        self.back_box.hide()
        buttons.addWidget(self.back_box)
        for text, obj, slot, about in (
                ("New audit…", "new_audit", self.newAudit.emit, "your model and its training images"),
                ("Open audit folder…", "open_audit", lambda: self.openAudit.emit(""),
                 "look at an audit again, or resume one that was stopped"),
                ("Run the demo", "run_demo", self.runDemo.emit,
                 ("a small model trained on 1700 digits that memorizes a little; about 8 minutes on a laptop "
                  "CPU, and the pairs show up while it runs")),
                ("Compare audits…", "compare_audits", self.compareAudits.emit,
                 "two or more audits side by side: a model before and after a mitigation, or two checkpoints")):
            b = QPushButton(text, objectName=obj)
            b.setMinimumHeight(36)
            b.clicked.connect(slot)
            buttons.addWidget(b)
            note = QLabel(about, wordWrap=True)
            note.setStyleSheet("color: gray;")
            note.setMaximumWidth(240)
            buttons.addWidget(note)
            buttons.addSpacing(8)
        buttons.addStretch(1)
        self.recent = QListWidget(objectName="recent_audits")
        self.recent.itemActivated.connect(lambda it: self.openAudit.emit(it.data(Qt.UserRole)))
        self.set_recent(recent)
        rg = QGroupBox("Recent audits (double-click to open)")
        QVBoxLayout(rg).addWidget(self.recent)
        row = QHBoxLayout()
        row.addLayout(buttons)
        row.addWidget(rg, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(40, 30, 40, 30)
        lay.addWidget(title)
        lay.addLayout(row, 1)
        lay.addWidget(questions_box())

    def set_open_audit(self, name: str) -> None:
        """The audit open in the window ('' for none): the page then offers the way back to it."""
        self.back.setText(f"Back to {name}")
        self.back.setToolTip(f"The audit open in this window: {name}")
        self.back_box.setVisible(bool(name))

    def set_recent(self, recent: list[str]) -> None:
        self.recent.clear()
        for path in recent:
            it = QListWidgetItem(f"{audit_name(path)}\n{path}")
            it.setData(Qt.UserRole, path)
            it.setToolTip(path)
            self.recent.addItem(it)
        if not recent:
            # Not selectable, so activating it opens nothing.
            it = QListWidgetItem("No audits yet. Run the demo to see what an audit looks like.")
            it.setFlags(Qt.NoItemFlags)
            self.recent.addItem(it)
