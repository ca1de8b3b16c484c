"""Matching: exact top-50 search (side_engine.matching.neighbours.ExactIndex, metric l2, as the matcher builds it)
against faiss-cpu's IndexFlatL2, on the same random float32 queries and database, timed alternately in this process; the
ratio is the median over back-to-back pairs, the absolute times each side's median.

Timed: the search alone (both indexes are built once beforehand; build times are in the details). ExactIndex also
recomputes the 50 chosen distances exactly from the differences, which faiss does not: its expanded-form distances
cancel for near-copies. Peak memory: each side's resident-memory high-water mark during its search, above what
the process held when the search began (Linux: VmHWM after resetting it through /proc/self/clear_refs; elsewhere
psutil sampled every 5 ms); on CUDA also the GPU's peak allocation.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import Figure, alternate, fmt_ratio, fmt_s, gpu_not_measured, median, sync

K = 50
# (queries, database, dimension, repeats). On 2 cores one repeat of both sides takes ~2 minutes at 50k x 50k x 768
# and ~6 at d = 3072: one repeat there keeps the whole benchmark near 10 minutes.
FULL = [(10_000, 5_000, 768, 5), (10_000, 5_000, 3072, 3), (50_000, 50_000, 768, 1), (50_000, 50_000, 3072, 1)]
QUICK = [(2_000, 1_000, 768, 3), (2_000, 1_000, 3072, 3)]
WARM_QUERIES = 256
CUDA_REPEATS = 3


class PeakMemory:
    """Peak resident memory (MiB) of this process while a function runs, above its resident memory at the start."""

    def __init__(self):
        self.method = "VmHWM (reset via /proc/self/clear_refs)"
        try:
            self._reset()
            self._status("VmHWM")
        except OSError:
            self.method = "psutil RSS sampled every 5 ms"

    @staticmethod
    def _reset() -> None:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    @staticmethod
    def _status(field: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        raise OSError(field)

    def wrap(self, fn, peaks: list[float], gpu_peaks: list[float] | None = None):
        def run():
            if gpu_peaks is not None:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                gpu_base = torch.cuda.memory_allocated()
            if self.method.startswith("VmHWM"):
                self._reset()
                base = self._status("VmRSS")
                out = fn()
                peaks.append(self._status("VmHWM") - base)
            else:
                out = self._sampled(fn, peaks)
            if gpu_peaks is not None:
                torch.cuda.synchronize()
                gpu_peaks.append((torch.cuda.max_memory_allocated() - gpu_base) / 2**20)
            return out
        return run

    @staticmethod
    def _sampled(fn, peaks):
        import psutil

        proc = psutil.Process()
        base = proc.memory_info().rss
        top = [base]
        done = threading.Event()

        def poll():
            while not done.wait(0.005):
                top[0] = max(top[0], proc.memory_info().rss)

        th = threading.Thread(target=poll, daemon=True)
        th.start()
        try:
            out = fn()
        finally:
            done.set()
            th.join()
        top[0] = max(top[0], proc.memory_info().rss)
        peaks.append((top[0] - base) / 2**20)
        return out


def _size(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def _one(nq: int, nb: int, d: int, repeats: int, device: str, faiss, mem: PeakMemory) -> Figure:
    from side_engine.matching.neighbours import ExactIndex

    rng = np.random.default_rng([nq, nb, d])
    xb = rng.standard_normal((nb, d), dtype=np.float32)
    xq = rng.standard_normal((nq, d), dtype=np.float32)

    def build_exact():
        return ExactIndex(torch.from_numpy(xb).to(device), "l2")

    def build_faiss():
        index = faiss.IndexFlatL2(d)
        index.add(xb)
        return index

    built = {}
    build_t = alternate({"exact": lambda: built.__setitem__("exact", build_exact()),
                         "faiss": lambda: built.__setitem__("faiss", build_faiss())}, 1, warmup=0, device=device)
    exact, flat = built["exact"], built["faiss"]
    q = torch.from_numpy(xq).to(device)
    # Warm both code paths (BLAS and OpenMP start-up) on a few queries: no full-size repeat is spent warming up.
    exact.topk(q[:WARM_QUERIES], K)
    flat.search(xq[:WARM_QUERIES], K)
    sync(device)

    res: dict = {}
    peaks: dict[str, list[float]] = {"exact": [], "faiss": []}
    gpu_peaks: list[float] | None = [] if device.startswith("cuda") else None
    load0 = os.getloadavg()
    times = alternate({
        "exact": mem.wrap(lambda: res.__setitem__("exact", exact.topk(q, K)), peaks["exact"], gpu_peaks),
        "faiss": mem.wrap(lambda: res.__setitem__("faiss", flat.search(xq, K)), peaks["faiss"]),
    }, repeats, warmup=0, device=device)
    load1 = os.getloadavg()

    e_idx, e_rms = (t.cpu().numpy() for t in res["exact"])
    f_d2, f_idx = res["faiss"]
    same_sets = float((np.sort(e_idx, 1) == np.sort(f_idx, 1)).all(1).mean())
    f_rms = np.sqrt(np.maximum(f_d2[:, 0], 0) / d)
    best_diff = float(np.abs(f_rms - e_rms[:, 0]).max())

    te, tf = median(times["exact"]), median(times["faiss"])
    # alternate() ran each pair back to back: each ratio is taken under one load of a shared machine
    ratio = median([e / f for e, f in zip(times["exact"], times["faiss"])])
    pe, pf = max(peaks["exact"]), max(peaks["faiss"])
    db_mb, q_mb = xb.nbytes / 2**20, xq.nbytes / 2**20
    # ExactIndex's own working memory: one chunk x chunk block of scores and a buffer of the same size for the
    # refinement, whatever the sizes; beside it the result (n x k) and the BLAS library's packing buffers.
    blocks_mb = 2 * exact.chunk * exact.chunk * 4 / 2**20
    result_mb = nq * K * (8 + 4) / 2**20
    where = "GPU" if device.startswith("cuda") else "CPU"
    figure = f"matching: exact top-{K}, {_size(nq)} queries x {_size(nb)} database, d={d}"
    if device.startswith("cuda"):
        figure += f" (ExactIndex on the GPU vs faiss-cpu on {len(os.sched_getaffinity(0))} CPU cores)"
    measured = (f"{fmt_ratio(ratio)} ({fmt_s(te)} vs {fmt_s(tf)}); peak RSS +{pe:.0f} MiB (its 2 blocks "
                f"{blocks_mb:.0f} + result {result_mb:.0f} + BLAS buffers) vs +{pf:.0f} MiB")
    if gpu_peaks:
        measured += f", GPU +{max(gpu_peaks):.0f} MiB"
    details = {
        "queries": nq, "database": nb, "dim": d, "k": K, "repeats": repeats,
        "repeats_note": ("fewer repeats at this size: one repeat of both sides takes minutes on this machine"
                         if repeats < 3 else ""),
        "exact_s": times["exact"], "faiss_s": times["faiss"],
        "exact_median_s": te, "faiss_median_s": tf, "ratio_median_of_pairs": ratio,
        "exact_queries_per_s": nq / te, "faiss_queries_per_s": nq / tf,
        "build_exact_s": build_t["exact"][0], "build_faiss_s": build_t["faiss"][0],
        "exact_peak_rss_mib": peaks["exact"], "faiss_peak_rss_mib": peaks["faiss"],
        "peak_method": mem.method + ", above the RSS at the start of the search",
        "exact_peak_gpu_mib": gpu_peaks, "exactindex_chunk": exact.chunk,
        "exactindex_blocks_mib": blocks_mb, "result_mib": result_mb,
        "data_mib": {"database": db_mb, "queries": q_mb},
        "faiss_holds_a_copy_of_the_database": True,
        "same_top_k_sets": same_sets, "max_abs_diff_best_rms": best_diff,
        "exact_side": f"side_engine.matching.neighbours.ExactIndex(metric='l2') on {where}: torch "
                      f"{torch.__version__}, {torch.get_num_threads()} threads",
        "faiss_side": f"faiss-cpu {faiss.__version__} IndexFlatL2, {faiss.omp_get_max_threads()} OpenMP threads",
        "loadavg_before": load0, "loadavg_after": load1,
    }
    return Figure(figure, "<= 1.0x faiss IndexFlatL2 time", measured, ratio <= 1.0, details)


def run(device: str = "cpu", quick: bool = False) -> list[Figure]:
    import faiss

    mem = PeakMemory()
    sizes = QUICK if quick else FULL
    if device.startswith("cuda"):
        sizes = [(nq, nb, d, max(r, CUDA_REPEATS)) for nq, nb, d, r in sizes]
    figures = []
    for nq, nb, d, repeats in sizes:
        figures.append(_one(nq, nb, d, repeats, device, faiss, mem))
        f = figures[-1]
        print(f"  {f.figure}: {f.measured}", flush=True)
    if not device.startswith("cuda"):
        figures.append(gpu_not_measured("matching", "the same sizes, the search on CUDA"))
    return figures
