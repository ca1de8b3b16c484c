"""Entry point of `side-gui` (placeholder window until the inspection app lands)."""

from __future__ import annotations

import sys


def main(argv=None) -> int:
    from PySide6.QtWidgets import QApplication, QLabel

    app = QApplication.instance() or QApplication(sys.argv if argv is None else ["side-gui", *argv])
    label = QLabel("SIDE Inspector")
    label.setObjectName("placeholder")
    label.resize(480, 240)
    label.show()
    return app.exec()
