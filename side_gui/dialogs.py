"""Messages in the window: errors as dialogs (never only a traceback in a terminal), About."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, metadata, version

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

# What pyproject.toml's `license` says: run from a source tree without the package installed, there is no metadata.
PYPROJECT_LICENSE = "MIT"
# The method's paper as arXiv lists versions 5 and 6 (docs/side-method.md); version 7 renamed it.
CITATION = ("Yunhao Chen, Shujie Wang, Difan Zou, Xingjun Ma. Extracting Training Data from Unconditional Diffusion "
            "Models. arXiv:2410.02467, 2024 (from version 7: SIDE: Surrogate Conditional Data Extraction from "
            "Diffusion Models, AAAI-26).")


def show_error(parent: QWidget, title: str, message: str) -> None:
    box = QMessageBox(QMessageBox.Critical, title, message, QMessageBox.Ok, parent)
    box.setObjectName("error_dialog")
    box.open()


def versions() -> str:
    """Installed versions, read from the package metadata: About must not import torch to say which it is."""
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


def licence() -> str:
    """The distribution's licence, from its metadata (a licence expression, or the older License field)."""
    try:
        meta = metadata("side-inspector")
    except PackageNotFoundError:
        return PYPROJECT_LICENSE
    return meta.get("License-Expression") or meta.get("License") or PYPROJECT_LICENSE


def show_about(parent: QWidget) -> QMessageBox:
    box = QMessageBox(QMessageBox.NoIcon, "About SIDE Inspector",
                      "<h3>SIDE Inspector</h3><p>Finds training images that an unconditional diffusion model has "
                      "memorized, with surrogate-conditioned extraction (SIDE, arXiv 2410.02467).</p>"
                      f"<p>Licence: {licence()}</p><p>To cite the method:<br>{CITATION}</p><pre>"
                      + versions() + "</pre>", QMessageBox.Ok, parent)
    box.setObjectName("about_dialog")
    box.setTextInteractionFlags(Qt.TextSelectableByMouse)  # the citation, to paste into a paper
    box.setIconPixmap(parent.windowIcon().pixmap(64, 64))
    box.open()
    return box
