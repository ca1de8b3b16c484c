"""Matching generated images against the training set: descriptor + exact search + calibration.

For each generated image the matcher returns its k nearest training images with the raw metric (RMS l2 or
cosine) and the score the bands apply to (nL2 for pixels, cosine for embeddings), best first.

The training descriptors are computed once, in batches streamed from the training folder (`build_steps`, which
yields progress and takes the cancel hook): into an audit's descriptors/ folder when the caller gives one (see
cache.py: memory-mapped, tied to the training manifest, resumed where an interrupted build stopped), otherwise in
memory, or for a set larger than cache.RESIDENT_BYTES into a temporary file removed with the matcher. A matcher
made from a tensor of images builds at once, in memory; one made from a TrainingSet builds when asked, or on its
first match.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..dataset import TrainingSet
from ..events import Check, no_check
from ..inference import INFERENCE_BATCH, batched
from ..vocabulary import Direction
from . import cache as descriptor_cache
from .cache import ArrayRows, DescriptorCache, MappedRows
from .descriptors import Descriptor
from .neighbours import ExactIndex, NeighbourIndex, index_backend
from .similarity import auto_n_neighbours, calibrated_l2, gu_ratio


@dataclass
class Matches:
    nn_idx: np.ndarray  # (N, k) int
    nn_raw: np.ndarray  # (N, k) RMS l2 or cosine
    nn_score: np.ndarray  # (N, k) nL2 or cosine: what the bands apply to
    normalizer: np.ndarray  # (N,) nL2's denominator; 1 for cosine
    gu: np.ndarray | None  # (N,) Gu's ratio (pixel descriptor only)


class Matcher:
    """train: the training images, a (N, C, H, W) tensor in [0, 1] or a TrainingSet (streamed from disk).
    index: matching.index (auto | faiss | exact, neighbours.index_backend); device: where the search runs (default:
    the tensor's device, else the CPU); threads: faiss's threads (0: its default)."""

    def __init__(self, descriptor: Descriptor, train: torch.Tensor | TrainingSet, k: int = 10, n_neighbours: int = 0,
                 alpha: float = 0.5, chunk: int = 4096, index: str = "auto", device: str | None = None,
                 threads: int = 0):
        self.descriptor = descriptor
        self.train: torch.Tensor | TrainingSet | None = train
        self.n_train = len(train)
        self.k = min(k, self.n_train)
        self.n = min(n_neighbours or auto_n_neighbours(self.n_train), self.n_train)
        self.alpha = alpha
        self.chunk = chunk
        self.device = device or (str(train.device) if isinstance(train, torch.Tensor) else "cpu")
        self.backend = index_backend(index, self.device) if self.n_train else "exact"
        self.threads = threads
        self.index: NeighbourIndex | None = None
        self.rows: ArrayRows | MappedRows | None = None
        if isinstance(train, torch.Tensor):
            self.build()
            self.train = None  # the descriptors are what the matcher needs; the pixels may go

    def probe(self) -> int:
        """The descriptor run on the first training images (a descriptor that fails on them fails here, before an
        audit writes anything); returns its dimension."""
        if self.rows is not None:
            return self.rows.dim
        assert self.train is not None
        first = next(iter(self.train.batches(2))) if isinstance(self.train, TrainingSet) else (0, self.train[:2])
        with torch.no_grad():
            return int(self.descriptor(first[1]).shape[1])

    @property
    def direction(self) -> Direction:
        return self.descriptor.direction

    @property
    def metric(self) -> str:
        return "l2" if self.direction == Direction.DISTANCE else "cosine"

    @property
    def cache_identity(self) -> dict:
        """What the cached descriptors depend on besides the images: the descriptor and the model space."""
        ident: dict[str, object] = dict(getattr(self.descriptor, "identity", None) or {"name": self.descriptor.name})
        if isinstance(self.train, TrainingSet):
            ident.update(channels=self.train.channels, size=self.train.size)
        return ident

    def build(self, cache_dir: str | Path | None = None, progress=None, check: Check = no_check) -> None:
        """build_steps run to the end; progress(done, total) after each batch."""
        for done, total in self.build_steps(cache_dir, check):
            if progress is not None:
                progress(done, total)

    def build_steps(self, cache_dir: str | Path | None = None, check: Check = no_check,
                    batch: int = INFERENCE_BATCH) -> Iterator[tuple[int, int]]:
        """Compute (or find in cache_dir) the training descriptors, then make the index. Yields (done, total)
        training images first from what the cache holds, then after each batch; check() between batches."""
        n = self.n_train
        if self.index is not None:
            yield n, n
            return
        assert self.train is not None
        manifest = self.train.manifest_sha256 if isinstance(self.train, TrainingSet) else ""
        cache = None
        if cache_dir is not None and manifest:
            cache = DescriptorCache.open(cache_dir, n, self.cache_identity, manifest)
        start = cache.done if cache is not None else 0
        yield start, n
        array: np.ndarray | None = None
        train = self.train
        batches = (train.batches(batch, start) if isinstance(train, TrainingSet)
                   else ((s, train[s:s + batch]) for s in range(start, n, batch)))
        try:
            for s, images in batches:
                check()
                with torch.no_grad():
                    feats = self.descriptor(images).float().cpu().numpy()
                if cache is None and array is None:  # the first batch tells the dimension: choose where rows go
                    dim = feats.shape[1]
                    folder = cache_dir
                    if folder is None and n * dim * 4 > descriptor_cache.RESIDENT_BYTES:
                        folder = tempfile.mkdtemp(prefix="side-descriptors-")
                        weakref.finalize(self, shutil.rmtree, folder, True)
                    if folder is not None:
                        cache = DescriptorCache.create(folder, n, dim, self.cache_identity, manifest)
                    else:
                        array = np.empty((n, dim), dtype=np.float32)
                if cache is not None:
                    cache.write(s, feats)
                    cache.commit(s + len(feats))
                else:
                    assert array is not None
                    array[s:s + len(feats)] = feats
                yield s + len(feats), n
            if cache is not None:
                cache.commit(n, force=True)
        finally:
            if cache is not None:
                cache.close()
        if cache is not None:
            self.rows = cache.mapped()
        else:
            self.rows = ArrayRows(array if array is not None else np.zeros((0, 0), dtype=np.float32))
        self.index = self.make_index(self.rows)

    def make_index(self, rows: ArrayRows | MappedRows) -> NeighbourIndex:
        if self.backend == "faiss":
            from .faiss_index import FaissIndex

            return FaissIndex(rows, self.metric, self.device, self.threads)
        if self.device == "cpu":
            db = torch.from_numpy(rows.all())  # a mapped file becomes resident as the search reads it
        else:
            db = torch.empty(len(rows), rows.dim, device=self.device)
            for s, block in rows.blocks():
                db[s:s + len(block)] = torch.from_numpy(block).to(self.device)
        return ExactIndex(db, self.metric, self.chunk)

    def match(self, images: torch.Tensor) -> Matches:
        """images (N, C, H, W) in [0, 1], as stored (after 8-bit quantisation)."""
        if self.index is None:
            self.build()
        assert self.index is not None
        with torch.no_grad():
            q = batched(self.descriptor, images)
        if self.direction == Direction.DISTANCE:
            idx, l2 = self.index.topk(q, max(self.k, self.n, 2 if self.n_train > 1 else 1))
            idx, l2 = idx.cpu().numpy(), l2.cpu().numpy().astype(np.float64)
            nl2, norm = calibrated_l2(l2, self.n, self.alpha)
            return Matches(idx[:, :self.k], l2[:, :self.k], nl2[:, :self.k], norm, gu_ratio(l2))
        idx, cos = self.index.topk(q, self.k)
        cos = cos.cpu().numpy().astype(np.float64)
        # Unit vectors' dot product rounds to 1 + 1e-7 for an exact copy, outside the high band (closed at 1): the
        # score the bands apply to is clipped to the cosine's range, the raw value kept as computed.
        return Matches(idx.cpu().numpy(), cos, np.clip(cos, -1.0, 1.0), np.ones(len(cos)), None)
