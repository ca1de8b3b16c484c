"""The export dialog opened for one training image (as the Training images tab opens it): the pairs of that image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

from side_engine.evidence import MANIFEST
from side_engine.evidence.verify import verify_export
from side_engine.store import AuditStore
from side_engine.vocabulary import Guide
from side_gui.export_dialog import ExportDialog

from helpers import open_gallery


def near(audit_dir, j) -> list[tuple[float, int, Guide, float]]:
    """(score on j, image id, guide, gamma) of every generated image holding training image j, closest first: read
    from the store, not from the dialog's columns."""
    store = AuditStore.open(audit_dir)
    try:
        return sorted((float(r.nn_score[k]), r.id, r.guide, r.gamma) for r in store.images()
                      for k in np.flatnonzero(r.nn_idx == j))
    finally:
        store.close()


def test_export_every_pair_of_one_training_image(window, qtbot, audit_copy, tmp_path):
    audit = open_gallery(window, qtbot, audit_copy)
    j = int(np.argmax(np.bincount(audit.bands.arrays.nn_idx.ravel())))  # the one most images hold as a neighbour
    want = near(audit_copy, j)
    # a generated image of the gallery's selection must not narrow the training image's pairs by default
    for _ in range(2):
        qtbot.keyClick(audit.gallery.list, Qt.Key_Right, Qt.ShiftModifier)
    dlg = ExportDialog(audit, window, training_image=j)
    dlg.open()
    assert dlg.windowTitle() == f"Export evidence of training image #{j}"
    path = audit.store.training_images()[j].path
    assert dlg.training_note.isVisible() and f"#{j}</b> {path}" in dlg.training_note.text()
    assert not dlg.only_selected.isChecked() and dlg.verdict.currentData() is None
    assert dlg.count.text() == f"Exports {len(want)} pairs."

    dlg.run.setCurrentIndex(dlg.run.findText("TD γ=5"))
    td5 = [i for _, i, g, y in want if g is Guide.TD and y == 5.0]
    assert 0 < len(td5) < len(want) and dlg.count.text() == f"Exports {len(td5)} pair{'s' * (len(td5) > 1)}."
    dlg.run.setCurrentIndex(0)

    dlg.folder.setText(str(tmp_path / "one image"))
    with qtbot.waitSignal(dlg.exportFinished, timeout=60_000) as done:
        qtbot.mouseClick(dlg.export_btn, Qt.LeftButton)
    out = Path(done.args[0])
    body = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert body["selection"]["training_images"] == [j]
    assert [(p["image_id"], p["training_index"]) for p in body["pairs"]] == [(i, j) for _, i, _, _ in want]
    report = verify_export(out)
    assert (report.ok, report.problems) == (True, [])


def test_the_count_is_the_pairs_of_an_image_many_or_few_generated_images_hold(window, qtbot, audit_copy):
    """The dialog counts over every row where half the generated images or more hold the training image, over those
    that do elsewhere: the same count either way."""
    audit = open_gallery(window, qtbot, audit_copy)
    nn_idx = audit.bands.arrays.nn_idx
    holders = np.array([(nn_idx == j).any(1).sum() for j in range(int(nn_idx.max()) + 1)])
    most, fewest = int(np.argmax(holders)), int(np.argmin(np.where(holders > 0, holders, len(nn_idx) + 1)))
    assert 2 * holders[most] >= len(nn_idx) > 2 * holders[fewest] > 0
    for j in (most, fewest):
        dlg = ExportDialog(audit, window, training_image=j)
        dlg.open()
        n = len(near(audit_copy, j))
        assert dlg.count.text() == f"Exports {n} pair{'s' * (n > 1)}."
        dlg.top_on.setChecked(True)
        dlg.top.setValue(1)
        assert dlg.count.text() == (f"Exports the 1 closest of the {n} matching pairs." if n > 1 else
                                    "Exports 1 pair.")
        dlg.close()
