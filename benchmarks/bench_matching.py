"""Matching: exact top-50 search, both of the engine's backends against faiss-cpu's IndexFlatL2 alone, on the same
random float32 queries and database, timed alternately in this process; each ratio is the median over back-to-back
runs, the absolute times each side's median.

- FaissIndex (side_engine.matching.faiss_index, the default backend where faiss imports): faiss's flat search for
  the 50 candidates, then their distances recomputed from the differences (neighbours.refine_l2), which faiss
  alone does not do: its expanded-form distances cancel for near-copies. Goal: <= 1.05x IndexFlatL2's time.
- ExactIndex (neighbours.py, torch: the fallback and the tests' reference), the same recomputation.
Timed: the search alone (every index is built once beforehand; build times are in the details). The details also
time the recomputation alone on the same candidates (neighbours.refine_l2: faiss's kernel a tile of database rows
at a time, then the sort), and faiss's kernel taking each query's candidates in turn (fvec_L2sqr_by_idx, the same
bits), which the tiles are measured against. Peak memory: each side's resident-memory high-water mark during its
search, above what the process held when the search began (Linux: VmHWM after resetting it through
/proc/self/clear_refs; elsewhere psutil sampled every 5 ms); on CUDA also the GPU's peak allocation.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import Figure, alternate, fmt_ratio, fmt_s, gpu_not_measured, median, sync, timed

K = 50
# (queries, database, dimension, repeats). On 2 cores one repeat of the three sides takes ~1 minute at
# 50k x 50k x 768 and ~3.5 at d = 3072: one repeat there keeps the whole benchmark near 10 minutes.
FULL = [(10_000, 5_000, 768, 5), (10_000, 5_000, 3072, 3), (50_000, 50_000, 768, 3), (50_000, 50_000, 3072, 1)]
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


def _one(nq: int, nb: int, d: int, repeats: int, device: str, faiss, mem: PeakMemory) -> list[Figure]:
    from side_engine.matching.cache import ArrayRows
    from side_engine.matching.faiss_index import FaissIndex
    from side_engine.matching.neighbours import ExactIndex, refine_l2

    rng = np.random.default_rng([nq, nb, d])
    xb = rng.standard_normal((nb, d), dtype=np.float32)
    xq = rng.standard_normal((nq, d), dtype=np.float32)

    def build_faiss():
        index = faiss.IndexFlatL2(d)
        index.add(xb)
        return index

    built = {}
    build_t = alternate({"exact": lambda: built.__setitem__("exact", ExactIndex(torch.from_numpy(xb).to(device))),
                         "side": lambda: built.__setitem__("side", FaissIndex(ArrayRows(xb), "l2", device)),
                         "faiss": lambda: built.__setitem__("faiss", build_faiss())}, 1, warmup=0, device=device)
    exact, side, flat = built["exact"], built["side"], built["faiss"]
    q = torch.from_numpy(xq).to(device)
    # Warm every code path (BLAS and OpenMP start-up) on a few queries: no full-size repeat is spent warming up.
    exact.topk(q[:WARM_QUERIES], K)
    side.topk(q[:WARM_QUERIES], K)
    flat.search(xq[:WARM_QUERIES], K)
    sync(device)

    res: dict = {}
    peaks: dict[str, list[float]] = {"exact": [], "side": [], "faiss": []}
    gpu_peaks: list[float] | None = [] if device.startswith("cuda") else None
    load0 = os.getloadavg()
    times = alternate({
        "side": mem.wrap(lambda: res.__setitem__("side", side.topk(q, K)), peaks["side"]),
        "faiss": mem.wrap(lambda: res.__setitem__("faiss", flat.search(xq, K)), peaks["faiss"]),
        "exact": mem.wrap(lambda: res.__setitem__("exact", exact.topk(q, K)), peaks["exact"], gpu_peaks),
    }, repeats, warmup=0, device=device)
    load1 = os.getloadavg()

    e_idx, e_rms = (t.cpu().numpy() for t in res["exact"])
    s_idx, s_rms = (t.numpy() for t in res["side"])
    f_d2, f_idx = res["faiss"]
    same_sets = float((np.sort(e_idx, 1) == np.sort(f_idx, 1)).all(1).mean())
    f_rms = np.sqrt(np.maximum(f_d2[:, 0], 0) / d)
    best_diff = float(np.abs(f_rms - e_rms[:, 0]).max())

    # The recomputation alone, on FaissIndex's candidates (the same work it does after faiss's search), and
    # faiss's kernel a query at a time, untiled (the same bits): what the tiles save.
    cand = torch.from_numpy(np.ascontiguousarray(f_idx))
    split_repeats = 3 if nq * nb <= 10**8 else 1
    refine_t = [timed(lambda: refine_l2(torch.from_numpy(xb), torch.from_numpy(xq), cand))
                for _ in range(split_repeats)]
    sq = np.empty((nq, K), dtype=np.float32)
    kernel_t = [timed(lambda: faiss.fvec_L2sqr_by_idx(faiss.swig_ptr(sq), faiss.swig_ptr(xq), faiss.swig_ptr(xb),
                                                      faiss.swig_ptr(f_idx), d, nq, K))
                for _ in range(split_repeats)]

    ts, tf, te = median(times["side"]), median(times["faiss"]), median(times["exact"])
    # alternate() ran each round back to back: each ratio is taken under one load of a shared machine
    ratio_side = median([a / b for a, b in zip(times["side"], times["faiss"])])
    ratio_exact = median([a / b for a, b in zip(times["exact"], times["faiss"])])
    ps, pf, pe = max(peaks["side"]), max(peaks["faiss"]), max(peaks["exact"])
    db_mb, q_mb = xb.nbytes / 2**20, xq.nbytes / 2**20
    # ExactIndex's own working memory: one chunk x chunk block of scores, the recomputation's buffer, the result.
    blocks_mb = exact.chunk * exact.chunk * 4 / 2**20
    result_mb = nq * K * (8 + 4) / 2**20
    where = "GPU" if device.startswith("cuda") else "CPU"
    size = f"exact top-{K}, {_size(nq)} queries x {_size(nb)} database, d={d}"
    suffix = ""
    if device.startswith("cuda"):
        suffix = f" (the engine's index on the GPU vs faiss-cpu on {len(os.sched_getaffinity(0))} CPU cores)"
    side_measured = (f"{fmt_ratio(ratio_side)} ({fmt_s(ts)} vs {fmt_s(tf)}; the recomputation alone "
                     f"{fmt_s(median(refine_t))}); peak RSS +{ps:.0f} MiB vs +{pf:.0f} MiB")
    exact_measured = (f"{fmt_ratio(ratio_exact)} ({fmt_s(te)} vs {fmt_s(tf)}); peak RSS +{pe:.0f} MiB (its block "
                      f"{blocks_mb:.0f} + result {result_mb:.0f} + BLAS buffers) vs +{pf:.0f} MiB")
    if gpu_peaks:
        exact_measured += f", GPU +{max(gpu_peaks):.0f} MiB"
    details = {
        "queries": nq, "database": nb, "dim": d, "k": K, "repeats": repeats,
        "repeats_note": ("fewer repeats at this size: one repeat of every side takes minutes on this machine"
                         if repeats < 3 else ""),
        "side_s": times["side"], "faiss_s": times["faiss"], "exact_s": times["exact"],
        "side_median_s": ts, "faiss_median_s": tf, "exact_median_s": te,
        "ratio_side_median_of_pairs": ratio_side, "ratio_exact_median_of_pairs": ratio_exact,
        "refine_l2_alone_s": refine_t, "faiss_fvec_L2sqr_by_idx_alone_s": kernel_t,
        "build_side_s": build_t["side"][0], "build_faiss_s": build_t["faiss"][0], "build_exact_s": build_t["exact"][0],
        "side_peak_rss_mib": peaks["side"], "faiss_peak_rss_mib": peaks["faiss"], "exact_peak_rss_mib": peaks["exact"],
        "peak_method": mem.method + ", above the RSS at the start of the search",
        "exact_peak_gpu_mib": gpu_peaks, "exactindex_chunk": exact.chunk,
        "exactindex_block_mib": blocks_mb, "result_mib": result_mb,
        "data_mib": {"database": db_mb, "queries": q_mb},
        "faiss_holds_a_copy_of_the_database": True, "side_holds_a_copy_of_the_database": False,
        "same_top_k_sets_exact_vs_faiss": same_sets, "max_abs_diff_best_rms_faiss_vs_exact": best_diff,
        "side_equals_exact_indices": float((s_idx == e_idx).all(1).mean()),
        "side_equals_exact_score_bits": float((s_rms == e_rms).all(1).mean()),
        "side": f"side_engine.matching.faiss_index.FaissIndex(metric='l2') on {side.device}",
        "exact_side": f"side_engine.matching.neighbours.ExactIndex(metric='l2') on {where}: torch "
                      f"{torch.__version__}, {torch.get_num_threads()} threads",
        "faiss_side": f"faiss-cpu {faiss.__version__} IndexFlatL2, {faiss.omp_get_max_threads()} OpenMP threads",
        "loadavg_before": load0, "loadavg_after": load1,
    }
    return [
        Figure(f"matching: FaissIndex (faiss + exact recomputation), {size}{suffix}", "<= 1.05x faiss IndexFlatL2 time",
               side_measured, ratio_side <= 1.05, details),
        Figure(f"matching: ExactIndex (torch fallback), {size}{suffix}", "<= 1.0x faiss IndexFlatL2 time",
               exact_measured, ratio_exact <= 1.0, {"see": "the FaissIndex row's details, same run"}),
    ]


def run(device: str = "cpu", quick: bool = False) -> list[Figure]:
    import faiss

    mem = PeakMemory()
    sizes = QUICK if quick else FULL
    if device.startswith("cuda"):
        sizes = [(nq, nb, d, max(r, CUDA_REPEATS)) for nq, nb, d, r in sizes]
    figures = []
    for nq, nb, d, repeats in sizes:
        for f in _one(nq, nb, d, repeats, device, faiss, mem):
            figures.append(f)
            print(f"  {f.figure}: {f.measured}", flush=True)
    if not device.startswith("cuda"):
        figures.append(gpu_not_measured("matching", "the same sizes, the search on CUDA"))
    return figures
