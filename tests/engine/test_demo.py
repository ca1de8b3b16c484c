"""The shipped demo, end to end, the way a new user first meets the tool."""

import json
import subprocess
import sys

import pytest

from side_engine.demo import DEMO_MODELS, DEMO_SPECS, DemoSpec, demo_config, train_demo
from side_engine.errors import Cancelled


def test_side_demo_quick_runs_the_whole_audit_and_reports(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "side_engine", "demo", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "audit complete" in proc.stderr
    assert "AMS/UMS high" in proc.stdout
    report = subprocess.run([sys.executable, "-m", "side_engine", "report", str(out), "--json"],
                            capture_output=True, text=True)
    d = json.loads(report.stdout)
    assert [(r["guide"], r["gamma"]) for r in d["results"]] == [("none", 0.0), ("td", 10.0), ("ti", 10.0)]
    assert all(r["n"] == 16 for r in d["results"])


@pytest.mark.parametrize("name", sorted(DEMO_MODELS))
def test_each_shipped_demo_model_is_safetensors_small_and_trained_as_its_spec_says(name):
    model = DEMO_MODELS[name]
    weights = list(model.rglob("*.safetensors"))
    assert len(weights) == 1
    assert weights[0].stat().st_size < 8 * 2**20
    assert not list(model.rglob("*.bin"))
    spec = json.loads((model / "demo_spec.json").read_text())
    assert (spec["per_class"], spec["steps"]) == (DEMO_SPECS[name].per_class, DEMO_SPECS[name].steps)


def test_the_demo_audits_each_model_against_its_own_training_digits():
    from side_engine.dataset import load_training_set

    for name in DEMO_MODELS:
        cfg = demo_config(model=DEMO_MODELS[name])
        assert len(load_training_set(cfg.data.train, 1, 16)) == DEMO_SPECS[name].per_class * 10


def test_an_unknown_demo_model_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "side_engine", "demo", "--quick", "--model", "nonesuch",
                           "--out", str(tmp_path / "d")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "nonesuch" in proc.stderr and "regime" in proc.stderr


def test_train_demo_cancelled_and_resumed_ends_with_the_weights_of_one_uninterrupted_run(tmp_path):
    """The demo DDPM trains in training.fit: a cancel keeps its checkpoint (optimiser, EMA, data stream), so the
    resumed run lands on the same bytes as a run that was never stopped."""
    spec = DemoSpec(per_class=2, steps=6, batch=4, warmup=2, checkpoint_every=100, snapshots=(4,))
    whole = train_demo(tmp_path / "whole", spec, log=lambda s: None)
    calls = 0

    def cancel_at_step_3():
        nonlocal calls
        calls += 1
        if calls == 4:
            raise Cancelled

    stopped = train_demo(tmp_path / "resumed", spec, log=lambda s: None, check=cancel_at_step_3)
    assert not (stopped / "unet").exists() and (stopped / "checkpoint" / "state.pt").exists()
    train_demo(stopped, spec, log=lambda s: None)
    weights = "unet/diffusion_pytorch_model.safetensors"
    assert (whole / weights).read_bytes() == (stopped / weights).read_bytes()
    snapshot = "snapshots/step-4/" + weights
    assert (whole / snapshot).read_bytes() == (stopped / snapshot).read_bytes()
