"""python -m benchmarks [NAME ...] [--device cpu|cuda] [--quick]

Runs each benchmark module (benchmarks/bench_NAME.py) in a process of its own, writes
benchmarks/results/NAME[-cuda].json, then regenerates the table in BENCHMARKS.md from every result file there.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.report import write_table

ALL = ["sampling", "matching", "descriptors", "rescore", "gui", "gallery", "demo", "distributed"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[2])
    p.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(ALL)})")
    p.add_argument("--device", default="cpu", help="torch device for the model benchmarks (cpu or cuda)")
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats, to check the code runs")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    names = a.names or ALL
    unknown = [n for n in names if n not in ALL]
    if unknown:
        p.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(ALL)}")
    if a.one:
        return run_one(names[0], a.device, a.quick)
    failed = []
    for name in names:
        t0 = time.perf_counter()
        print(f"== {name} ({a.device})", flush=True)
        quick = ["--quick"] if a.quick else []
        cmd = [sys.executable, "-m", "benchmarks", name, "--one", "--device", a.device, *quick]
        rc = subprocess.call(cmd)
        outcome = "ok" if rc == 0 else f"FAILED (exit {rc})"
        print(f"== {name}: {outcome} in {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    print(f"table written to {write_table()}")
    return 1 if failed else 0


def run_one(name: str, device: str, quick: bool) -> int:
    from benchmarks.harness import write_result

    mod = importlib.import_module(f"benchmarks.bench_{name}")
    figures = mod.run(device=device, quick=quick)
    cmd = f"make bench BENCH={name}" if device == "cpu" else f"python -m benchmarks {name} --device {device}"
    if quick:
        cmd += " (quick)"
    path = write_result(name if device == "cpu" else f"{name}-{device.split(':')[0]}", figures, device, cmd)
    for f in figures:
        mark = {True: "met", False: "MISSED", None: "-"}[f.met]
        print(f"  {f.figure}: {f.measured}  (goal {f.goal}: {mark})")
    print(f"  -> {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
