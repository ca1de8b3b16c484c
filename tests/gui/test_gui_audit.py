"""Starting an audit from the GUI: the form, the worker, the gallery, and a responsive window throughout."""

from __future__ import annotations

from PySide6.QtCore import Qt

from side_engine.store import AuditStore

from helpers import fill_form


def test_start_audit_from_form_fills_gallery_and_stays_responsive(window, qtbot, tiny_config, tmp_path,
                                                                    model_threads):
    out = fill_form(window, qtbot, tiny_config, tmp_path)
    # The window shows the new audit as soon as its folder exists, long before the run ends.
    with qtbot.waitSignals([window.auditShown, window.runFinished], order="strict", timeout=180_000):
        qtbot.mouseClick(window.form.start_btn, Qt.LeftButton)
    assert window.audit.root == str(out.resolve())
    store = AuditStore.open(out)
    expected = sorted(r.id for r in store.images())
    assert len(expected) == 3 * tiny_config.extraction.n_per_gamma  # random, TD and TI legs
    assert window.audit.model.rowCount() == len(expected)
    assert sorted(window.audit.model.ids.tolist()) == expected
    assert window.audit.complete() and not window.audit.run.resume_btn.isVisible()
    # The model ran in the engine's process, none of it in the window's (how long the GUI thread waited meanwhile is a
    # benchmark's to say).
    assert model_threads == set()
    store.close()


def test_form_explains_each_bad_field_as_the_user_types(window, qtbot, tmp_path):
    form = window.form
    qtbot.keyClicks(form.model.edit, str(tmp_path / "missing"))
    assert form.errors["model"].text() == "no such folder"
    form.gammas.clear()
    qtbot.keyClicks(form.gammas, "0, 5, five")
    assert form.errors["gammas"].text() == "write numbers separated by commas, e.g. 0, 5, 10"
    form.gammas.setText("0, 5, 5")
    assert form.errors["gammas"].text() == "a gamma is repeated"
    # A bare UNet folder loads only with its scheduler, which the form has no field for: it says so up front.
    unet = tmp_path / "models" / "unet"
    unet.mkdir(parents=True)
    (unet / "config.json").write_text("{}")
    form.model.edit.setText(str(unet))
    assert form.errors["model"].text() == ("a bare UNet folder with no scheduler: it needs scheduler_config.json in "
                                           "it or a scheduler folder beside it")
    (tmp_path / "models" / "scheduler").mkdir()
    (tmp_path / "models" / "scheduler" / "scheduler_config.json").write_text("{}")
    form.model.edit.setText(str(unet) + "/")
    assert not form.errors["model"].isVisibleTo(form)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    form.out.edit.setText(str(tmp_path / "full"))
    assert form.errors["out"].text() == "folder is not empty"
    assert not form.start_btn.isEnabled()
