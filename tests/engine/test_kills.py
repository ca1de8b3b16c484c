"""kill -9 at any moment loses at most the batch in flight: a few trials of tests/kill_trials.py (one of each kind of
moment), and the two leftovers of a killed writer the trials found or could find."""

from __future__ import annotations

import sqlite3

from kill_trials import KINDS, trials

from side_engine import events as ev
from side_engine.errors import Cancelled
from side_engine.pipeline import AuditPipeline
from side_engine.store import AuditStore


def test_killed_at_random_moments_and_resumed_each_audit_equals_one_never_stopped(tmp_path):
    results = trials(len(KINDS), seed=7, work=tmp_path, log=lambda _: None)
    assert [t.kind for t in results] == list(KINDS)
    assert all(t.killed for t in results if t.kind in ("commit", "png"))
    assert [t.problems for t in results] == [[]] * len(KINDS)


def test_a_folder_left_by_a_create_killed_before_audit_toml_starts_again(tiny_config, tmp_path):
    out = tmp_path / "audit"
    out.mkdir()
    sqlite3.connect(out / "audit.sqlite").execute("CREATE TABLE half (x)").connection.close()
    for _ in AuditPipeline.prepare(tiny_config, out).run():
        pass
    store = AuditStore.open(out)
    assert store.complete
    store.close()


def test_a_resume_removes_what_a_killed_writer_left_half_written(tiny_config, tmp_path):
    out = tmp_path / "audit"
    control = ev.RunControl()
    try:
        for e in AuditPipeline.prepare(tiny_config, out).run(control):
            if isinstance(e, ev.ImagesGenerated):
                control.cancel()
    except Cancelled:
        pass
    # What a kill mid-write leaves: our temporary PNG, and the one safetensors makes before its own rename.
    half = [out / "images" / "none" / "gamma_0" / ".000005.png.tmp", out / "classifiers" / ".tmpA1b2C3"]
    for p in half:
        p.write_bytes(b"\x89PNG half")
    for _ in AuditPipeline.reopen(out).run():
        pass
    assert [p for p in half if p.exists()] == []
