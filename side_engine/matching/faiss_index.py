"""Exact top-k on FAISS: its flat (brute-force) search picks the candidates, the l2 distances of the chosen few are
recomputed from the differences, as ExactIndex does.

faiss's flat search computes |q|^2 - 2 q.d + |d|^2 in float32 with BLAS and keeps each query's best in a heap
while the product runs: the same candidates as ExactIndex (the same expanded form picks them, up to the last bits).
That form cancels for near-copies, exactly where SIDE looks, so for l2 the candidates' distances are recomputed
from the differences and sorted by neighbours.refine_l2, the very function ExactIndex uses, after both pick
neighbours.MARGIN candidates more than asked for (the exact distances decide near-ties at the k-th place, which
faiss's BLAS rounds differently on 1 and 2 threads): the per-pixel RMS distance of the paper, the same neighbours
and bits from either backend (on a CPU both recompute with faiss's fvec_L2sqr: neighbours.rms_l2). Cosine
(unit vectors) needs no recomputation: a dot product does not cancel.

The database is a rows object of cache.py: in memory, or a memory-mapped file searched a block at a time (the
blocks' results merged in faiss's heaps), so a training set of any size is searched in bounded memory. faiss is
imported here only, when this index is made: a missing faiss falls back to ExactIndex (neighbours.index_backend).
GPU: only where this faiss has GPU support (faiss-gpu: `StandardGpuResources`) and the audit runs on CUDA does the
search run on the GPU (the database copied there once, block by block); the recomputation stays on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from .cache import ArrayRows, MappedRows
from .neighbours import candidates, refine_l2

# Queries refined per step when the database is streamed: their candidate rows are gathered (copied) first.
REFINE_BYTES = 64 << 20

# faiss keeps each query's best in a heap below distance_compute_min_k_reservoir candidates (100 by default) and in a
# reservoir from there. The heap's cost grows with k: at 10k queries x 5k rows x 768 (BENCHMARKS.md, matching), 58
# candidates took 494 ms by heap and 471 ms by reservoir, 34 took 443 and 441; at 50k rows both took the same. So
# this index asks for the reservoir from RESERVOIR_K candidates: the margin's 8 (neighbours.MARGIN) then cost the
# search of a top-50 nothing, where the heap made them 3-5% of it.
RESERVOIR_K = 50


def faiss_has_gpu(faiss) -> bool:
    return hasattr(faiss, "StandardGpuResources")


class FaissIndex:
    """metric "l2": per-pixel RMS distance sqrt(mean((a - b)^2)); "cosine": dot product of unit vectors.

    rows: ArrayRows or MappedRows (cache.py). device: where the audit runs; the search uses the GPU only with
    faiss-gpu. threads: faiss's OpenMP threads (0: faiss's default)."""

    def __init__(self, rows: ArrayRows | MappedRows, metric: str = "l2", device: str = "cpu", threads: int = 0):
        import faiss

        if metric not in ("l2", "cosine"):
            raise ValueError(metric)
        self.faiss: Any = faiss  # its SWIG module: pyright sees only part of it
        self.rows = rows
        self.metric = metric
        self.dim = rows.dim
        if threads:
            faiss.omp_set_num_threads(threads)
        self.gpu_index = None
        self.norms: np.ndarray | None = None
        if device.startswith("cuda") and faiss_has_gpu(faiss):
            self._to_gpu(device)
        elif metric == "l2":
            # Each block's squared norms once, as faiss's flat index would compute them on every search.
            self.norms = np.empty(len(rows), dtype=np.float32)
            for s, block in rows.blocks():
                self.faiss.fvec_norms_L2sqr(faiss.swig_ptr(self.norms[s:]), faiss.swig_ptr(block), self.dim, len(block))

    @property
    def device(self) -> str:
        return "cuda" if self.gpu_index is not None else "cpu"

    def __len__(self) -> int:
        return len(self.rows)

    def _to_gpu(self, device: str) -> None:
        faiss = self.faiss
        self.gpu_resources = faiss.StandardGpuResources()
        config = faiss.GpuIndexFlatConfig()
        config.device = torch.device(device).index or 0
        flat = faiss.GpuIndexFlatL2 if self.metric == "l2" else faiss.GpuIndexFlatIP
        self.gpu_index = flat(self.gpu_resources, self.dim, config)
        for _, block in self.rows.blocks():
            self.gpu_index.add(block)

    @torch.no_grad()
    def topk(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices (N, k) int64, scores (N, k) float32) on the CPU, best first; k is capped at the database size."""
        q = np.ascontiguousarray(queries.detach().float().cpu().numpy())
        n, m = len(q), len(self.rows)
        k = min(k, m)
        if n == 0 or k == 0:
            return torch.empty(n, k, dtype=torch.long), torch.empty(n, k)
        if self.metric == "l2":
            _, idx = self._search(q, candidates(k, m))
            dist, idx = self._refine(q, idx)
            dist, idx = np.ascontiguousarray(dist[:, :k]), np.ascontiguousarray(idx[:, :k])
        else:
            dist, idx = self._search(q, k)
        return torch.from_numpy(idx), torch.from_numpy(dist)

    def _search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """faiss's candidates: (squared l2 by the expanded form, or inner products), best first."""
        if self.gpu_index is not None:
            return self.gpu_index.search(q, k)
        with _collector(self.faiss):
            return self._search_cpu(q, k)

    def _search_cpu(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        faiss, n, d = self.faiss, len(q), self.dim
        merged = None
        for s, block in self.rows.blocks():
            kb = min(k, len(block))
            dist = np.empty((n, kb), dtype=np.float32)
            idx = np.empty((n, kb), dtype=np.int64)
            if self.metric == "l2":
                assert self.norms is not None
                faiss.knn_L2sqr(faiss.swig_ptr(q), faiss.swig_ptr(block), d, n, len(block), kb,
                                faiss.swig_ptr(dist), faiss.swig_ptr(idx), faiss.swig_ptr(self.norms[s:]))
            else:
                faiss.knn_inner_product(faiss.swig_ptr(q), faiss.swig_ptr(block), d, n, len(block), kb,
                                        faiss.swig_ptr(dist), faiss.swig_ptr(idx))
            if s == 0 and len(block) == len(self.rows):
                return dist, idx
            if merged is None:
                merged = faiss.ResultHeap(n, k, keep_max=self.metric != "l2")
            idx += s
            merged.add_result(dist, idx)
        assert merged is not None
        merged.finalize()
        return merged.D, merged.I

    def _refine(self, q: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The candidates' RMS distances from the differences, best first: neighbours.refine_l2, ExactIndex's own
        recomputation, so that both backends store the same bits."""
        qt, it = torch.from_numpy(q), torch.from_numpy(idx)
        if self.rows.resident:
            rms, out = refine_l2(torch.from_numpy(self.rows.all()), qt, it)
            return rms.numpy(), out.numpy()
        # A streamed file: each step's candidate rows gathered (the file's pages given back), then the same.
        n, k = idx.shape
        rms = np.empty((n, k), dtype=np.float32)
        out = np.empty((n, k), dtype=np.int64)
        step = max(1, REFINE_BYTES // (k * self.dim * 4))
        for s in range(0, n, step):
            ids = idx[s:s + step]
            unique, local = np.unique(ids, return_inverse=True)
            db = torch.from_numpy(self.rows.take(unique))
            r, j = refine_l2(db, qt[s:s + step], torch.from_numpy(local.reshape(ids.shape).astype(np.int64)))
            rms[s:s + len(ids)] = r.numpy()
            out[s:s + len(ids)] = unique[j.numpy()]
        return rms, out


@contextmanager
def _collector(faiss) -> Iterator[None]:
    """faiss's reservoir from RESERVOIR_K candidates for the searches inside; its setting (one for the process) is
    put back after."""
    before = faiss.cvar.distance_compute_min_k_reservoir
    faiss.cvar.distance_compute_min_k_reservoir = min(before, RESERVOIR_K)
    try:
        yield
    finally:
        faiss.cvar.distance_compute_min_k_reservoir = before
