"""One audit across processes: torchrun with two CPU ranks writes the same audit as one process, and a rerun of the
same command continues a stopped audit without redoing what is stored."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

from side_engine.config import load_config
from side_engine.distributed import SOLO, World, world_from_env

from helpers import tiny_config_for


def _env() -> dict:
    # One thread per process in both runs: the thread count changes float rounding on CPU.
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def side(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "side_engine", *args], env=_env(), capture_output=True, text=True,
                          timeout=240)


def torchrun(*args: str) -> subprocess.CompletedProcess:
    # torchrun is torch.distributed.run; --standalone picks a free port on this machine
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "side_engine", *args], env=_env(), capture_output=True, text=True, timeout=240)


def pngs(audit) -> dict[str, str]:
    return {str(p.relative_to(audit)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(audit.rglob("*.png"))}


def report(audit) -> dict:
    done = side("report", str(audit), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def sweep_config(tmp_path_factory, tiny_model, tiny_train):
    """Uneven work: D_syn in 2 batches, each leg in 4 batches of 3 and 1, so that rounds of two ranks end short."""
    cfg = tiny_config_for(tiny_model, tiny_train)
    cfg.extraction.n_per_gamma = 10
    cfg.extraction.batch = 3
    path = tmp_path_factory.mktemp("cfg") / "audit.toml"
    path.write_text(cfg.to_toml())
    return path


@pytest.fixture(scope="module")
def one_process(sweep_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("solo") / "audit"
    done = side("run", str(sweep_config), "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    return out


def test_two_ranks_write_the_audit_one_process_writes(sweep_config, one_process, tmp_path):
    out = tmp_path / "audit"
    done = torchrun("run", str(sweep_config), "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    assert pngs(out) == pngs(one_process)
    assert len(pngs(out)) == 12 + 3 * 10  # D_syn, then Random, SIDE and OL-TI at gamma 5
    assert report(out) == report(one_process)


def test_rerunning_the_command_continues_a_stopped_audit_and_redoes_nothing(sweep_config, one_process, tmp_path):
    out = tmp_path / "audit"
    shutil.copytree(one_process, out)
    # As if the job died during the OL-TI leg: its last two batches (indices 6-9) were never stored.
    with sqlite3.connect(out / "audit.sqlite") as db:
        gone = [r[0] for r in db.execute("SELECT path FROM images WHERE guide = 'ti' AND idx >= 6")]
        db.execute("DELETE FROM images WHERE guide = 'ti' AND idx >= 6")
        db.execute("UPDATE stages SET status = 'running' WHERE name = 'extract'")
        db.execute("DELETE FROM meta WHERE key = 'status'")
    for rel in gone:
        (out / rel).unlink()
    kept = {rel: (out / rel).stat().st_mtime_ns for rel in pngs(out)}
    done = torchrun("run", str(sweep_config), "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    assert "holds this config's audit: continuing it" in done.stderr
    assert {rel: (out / rel).stat().st_mtime_ns for rel in kept} == kept  # nothing stored was written again
    assert pngs(out) == pngs(one_process)
    assert report(out) == report(one_process)


def test_a_bad_input_stops_every_rank_with_one_line(sweep_config, tmp_path):
    cfg = load_config(sweep_config)
    cfg.model.path = str(tmp_path / "missing-model")
    bad = tmp_path / "bad.toml"
    bad.write_text(cfg.to_toml())
    done = torchrun("run", str(bad), "--out", str(tmp_path / "audit"), "--quiet")
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert done.returncode != 0
    assert errors == [f"error: {tmp_path / 'missing-model'}: model folder does not exist"]


def test_without_a_launcher_the_world_is_one_process():
    assert world_from_env({}) is SOLO and world_from_env({"WORLD_SIZE": "1", "RANK": "0"}) is SOLO
    w = world_from_env({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"})
    assert (w.rank, w.size, w.local_rank, w.is_main) == (2, 4, 0, False)
    assert w.device("cuda") == "cuda:0" and w.device("cpu") == "cpu" and SOLO.device("cuda:1") == "cuda:1"


def test_rounds_deal_the_single_process_batches_one_per_rank():
    batches = [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert World(rank=1, size=2).rounds(batches) == [(batches[0:2], batches[1]), (batches[2:4], batches[3])]
    assert World(rank=2, size=3).rounds(batches) == [(batches[0:3], batches[2]), (batches[3:4], None)]
    assert SOLO.rounds(batches) == [([b], b) for b in batches]
