"""Time-dependent knowledge distillation (method doc section 1.3).

f_TD learns f_TI's pseudo labels of the model's own samples x0 from their noised versions
x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, on the target model's own noise schedule. Its agreement with the
pseudo labels per t-bucket, on held-out samples, is the health check of the whole attack.
"""

from __future__ import annotations

from collections.abc import Generator
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..config import TDKDConfig
from ..events import Check
from ..inference import batched
from .classifier import ResNetClassifier
from .training import WeightsCheckpoint, fit


@torch.no_grad()
def pseudo_labels(f_ti, x0: torch.Tensor) -> torch.Tensor:
    """softmax(f_TI(x0)) for every sample, (N, K); argmax is the hard label."""
    return batched(lambda x: F.softmax(f_ti(x).float(), dim=1), x0)


def split_holdout(n: int, fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices; the held-out tail measures f_TD's health on samples it never saw."""
    n_hold = max(1, round(n * fraction)) if n > 1 else 0
    return np.arange(n - n_hold), np.arange(n - n_hold, n)


def distill(
    f_td: ResNetClassifier,
    x0: torch.Tensor,
    targets: torch.Tensor,
    noise_schedule,
    cfg: TDKDConfig,
    checkpoint: Path,
    check: Check,
) -> Generator[tuple[int, float, float], None, ResNetClassifier]:
    """x0 in [-1, 1]; targets: (N, K) probabilities from f_TI (hard: one-hot of the argmax).
    A generator: see training.fit."""
    T = noise_schedule.config.num_train_timesteps
    hard = targets.argmax(1)

    def step(m, gen):
        idx = torch.randint(0, len(x0), (min(cfg.batch, len(x0)),), generator=gen)
        t = torch.randint(0, T, (len(idx),), generator=gen)
        eps = torch.randn(x0[idx].shape, generator=gen)
        logits = m(noise_schedule.add_noise(x0[idx], eps, t), t)
        if cfg.soft:
            loss = F.kl_div(F.log_softmax(logits, 1), targets[idx], reduction="batchmean")
        else:
            loss = F.cross_entropy(logits, hard[idx])
        return loss, (logits.argmax(1) == hard[idx]).float().mean().item()

    optimizer = torch.optim.AdamW(f_td.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    saved = WeightsCheckpoint(f_td, checkpoint, optimizer)
    return (yield from fit(f_td, step, optimizer, cfg.steps, cfg.seed, saved, check))


@torch.no_grad()
def health(f_td, x0: torch.Tensor, labels: torch.Tensor, noise_schedule, buckets: int, seed: int,
           per_sample: int = 4) -> list[tuple[int, int, float, int]]:
    """(t_lo, t_hi inclusive, agreement of argmax f_TD(x_t, t) with the pseudo label, n) per t-bucket."""
    T = noise_schedule.config.num_train_timesteps
    edges = np.linspace(0, T, buckets + 1).round().astype(int)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for lo, hi in pairwise(edges):
        if hi <= lo:
            continue
        x = x0.repeat(per_sample, 1, 1, 1)
        y = labels.repeat(per_sample)
        t = torch.randint(int(lo), int(hi), (len(x),), generator=gen)
        eps = torch.randn(x.shape, generator=gen)
        pred = batched(lambda x, e, t: f_td(noise_schedule.add_noise(x, e, t), t).argmax(1), x, eps, t)
        rows.append((int(lo), int(hi) - 1, float((pred == y).float().mean()), len(x)))
    return rows
