"""Training sets larger than memory: peak resident memory of the matcher over a synthetic 1M x 512 training set.

A child process (so that its peak is its own) runs the engine's own path end to end: Matcher.build_steps computes
the descriptors of a synthetic TrainingSet in batches (a stand-in descriptor maps image i to a seeded random unit
vector, 512-d like SSCD) and writes them into a descriptor cache (descriptors/train.f32 + train.json), the
FaissIndex searches the memory-mapped file a block at a time, and the matcher scores batches of generated images
(cosine, as SSCD); then an l2 FaissIndex over the same file (its exact recomputation gathers the candidates' rows
from the file). The parent samples the child's RSS with psutil every 10 ms; the child also reports its own
high-water mark (VmHWM). The descriptors alone are 1M x 512 x 4 B = 2.05 GB (1.91 GiB): held in memory they would
miss the goal by themselves. The file's pages stay in the OS page cache, which is not the process's memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import Figure, fmt_s

FULL = (1_000_000, 512)
QUICK = (100_000, 512)
QUERIES = 4  # batches of generated images scored
BATCH = 64  # images per batch, as the extract stage's default-sized batches
SAMPLE_S = 0.01


def _child(folder: str, n: int, dim: int) -> None:
    """The measured process: build, search, report JSON on stdout."""
    import numpy as np
    import torch

    from side_engine.dataset import TrainingSet
    from side_engine.matching.faiss_index import FaissIndex
    from side_engine.matching.matcher import Matcher
    from side_engine.vocabulary import Direction

    class SyntheticSet(TrainingSet):
        """n 'images' that are their own indices; no pixels, no files."""

        def __init__(self, n: int):
            super().__init__(Path(folder), [f"{i}.png" for i in range(n)], ["0" * 64] * n, None)

        def batches(self, batch: int, start: int = 0):
            for s in range(start, len(self), batch):
                yield s, torch.arange(s, min(s + batch, len(self)), dtype=torch.float64).view(-1, 1, 1, 1)

    class SyntheticDescriptor:
        """Image i (its index as its one pixel) -> a unit vector seeded by i's batch: deterministic, any order."""

        name = "synthetic"
        direction = Direction.SIMILARITY
        identity = {"name": "synthetic", "dim": dim}  # noqa: RUF012

        def __call__(self, images: torch.Tensor) -> torch.Tensor:
            first = int(images[0].item())
            g = torch.Generator().manual_seed(first)
            return torch.nn.functional.normalize(torch.randn(len(images), dim, generator=g), dim=1)

    def hwm() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    out: dict = {"after_imports_mib": hwm()}
    train = SyntheticSet(n)
    out["after_training_set_mib"] = hwm()
    matcher = Matcher(SyntheticDescriptor(), train, k=10)
    t = time.perf_counter()
    for _ in matcher.build_steps(Path(folder) / "descriptors"):
        pass
    out["build_s"] = time.perf_counter() - t
    out["after_build_mib"] = hwm()
    assert matcher.rows is not None
    out["resident"] = matcher.rows.resident
    out["block_rows"] = getattr(matcher.rows, "block_rows", None)
    search_t = []
    for b in range(QUERIES):
        queries = torch.arange(n + b * BATCH, n + (b + 1) * BATCH, dtype=torch.float64).view(-1, 1, 1, 1)
        t = time.perf_counter()
        m = matcher.match(queries)
        search_t.append(time.perf_counter() - t)
        assert m.nn_idx.shape == (BATCH, 10)
    out["match_cosine_s"] = search_t
    out["after_cosine_mib"] = hwm()
    t = time.perf_counter()
    l2 = FaissIndex(matcher.rows, "l2")
    out["l2_build_s"] = time.perf_counter() - t
    q = torch.from_numpy(np.random.default_rng(0).standard_normal((BATCH, dim), dtype=np.float32))
    t = time.perf_counter()
    idx, rms = l2.topk(q, 50)
    out["search_l2_s"] = time.perf_counter() - t
    assert idx.shape == (BATCH, 50) and bool((rms[:, 1:] >= rms[:, :-1]).all())
    out["peak_mib"] = hwm()
    out["file_bytes"] = (Path(folder) / "descriptors" / "train.f32").stat().st_size
    print(json.dumps(out))


def run(device: str = "cpu", quick: bool = False) -> list[Figure]:
    import psutil

    n, dim = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="side-bench-descriptors-") as folder:
        code = f"import sys; from benchmarks.bench_descriptors import _child; _child(sys.argv[1], {n}, {dim})"
        cmd = [sys.executable, "-c", code, folder]
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        ps = psutil.Process(proc.pid)
        top = 0
        while proc.poll() is None:
            try:
                top = max(top, ps.memory_info().rss)
            except psutil.Error:
                break
            time.sleep(SAMPLE_S)
        stdout, _ = proc.communicate()
        wall = time.perf_counter() - t0
        load1 = os.getloadavg()
        if proc.returncode:
            raise RuntimeError(f"child failed with exit {proc.returncode}")
    child = json.loads(stdout.strip().splitlines()[-1])
    peak_mb = max(top / 1e6, child["peak_mib"] * 2**20 / 1e6)
    data_gb = n * dim * 4 / 1e9
    details = {"rows": n, "dim": dim, "descriptor_bytes": n * dim * 4, "psutil_peak_rss_bytes": top,
               "sample_interval_s": SAMPLE_S, "child": child, "wall_s": wall, "queries_per_batch": BATCH,
               "loadavg_before": load0, "loadavg_after": load1,
               "note": "RSS counts the pages of the mapped file the process holds; the page cache is the OS's"}
    size = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"
    measured = (f"{peak_mb / 1000:.2f} GB peak RSS (descriptors {data_gb:.2f} GB on disk; after imports "
                f"{child['after_imports_mib'] * 2**20 / 1e9:.2f} GB); build {fmt_s(child['build_s'])}, a batch of "
                f"{BATCH} matched in {fmt_s(sorted(child['match_cosine_s'])[len(child['match_cosine_s']) // 2])} "
                f"(cosine), {fmt_s(child['search_l2_s'])} (l2 + recomputation)")
    return [Figure(f"training descriptors larger than memory: synthetic {size} x {dim} set, cache built in "
                   "batches and searched memory-mapped (FaissIndex)", "< 2 GB peak RSS", measured, peak_mb < 2000,
                   details)]
