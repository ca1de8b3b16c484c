"""Matching generated images against the training set: descriptor + exact search + calibration.

For each generated image the matcher returns its k nearest training images with the raw metric (RMS l2 or
cosine) and the score the bands apply to (nL2 for pixels, cosine for embeddings), best first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..inference import batched
from ..vocabulary import Direction
from .descriptors import Descriptor
from .neighbours import ExactIndex
from .similarity import auto_n_neighbours, calibrated_l2, gu_ratio


@dataclass
class Matches:
    nn_idx: np.ndarray  # (N, k) int
    nn_raw: np.ndarray  # (N, k) RMS l2 or cosine
    nn_score: np.ndarray  # (N, k) nL2 or cosine: what the bands apply to
    normalizer: np.ndarray  # (N,) nL2's denominator; 1 for cosine
    gu: np.ndarray | None  # (N,) Gu's ratio (pixel descriptor only)


class Matcher:
    def __init__(self, descriptor: Descriptor, train_images: torch.Tensor, k: int = 10, n_neighbours: int = 0,
                 alpha: float = 0.5, chunk: int = 4096):
        self.descriptor = descriptor
        self.n_train = len(train_images)
        self.k = min(k, self.n_train)
        self.n = min(n_neighbours or auto_n_neighbours(self.n_train), self.n_train)
        self.alpha = alpha
        feats = batched(descriptor, train_images)
        self.index = ExactIndex(feats, "l2" if descriptor.direction == Direction.DISTANCE else "cosine", chunk)

    @property
    def direction(self) -> Direction:
        return self.descriptor.direction

    def match(self, images: torch.Tensor) -> Matches:
        """images (N, C, H, W) in [0, 1], as stored (after 8-bit quantisation)."""
        q = batched(self.descriptor, images)
        if self.direction == Direction.DISTANCE:
            idx, l2 = self.index.topk(q, max(self.k, self.n, 2 if self.n_train > 1 else 1))
            l2 = l2.numpy().astype(np.float64)
            nl2, norm = calibrated_l2(l2, self.n, self.alpha)
            return Matches(idx[:, :self.k].numpy(), l2[:, :self.k], nl2[:, :self.k], norm, gu_ratio(l2))
        idx, cos = self.index.topk(q, self.k)
        cos = cos.numpy().astype(np.float64)
        return Matches(idx.numpy(), cos, cos, np.ones(len(cos)), None)
