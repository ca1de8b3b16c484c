"""`python -m side_gui` as a user starts it: offscreen, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

from PIL import Image

from side_gui.app import SCREENSHOT_SIZE


def run_gui(args, tmp_path, timeout):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", "side_gui", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_module_starts_and_quits(tmp_path):
    r = run_gui(["--quit-after", "800"], tmp_path, 120)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr


def test_demo_screenshot_after_audit(tmp_path, tiny_model):
    shot = tmp_path / "shot.png"
    r = run_gui(["--demo", "--quick", "--demo-model", str(tiny_model), "--out", str(tmp_path / "demo"),
                 "--screenshot", str(shot), "--exit-when-done"], tmp_path, 280)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert Image.open(shot).size == SCREENSHOT_SIZE
    assert (tmp_path / "demo" / "audit.toml").exists()


def test_an_audit_folder_argument_opens_it_and_a_wrong_one_exits_2(tmp_path, audit_copy):
    shot = tmp_path / "shot.png"
    r = run_gui([str(audit_copy), "--screenshot", str(shot), "--exit-when-done"], tmp_path, 120)
    assert r.returncode == 0, r.stderr
    assert Image.open(shot).size == SCREENSHOT_SIZE

    r = run_gui([str(tmp_path / "nowhere"), "--exit-when-done"], tmp_path, 120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert f"{tmp_path / 'nowhere'}: audit folder does not exist" in r.stderr.splitlines()
