"""An audit that another process writes (a `side run` from a terminal) is shown live, and reviewed meanwhile
without the window ever becoming a second writer of it: verdicts go to verdicts.sqlite, read with the ones an older
audit kept in audit.sqlite."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys

import pytest
from PySide6.QtCore import Qt

from side_engine.config import sweep
from side_engine.store import VERDICTS_NAME, AuditStore, VerdictNote
from side_engine.vocabulary import Verdict

from helpers import new_window, open_audit, tiny_config_for


def stored_rows(audit_dir) -> int:
    with sqlite3.connect(audit_dir / "audit.sqlite", timeout=30) as db:
        return db.execute("SELECT COUNT(*) FROM images").fetchone()[0]


def audit_verdict_rows(audit_dir) -> list[tuple]:
    """The verdicts table inside audit.sqlite, where audits kept them before verdicts.sqlite."""
    with sqlite3.connect(audit_dir / "audit.sqlite", timeout=30) as db:
        return db.execute("SELECT image_id, verdict, note FROM verdicts ORDER BY image_id").fetchall()


def writer_active(audit_dir) -> bool:
    if not (audit_dir / "audit.toml").exists():
        return False
    store = AuditStore.open(audit_dir)
    try:
        return store.writer_active()
    finally:
        store.close()


@pytest.fixture
def side_run(tiny_model, tiny_train, tmp_path):
    """A `side run` of the tiny audit in a process of its own, with longer legs (12 images in batches of 2), so that
    its extraction writes the store in many transactions. Killed if the test leaves it running (or stopped)."""
    cfg = tiny_config_for(tiny_model, tiny_train)
    cfg = dataclasses.replace(cfg, extraction=dataclasses.replace(cfg.extraction, n_per_gamma=12, batch=2))
    cfg_file = tmp_path / "tiny.toml"
    cfg_file.write_text(cfg.to_toml())
    out = tmp_path / "audit"
    log = (tmp_path / "stdout.txt").open("w"), (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "side_engine", "run", str(cfg_file), "--out", str(out), "--quiet"],
                            stdout=log[0], stderr=log[1], env={**os.environ, "OMP_NUM_THREADS": "1"})
    yield proc, out, cfg, tmp_path / "stderr.txt"
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
    proc.wait()
    for f in log:
        f.close()


@pytest.mark.skipif(sys.platform == "win32", reason="holds the run still with SIGSTOP")
def test_a_run_of_another_process_is_shown_live_and_reviewed_meanwhile(window, qtbot, side_run):
    proc, out, cfg, stderr = side_run
    final = len(sweep(cfg)) * cfg.extraction.n_per_gamma
    # The run is held still (SIGSTOP) at the moments the test looks at, so that what it sees never depends on how
    # fast the run goes; it writes on as soon as it is let go (SIGCONT).
    qtbot.waitUntil(lambda: writer_active(out), timeout=60_000)
    os.kill(proc.pid, signal.SIGSTOP)
    audit = open_audit(qtbot, window, out)
    qtbot.waitUntil(lambda: window.audit.banner.isVisible() and "Another process is writing"
                    in window.audit.banner.text(), timeout=10_000)
    run = window.audit.run
    assert "another process" in run.state.text()
    assert not run.pause_btn.isEnabled() and not run.cancel_btn.isEnabled() and run.resume_btn.isHidden()

    os.kill(proc.pid, signal.SIGCONT)
    qtbot.waitUntil(lambda: stored_rows(out) > 0, timeout=60_000)
    os.kill(proc.pid, signal.SIGSTOP)
    held = stored_rows(out)
    assert 0 < held < final
    # The gallery catches up with the store (a view opened before the run recorded its inputs is read again, and
    # says again what it follows).
    qtbot.waitUntil(lambda: window.audit.model.rowCount() == held and window.audit.banner.isVisible(),
                    timeout=10_000)
    audit = window.audit
    assert "Another process is writing" in audit.banner.text()
    rows = audit.run.rows
    for stage in ("load", "classifier", "sample", "labels", "tdkd"):
        assert rows[(stage, "")].bar.text().startswith("done"), stage
    n = cfg.extraction.n_per_gamma
    legs = [rows[("extract", r.part)].bar for r in sweep(cfg)]
    assert sum(n if bar.text().startswith("done") else bar.value() for bar in legs) == held
    assert any(bar.maximum() == n and bar.text() == f"{bar.value()} / {n}" for bar in legs)  # the leg at work

    # A verdict and a note, given while the run holds the audit: kept in verdicts.sqlite, never in audit.sqlite.
    audit.tabs.setCurrentIndex(1)
    audit.gallery.list.setCurrentIndex(audit.model.index(0))
    chosen = audit.inspector.image_id
    audit.inspector.set_verdict(Verdict.COPY)
    qtbot.keyClicks(audit.inspector.note, "same blocks")
    assert audit.store.verdict(chosen) == VerdictNote(Verdict.COPY, "same blocks")
    assert (out / VERDICTS_NAME).exists() and audit_verdict_rows(out) == []

    os.kill(proc.pid, signal.SIGCONT)
    qtbot.waitUntil(lambda: proc.poll() is not None, timeout=60_000)
    errors = stderr.read_text()
    assert proc.returncode == 0, errors
    assert "locked" not in errors.lower()
    qtbot.waitUntil(lambda: "finished" in window.audit.banner.text(), timeout=10_000)
    audit = window.audit
    assert audit.model.rowCount() == final == stored_rows(out)
    assert not audit.following()
    assert audit.run.state.text() == "Audit complete."
    for run_ in sweep(cfg):
        assert audit.run.rows[("extract", run_.part)].bar.text() == "done", run_.part
    # Bands and plots took in every row, and each training step is drawn once.
    assert len(audit.bands.arrays.ids) == final
    assert {(r.guide, r.gamma) for r in audit.bands.results} == {(r.guide, r.gamma) for r in sweep(cfg)}
    for stage, (steps, _, _) in audit.run.curves.items():
        assert steps and steps == sorted(set(steps)), stage
    assert audit.model.verdict[audit.model.ids == chosen][0] == Verdict.COPY
    window.close()

    again = new_window(qtbot)
    audit = open_audit(qtbot, again, out)
    assert not audit.banner.isVisible() and not audit.following()
    audit.gallery.list.setCurrentIndex(audit.model.index(audit.model.row_of_id(chosen)))
    assert audit.inspector.note.text() == "same blocks"
    assert audit.model.verdict[audit.model.ids == chosen][0] == Verdict.COPY


def test_verdicts_kept_in_audit_sqlite_by_an_older_audit_are_read_and_moved_on_the_first_new_one(
        window, qtbot, audit_copy):
    store = AuditStore.open(audit_copy)
    old, new = (r.id for r in store.images(limit=2))
    store.close()
    with sqlite3.connect(audit_copy / "audit.sqlite") as db:  # as an engine before verdicts.sqlite kept them
        db.execute("INSERT INTO verdicts VALUES (?, 'not_copy', 'older call', 1.0)", (old,))
    audit = open_audit(qtbot, window, audit_copy)
    assert not audit.banner.isVisible()
    assert audit.model.verdict[audit.model.ids == old][0] == Verdict.NOT_COPY
    assert audit.store.verdict(old) == VerdictNote(Verdict.NOT_COPY, "older call")
    assert not (audit_copy / VERDICTS_NAME).exists()

    audit.tabs.setCurrentIndex(1)
    audit.gallery.list.setCurrentIndex(audit.model.index(audit.model.row_of_id(new)))
    qtbot.mouseClick(audit.inspector.buttons.button(2), Qt.LeftButton)  # Unsure
    audit.gallery.list.setCurrentIndex(audit.model.index(audit.model.row_of_id(old)))
    qtbot.mouseClick(audit.inspector.buttons.button(1), Qt.LeftButton)  # Not a copy again: taken back
    window.close()

    assert (audit_copy / VERDICTS_NAME).exists()
    assert audit_verdict_rows(audit_copy) == [(old, "not_copy", "older call")]  # audit.sqlite untouched
    store = AuditStore.open(audit_copy)
    assert store.verdicts() == {new: VerdictNote(Verdict.UNSURE, ""), old: VerdictNote(None, "older call")}
    store.close()
