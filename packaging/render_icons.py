"""Renders the app's drawn icon (side_gui/icon.py) to PNGs in the hicolor theme's layout: OUT/NxN/apps/NAME.png.

    QT_QPA_PLATFORM=offscreen python packaging/render_icons.py OUT NAME
"""

import sys
from pathlib import Path

from PySide6.QtGui import QGuiApplication

from side_gui.icon import draw

# The sizes desktops look up (the freedesktop icon theme spec's usual set); 512 for software centres.
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def main(out: str, name: str) -> int:
    _app = QGuiApplication([])  # QPixmap needs one, alive while it draws
    for size in SIZES:
        path = Path(out) / f"{size}x{size}" / "apps" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not draw(size).save(str(path), "PNG"):
            raise SystemExit(f"could not write {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
