"""Surrogate labels: where SIDE's conditions come from (method doc section 1.2).

"classifier": a time-independent ResNet f_TI trained on the labelled training set, or the user's own.
"clusters": k-means on descriptors of the model's own unconditional samples (D_syn; neither the training images
nor any human labels are used); clusters whose members' mean cosine to their centre reaches the cohesion threshold
become labels, and f_TI is the differentiable nearest-centre classifier over them (so OL-TI guidance works for both
sources). Samples whose own cluster fails the filter are dropped from TDKD, not re-labelled: re-labelling them
would make the surrogate classes diffuse, which is what the filter prevents (ClustersConfig.relabel_dropped
restores re-labelling as an explicit choice).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..config import ClassifierConfig, ClustersConfig
from ..events import Check
from .classifier import ResNetClassifier
from .training import WeightsCheckpoint, fit


def random_shift(x: torch.Tensor, gen: torch.Generator, max_shift: int) -> torch.Tensor:
    """Translate each image by up to max_shift pixels (replicate padding): the only augmentation f_TI gets."""
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def train_time_independent(
    images: torch.Tensor,
    labels: np.ndarray,
    num_classes: int,
    cfg: ClassifierConfig,
    checkpoint: Path,
    check: Check,
) -> Generator[tuple[int, float, float], None, ResNetClassifier]:
    """f_TI on the labelled training set; images in [-1, 1]. A generator: see training.fit."""
    torch.manual_seed(cfg.seed)
    model = ResNetClassifier(images.shape[1], num_classes, cfg.width, cfg.blocks)
    y_all = torch.as_tensor(labels, dtype=torch.long)
    max_shift = max(1, images.shape[-1] // 16)

    def step(m, gen):
        idx = torch.randint(0, len(images), (min(cfg.batch, len(images)),), generator=gen)
        x = random_shift(images[idx], gen, max_shift)
        logits = m(x)
        acc = (logits.argmax(1) == y_all[idx]).float().mean().item()
        return F.cross_entropy(logits, y_all[idx]), acc

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    saved = WeightsCheckpoint(model, checkpoint, optimizer)
    return (yield from fit(model, step, optimizer, cfg.steps, cfg.seed, saved, check))


class CentroidClassifier(nn.Module):
    """logits = cos(descriptor(x), kept centre) / temperature; x in [-1, 1] like the DPM's samples. Guidance
    differentiates this through the descriptor, which therefore has to follow the caller's grad mode."""

    centres: torch.Tensor  # a registered buffer

    def __init__(self, descriptor, centres: torch.Tensor, temperature: float):
        super().__init__()
        self.descriptor = descriptor
        self.register_buffer("centres", F.normalize(centres.float(), dim=1))
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = F.normalize(self.descriptor((x.float() / 2 + 0.5).clamp(0, 1)), dim=1)
        return d @ self.centres.T / self.temperature


@dataclass
class ClusterResult:
    centres: np.ndarray  # (K_kept, d) unit vectors
    kept: np.ndarray  # indices of the kept clusters among the k-means clusters
    cohesion: np.ndarray  # (k,) mean cosine of members to their centre, every cluster
    sizes: np.ndarray  # (k,)
    assignment: np.ndarray  # (N,) each sample's own k-means cluster

    @property
    def in_kept(self) -> np.ndarray:
        """(N,) bool: the sample's own cluster passed the filter (the samples TDKD distils on)."""
        return np.isin(self.assignment, self.kept)


def cluster(descriptors: np.ndarray, cfg: ClustersConfig) -> ClusterResult:
    """k-means (scikit-learn) on unit descriptors of D_syn, then the filter: a cluster is kept when its members'
    mean cosine to their centre is at least cfg.cohesion and it has at least cfg.min_size members."""
    from sklearn.cluster import KMeans

    x = descriptors / np.maximum(np.linalg.norm(descriptors, axis=1, keepdims=True), 1e-12)
    k = min(cfg.k, len(x))
    # The ignore: sklearn leaves n_init unannotated, so it is inferred as a str from its default "auto".
    km = KMeans(n_clusters=k, n_init=3, random_state=cfg.seed).fit(x)  # pyright: ignore[reportArgumentType]
    labels = km.labels_
    assert labels is not None  # fit sets it; the None in its inferred type starts sklearn's best-of-n_init search
    centres = km.cluster_centers_ / np.maximum(np.linalg.norm(km.cluster_centers_, axis=1, keepdims=True), 1e-12)
    cos = (x * centres[labels]).sum(1)
    sizes = np.bincount(labels, minlength=k)
    cohesion = np.bincount(labels, weights=cos, minlength=k) / np.maximum(sizes, 1)
    kept = np.flatnonzero((cohesion >= cfg.cohesion) & (sizes >= max(cfg.min_size, 1)))
    return ClusterResult(centres=centres[kept].astype(np.float32), kept=kept, cohesion=cohesion, sizes=sizes,
                         assignment=labels.astype(np.int64))
