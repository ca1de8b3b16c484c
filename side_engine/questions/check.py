"""Was this picture extracted? An outside image (a rights holder's picture, in the training folder or not) matched
with the audit's own descriptor against the audit's generated images and its training set (docs/CHECK.md).

Everything comes from what the audit stores; the model is never run:
- the outside image is read as the training images were (dataset.py: EXIF orientation, 16 bits, palette, bombs),
  converted to the model's channels and size, which the audit's generated PNGs have;
- the training descriptors are the audit's own (descriptors/train.f32), or, for an audit that keeps none, are
  computed from the training folder, each file checked against its recorded SHA-256;
- the generated images' descriptors are computed from their stored PNGs, a batch at a time.

Scores mean what the audit's bands mean: each pair is scored as the audit scores a (generated, training) pair, the
query calibrated by its own neighbourhood in the training set (Carlini's nL2: the RMS distance over alpha times the
mean RMS distance from the query to its n nearest training images, n and alpha as the audit recorded them).
- Against a generated image G the query is G, as in the audit: l2(G, picture) over G's stored normaliser. Checking a
  training file so gives back exactly the nL2 the audit stored for every generated image holding it among its
  neighbours. The picture's own normaliser would not: a training file lies at distance 0 from itself, which shrinks
  that normaliser and pushes every score up (out of the bands the audit's pairs are in).
- Against a training image the query is the picture, calibrated by the same Matcher the audit used.
Embeddings: the cosine, as stored.
"""

from __future__ import annotations

import hashlib
import json
import re
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
from ..matching.neighbours import rms_l2
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
    score: float  # what the bands apply to: raw over this generated image's own normaliser, or the cosine
    raw: float  # RMS pixel distance, or the cosine
    normalizer: float  # this generated image's nL2 denominator, as the audit stored it; 1 for cosine
    band: BandName | None  # None: outside the bands


@dataclass(frozen=True)
class TrainingMatch:
    index: int  # position in the audit's training list
    path: str  # relative to the training folder
    sha256: str  # as the audit recorded it
    score: float  # raw over the outside image's normaliser (Answer.normalizer), or the cosine
    raw: float
    band: BandName | None


@dataclass(frozen=True)
class Answer:
    """One outside image and what in the audit lies closest to it, closest first."""

    image: Path
    sha256: str
    # The outside image's nL2 denominator (alpha x mean RMS distance to its n nearest training images), which scores
    # its training matches; 1 for cosine.
    normalizer: float
    generated: tuple[GeneratedMatch, ...]
    training: tuple[TrainingMatch, ...]

    def as_json(self) -> dict:
        def band(b: BandName | None) -> str:
            return str(b) if b else ""

        return {"image": str(self.image), "sha256": self.sha256, "normalizer": self.normalizer,
                "generated": [{"image_id": g.id, "guide": str(g.guide), "gamma": g.gamma, "label": g.label,
                               "seed": g.seed, "path": g.path, "sha256": g.sha256, "score": g.score, "raw": g.raw,
                               "normalizer": g.normalizer, "band": band(g.band)} for g in self.generated],
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


def generated_scores(raw: np.ndarray, normalizer: np.ndarray, direction: Direction) -> np.ndarray:
    """What the bands apply to, from raw scores (Q, B) between outside images and generated images. nL2: each column
    over its generated image's own stored normaliser (B,), the generated image being the query as in the audit
    (similarity.calibrated_l2's division, with its 0 where the normaliser is 0). Cosine: clipped to [-1, 1], as the
    matcher clips it."""
    if direction is Direction.SIMILARITY:
        return np.clip(raw, -1.0, 1.0)
    norm = np.asarray(normalizer, np.float64)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm > 0, raw / norm, 0.0)


def check_device(name: str) -> None:
    """The device, refused in one line where torch cannot use it (as the pipeline refuses runtime.device)."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise InputError("--device", f"{name!r} is not a device: give cpu, cuda or cuda:N")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("--device", f"{name} was asked for but torch sees no GPU")
        if ":" in name and int(name.split(":")[1]) >= torch.cuda.device_count():
            raise InputError("--device", f"{name} was asked for but torch sees {torch.cuda.device_count()} GPU(s)")


def _cache_descriptor(folder: Path) -> dict | None:
    """The descriptor identity the audit's training descriptors were made with (train.json), None without one."""
    try:
        made = json.loads((folder / META_NAME).read_text(encoding="utf-8")).get("descriptor")
    except (OSError, ValueError, AttributeError):
        return None
    return made if isinstance(made, dict) else None


def closest(ids: np.ndarray, score: np.ndarray, k: int, direction: Direction) -> np.ndarray:
    """Per row of score (Q, M) with its ids (Q, M), the positions of the k closest, closest first, equal scores by
    id."""
    sign = 1.0 if direction is Direction.DISTANCE else -1.0
    return np.stack([np.lexsort((i, sign * s))[:k] for i, s in zip(ids, score)])


class Checker:
    """One audit, opened to answer questions about outside images: read_outside for each, then answers().

    device: where descriptors and the search run; bands: the audit's unless others are given (the GUI's moved
    bands); batch: generated PNGs per descriptor batch."""

    def __init__(self, audit_dir: str | Path, *, device: str = "cpu", bands: Bands | None = None,
                 batch: int = INFERENCE_BATCH):
        check_device(device)
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
        gen_ids, gen_raw, gen_score = yield from self._generated(queries, top, check)
        # Against the training images the picture is the query: the matcher's own scores, under its normaliser.
        return [self._answer(im, float(near.normalizer[q]), gen_ids[q], gen_raw[q], gen_score[q], near.nn_idx[q],
                             near.nn_raw[q], near.nn_score[q]) for q, im in enumerate(images)]

    def _matcher(self, top: int, check: Check) -> Generator[ev.Event, None, Matcher]:
        """The audit's matcher over its training set: its stored descriptors where the audit keeps them complete,
        else computed from the training folder (never written into the audit: another process may be its writer)."""
        m = self.cfg.matching
        t = self.training
        # The training set as the audit recorded it (matching needs no labels); its files are read only if the
        # audit keeps no descriptors of them.
        train = TrainingSet(self.train_root, t.paths, [h.decode() for h in t.sha256.tolist()], None,
                            channels=self.channels, size=self.size)
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
                   ) -> Generator[ev.Event, None, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The top closest generated images of each query by score: (ids, raw scores, scores), each (Q, top), closest
        first. Only the running top is kept between batches."""
        n = self.store.image_count()
        t0 = time.time()
        yield ev.StageStarted(STAGE, n, "image", GENERATED_PART)
        q = len(queries)
        best_ids, best_raw, best_score = np.zeros((q, 0), np.int64), np.zeros((q, 0)), np.zeros((q, 0))
        done = 0
        for ids, normalizer, feats in self._generated_descriptors(check):
            raw = self._raw(queries, feats)
            all_ids = np.concatenate([best_ids, np.broadcast_to(ids, (q, len(ids)))], 1)
            all_raw = np.concatenate([best_raw, raw], 1)
            all_score = np.concatenate([best_score, generated_scores(raw, normalizer, self.direction)], 1)
            keep = closest(all_ids, all_score, top, self.direction)
            best_ids, best_raw, best_score = (np.take_along_axis(a, keep, 1) for a in (all_ids, all_raw, all_score))
            done += len(ids)
            yield ev.Progress(STAGE, done, n, GENERATED_PART)
        yield ev.StageFinished(STAGE, time.time() - t0, f"{done:,} generated images", GENERATED_PART)
        return best_ids, best_raw, best_score

    def _generated_descriptors(self, check: Check) -> Iterator[tuple[np.ndarray, np.ndarray, torch.Tensor]]:
        """(ids (B,), stored normalisers (B,), descriptors (B, d)) of the stored generated images in id order, a batch
        of PNGs at a time, read on a few threads (PIL's decoder releases the GIL)."""
        rows = self.store.db.execute("SELECT id, path, normalizer FROM images ORDER BY id")
        with ThreadPoolExecutor(READ_THREADS) as pool:
            while batch := rows.fetchmany(self.batch):
                check()
                pixels = list(pool.map(lambda r: read_png(self.store.path(r[1])), batch))
                with torch.no_grad():
                    feats = self.descriptor(as_tensor(pixels)).float().cpu()
                yield np.asarray([r[0] for r in batch], np.int64), np.asarray([r[2] for r in batch], np.float64), feats

    def _raw(self, queries: torch.Tensor, feats: torch.Tensor) -> np.ndarray:
        """(Q, B) raw scores. RMS distance by neighbours.rms_l2, as the audit's search recomputed it, so that a stored
        nn_raw and this distance between the same two images are the same number."""
        if self.direction is Direction.SIMILARITY:
            return (queries @ feats.T).double().numpy()
        every = torch.arange(len(feats)).expand(len(queries), -1)
        return rms_l2(feats, queries, every).double().numpy()

    def _answer(self, image: OutsideImage, normalizer: float, gen_ids: np.ndarray, gen_raw: np.ndarray,
                gen_score: np.ndarray, train_idx: np.ndarray, train_raw: np.ndarray, train_score: np.ndarray,
                ) -> Answer:
        # In float32, as the audit keeps its scores and bands them (store.score_arrays): a score a hair under an edge
        # in float64 can round onto it.
        gen_bands = self.bands.classify(np.asarray(gen_score, np.float32))
        train_bands = self.bands.classify(np.asarray(train_score, np.float32))
        generated = []
        for i, raw, score, band in zip(gen_ids, gen_raw, gen_score, gen_bands):
            r = self.store.image(int(i))
            assert r is not None  # its id was read from this store
            generated.append(GeneratedMatch(id=r.id, guide=r.guide, gamma=r.gamma, label=r.label, seed=r.seed,
                                            path=r.path, sha256=r.sha256, score=float(score), raw=float(raw),
                                            normalizer=float(r.normalizer), band=BandName(band) if band else None))
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
        return ev.run_to_end(checker.answers(images, top), listener)
