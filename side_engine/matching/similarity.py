"""Calibrated similarity: Carlini's nL2 and Gu's ratio, from sorted nearest distances (pure functions)."""

from __future__ import annotations

import numpy as np


def auto_n_neighbours(n_train: int) -> int:
    """nL2's n scaled with the training set: N/1000 clamped to [2, 50] (50 on CIFAR-10's 50,000 images).

    With the paper's fixed n = 50 a small set's 50 nearest cover much of it and nL2 reads low everywhere."""
    return int(min(50, max(2, n_train // 1000)))


def calibrated_l2(l2_sorted: np.ndarray, n: int, alpha: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """nl2(x^, x_j) = l2(x^, x_j) / (alpha * mean of the n nearest l2, nearest included).

    l2_sorted: (N, >= n) ascending. Returns (nl2 for every column, normaliser per row)."""
    l2_sorted = np.asarray(l2_sorted, dtype=np.float64)
    norm = alpha * l2_sorted[:, :n].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        nl2 = np.where(norm[:, None] > 0, l2_sorted / norm[:, None], 0.0)
    return nl2, norm


def gu_ratio(l2_sorted: np.ndarray) -> np.ndarray:
    """l2 to the nearest over l2 to the second nearest (memorized if < 1/3, Gu et al. 2023)."""
    l2_sorted = np.asarray(l2_sorted, dtype=np.float64)
    if l2_sorted.shape[1] < 2:
        return np.full(len(l2_sorted), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(l2_sorted[:, 1] > 0, l2_sorted[:, 0] / l2_sorted[:, 1], 0.0)
