"""The shipped demo, end to end, the way a new user first meets the tool."""

import json
import subprocess
import sys

from side_engine.demo import DEMO_MODEL


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


def test_the_shipped_demo_model_is_safetensors_and_small():
    weights = list(DEMO_MODEL.rglob("*.safetensors"))
    assert len(weights) == 1
    assert weights[0].stat().st_size < 8 * 2**20
    assert not list(DEMO_MODEL.rglob("*.bin"))
