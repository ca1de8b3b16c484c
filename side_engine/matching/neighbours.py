"""Exact nearest-neighbour search in blocks: memory bounded by one chunk x chunk float block and the recomputation's
buffer, whatever N and M.

A neighbour index answers topk(queries, k). Two backends give the same neighbours and scores: FaissIndex
(faiss_index.py: faiss's flat search, then the same exact recomputation), used where faiss imports, and ExactIndex
(torch), the fallback and the reference the tests hold FaissIndex to; `matching.index` chooses (index_backend).
For l2 both pick MARGIN candidates more than asked for by the expanded form and keep the k nearest by refine_l2's
recomputed distance (equal distances by index): the same bits from either, on any number of threads (cosine: the
dot products of each backend's matrix product, equal up to the last bits). Scores are the raw metric, never
mean-centred.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any, Protocol

import numpy as np
import torch

from ..errors import InputError

INDEX_KINDS = ("auto", "faiss", "exact")


class NeighbourIndex(Protocol):
    metric: str

    def topk(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices (N, k) int64, scores (N, k) float32), best first."""
        ...


# l2: candidates picked by the expanded form beyond the k asked for, recomputed and cut to k after the exact sort.
# Where the expanded form's rounding would order a near-tie at the k-th place otherwise than the exact distances
# do (or than another BLAS, or the same one on another number of threads: faiss's does), the exact distances
# decide: the k returned are the k nearest by the recomputed score.
MARGIN = 8


def candidates(k: int, m: int) -> int:
    """How many candidates an l2 search recomputes for k neighbours in a database of m rows."""
    return min(k + MARGIN, m)


def index_backend(kind: str, device: str = "cpu") -> str:
    """"faiss" or "exact" for matching.index = kind on a device. auto: faiss where it imports, unless the audit runs
    on CUDA with a faiss without GPU support (faiss-cpu): there ExactIndex searches on the GPU instead."""
    if kind not in INDEX_KINDS:
        raise ValueError(kind)
    if kind == "exact":
        return "exact"
    if importlib.util.find_spec("faiss") is None:
        if kind == "faiss":
            raise InputError("matching.index", "is 'faiss' but faiss does not import: pip install faiss-cpu (or "
                             "faiss-gpu), or set matching.index = 'auto'")
        return "exact"
    if kind == "auto" and device.startswith("cuda"):
        import faiss

        from .faiss_index import faiss_has_gpu

        return "faiss" if faiss_has_gpu(faiss) else "exact"
    return "faiss"


class ExactIndex:
    """metric "l2": per-pixel RMS distance sqrt(mean((a - b)^2)); "cosine": dot product of unit vectors."""

    def __init__(self, database: torch.Tensor, metric: str = "l2", chunk: int = 4096):
        if metric not in ("l2", "cosine"):
            raise ValueError(metric)
        self.db = database.float().contiguous()
        self.metric = metric
        self.chunk = chunk
        self.sq_norms = (torch.cat([(d * d).sum(1) for d in self.db.split(chunk)]) if metric == "l2" and len(self.db)
                         else None)

    def __len__(self) -> int:
        return len(self.db)

    @torch.no_grad()
    def topk(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        q_all = queries.float().to(self.db.device)
        n, m = len(q_all), len(self.db)
        k = min(k, m)
        dev = self.db.device
        out_i = torch.empty(n, k, dtype=torch.long, device=dev)
        out_s = torch.empty(n, k, device=dev)
        if n == 0 or k == 0:
            return out_i, out_s
        l2 = self.metric == "l2"
        kc = candidates(k, m) if l2 else k
        # One scores block reused for the whole search: on a CPU a fresh one per block is fresh pages from the
        # OS, and their first-touch faults cost a sizeable part of the block's GEMM.
        block = torch.empty(min(self.chunk, n) * min(self.chunk, m), device=dev)
        for qs in range(0, n, self.chunk):
            q = q_all[qs:qs + self.chunk]
            best_s, best_i = self._block_topk(q, 0, kc, block)
            for ds in range(self.chunk, m, self.chunk):
                s, i = self._block_topk(q, ds, kc, block)
                best_s, j = torch.topk(torch.cat([best_s, s], 1), min(kc, best_s.shape[1] + s.shape[1]), dim=1,
                                       largest=not l2)
                best_i = torch.cat([best_i, i], 1).gather(1, j)
            if l2:
                best_s, best_i = self._refine(q, best_i)
            out_s[qs:qs + len(q)] = best_s[:, :k]
            out_i[qs:qs + len(q)] = best_i[:, :k]
        return out_i, out_s

    def _block_topk(self, q: torch.Tensor, ds: int, k: int, block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores, database indices) of the top k in one chunk of database rows, from row ds, computed in block:
        each chunk's own top k first, then topk merges 2k, so that the chunk's scores are never copied."""
        d = self.db[ds:ds + self.chunk]
        s = block[:len(q) * len(d)].view(len(q), len(d))
        if self.sq_norms is not None:  # l2 (the norms exist for any database that is searched)
            # Squared distances up to the query's own norm, which does not change the order; one pass.
            torch.addmm(self.sq_norms[ds:ds + len(d)], q, d.T, alpha=-2, out=s)
        else:
            torch.mm(q, d.T, out=s)
        s, i = torch.topk(s, min(k, len(d)), dim=1, largest=self.metric != "l2")
        i += ds
        return s, i

    def _refine(self, q: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return refine_l2(self.db, q, idx, refine_bytes(self.db.device, self.chunk))


# The recomputation's buffer on a CPU: measured on 2 shared cores (BENCHMARKS.md, matching), 4-16 MiB is 2-7x faster
# than one chunk x chunk block (64 MiB, out of cache) and far faster than a few queries a step, where every op's
# wake-up of the thread pool costs a scheduler time slice on a busy machine.
CPU_REFINE_BYTES = 8 << 20


def refine_bytes(device: torch.device | str, chunk: int) -> int:
    """The recomputation's buffer: CPU_REFINE_BYTES on a CPU; one chunk x chunk block on a GPU (fewer launches)."""
    return CPU_REFINE_BYTES if torch.device(device).type == "cpu" else chunk * chunk * 4


def refine_l2(db: torch.Tensor, q: torch.Tensor, idx: torch.Tensor, buffer_bytes: int = CPU_REFINE_BYTES,
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The chosen few's RMS distances recomputed from the differences (the expanded form cancels badly for
    near-copies), best first: (rms (N, k), indices (N, k)). db (M, d) holds the rows idx (N, k) points to; equal
    scores are ordered by index, so the result depends neither on the candidates' order nor on how many queries a
    step takes: ExactIndex and FaissIndex store the same bits."""
    if idx.device.type != "cpu":
        idx = idx.sort(dim=1).values
        rms, order = rms_l2(db, q, idx, buffer_bytes).sort(dim=1, stable=True)
        return rms, idx.gather(1, order)
    rms, order = _by_score_then_index(rms_l2(db, q, idx, buffer_bytes).numpy(), idx.numpy())
    return torch.from_numpy(rms), torch.from_numpy(order)


def _by_score_then_index(rms: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's (scores, indices) by score, equal scores by index, as one sort of (score bits, index) keys: the
    bits of non-negative float32 order as integers do, and an index fits in 32 bits (4G rows of descriptors would not
    fit in memory). Twice as fast here as sorting the indices, then the scores stably."""
    key = (rms.view(np.uint32).astype(np.uint64) << np.uint64(32)) | idx.astype(np.uint64)
    key.sort(axis=1)
    return (key >> np.uint64(32)).astype(np.uint32).view(np.float32), (key & np.uint64(0xFFFFFFFF)).astype(np.int64)


def rms_l2(db: torch.Tensor, q: torch.Tensor, idx: torch.Tensor, buffer_bytes: int = CPU_REFINE_BYTES,
           ) -> torch.Tensor:
    """(N, k) float32: the per-pixel RMS distance sqrt(sum((db[idx[i, j]] - q[i])^2) / d), the score of every l2
    audit, from the float32 differences.

    One definition for every use on a CPU (the search's recomputation, `side check`): faiss's own kernel
    (fvec_L2sqr, through fvec_L2sqr_by_idx or pairwise_indexed_L2sqr) where faiss imports, each pair summed alone,
    so a pair's bits depend neither on the other pairs asked for with it nor on their order (tests/engine/
    test_neighbours.py holds faiss to that). It reads each chosen row once: 3-4x faster than torch's gather,
    difference and norm, which sum in another order (the last bit differs), and which are used on a GPU or without
    faiss, as many queries at a time as fill buffer_bytes. On faiss, buffer_bytes is the tile: a database larger than
    two tiles has its pairs taken a tile of rows at a time, so that its rows are read again from the cache, not from
    memory (BENCHMARKS.md, matching)."""
    n, k = idx.shape
    dim = db.shape[1]
    if db.device.type == "cpu" and _faiss_kernel() is not None:
        return torch.from_numpy(_rms_by_faiss(db.numpy(), q.numpy(), idx.numpy(), buffer_bytes))
    rows = max(1, min(n, buffer_bytes // max(1, k * dim * 4)))
    buf = torch.empty(rows * k, dim, device=q.device)
    rms = torch.empty(n, k, device=q.device)
    for s in range(0, n, rows):
        ii = idx[s:s + rows]
        c = torch.index_select(db, 0, ii.reshape(-1), out=buf[:ii.numel()]).view(len(ii), k, dim)
        c.sub_(q[s:s + rows, None])
        torch.linalg.vector_norm(c, dim=-1, out=rms[s:s + rows])
    return rms.div_(dim ** 0.5)


@functools.cache
def _faiss_kernel() -> Any:
    """faiss (its SWIG module: pyright sees only part of it) where it imports, else None; imported at the first
    recomputation, not with this module."""
    if importlib.util.find_spec("faiss") is None:
        return None
    import faiss

    return faiss


def _rms_by_faiss(db: np.ndarray, q: np.ndarray, idx: np.ndarray, tile_bytes: int) -> np.ndarray:
    faiss = _faiss_kernel()
    assert faiss is not None
    db, q = (np.ascontiguousarray(a, dtype=np.float32) for a in (db, q))
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    n, k = idx.shape
    dim = db.shape[1]
    out = np.empty((n, k), dtype=np.float32)
    tile = max(1, tile_bytes // (dim * 4))
    tiles = -(-len(db) // tile)
    if out.size and tiles <= 2:
        faiss.fvec_L2sqr_by_idx(faiss.swig_ptr(out), faiss.swig_ptr(q), faiss.swig_ptr(db), faiss.swig_ptr(idx),
                                dim, n, k)
    elif out.size:
        # The pairs by tile of database rows, each tile's in query order (a stable radix sort of the tile numbers).
        flat = idx.ravel()
        order = np.argsort((flat // tile).astype(np.uint16 if tiles < 1 << 16 else np.int64), kind="stable")
        queries, rows = order // k, flat[order]
        dist = np.empty(len(order), dtype=np.float32)
        faiss.pairwise_indexed_L2sqr(dim, len(order), faiss.swig_ptr(q), faiss.swig_ptr(queries), faiss.swig_ptr(db),
                                     faiss.swig_ptr(rows), faiss.swig_ptr(dist))
        out.ravel()[order] = dist
    np.sqrt(out, out=out)
    out /= np.float32(dim ** 0.5)
    return out
