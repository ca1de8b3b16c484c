"""What the window keeps out of the garbage collector's sight (main_window.settle_heap): the audit on screen, frozen
once it shows, so that no full collection scans it while images stream in; and the audit before, which must be
freed when another opens, since the collector no longer looks at what was frozen with it."""

from __future__ import annotations

import gc
import shutil
import weakref

from helpers import open_audit


def _tracked(obj) -> bool:
    """Whether the collector's generations (not its frozen part) hold obj."""
    return any(o is obj for o in gc.get_objects())


def _open_frozen(qtbot, window, path) -> tuple[weakref.ref, weakref.ref]:
    """Opens the audit and waits for its view to be frozen: (the view, its score column), weakly."""
    view = open_audit(qtbot, window, path)
    qtbot.waitUntil(lambda: not _tracked(view))
    return weakref.ref(view), weakref.ref(view.bands.arrays.nn_score)


def test_the_audit_on_screen_is_frozen_and_the_one_before_is_freed(window, qtbot, audit_copy, tmp_path):
    view, scores = _open_frozen(qtbot, window, audit_copy)
    _open_frozen(qtbot, window, shutil.copytree(audit_copy, tmp_path / "second"))
    qtbot.waitUntil(lambda: view() is None and scores() is None)
