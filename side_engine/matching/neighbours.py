"""Exact nearest-neighbour search in blocks: memory bounded by two chunk x chunk float blocks, whatever N and M.

A neighbour index answers topk(queries, k). ExactIndex is the default backend (torch, exact); the protocol
leaves room for others (FAISS) without changing callers. Scores are the raw metric, never mean-centred.
"""

from __future__ import annotations

from typing import Protocol

import torch


class NeighbourIndex(Protocol):
    metric: str

    def topk(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices (N, k) int64, scores (N, k) float32), best first."""
        ...


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
        # One scores block reused for the whole search: on a CPU a fresh one per block is fresh pages from the
        # OS, and their first-touch faults cost a sizeable part of the block's GEMM.
        block = torch.empty(min(self.chunk, n) * min(self.chunk, m), device=dev)
        for qs in range(0, n, self.chunk):
            q = q_all[qs:qs + self.chunk]
            best_s, best_i = self._block_topk(q, 0, k, block)
            for ds in range(self.chunk, m, self.chunk):
                s, i = self._block_topk(q, ds, k, block)
                best_s, j = torch.topk(torch.cat([best_s, s], 1), min(k, best_s.shape[1] + s.shape[1]), dim=1,
                                       largest=not l2)
                best_i = torch.cat([best_i, i], 1).gather(1, j)
            if l2:
                best_s, best_i = self._refine(q, best_i)
            out_s[qs:qs + len(q)] = best_s
            out_i[qs:qs + len(q)] = best_i
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
        """The chosen few's RMS distances recomputed from the differences (the expanded form cancels badly for
        near-copies), best first. As many queries at a time as fill one chunk x chunk buffer, reused: smaller
        steps would stay in cache, but each op wakes the thread pool, and on a busy machine every wake-up costs a
        scheduler time slice, whatever the op's size (BENCHMARKS.md, matching)."""
        n, k = idx.shape
        dim = self.db.shape[1]
        rows = max(1, min(n, self.chunk * self.chunk // (k * dim)))
        buf = torch.empty(rows * k, dim, device=q.device)
        rms = torch.empty(n, k, device=q.device)
        for s in range(0, n, rows):
            ii = idx[s:s + rows]
            c = torch.index_select(self.db, 0, ii.reshape(-1), out=buf[:ii.numel()]).view(len(ii), k, dim)
            c.sub_(q[s:s + rows, None])
            torch.linalg.vector_norm(c, dim=-1, out=rms[s:s + rows])
        rms.div_(dim ** 0.5)
        rms, order = rms.sort(dim=1)
        return rms, idx.gather(1, order)
