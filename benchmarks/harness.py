"""What every benchmark shares: alternating timing, the machine's description, and the result file.

A benchmark module defines `run(args) -> list[Figure]` and is run in its own process by benchmarks.__main__, so
that its peak memory is its own and a crash in one does not lose the others.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


@dataclasses.dataclass
class Figure:
    """One row of BENCHMARKS.md. `met` is None where the figure has no goal (a measurement reported as is)."""

    figure: str
    goal: str
    measured: str
    met: bool | None
    details: dict = dataclasses.field(default_factory=dict)


def gpu_not_measured(name: str, what: str) -> Figure:
    """The row that stands for a benchmark's GPU figures when it ran without one."""
    return Figure(figure=f"{name} on a GPU ({what})", goal="as above, device named",
                  measured=f"not measured: no GPU was lent to this run (python -m benchmarks {name} --device cuda)",
                  met=None)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str = "cpu") -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def alternate(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
              device: str = "cpu") -> dict[str, list[float]]:
    """Time each function `repeats` times, interleaved (a b a b ...), after `warmup` untimed rounds, so that a
    slow spell of a shared machine falls on both sides of a ratio."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(repeats):
        names = list(fns) if r % 2 == 0 else list(reversed(fns))
        for name in names:
            times[name].append(timed(fns[name], device))
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def peak_rss_mb() -> float:
    """This process's peak resident set size so far. VmHWM, not getrusage's ru_maxrss: the latter survives exec,
    so a child started from a big parent would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine(device: str = "cpu") -> str:
    """A short description for the table: CPU count and model, or the GPU's name."""
    if device.startswith("cuda"):
        import torch

        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{len(os.sched_getaffinity(0))} cores, {cpu}"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("torch", "diffusers", "numpy", "faiss", "PySide6"):
        m = sys.modules.get(mod)
        if m is not None:
            out[mod] = getattr(m, "__version__", "?")
    return out


def write_result(name: str, figures: list[Figure], device: str, command: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {
        "name": name,
        "machine": machine(device),
        "device": device,
        "date": dt.date.today().isoformat(),
        "command": command,
        "versions": versions(),
        "figures": [dataclasses.asdict(f) for f in figures],
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}x"


def fmt_s(x: float) -> str:
    if x < 1e-3:
        return f"{x * 1e6:.0f} µs"
    if x < 1:
        return f"{x * 1e3:.1f} ms"
    return f"{x:.2f} s"
