"""Exact nearest-neighbour search in blocks: memory bounded by chunk x chunk scores, whatever N and M.

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
        self.sq_norms = (self.db * self.db).sum(1) if metric == "l2" else None

    def __len__(self) -> int:
        return len(self.db)

    @torch.no_grad()
    def topk(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        q_all = queries.float().to(self.db.device)
        k = min(k, len(self.db))
        out_idx, out_score = [], []
        for qs in range(0, len(q_all), self.chunk):
            q = q_all[qs:qs + self.chunk]
            best_s = torch.empty(len(q), 0, device=q.device)
            best_i = torch.empty(len(q), 0, dtype=torch.long, device=q.device)
            for ds in range(0, len(self.db), self.chunk):
                d = self.db[ds:ds + self.chunk]
                if self.metric == "l2":
                    # Squared distances up to the query's own norm, which does not change the order.
                    s = self.sq_norms[ds:ds + self.chunk][None] - 2 * (q @ d.T)
                    s, i = torch.topk(torch.cat([best_s, s], 1), k, dim=1, largest=False)
                else:
                    s = q @ d.T
                    s, i = torch.topk(torch.cat([best_s, s], 1), k, dim=1, largest=True)
                cand = torch.cat([best_i, torch.arange(ds, ds + len(d), device=q.device).expand(len(q), -1)], 1)
                best_s, best_i = s, cand.gather(1, i)
            if self.metric == "l2":
                # Recompute the chosen few exactly: the expanded form cancels badly for near-copies.
                diff = q[:, None, :] - self.db[best_i]
                rms = diff.pow(2).mean(-1).sqrt()
                rms, order = rms.sort(dim=1)
                best_s, best_i = rms, best_i.gather(1, order)
            out_idx.append(best_i)
            out_score.append(best_s)
        return torch.cat(out_idx), torch.cat(out_score)
