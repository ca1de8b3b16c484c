"""The window icon, drawn rather than shipped: a generated image overlapping its training twin under a lens."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap


def draw(size: int) -> QPixmap:
    """The icon at size x size px; also rendered to the PNGs of the Linux desktop entry (packaging/render_icons.py)."""
    pix = QPixmap(size, size)
    pix.fill(Qt.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.Antialiasing)
    s = size / 64
    p.setPen(Qt.NoPen)
    p.setBrush(QColor("#3182bd"))
    p.drawRoundedRect(QRectF(4 * s, 4 * s, 34 * s, 34 * s), 5 * s, 5 * s)
    p.setBrush(QColor(214, 39, 40, 200))
    p.drawRoundedRect(QRectF(18 * s, 18 * s, 34 * s, 34 * s), 5 * s, 5 * s)
    p.setPen(QPen(QColor("#202020"), 5 * s))
    p.setBrush(QColor(255, 255, 255, 90))
    p.drawEllipse(QRectF(22 * s, 22 * s, 22 * s, 22 * s))
    p.drawLine(int(41 * s), int(41 * s), int(58 * s), int(58 * s))
    p.end()
    return pix


def app_icon() -> QIcon:
    icon = QIcon()
    for size in (16, 32, 64, 128, 256):
        icon.addPixmap(draw(size))
    return icon
