"""`side run` in one process and under torchrun with two: the extraction's images per second on this machine.

The same config each time (the shipped regime model, a Random leg and a SIDE leg at gamma 3, 50 DDIM steps). For
speed, one process with every core against two ranks with half of them each, as torchrun sets by default. The rate
is the extraction's: generated images over the time from the end of TDKD to the last image stored (stages.finished
and images.created in the audit), so the training stages, which run on rank 0 alone, do not dilute it. For the
result, two ranks against one process with the same threads per process (the thread count changes float rounding
on a CPU): they must report the same numbers (distributed.py's promise); the row says whether they did."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import Figure, gpu_not_measured


def _config(work: Path, quick: bool, device: str) -> Path:
    from side_engine.config import ExtractionConfig
    from side_engine.demo import demo_config

    cfg = demo_config(quick=True)
    cfg.runtime.device = device
    n = 64 if quick else 512
    cfg.extraction = ExtractionConfig(gammas=[0.0, 3.0], n_per_gamma=n, steps=20 if quick else 50, batch=64,
                                      ol_ti=False)
    path = work / "audit.toml"
    path.write_text(cfg.to_toml())
    return path


def _rate(audit: Path) -> tuple[float, int]:
    with sqlite3.connect(audit / "audit.sqlite") as db:
        start = db.execute("SELECT finished FROM stages WHERE name = 'tdkd'").fetchone()[0]
        n, last = db.execute("SELECT COUNT(*), MAX(created) FROM images").fetchone()
    return n / (last - start), n


def _report(audit: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "side_engine", "report", str(audit), "--json"], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def _side_run(procs: int, config: Path, out: Path, threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
              if procs > 1 else [sys.executable])
    subprocess.run([*launch, "-m", "side_engine", "run", str(config), "--out", str(out), "--quiet"], env=env,
                   check=True)


def run(device: str = "cpu", quick: bool = False) -> list[Figure]:
    cores = len(os.sched_getaffinity(0))
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="side-bench-distributed-"))
    try:
        config = _config(work, quick, device)
        half = max(1, cores // 2)
        measured = {}
        for key, procs, threads in (("one", 1, cores), ("two", 2, half), ("one_half", 1, half)):
            out = work / key
            _side_run(procs, config, out, threads)
            rate, n = _rate(out)
            measured[key] = dict(rate=rate, images=n, report=_report(out))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    same = measured["one_half"]["report"] == measured["two"]["report"]
    one, two = measured["one"]["rate"], measured["two"]["rate"]
    steps = 20 if quick else 50
    what = (f"regime demo model (1.1M params, 16x16x1), {measured['one']['images']} images at gamma 0 and 3, "
            f"{steps} DDIM steps, batch 64")
    figures = [Figure(
        figure=f"distributed: extraction images/s, 1 process vs torchrun with 2 ranks on {cores} cores, {what}",
        goal="the same report from both",
        measured=(f"1 process ({cores} threads) {one:.2f} images/s, 2 ranks ({half} each) {two:.2f} images/s "
                  f"({two / one:.2f}x); report of 2 ranks {'identical to' if same else 'DIFFERENT from'} 1 process "
                  f"with {half} thread{'s' if half > 1 else ''}"),
        met=same,
        details=dict(cores=cores, quick=quick, device=device, images=measured["one"]["images"], ddim_steps=steps,
                     rate_1=one, rate_2=two, rate_1_at_half_threads=measured["one_half"]["rate"],
                     reports_identical=same, reports_identical_across_thread_counts=(
                         measured["one"]["report"] == measured["one_half"]["report"]),
                     threads_per_process={"one": cores, "two": half, "one_half": half}, loadavg_before=load_before,
                     loadavg_after=os.getloadavg()))]
    if device == "cpu":
        figures.append(gpu_not_measured("distributed", "one rank per GPU"))
    return figures
