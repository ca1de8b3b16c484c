"""Thumbnails load on the application's thread pool, which every view shares: one view letting go of its loads (a
dialog closing) must leave the others' loads alone."""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image
from PySide6.QtCore import QRunnable, QThreadPool

from side_gui.gallery_view import ThumbnailCache


class Blocker(QRunnable):
    def __init__(self, release: threading.Event):
        super().__init__()
        self.release = release

    def run(self) -> None:
        self.release.wait(10)


def test_closing_one_view_leaves_the_other_views_loads_queued(qtbot, tmp_path):
    paths = []
    for i in range(6):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(path)
        paths.append(str(path))
    pool = QThreadPool.globalInstance()
    release = threading.Event()
    try:
        for _ in range(pool.maxThreadCount()):  # every thread busy: the gallery's loads wait in the queue
            pool.start(Blocker(release))
        gallery, dialog = ThumbnailCache(size=8), ThumbnailCache(size=8)
        assert all(gallery.get(p) is None for p in paths)
        dialog.shutdown()  # the dialog closes with nothing of its own to load
    finally:
        release.set()
    qtbot.waitUntil(lambda: all(gallery.get(p) is not None for p in paths), timeout=5000)
    gallery.shutdown()
