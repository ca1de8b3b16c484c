"""Messages in the window: errors as dialogs (never only a traceback in a terminal), About."""

from __future__ import annotations

import platform
import sys

from PySide6.QtWidgets import QMessageBox, QWidget


def show_error(parent: QWidget, title: str, message: str) -> None:
    box = QMessageBox(QMessageBox.Critical, title, message, QMessageBox.Ok, parent)
    box.setObjectName("error_dialog")
    box.open()


def versions() -> str:
    import PySide6
    import pyqtgraph

    import side_engine

    lines = [f"SIDE Inspector {side_engine.__version__}", f"Python {sys.version.split()[0]} ({platform.system()})",
             f"PySide6 {PySide6.__version__}, Qt {PySide6.QtCore.qVersion()}", f"pyqtgraph {pyqtgraph.__version__}"]
    for mod in ("torch", "diffusers", "numpy"):
        m = sys.modules.get(mod)
        if m is not None:
            lines.append(f"{mod} {m.__version__}")
    return "\n".join(lines)


def show_about(parent: QWidget) -> None:
    QMessageBox.about(parent, "About SIDE Inspector",
                      "<h3>SIDE Inspector</h3><p>Finds training images that an unconditional diffusion model has "
                      "memorized, with surrogate-conditioned extraction (SIDE, arXiv 2410.02467).</p><pre>"
                      + versions() + "</pre>")
