"""The Qt binding must keep Python's reference counts: PySide6 6.12.0 on Python 3.11 released one reference to None
on every call that returns nothing, and the app aborted ("deallocating None") after a few thousand paints of the
gallery. From Python 3.12 on None is immortal and the same bug does no harm."""

import sys

import pytest
from PySide6.QtCore import QRect
from PySide6.QtGui import QColor, QImage, QPainter


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12")
def test_painting_does_not_release_references_to_none(qapp):
    image = QImage(16, 16, QImage.Format_ARGB32)
    p = QPainter(image)
    rect, color = QRect(0, 0, 4, 4), QColor("red")
    before = sys.getrefcount(None)
    for _ in range(500):
        p.save()
        p.fillRect(rect, color)
        p.restore()
    lost = before - sys.getrefcount(None)
    p.end()
    assert lost < 100, f"{lost} references to None released by 1500 Qt calls"
