"""Was this picture extracted? An outside image (a rights holder's picture, in the training folder or not) matched
with the audit's own descriptor against the audit's generated images and its training set (docs/CHECK.md).

Everything comes from what the audit stores; the model is never run:
- the outside image is read as the training images were (dataset.py: EXIF orientation, 16 bits, palette, bombs),
  converted to the model's channels and size, which the audit's generated PNGs have;
- the training descriptors are the audit's own (descriptors/train.f32), or, for an audit that keeps none, are
  computed from the training folder, each file checked against its recorded SHA-256;
- the generated images' descriptors are computed from their stored PNGs, a batch at a time.

Scores mean what the audit's bands mean. Pixels: the outside image is calibrated as the matcher calibrates a
generated image (the same Matcher: nL2's normaliser is alpha times the mean RMS distance to its n nearest training
images, n and alpha as the audit recorded them), and its distance to every generated and training image is divided
by that one normaliser. Embeddings: the cosine, as stored.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
import torch
from PIL import Image

from .. import events as ev
from ..dataset import READ_THREADS, TrainingSet, decode_image
from ..errors import InputError
from ..events import Check, no_check
from ..inference import INFERENCE_BATCH
from ..matching.cache import META_NAME, DescriptorCache
from ..matching.descriptors import make_descriptor
from ..matching.matcher import Matcher
from ..matching.metrics import Bands
from ..pipeline import DESCRIPTORS_DIR
from ..store import AuditStore
from ..vocabulary import BandName, Direction, Guide

TOP = 5  # closest generated and training images per outside image, unless asked for more
STAGE = "check"
TRAINING_PART = "training descriptors"
GENERATED_PART = "generated images"


@dataclass(frozen=True)
class OutsideImage:
    """A picture from outside the audit, as the model would have seen it."""

    path: Path
    sha256: str  # of the file's bytes
    pixels: np.ndarray  # (C, H, W) uint8 in the model's channels and size


@dataclass(frozen=True)
class GeneratedMatch:
    id: int
    guide: Guide
    gamma: float
    label: int
    seed: int
    path: str  # relative to the audit folder
    sha256: str  # as the audit recorded it
    score: float  # what the bands apply to: nL2 under the outside image's normaliser, or the cosine
    raw: float  # RMS pixel distance, or the cosine
    band: BandName | None  # None: outside the bands


@dataclass(frozen=True)
class TrainingMatch:
    index: int  # position in the audit's training list
    path: str  # relative to the training folder
    sha256: str  # as the audit recorded it
    score: float
    raw: float
    band: BandName | None


@dataclass(frozen=True)
class Answer:
    """One outside image and what in the audit lies closest to it, closest first."""

    image: Path
    sha256: str
    normalizer: float  # nL2's denominator (alpha x mean RMS distance to its n nearest training images); 1 for cosine
    generated: tuple[GeneratedMatch, ...]
    training: tuple[TrainingMatch, ...]

    def as_json(self) -> dict:
        def band(b: BandName | None) -> str:
            return str(b) if b else ""

        return {"image": str(self.image), "sha256": self.sha256, "normalizer": self.normalizer,
                "generated": [{"image_id": g.id, "guide": str(g.guide), "gamma": g.gamma, "label": g.label,
                               "seed": g.seed, "path": g.path, "sha256": g.sha256, "score": g.score, "raw": g.raw,
                               "band": band(g.band)} for g in self.generated],
                "training": [{"training_index": t.index, "path": t.path, "sha256": t.sha256, "score": t.score,
                              "raw": t.raw, "band": band(t.band)} for t in self.training]}


def model_space(store: AuditStore) -> tuple[int, int]:
    """(channels, size) of the model, read off the header of the audit's first generated PNG."""
    row = store.db.execute("SELECT path FROM images ORDER BY id LIMIT 1").fetchone()
    if row is None:
        raise InputError(store.root, "holds no generated images yet: there is nothing to check a picture against")
    path = store.path(row[0])
    try:
        with Image.open(path) as img:
            return (1 if img.mode in ("L", "I;16", "I") else 3), img.width
    except (OSError, ValueError) as e:
        raise InputError(path, f"generated image is not readable ({type(e).__name__})") from None


def read_outside(path: str | Path, channels: int, size: int) -> OutsideImage:
    """The file decoded and converted as the audit converted its training images; InputError naming it otherwise."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or type(e).__name__})") from None
    arr = decode_image(data, channels, size)
    if isinstance(arr, str):
        raise InputError(path, arr)
    return OutsideImage(path=path.resolve(), sha256=hashlib.sha256(data).hexdigest(), pixels=arr)


def as_tensor(pixels: Sequence[np.ndarray]) -> torch.Tensor:
    """(C, H, W) uint8 arrays -> (N, C, H, W) float in [0, 1], the scaling the matcher's images had."""
    return torch.from_numpy(np.stack(pixels)).float().div_(255.0)


def read_png(path: Path) -> np.ndarray:
    """A stored generated PNG as (C, H, W) uint8."""
    try:
        with Image.open(path) as img:
            arr = np.asarray(img)
    except OSError as e:
        raise InputError(path, f"generated image is missing or unreadable ({type(e).__name__})") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def nl2(raw: np.ndarray, normalizer: np.ndarray) -> np.ndarray:
    """raw RMS distances (Q, M) over each row's normaliser (Q,): similarity.calibrated_l2's division, with its 0 where
    the normaliser is 0 (n training images identical to the query)."""
    norm = normalizer[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm > 0, raw / norm, 0.0)


def _cache_descriptor(folder: Path) -> dict | None:
    """The descriptor identity the audit's training descriptors were made with (train.json), None without one."""
    try:
        made = json.loads((folder / META_NAME).read_text(encoding="utf-8")).get("descriptor")
    except (OSError, ValueError, AttributeError):
        return None
    return made if isinstance(made, dict) else None


def _closest(ids: np.ndarray, raw: np.ndarray, k: int, direction: Direction) -> tuple[np.ndarray, np.ndarray]:
    """Per row of raw (Q, M) with its ids (Q, M), the k closest, closest first, equal scores by id."""
    sign = 1.0 if direction is Direction.DISTANCE else -1.0
    order = np.stack([np.lexsort((i, sign * r))[:k] for i, r in zip(ids, raw)])
    return np.take_along_axis(ids, order, 1), np.take_along_axis(raw, order, 1)


class Checker:
    """One audit, opened to answer questions about outside images: read_outside for each, then answers().

    device: where descriptors and the search run; bands: the audit's unless others are given (the GUI's moved
    bands); batch: generated PNGs per descriptor batch."""

    def __init__(self, audit_dir: str | Path, *, device: str = "cpu", bands: Bands | None = None,
                 batch: int = INFERENCE_BATCH):
        self.store = AuditStore.open(audit_dir)
        try:
            self.cfg = self.store.config
            self.bands = bands or self.cfg.band_set()
            self.channels, self.size = model_space(self.store)
            m = self.cfg.matching
            self.descriptor = make_descriptor(m.descriptor, m.path, m.resize, device)
            self.training = self.store.training_images()
            self.train_root = self.store.train_path or Path(self.cfg.data.train)
        except BaseException:
            self.store.close()
            raise
        self.device = device
        self.batch = batch

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def direction(self) -> Direction:
        return self.descriptor.direction

    def read(self, path: str | Path) -> OutsideImage:
        return read_outside(path, self.channels, self.size)

    def answers(self, images: Sequence[OutsideImage], top: int = TOP, check: Check = no_check,
                ) -> Generator[ev.Event, None, list[Answer]]:
        """Yields progress (stage "check"), returns one Answer per image, in order. check() between batches."""
        if top < 1:
            raise InputError("--top", "must be at least 1")
        if not images:
            return []
        matcher = yield from self._matcher(top, check)
        q_pixels = as_tensor([im.pixels for im in images])
        near = matcher.match(q_pixels)
        with torch.no_grad():
            queries = self.descriptor(q_pixels).float().cpu()
        gen_ids, gen_raw = yield from self._generated(queries, top, check)
        if self.direction is Direction.DISTANCE:
            gen_score, train_score = nl2(gen_raw, near.normalizer), near.nn_score
        else:
            # A cosine of unit vectors is at most 1; rounding gives an image and itself 1 + 1e-7, which would fall
            # outside a band closed at 1.
            gen_score, train_score = np.clip(gen_raw, -1.0, 1.0), np.clip(near.nn_score, -1.0, 1.0)
        return [self._answer(im, float(near.normalizer[q]), gen_ids[q], gen_raw[q], gen_score[q], near.nn_idx[q],
                             near.nn_raw[q], train_score[q]) for q, im in enumerate(images)]

    def _matcher(self, top: int, check: Check) -> Generator[ev.Event, None, Matcher]:
        """The audit's matcher over its training set: its stored descriptors where the audit keeps them complete,
        else computed from the training folder (never written into the audit: another process may be its writer)."""
        m = self.cfg.matching
        t = self.training
        # The training set as the audit recorded it (matching needs no labels); its files are read only if the
        # audit keeps no descriptors of them.
        train = TrainingSet(self.train_root, [r.path for r in t], [r.sha256 for r in t], None, channels=self.channels,
                            size=self.size)
        matcher = Matcher(self.descriptor, train, k=top, n_neighbours=self.store.n_neighbours or m.n_neighbours,
                          alpha=m.alpha, chunk=m.chunk, index=m.index, device=self.device)
        folder = self.store.root / DESCRIPTORS_DIR
        made_with = _cache_descriptor(folder)
        if made_with is not None and made_with != matcher.cache_identity:
            # Pictures scored with another descriptor than the one the audit matched with would not mean its bands.
            raise InputError(m.path or folder / META_NAME, f"the audit's training descriptors were made with "
                             f"{made_with}, this descriptor is {matcher.cache_identity}: the descriptor file changed "
                             "since the audit (its SHA-256 differs)")
        cache = DescriptorCache.open(folder, len(train), matcher.cache_identity, train.manifest_sha256)
        if cache is not None and cache.complete:
            matcher.rows = cache.mapped()
            matcher.index = matcher.make_index(matcher.rows)
            return matcher
        if not train.root.is_dir():
            raise InputError(train.root, "training folder is gone, and the audit keeps no training descriptors "
                             f"({DESCRIPTORS_DIR}/train.f32) to match against")
        yield ev.Warning(f"the audit keeps no training descriptors: computing them from {train.root} "
                         f"({len(train):,} images; the audit is not changed)", str(train.root))
        t0 = time.time()
        yield ev.StageStarted(STAGE, len(train), "image", TRAINING_PART)
        for done, total in matcher.build_steps(None, check):
            yield ev.Progress(STAGE, done, total, TRAINING_PART)
        yield ev.StageFinished(STAGE, time.time() - t0, f"{len(train):,} training images", TRAINING_PART)
        return matcher

    def _generated(self, queries: torch.Tensor, top: int, check: Check,
                   ) -> Generator[ev.Event, None, tuple[np.ndarray, np.ndarray]]:
        """The top closest generated images of each query: (ids (Q, top), raw scores (Q, top)), closest first."""
        n = self.store.image_count()
        t0 = time.time()
        yield ev.StageStarted(STAGE, n, "image", GENERATED_PART)
        best_ids = np.zeros((len(queries), 0), np.int64)
        best_raw = np.zeros((len(queries), 0))
        done = 0
        for ids, feats in self._generated_descriptors(check):
            best_ids, best_raw = _closest(np.concatenate([best_ids, np.broadcast_to(ids, (len(queries), len(ids)))], 1),
                                          np.concatenate([best_raw, self._raw(queries, feats)], 1), top,
                                          self.direction)
            done += len(ids)
            yield ev.Progress(STAGE, done, n, GENERATED_PART)
        yield ev.StageFinished(STAGE, time.time() - t0, f"{done:,} generated images", GENERATED_PART)
        return best_ids, best_raw

    def _generated_descriptors(self, check: Check) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """(ids (B,), descriptors (B, d)) of the stored generated images in id order, a batch of PNGs at a time, read
        on a few threads (PIL's decoder releases the GIL)."""
        rows = self.store.db.execute("SELECT id, path FROM images ORDER BY id")
        with ThreadPoolExecutor(READ_THREADS) as pool:
            while batch := rows.fetchmany(self.batch):
                check()
                pixels = list(pool.map(lambda r: read_png(self.store.path(r[1])), batch))
                with torch.no_grad():
                    feats = self.descriptor(as_tensor(pixels)).float().cpu()
                yield np.asarray([r[0] for r in batch], np.int64), feats

    def _raw(self, queries: torch.Tensor, feats: torch.Tensor) -> np.ndarray:
        """(Q, B) raw scores. RMS distance as neighbours.refine_l2 computes it (the float32 differences' norm over
        sqrt(d)), so that a stored nn_raw and this distance between the same two images are the same number."""
        if self.direction is Direction.SIMILARITY:
            return (queries @ feats.T).double().numpy()
        root_d = feats.shape[1] ** 0.5
        return torch.stack([torch.linalg.vector_norm(feats - q, dim=1) / root_d for q in queries]).double().numpy()

    def _answer(self, image: OutsideImage, normalizer: float, gen_ids: np.ndarray, gen_raw: np.ndarray,
                gen_score: np.ndarray, train_idx: np.ndarray, train_raw: np.ndarray, train_score: np.ndarray,
                ) -> Answer:
        gen_bands = self.bands.classify(gen_score)
        train_bands = self.bands.classify(train_score)
        generated = []
        for i, raw, score, band in zip(gen_ids, gen_raw, gen_score, gen_bands):
            r = self.store.image(int(i))
            assert r is not None  # its id was read from this store
            generated.append(GeneratedMatch(id=r.id, guide=r.guide, gamma=r.gamma, label=r.label, seed=r.seed,
                                            path=r.path, sha256=r.sha256, score=float(score), raw=float(raw),
                                            band=BandName(band) if band else None))
        training = [TrainingMatch(index=int(i), path=self.training[int(i)].path, sha256=self.training[int(i)].sha256,
                                  score=float(score), raw=float(raw), band=BandName(band) if band else None)
                    for i, raw, score, band in zip(train_idx, train_raw, train_score, train_bands)]
        return Answer(image=image.path, sha256=image.sha256, normalizer=normalizer, generated=tuple(generated),
                      training=tuple(training))


def check_images(audit_dir: str | Path, paths: Sequence[str | Path], top: int = TOP, *, device: str = "cpu",
                 bands: Bands | None = None, listener: Callable[[ev.Event], None] | None = None) -> list[Answer]:
    """The answers for these image files, run to the end (tests, scripts): every file is read first, and the first
    unreadable one is an InputError naming it before any descriptor is computed."""
    with Checker(audit_dir, device=device, bands=bands) as checker:
        images = [checker.read(p) for p in paths]
        run = checker.answers(images, top)
        while True:
            try:
                e = next(run)
            except StopIteration as stop:
                return stop.value
            if listener is not None:
                listener(e)
