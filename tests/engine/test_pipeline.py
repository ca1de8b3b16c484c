"""The whole audit on a tiny DDPM folder written by diffusers: stages, store, resume, clusters."""

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from side_engine import events as ev
from side_engine.errors import Cancelled
from side_engine.pipeline import AuditPipeline
from side_engine.store import AuditStore


def run_all(pipeline, control=None):
    return list(pipeline.run(control))


def test_a_ddpm_pipeline_folder_is_audited_end_to_end(tiny_config, tmp_path):
    events = run_all(AuditPipeline.prepare(tiny_config, tmp_path / "audit"))
    kinds = {type(e).__name__ for e in events}
    assert {"StageStarted", "Progress", "StageFinished", "CurvePoint", "HealthUpdated", "ImagesGenerated",
            "MetricsUpdated", "AuditFinished"} <= kinds
    store = AuditStore.open(tmp_path / "audit")
    rows = store.images()
    assert len(rows) == 3 * 6
    for r in rows:
        assert store.path(r.path).exists()
        assert len(r.nn_idx) == 3 and np.all(np.diff(r.nn_score) >= -1e-6)  # nL2: best (smallest) first
    streamed = [g.id for e in events if isinstance(e, ev.ImagesGenerated) for g in e.images]
    assert sorted(streamed) == sorted(r.id for r in rows)
    # 12 samples of D_syn, 10% held out: one sample, noised 4 times per t-bucket
    assert [(h.t_lo, h.t_hi, h.n) for h in store.health()] == [(0, 24, 4), (25, 49, 4), (50, 74, 4), (75, 99, 4)]
    assert all(0 <= h.agreement <= 1 for h in store.health())
    assert [c.step for c in store.curve("tdkd")] == [c.step for c in store.curve("classifier")] == [10]
    assert [(f.role, f.path) for f in store.files()] == [
        ("model", "model_index.json"), ("model", "scheduler/scheduler_config.json"), ("model", "unet/config.json"),
        ("model", "unet/diffusion_pytorch_model.safetensors"), ("training_manifest", "manifest")]
    final = [e for e in events if isinstance(e, ev.MetricsUpdated)][-1]
    assert {(r.guide, r.gamma) for r in final.results} == {("none", 0.0), ("td", 5.0), ("ti", 5.0)}


def test_images_of_the_same_index_share_their_seed_across_the_sweep(finished_audit):
    rows = AuditStore.open(finished_audit).images()
    by_index = {}
    for r in rows:
        by_index.setdefault(r.idx, set()).add(r.seed)
    assert all(len(seeds) == 1 for seeds in by_index.values())
    none = {r.idx: r for r in rows if r.guide == "none"}
    td = {r.idx: r for r in rows if r.guide == "td"}
    assert any(none[i].sha256 != td[i].sha256 for i in none)  # guidance changed the pictures


def test_a_pause_after_a_cancel_does_not_hold_the_run():
    control = ev.RunControl()
    control.cancel()
    control.pause()
    assert not control.paused
    with pytest.raises(Cancelled):
        control.check()


def test_cancel_mid_extraction_then_resume_completes_without_duplicates(tiny_config, tmp_path):
    out = tmp_path / "audit"
    control = ev.RunControl()
    seen = 0
    with pytest.raises(Cancelled):
        for e in AuditPipeline.prepare(tiny_config, out).run(control):
            if isinstance(e, ev.ImagesGenerated):
                seen += len(e.images)
                if seen >= 8:
                    control.cancel()
    partial = AuditStore.open(out).image_count()
    assert 8 <= partial < 18
    resumed = run_all(AuditPipeline.reopen(out))
    skipped = [e.stage for e in resumed if isinstance(e, ev.StageFinished) and e.skipped]
    assert {"classifier", "sample", "labels", "tdkd"} <= set(skipped)
    store = AuditStore.open(out)
    rows = store.images()
    assert len(rows) == 18
    assert len({(r.guide, r.gamma, r.idx) for r in rows}) == 18


def test_cancel_during_distillation_keeps_a_checkpoint_and_resumes(tiny_config, tmp_path):
    out = tmp_path / "audit"
    tiny_config.tdkd.steps = 40
    control = ev.RunControl()
    with pytest.raises(Cancelled):
        for e in AuditPipeline.prepare(tiny_config, out).run(control):
            if isinstance(e, ev.CurvePoint) and e.stage == "tdkd" and e.step >= 20:
                control.cancel()
    assert (out / "classifiers" / "td.partial.safetensors").exists()
    events = run_all(AuditPipeline.reopen(out))
    steps = [e.step for e in events if isinstance(e, ev.CurvePoint) and e.stage == "tdkd"]
    assert steps and steps[0] > 20  # continued, not restarted
    assert AuditStore.open(out).image_count() == 18
    # With the optimiser's moments in the checkpoint, the resumed f_TD is the one an uninterrupted run trains.
    run_all(AuditPipeline.prepare(tiny_config, tmp_path / "never_stopped"))
    resumed = load_file(out / "classifiers" / "td.safetensors")
    reference = load_file(tmp_path / "never_stopped" / "classifiers" / "td.safetensors")
    assert resumed.keys() == reference.keys()
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)


def test_a_crash_between_batches_loses_nothing_committed(tiny_config, tmp_path):
    # An image file written whose row never committed (the crash case) is simply made again on resume.
    out = tmp_path / "audit"
    tiny_config.extraction.gammas = [0.0]
    run_all(AuditPipeline.prepare(tiny_config, out))
    store = AuditStore.open(out)
    last = store.images()[-1]
    with store.db:
        store.db.execute("DELETE FROM images WHERE id = ?", (last.id,))
    run_all(AuditPipeline.reopen(out))
    again = [r for r in AuditStore.open(out).images() if r.idx == last.idx]
    assert len(again) == 1 and again[0].sha256 == last.sha256


def test_clusters_label_source_needs_no_labels(tiny_config, tiny_model, tmp_path):
    from helpers import make_training_folder

    flat = tmp_path / "flat"
    make_training_folder(tmp_path / "nested", classes=3, per_class=5)
    flat.mkdir()
    for p in (tmp_path / "nested").rglob("*.png"):
        p.rename(flat / f"{p.parent.name}_{p.name}")
    tiny_config.data.train = str(flat)
    tiny_config.labels.source = "clusters"
    tiny_config.clusters.k = 3
    tiny_config.clusters.cohesion = 0.0
    run_all(AuditPipeline.prepare(tiny_config, tmp_path / "audit"))
    store = AuditStore.open(tmp_path / "audit")
    assert store.image_count() == 18
    assert (tmp_path / "audit" / "classifiers" / "clusters.safetensors").exists()
    info = store.stage_info("labels")
    assert len(info["counts"]) == 3 and sum(info["counts"]) + info["dropped"] == tiny_config.tdkd.n_syn


def test_every_engine_module_imports_where_qt_is_not_installed():
    """Each module of side_engine, imported in a fresh interpreter in which any Qt import fails as it would on a
    machine without Qt: the engine must run headless (CI, scripts, servers)."""
    code = """
import importlib, pkgutil, sys
QT = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "qtpy", "shiboken6")
class NoQt:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in QT:
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, NoQt())
import side_engine
names = [m.name for m in pkgutil.walk_packages(side_engine.__path__, "side_engine.")
         if m.name != "side_engine.__main__"]
for name in names:
    importlib.import_module(name)
print(len(names))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    engine = Path(__file__).resolve().parents[2] / "side_engine"
    modules = [p for p in engine.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    packages = [p.parent for p in engine.rglob("__init__.py") if p.parent != engine]
    assert int(done.stdout) == len(modules) + len(packages)


def test_store_is_wal_and_reopens(finished_audit):
    conn = sqlite3.connect(finished_audit / "audit.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store = AuditStore.open(finished_audit)
    assert store.config.extraction.gammas == [0.0, 5.0]
    assert store.class_names == ["class_0", "class_1", "class_2"]
