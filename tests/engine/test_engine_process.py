"""The engine in a process of its own (side_engine.engine_process), as the GUI runs it: the events arrive as the
pipeline yields them, a cancel stops it resumably, bad input is one line, and a killed engine is said as such."""

from __future__ import annotations

import os
import signal

import pytest

from side_engine import events as ev
from side_engine.engine_process import EngineProcess, Opened, decode, encode
from side_engine.errors import Cancelled, EngineStopped, InputError
from side_engine.store import AuditStore


def test_every_relayed_event_survives_the_pipe():
    image = ev.GeneratedImage(3, "td", 5.0, 1, 7, 123, "images/td/gamma_5/000007.png", 0.93, 12, None)
    for e in (ev.StageStarted("extract", 12, "image", "td γ=5"), ev.Progress("sample", 3, None),
              ev.StageFinished("tdkd", 1.5, "f_TD agreement 90%"), ev.CurvePoint("classifier", 10, 0.5, None),
              ev.HealthUpdated(((0, 24, 0.9), (25, 49, 0.5))), ev.ImagesGenerated((image, image), "td γ=5"),
              ev.Warning("skipped a.png: unreadable image", "/x/a.png"), ev.AuditFinished("/x", 3.0)):
        assert decode(encode(e)) == e


def test_an_audit_runs_in_the_engine_process_and_completes(tiny_config, tmp_path):
    out = tmp_path / "audit"
    with EngineProcess.new(tiny_config.to_toml(), str(out)) as engine:
        got = list(engine.relay(ev.RunControl()))
    assert isinstance(got[0], Opened) and got[0].audit_dir == str(out.resolve()) and got[0].pid != os.getpid()
    assert isinstance(got[-1], ev.AuditFinished)
    relayed = sum(len(e.images) for e in got if isinstance(e, ev.ImagesGenerated))
    store = AuditStore.open(out)
    assert store.complete and store.image_count() == relayed == 3 * tiny_config.extraction.n_per_gamma
    store.close()


def test_a_cancel_stops_the_engine_resumably(tiny_config, tmp_path):
    out = tmp_path / "audit"
    control = ev.RunControl()
    with EngineProcess.new(tiny_config.to_toml(), str(out)) as engine, pytest.raises(Cancelled):
        for e in engine.relay(control):
            if isinstance(e, ev.ImagesGenerated):
                control.cancel()
    store = AuditStore.open(out)
    assert not store.complete and 0 < store.image_count() < 3 * tiny_config.extraction.n_per_gamma
    with EngineProcess.resume(str(out)) as engine:
        list(engine.relay(ev.RunControl()))
    assert store.complete and store.image_count() == 3 * tiny_config.extraction.n_per_gamma
    store.close()


def test_bad_input_arrives_as_the_input_error_it_was(tiny_config, tmp_path):
    tiny_config.model.path = str(tmp_path / "no-model")
    with EngineProcess.new(tiny_config.to_toml(), str(tmp_path / "audit")) as engine, \
            pytest.raises(InputError) as e:
        list(engine.relay(ev.RunControl()))
    assert e.value.path == str(tmp_path / "no-model")


def test_a_killed_engine_is_said_to_be_killed(tiny_config, tmp_path):
    tiny_config.extraction.n_per_gamma = 24
    tiny_config.extraction.steps = 20
    with EngineProcess.new(tiny_config.to_toml(), str(tmp_path / "audit")) as engine, \
            pytest.raises(EngineStopped, match=r"killed by SIGKILL.*resume"):
        for e in engine.relay(ev.RunControl()):
            if isinstance(e, ev.ImagesGenerated):
                os.kill(engine.pid, signal.SIGKILL)


def test_an_engine_whose_listener_is_gone_stops_after_its_batch(tiny_config, tmp_path):
    """The window crashed: the engine's input ends, and it stops as for a cancel (the audit resumes later)."""
    tiny_config.extraction.n_per_gamma = 24
    tiny_config.extraction.steps = 20
    engine = EngineProcess.new(tiny_config.to_toml(), str(tmp_path / "audit"))
    for e in engine.relay(ev.RunControl()):
        if isinstance(e, ev.ImagesGenerated):
            break
    engine._to_child.close()
    assert engine.proc.wait(60) == 130
    engine.close()
    store = AuditStore.open(tmp_path / "audit")
    assert not store.complete and store.image_count() % tiny_config.extraction.batch == 0
    store.close()


def test_a_frozen_app_starts_its_engine_through_the_side_command(monkeypatch, tmp_path):
    """PyInstaller's executables take no -m: the bundle's `side engine-process` speaks the same protocol."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from side_engine.engine_process import engine_command

    side = str(Path(sys.executable).with_name("side"))  # the venv's console script, as the bundle has its own
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", "/opt/side-inspector/side-gui")
    assert engine_command() == ["/opt/side-inspector/side", "engine-process"]
    r = subprocess.run([side, "engine-process"], input=json.dumps({"resume": str(tmp_path / "none")}) + "\n",
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert json.loads(r.stdout) == {"type": "end", "status": "input_error", "path": str(tmp_path / "none"),
                                    "problem": "audit folder does not exist"}
