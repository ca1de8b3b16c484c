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
    """Installed versions, read from the package metadata: About must not import torch to say which it is."""
    from importlib.metadata import PackageNotFoundError, version

    from PySide6.QtCore import qVersion

    lines = [f"Python {sys.version.split()[0]} ({platform.system()} {platform.machine()})"]
    for dist, shown in (("side-inspector", "SIDE Inspector"), ("torch", "torch"), ("diffusers", "diffusers"),
                        ("PySide6-Essentials", "PySide6"), ("pyqtgraph", "pyqtgraph"), ("numpy", "numpy")):
        try:
            lines.append(f"{shown} {version(dist)}")
        except PackageNotFoundError:
            lines.append(f"{shown} not installed")
    lines.append(f"Qt {qVersion()}")
    return "\n".join(lines)


def show_about(parent: QWidget) -> QMessageBox:
    box = QMessageBox(QMessageBox.NoIcon, "About SIDE Inspector",
                      "<h3>SIDE Inspector</h3><p>Finds training images that an unconditional diffusion model has "
                      "memorized, with surrogate-conditioned extraction (SIDE, arXiv 2410.02467).</p><pre>"
                      + versions() + "</pre>", QMessageBox.Ok, parent)
    box.setObjectName("about_dialog")
    box.setIconPixmap(parent.windowIcon().pixmap(64, 64))
    box.open()
    return box
