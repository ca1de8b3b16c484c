"""A reviewer marks pairs in the gallery, exports the evidence folder from the window, and hands it over."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox

from side_engine.evidence import MANIFEST, select
from side_engine.evidence.verify import verify_export
from side_engine.matching.metrics import Bands
from side_engine.store import AuditStore
from side_engine.vocabulary import BandName, Direction, Guide, Verdict
from side_gui.export_dialog import ExportDialog

from helpers import grid_rows, open_gallery


def open_export(window, qtbot) -> ExportDialog:
    qtbot.keyClick(window, Qt.Key_E, Qt.ControlModifier)
    dlg = window.findChild(ExportDialog)
    assert dlg is not None and dlg.isVisible()
    return dlg


def export(dlg, qtbot) -> str:
    """Clicks Export and waits for the end: the folder written, or '' after an error or a cancel."""
    with qtbot.waitSignal(dlg.exportFinished, timeout=60_000) as done:
        qtbot.mouseClick(dlg.export_btn, Qt.LeftButton)
    return done.args[0]


def pairs(folder) -> list[dict]:
    return json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))["pairs"]


def test_export_the_pairs_marked_copy_and_verify_them(window, qtbot, audit_copy, tmp_path, monkeypatch):
    audit = open_gallery(window, qtbot, audit_copy)
    first = audit.inspector.image_id
    qtbot.keyClick(audit.gallery.list, Qt.Key_1)  # Copy
    dlg = open_export(window, qtbot)
    # Pairs marked Copy are what one exports most often: the dialog starts there.
    assert dlg.verdict.currentData() == Verdict.COPY and dlg.count.text() == "Exports 1 pair."
    assert dlg.folder.text() == str(audit_copy.with_name("audit-evidence"))
    dlg.folder.setText(str(tmp_path / "für die Prüfung"))
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)

    out = Path(export(dlg, qtbot))
    assert out == tmp_path / "für die Prüfung"
    assert [(p["image_id"], p["verdict"]) for p in pairs(out)] == [(first, Verdict.COPY)]
    assert grid_rows(out / "grid.png") == 1
    report = verify_export(out)
    assert (report.ok, report.problems) == (True, [])

    box = window.findChild(QMessageBox, "export_done")
    assert box.isVisible()
    assert box.text() == f'Exported 1 pair to\n{out}\n\nAnyone can check it later with:\nside verify "{out}"'
    qtbot.mouseClick(next(b for b in box.buttons() if b.text() == "Open folder"), Qt.LeftButton)
    assert opened == [str(out)]
    qtbot.waitUntil(lambda: window.findChild(ExportDialog) is None)  # closed, and not kept hidden


def test_export_the_closest_of_one_run(window, qtbot, audit_copy, tmp_path):
    open_gallery(window, qtbot, audit_copy)
    dlg = open_export(window, qtbot)
    assert dlg.verdict.currentData() is None and dlg.count.text() == "Exports 18 pairs."
    dlg.run.setCurrentIndex(dlg.run.findText("TD γ=5"))
    assert dlg.count.text() == "Exports 6 pairs."
    dlg.top_on.setChecked(True)
    dlg.top.setValue(2)
    assert dlg.count.text() == "Exports the 2 closest of the 6 matching pairs."
    dlg.folder.setText(str(tmp_path / "td5"))
    out = export(dlg, qtbot)

    store = AuditStore.open(audit_copy)
    td5 = sorted((r for r in store.images() if r.guide is Guide.TD and r.gamma == 5.0), key=lambda r: (r.best, r.id))
    store.close()
    assert [p["image_id"] for p in pairs(out)] == [r.id for r in td5[:2]]
    assert grid_rows(Path(out) / "grid.png") == 2


def test_export_only_the_pairs_selected_in_the_gallery(window, qtbot, audit_copy, tmp_path):
    audit = open_gallery(window, qtbot, audit_copy)
    for _ in range(2):
        qtbot.keyClick(audit.gallery.list, Qt.Key_Right, Qt.ShiftModifier)
    chosen = sorted(audit.gallery.selected_ids())
    assert len(chosen) == 3
    dlg = open_export(window, qtbot)
    assert dlg.only_selected.isChecked() and dlg.only_selected.text() == "Only the 3 pairs selected in the gallery"
    assert dlg.count.text() == "Exports 3 pairs."
    dlg.folder.setText(str(tmp_path / "chosen"))
    out = export(dlg, qtbot)
    assert sorted(p["image_id"] for p in pairs(out)) == chosen
    assert grid_rows(Path(out) / "grid.png") == 3


def test_bands_moved_in_the_bands_tab_apply_and_a_full_folder_is_refused(window, qtbot, audit_copy, tmp_path):
    audit = open_gallery(window, qtbot, audit_copy)
    best = np.sort(audit.model.best)
    # Edges half way between scores: the 6th to the 12th closest pair are in the middle band.
    cut1, cut2 = float(best[4] + best[5]) / 2, float(best[11] + best[12]) / 2
    moved = Bands(high=(0.0, cut1), mid=(cut1, cut2), low=(cut2, 2.0), direction=Direction.DISTANCE)
    audit.bands.set_bands(moved)
    dlg = open_export(window, qtbot)
    assert dlg.bands_note.isVisible()
    assert [dlg.band.itemText(k) for k in range(dlg.band.count())] == [
        "any band", f"high  [0, {cut1:g})", f"mid  [{cut1:g}, {cut2:g})", f"low  [{cut2:g}, 2]"]
    dlg.band.setCurrentIndex(dlg.band.findData(BandName.MID))
    in_mid = sorted(int(i) for i in audit.model.ids[moved.classify(audit.model.best) == BandName.MID])
    assert len(in_mid) == 7 and dlg.count.text() == "Exports 7 pairs."

    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    dlg.folder.setText(str(full))
    assert dlg.status.text() == f"{full} already exists and is not empty: choose a new folder."
    assert not dlg.export_btn.isEnabled()
    qtbot.mouseClick(dlg.export_btn, Qt.LeftButton)
    assert dlg.worker is None and [p.name for p in full.iterdir()] == ["keep.txt"]

    dlg.folder.setText(str(tmp_path / "mid"))
    assert dlg.status.text() == "" and dlg.export_btn.isEnabled()
    out = export(dlg, qtbot)
    body = json.loads((Path(out) / MANIFEST).read_text(encoding="utf-8"))
    assert body["bands_overridden_at_export"] and body["bands"]["mid"] == [cut1, cut2]
    assert sorted(p["image_id"] for p in body["pairs"]) == in_mid
    assert {p["band"] for p in body["pairs"]} == {BandName.MID}


def test_a_missing_image_is_named_in_a_dialog_and_nothing_is_written(window, qtbot, audit_copy, tmp_path):
    audit = open_gallery(window, qtbot, audit_copy)
    dlg = open_export(window, qtbot)
    dlg.top_on.setChecked(True)
    dlg.top.setValue(1)
    m = audit.model
    closest = audit_copy / audit.store.image(int(m.ids[select(m, m.bands, **dlg.filters())][0])).path
    closest.unlink()
    exports = tmp_path / "exports"
    exports.mkdir()
    dlg.folder.setText(str(exports / "ev"))
    assert export(dlg, qtbot) == ""
    error = window.findChild(QMessageBox, "error_dialog")
    assert error.isVisible() and error.text() == f"{closest}: generated image is missing from the audit"
    assert list(exports.iterdir()) == []  # no folder, no hidden partial one
    assert dlg.isVisible() and dlg.export_btn.isEnabled()  # to choose again


def test_cancel_stops_the_export_and_leaves_nothing(window, qtbot, audit_copy, tmp_path, gui_thread):
    open_gallery(window, qtbot, audit_copy)
    dlg = open_export(window, qtbot)
    exports = tmp_path / "exports"
    exports.mkdir()
    dlg.folder.setText(str(exports / "ev"))
    held = []

    def hold_at_first_progress(done, total):
        # Runs where the export runs, which must not be the window's thread; the export then waits at its next
        # check until the cancel lands.
        if not held:
            held.append(threading.current_thread() is threading.main_thread())
            dlg.worker.pause()

    dlg.progressed.connect(hold_at_first_progress, Qt.DirectConnection)
    qtbot.mouseClick(dlg.export_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: bool(held), timeout=60_000)
    assert held == [False]
    assert dlg.bar.isVisible() and not dlg.export_btn.isEnabled() and not dlg.band.isEnabled()
    export_run = gui_thread(dlg.worker)
    # The cancel stops the export at its check (aborted), and only then does the dialog report the end.
    with qtbot.waitSignals([export_run.aborted, dlg.exportFinished], order="strict", timeout=60_000,
                           check_params_cbs=[None, lambda folder: folder == ""]):
        qtbot.mouseClick(dlg.buttons.button(dlg.buttons.StandardButton.Cancel), Qt.LeftButton)
    assert list(exports.iterdir()) == []  # no folder, no hidden partial one
    qtbot.waitUntil(lambda: window.findChild(ExportDialog) is None)


def test_a_signed_export_from_the_dialog_shows_the_fingerprint_and_remembers_the_key(window, qtbot, audit_copy,
                                                                                    tmp_path, monkeypatch):
    from PySide6.QtWidgets import QInputDialog

    from side_engine.evidence.signing import keygen, load_public_key

    signer = keygen(tmp_path / "auditor", "A. Auditor")
    protected = tmp_path / "protected"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret", "-f", str(protected)], check=True)
    open_gallery(window, qtbot, audit_copy)
    dlg = open_export(window, qtbot)
    assert dlg.key_note.text().startswith("Not signed")
    dlg.key.setText(str(tmp_path / "nothing-here"))
    assert not dlg.export_btn.isEnabled() and "no such key file" in dlg.status.text()
    dlg.key.setText(str(tmp_path / "auditor"))
    assert dlg.key_note.text() == f"Signs as {signer.fingerprint}."
    dlg.folder.setText(str(tmp_path / "signed"))
    out = export(dlg, qtbot)
    report = verify_export(out, trust=signer)
    assert report.ok and report.trusted
    box = window.findChild(QMessageBox, "export_done")
    assert box.text().endswith(f'--trust "{tmp_path / "auditor"}.pub"')
    box.close()
    qtbot.waitUntil(lambda: window.findChild(ExportDialog) is None)

    # The next export starts with the same key; a passphrase-protected one asks for its passphrase.
    window.export_dialog()
    dlg = window.findChild(ExportDialog)
    assert dlg.key.text() == str(tmp_path / "auditor")
    dlg.key.setText(str(protected))
    assert "passphrase is asked for on export" in dlg.key_note.text()
    asked = []
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: asked.append(a[2]) or ("s3cret", True))
    dlg.folder.setText(str(tmp_path / "signed-2"))
    out = export(dlg, qtbot)
    assert asked == [f"Passphrase for {protected}"]
    assert verify_export(out, trust=load_public_key(f"{protected}.pub")).trusted
