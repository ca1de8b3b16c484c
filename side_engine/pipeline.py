"""The audit pipeline: config -> stages -> events -> store.

Stages, in order: load (model, training set, descriptor), classifier (f_TI, label source "classifier"),
sample (D_syn), labels (pseudo labels; k-means for "clusters"), tdkd (f_TD + health), extract (the gamma sweep,
each batch matched and stored as it is made). AuditPipeline.run() is a generator of events; every stage
persists as it goes and skips what the store already holds, so resuming is just running again. Under torchrun the
same run spans several processes (distributed.py): rank 0 writes, every rank samples and matches its batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from . import events as ev
from .config import AuditConfig, ExtractionConfig, config_from_dict, sweep
from .dataset import TrainingSet, load_training_set, sha256_file
from .distributed import SOLO, World
from .errors import InputError, disk_full_is_input
from .inference import batched
from .matching.descriptors import make_descriptor
from .matching.matcher import Matcher
from .matching.metrics import score_groups
from .method.classifier import ResNetClassifier, load_classifier, save_classifier
from .method.guidance import classifier_cond_fn, from_uint8, image_seed, sample, syn_seed, to_uint8
from .method.surrogate import CentroidClassifier, cluster, train_time_independent
from .method.tdkd import distill, health, pseudo_labels, split_holdout
from .method.training import checkpoint_step
from .provenance import SAMPLER_REVISION
from .store import AuditStore, write_png_atomic
from .target import TargetModel, load_target
from .vocabulary import Guide

R = TypeVar("R")
DESCRIPTORS_DIR = "descriptors"  # the training descriptors' cache in the audit folder (matching/cache.py)


def target_label(cfg: ExtractionConfig, num_labels: int, index: int) -> int:
    """The label image `index` is guided towards: cycled, or drawn uniformly from a per-index generator."""
    if cfg.labels == "cycle":
        return index % num_labels
    return int(np.random.default_rng([cfg.seed, index]).integers(num_labels))


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _uint8_to_model(arr: np.ndarray) -> torch.Tensor:
    return from_uint8(arr) * 2 - 1


class AuditPipeline:
    """Holds one audit's loaded state. Construct with prepare() (new audit) or reopen() (resume)."""

    def __init__(self, store: AuditStore | None, cfg: AuditConfig, target: TargetModel, train: TrainingSet,
                 matcher: Matcher, user_classifier: ResNetClassifier | None, world: World = SOLO):
        """store: the audit, on rank 0 (its one writer); None on the other ranks of a distributed run."""
        self._store = store
        self.world = world
        self.cfg = cfg
        self.target = target
        self.train = train
        self.matcher = matcher
        self.user_classifier = user_classifier
        self.device = target.unet.device
        self.dtype = torch.bfloat16 if self.cfg.runtime.dtype == "bfloat16" else torch.float32
        self.f_ti = None
        self.f_td = None
        self.num_labels = 0

    # ----- construction: all input is checked before anything is written ------------------------------------
    @staticmethod
    def _load_inputs(cfg: AuditConfig, warn, world: World = SOLO, progress=None,
                     ) -> tuple[TargetModel, TrainingSet, Matcher, ResNetClassifier | None]:
        """The inputs, checked. progress(done, total): training files read. The training pixels are not kept
        (f_TI training reads them again); the matcher's descriptors are built by Matcher.build_steps, into the
        audit's descriptors/ folder where the caller gives it, else on the first match."""
        if cfg.runtime.threads:
            torch.set_num_threads(cfg.runtime.threads)
        device = world.device(resolve_device(cfg.runtime.device))
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(cfg.runtime.device, "CUDA was asked for but torch sees no GPU (runtime.device)")
        target = load_target(cfg.model.path, cfg.model.scheduler, device=device)
        train = load_training_set(cfg.data.train, target.channels, target.size,
                                  on_skip=lambda p, why: warn(f"skipped {p}: {why}", p), progress=progress,
                                  keep_pixels=False)
        user = None
        if cfg.labels.source == "classifier":
            if cfg.labels.classifier:
                user, _ = load_classifier(cfg.labels.classifier)
                if user.arch["in_channels"] != target.channels or user.time_dependent:
                    raise InputError(cfg.labels.classifier,
                                     f"classifier takes {user.arch['in_channels']} channels"
                                     f"{' and t' if user.time_dependent else ''}; the model has {target.channels}"
                                     " channels and f_TI must be time-independent")
            elif train.labels is None:
                raise InputError(train.root, "has no class subfolders, which labels.source = 'classifier' needs:"
                                 " give labels.classifier or use labels.source = 'clusters'")
            elif len(train.class_names) < 2:
                raise InputError(train.root, "has a single class folder; a classifier needs at least two classes")
        m = cfg.matching
        descriptor = make_descriptor(m.descriptor, m.path, m.resize, device)
        matcher = Matcher(descriptor, train, k=m.k, n_neighbours=m.n_neighbours, alpha=m.alpha, chunk=m.chunk,
                          index=m.index, device=device, threads=cfg.runtime.threads)
        matcher.probe()
        return target, train, matcher, user

    @property
    def store(self) -> AuditStore:
        """The audit; only rank 0 has it."""
        assert self._store is not None, "only rank 0 writes the audit"
        return self._store

    @classmethod
    def prepare(cls, cfg: AuditConfig, out_dir: str | Path, warn=lambda msg, path=None: None,
                world: World = SOLO, progress=None) -> AuditPipeline:
        """progress(done, total): training files read, before the audit exists (its events cannot say it yet)."""
        target, train, matcher, user = cls._load_inputs(cfg, warn, world, progress)
        made: list[AuditStore] = []

        def create() -> None:
            store = AuditStore.create(out_dir, cfg)
            try:
                store.lock_for_writing()
                store.record_files("model", target.files)
                store.record_training_set(train.paths, train.labels, train.sha256)
                store.record_files("training_manifest", [("manifest", train.manifest_sha256)])
                if cfg.labels.classifier:
                    store.record_files("user_classifier",
                                       [(cfg.labels.classifier, sha256_file(Path(cfg.labels.classifier)))])
                store.record_inputs(model_path=str(target.folder), train_path=str(train.root),
                                    class_names=train.class_names, n_train=len(train), n_neighbours=matcher.n,
                                    descriptor=matcher.descriptor.name, direction=matcher.direction,
                                    skipped=train.skipped)
            except BaseException:
                store.close()
                raise
            made.append(store)

        with disk_full_is_input(Path(out_dir)):
            world.share(create)
        return cls(made[0] if made else None, cfg, target, train, matcher, user, world)

    @classmethod
    def reopen(cls, out_dir: str | Path, warn=lambda msg, path=None: None, world: World = SOLO,
               progress=None) -> AuditPipeline:
        opened: list[tuple[AuditStore, tuple[TargetModel, TrainingSet, Matcher, ResNetClassifier | None]]] = []

        def open_audit() -> dict:
            store = AuditStore.open(out_dir)
            revision = store.made_by["sampler_revision"]
            if revision == 1:
                # Its guided images came from the sampler that reversed the guidance; new ones would not match them.
                raise InputError(store.root, "was made by an earlier engine whose guided sampling was wrong: it opens "
                                 "for viewing but cannot be resumed; start a new audit from its audit.toml")
            if revision != SAMPLER_REVISION:
                raise InputError(store.root, f"was sampled with sampler revision {revision} (side-inspector "
                                 f"{store.made_by['engine_version']}), this engine samples with {SAMPLER_REVISION}: "
                                 "new images would not match the stored ones; resume it with that version")
            try:
                store.lock_for_writing()
                inputs = cls._load_inputs(store.config, warn, world, progress)
                target, train = inputs[0], inputs[1]
                if sorted(target.files) != sorted((f.path, f.sha256) for f in store.files("model")):
                    raise InputError(target.folder, "model files changed since this audit started (SHA-256 differs)")
                recorded = store.files("training_manifest")
                if recorded and recorded[0].sha256 != train.manifest_sha256:
                    raise InputError(train.root,
                                     "training images changed since this audit started (manifest SHA-256 differs)")
            except BaseException:
                store.close()
                raise
            opened.append((store, inputs))
            return store.config.to_dict()

        # The other ranks take the config from rank 0: the audit folder need not exist on their machines.
        cfg = config_from_dict(world.share(open_audit))
        if opened:
            store, (target, train, matcher, user) = opened[0]
            return cls(store, store.config, target, train, matcher, user, world)
        target, train, matcher, user = cls._load_inputs(cfg, warn, world, progress)
        return cls(None, cfg, target, train, matcher, user, world)

    # ----- the run ------------------------------------------------------------------------------------------------
    def run(self, control: ev.RunControl | None = None) -> Iterator[ev.Event]:
        """The stages in order. In a distributed run every rank runs this: rank 0 runs the training stages, hands
        their classifiers to the others, writes everything and yields the events; the others sample and match
        their share of the batches and yield nothing. A full disk ends it with an InputError naming the audit."""
        with disk_full_is_input(self._store.root if self._store is not None else Path.cwd()):
            yield from self._stages(control or ev.RunControl())

    def _stages(self, control: ev.RunControl) -> Iterator[ev.Event]:
        t0 = time.time()
        main = self.world.is_main
        if main:
            yield ev.StageStarted("load", len(self.train), "image")
            for rel, why in self.train.skipped:
                yield ev.Warning(f"skipped {rel}: {why}", str(self.train.root / rel))
        # The training descriptors, once per audit: rank 0 keeps them in the audit (memory-mapped, resumed where a
        # stop left them); the other ranks, which have no audit folder, in memory or a temporary file.
        cache = self.store.root / DESCRIPTORS_DIR if main else None
        for done, total in self.matcher.build_steps(cache, control.check):
            if main:
                yield ev.Progress("load", done, total)
        if main:
            yield ev.StageFinished("load", time.time() - t0, f"{len(self.train)} training images, "
                                   f"{self.target.size}px, {self.target.channels} channel(s), descriptor "
                                   f"{self.matcher.descriptor.name} ({self.matcher.backend} index)")
        if self.cfg.labels.source == "classifier" and main:
            yield from self._classifier_stage(control)
        yield from self._sample_stage(control)
        if main:
            yield from self._labels_stage(control)
            yield from self._tdkd_stage(control)
        self._share_classifiers()
        yield from self._extract_stage(control)
        if main:
            self.store.mark_complete()
            yield ev.AuditFinished(str(self.store.root), time.time() - t0)

    def _share_classifiers(self) -> None:
        """f_TD, f_TI and the number of labels from rank 0 to every rank (a no-op in one process). A classifier
        travels as its architecture and weights; the clusters source's f_TI as its centres, rebuilt around each
        rank's own descriptor (a TorchScript module does not travel)."""
        if not self.world.distributed:
            return

        def pack() -> dict:
            assert self.f_td is not None and self.f_ti is not None  # the tdkd stage has run on rank 0
            out: dict = {"num_labels": self.num_labels, "td": _weights(self.f_td)}
            if isinstance(self.f_ti, CentroidClassifier):
                out["centres"] = (self.f_ti.centres.cpu(), self.f_ti.temperature)
            else:
                out["ti"] = _weights(self.f_ti)
            return out

        shared = self.world.share(pack)
        if self.world.is_main:
            return
        self.num_labels = shared["num_labels"]
        self.f_td = _classifier_of(shared["td"]).to(self.device)
        if "centres" in shared:
            centres, temperature = shared["centres"]
            self.f_ti = CentroidClassifier(self.matcher.descriptor, centres.to(self.device), temperature).eval()
        else:
            self.f_ti = _classifier_of(shared["ti"]).to(self.device)

    def _stage_done(self, name: str) -> bool:
        return self.store.stage_status(name) == "done"

    def _training(self, stage: str, total: int, steps) -> Iterator[ev.Event]:
        """Relay a training generator's (step, loss, accuracy) as stored curve points and progress."""
        while True:
            try:
                step, loss, acc = next(steps)
            except StopIteration as stop:
                return stop.value
            self.store.add_curve_points(stage, [(step, loss, acc)])
            yield ev.CurvePoint(stage, step, loss, acc)
            yield ev.Progress(stage, step, total)

    def _classifier_stage(self, control) -> Iterator[ev.Event]:
        path = self.store.classifier_path(Guide.TI)
        if self._stage_done("classifier"):
            self.f_ti, _ = load_classifier(path)
            self.num_labels = self.f_ti.arch["num_classes"]
            yield ev.StageFinished("classifier", 0.0, "f_TI loaded from the audit", skipped=True)
            return
        t = time.time()
        if self.user_classifier is not None:
            yield ev.StageStarted("classifier", 1, "file")
            self.f_ti = self.user_classifier
            save_classifier(self.f_ti, path, {"source": "user"})
            summary = f"user classifier, {self.f_ti.arch['num_classes']} classes"
        else:
            cfg = self.cfg.classifier
            labels = self.train.labels
            assert labels is not None  # _load_inputs refuses a folder without classes when no classifier is given
            yield ev.StageStarted("classifier", cfg.steps, "step")
            x = self.train.images * 2 - 1
            ckpt = path.with_name("ti.partial.safetensors")
            self.store.clear_curve("classifier", checkpoint_step(ckpt))
            self.f_ti = yield from self._training("classifier", cfg.steps, train_time_independent(
                x, labels, len(self.train.class_names), cfg, ckpt, control.check))
            save_classifier(self.f_ti, path, {"source": "trained", "class_names": self.train.class_names})
            ckpt.unlink(missing_ok=True)
            acc = _accuracy(self.f_ti, x, labels)
            summary = f"f_TI trained, accuracy on the training set {acc:.1%}"
        self.num_labels = self.f_ti.arch["num_classes"]
        self.store.mark_stage("classifier", "done", {"summary": summary})
        yield ev.StageFinished("classifier", time.time() - t, summary)

    def _sample_stage(self, control) -> Iterator[ev.Event]:
        cfg = self.cfg.tdkd
        main = self.world.is_main
        todo = self.world.share(lambda: [i for i in range(cfg.n_syn) if i not in self.store.syn_done()])
        if not todo:
            if main:
                yield ev.StageFinished("sample", 0.0, f"{cfg.n_syn} samples in the audit", skipped=True)
            return
        t = time.time()
        if main:
            yield ev.StageStarted("sample", cfg.n_syn, "image")
            yield ev.Progress("sample", cfg.n_syn - len(todo), cfg.n_syn)
        scheduler = self.target.ddim()

        def make(idx: list[int]) -> tuple[list[int], list[int], np.ndarray]:
            seeds = [syn_seed(self.cfg.extraction.seed, i) for i in idx]
            x = sample(self.target.unet, scheduler, seeds, steps=cfg.sample_steps, dtype=self.dtype,
                       check=control.check)
            return idx, seeds, to_uint8(x)

        made = 0
        for results in self._in_rounds(_batches(todo, cfg.sample_batch), make, control):
            if not main:
                continue
            for idx, seeds, imgs in results:
                rows = []
                for i, s, img in zip(idx, seeds, imgs):
                    rel = self.store.syn_relpath(i)
                    write_png_atomic(self.store.path(rel), img)
                    rows.append((i, s, rel, sha256_file(self.store.path(rel))))
                self.store.add_syn_batch(rows)
                made += len(idx)
            yield ev.Progress("sample", cfg.n_syn - len(todo) + made, cfg.n_syn)
        if main:
            self.store.mark_stage("sample", "done")
            yield ev.StageFinished("sample", time.time() - t, f"{cfg.n_syn} unconditional samples (D_syn)")

    def _in_rounds(self, batches: list[list[int]], make: Callable[[list[int]], R],
                   control: ev.RunControl) -> Iterator[list[R]]:
        """make(batch) for every batch, one batch per rank and round; each round's results, in batch order, on
        rank 0 (an empty list elsewhere). One process: one batch a round. Rank 0 stores a round before the next
        starts, so a crash loses at most the round in flight."""
        for group, mine in self.world.rounds(batches):
            control.check()
            result = make(mine) if mine is not None else None
            gathered = self.world.gather(result)
            yield [] if gathered is None else [r for r in gathered[:len(group)] if r is not None]

    def _syn_images(self) -> torch.Tensor:
        from PIL import Image

        arrs = [np.asarray(Image.open(self.store.path(s.path))) for s in self.store.syn_images()]
        return _uint8_to_model(np.stack(arrs))

    def _labels_stage(self, control) -> Iterator[ev.Event]:
        t = time.time()
        done = self._stage_done("labels")
        x0 = self._syn_images()
        keep = np.ones(len(x0), dtype=bool)  # the D_syn samples TDKD distils on
        clusters = None
        if self.cfg.labels.source == "clusters":
            if not done:
                yield ev.StageStarted("labels", 1, "step")
            clusters = self._clusters(x0, done)
            keep = clusters["keep"].numpy().astype(bool)
            self.f_ti = CentroidClassifier(self.matcher.descriptor, clusters["centres"].to(self.device),
                                           self.cfg.clusters.temperature).eval()
            self.num_labels = len(clusters["centres"])
        self.syn_kept = np.flatnonzero(keep)
        self.pseudo = pseudo_labels(self.f_ti, x0[self.syn_kept].to(self.device)).cpu()
        dropped = len(x0) - len(self.syn_kept)
        counts = np.bincount(self.pseudo.argmax(1).numpy(), minlength=self.num_labels)
        summary = (f"{self.num_labels} labels; D_syn per label: min {counts.min()}, max {counts.max()}, "
                   f"{int((counts == 0).sum())} labels never predicted")
        if clusters is not None:
            summary += (f"; {dropped} of {len(x0)} samples dropped (their k-means cluster failed the filter)"
                        if not self.cfg.clusters.relabel_dropped else
                        f"; {int(clusters.get('relabelled', 0))} samples of failed clusters re-labelled, none dropped")
        if done:
            yield ev.StageFinished("labels", 0.0, summary, skipped=True)
            return
        if clusters is not None:
            self._check_survivors(len(x0))
            from safetensors.torch import save_file

            path = self.store.classifier_path("clusters")
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file(clusters, path)
        self.store.mark_stage("labels", "done", {"summary": summary, "counts": counts.tolist(), "dropped": dropped})
        yield ev.StageFinished("labels", time.time() - t, summary)

    def _clusters(self, x0: torch.Tensor, done: bool) -> dict[str, torch.Tensor]:
        """The clusters file's tensors: kept centres, the filter's numbers, each D_syn sample's k-means cluster
        ("assignment") and whether TDKD uses it ("keep"), so that a resumed audit rebuilds the same kept set."""
        from safetensors.torch import load_file

        if done:
            stored = load_file(self.store.classifier_path("clusters"))
            if "keep" not in stored:  # written before samples of failed clusters were dropped: all were used
                stored["keep"] = torch.ones(len(x0), dtype=torch.uint8)
            return stored
        with torch.no_grad():
            feats = batched(lambda x: self.matcher.descriptor((x / 2 + 0.5).to(self.device)).cpu(), x0)
        cfg = self.cfg.clusters
        res = cluster(feats.numpy(), cfg)
        if len(res.kept) < 2:
            raise InputError(self.store.root / "audit.toml",
                             f"only {len(res.kept)} of {len(res.cohesion)} clusters of D_syn reach cohesion "
                             f"{cfg.cohesion} with at least {cfg.min_size} members; lower clusters.cohesion, "
                             "clusters.min_size or clusters.k")
        in_kept = res.in_kept
        keep = np.ones(len(x0), dtype=bool) if cfg.relabel_dropped else in_kept
        return {"centres": torch.from_numpy(res.centres), "kept": torch.from_numpy(res.kept),
                "cohesion": torch.from_numpy(res.cohesion.astype(np.float32)),
                "sizes": torch.from_numpy(res.sizes.astype(np.int64)),
                "assignment": torch.from_numpy(res.assignment), "keep": torch.from_numpy(keep.astype(np.uint8)),
                "relabelled": torch.tensor(int((keep & ~in_kept).sum()))}

    def _check_survivors(self, n_syn: int) -> None:
        """TDKD needs kept samples of at least two labels in its training part (and one held out)."""
        train_idx, _ = split_holdout(len(self.syn_kept))
        labels = np.unique(self.pseudo.argmax(1).numpy()[train_idx])
        if len(self.syn_kept) < 2 or len(labels) < 2:
            raise InputError(self.store.root / "audit.toml",
                             f"only {len(self.syn_kept)} of {n_syn} D_syn samples lie in clusters that pass the "
                             f"filter, covering {len(labels)} label(s); TDKD needs two: raise tdkd.n_syn, lower "
                             "clusters.cohesion or clusters.min_size, or set clusters.relabel_dropped")

    def _tdkd_stage(self, control) -> Iterator[ev.Event]:
        path = self.store.classifier_path(Guide.TD)
        if self._stage_done("tdkd"):
            self.f_td, _ = load_classifier(path)
            self.f_td.to(self.device)
            yield ev.HealthUpdated(tuple((h.t_lo, h.t_hi, h.agreement) for h in self.store.health()))
            yield ev.StageFinished("tdkd", 0.0, "f_TD loaded from the audit", skipped=True)
            return
        cfg = self.cfg.tdkd
        t = time.time()
        yield ev.StageStarted("tdkd", cfg.steps, "step")
        x0 = self._syn_images()[self.syn_kept]  # the clusters source drops samples of clusters that failed its filter
        targets = self.pseudo
        if not cfg.soft:
            targets = torch.nn.functional.one_hot(targets.argmax(1), self.num_labels).float()
        train_idx, hold_idx = split_holdout(len(x0))
        if isinstance(self.f_ti, ResNetClassifier):
            f_td = ResNetClassifier.from_time_independent(self.f_ti.cpu(), cfg.time_embed_dim)
            self.f_ti.to(self.device)
        else:
            torch.manual_seed(cfg.seed)
            c = self.cfg.classifier
            f_td = ResNetClassifier(self.target.channels, self.num_labels, c.width, c.blocks, cfg.time_embed_dim)
        schedule = self.target.noise_schedule()
        ckpt = path.with_name("td.partial.safetensors")
        self.store.clear_curve("tdkd", checkpoint_step(ckpt))
        self.f_td = yield from self._training("tdkd", cfg.steps, distill(
            f_td, x0[train_idx], targets[train_idx], schedule, cfg, ckpt, control.check))
        save_classifier(self.f_td, path, {"source": "tdkd", "num_labels": self.num_labels})
        ckpt.unlink(missing_ok=True)
        rows = health(self.f_td, x0[hold_idx], targets[hold_idx].argmax(1), schedule, cfg.health_buckets, cfg.seed)
        self.store.set_health(rows)
        self.f_td.to(self.device)
        yield ev.HealthUpdated(tuple((lo, hi, a) for lo, hi, a, _ in rows))
        summary = (f"f_TD agreement with f_TI on held-out samples: {rows[0][2]:.0%} at t<={rows[0][1]}, "
                   f"{rows[-1][2]:.0%} at t>={rows[-1][0]}")
        self.store.mark_stage("tdkd", "done", {"summary": summary})
        yield ev.StageFinished("tdkd", time.time() - t, summary)

    def _extract_stage(self, control) -> Iterator[ev.Event]:
        cfg = self.cfg.extraction
        main = self.world.is_main
        n_train = len(self.train)
        bands = self.cfg.band_set()
        arrays = self.store.score_arrays() if main else None
        scheduler = self.target.ddim()
        for run in sweep(self.cfg):
            todo = self.world.share(lambda run=run: [i for i in range(cfg.n_per_gamma)
                                                     if i not in self.store.done_indices(run.guide, run.gamma)])
            if not todo:
                if main:
                    yield ev.StageFinished("extract", 0.0, f"{cfg.n_per_gamma} images", part=run.part, skipped=True)
                continue
            t = time.time()
            if main:
                yield ev.StageStarted("extract", cfg.n_per_gamma, "image", part=run.part)
                yield ev.Progress("extract", cfg.n_per_gamma - len(todo), cfg.n_per_gamma, part=run.part)
            classifier = {Guide.TD: self.f_td, Guide.TI: self.f_ti}.get(run.guide)

            def make(idx: list[int], run=run, classifier=classifier) -> dict:
                labels = [target_label(cfg, self.num_labels, i) for i in idx]
                seeds = [image_seed(cfg.seed, y, i) for y, i in zip(labels, idx)]
                cond_fn = None if classifier is None else classifier_cond_fn(classifier, labels,
                                                                             run.guide.time_dependent)
                x = sample(self.target.unet, scheduler, seeds, steps=cfg.steps, eta=cfg.eta, gamma=run.gamma,
                           cond_fn=cond_fn, dtype=self.dtype, check=control.check)
                imgs = to_uint8(x)
                stored = from_uint8(imgs).to(self.device)
                return dict(idx=idx, labels=labels, seeds=seeds, imgs=imgs, match=self.matcher.match(stored),
                            hits=on_target(classifier, stored * 2 - 1, labels, run.guide.time_dependent))

            made = 0
            for results in self._in_rounds(_batches(todo, cfg.batch), make, control):
                if not main:
                    continue
                for batch in results:
                    yield self._store_images(run, batch)
                    made += len(batch["idx"])
                assert arrays is not None
                arrays = arrays.extend(self.store.score_arrays(after_id=int(arrays.ids[-1]) if len(arrays.ids) else 0))
                yield ev.MetricsUpdated(tuple(score_groups(arrays, bands, n_train)))
                yield ev.Progress("extract", cfg.n_per_gamma - len(todo) + made, cfg.n_per_gamma, part=run.part)
            if main:
                yield ev.StageFinished("extract", time.time() - t, f"{cfg.n_per_gamma} images", part=run.part)
        if main:
            self.store.mark_stage("extract", "done")

    def _store_images(self, run, batch: dict) -> ev.ImagesGenerated:
        """One batch of generated images with their matches: PNGs first, then their rows in one transaction."""
        m, hits = batch["match"], batch["hits"]
        rows = []
        for j, (i, y, s, img) in enumerate(zip(batch["idx"], batch["labels"], batch["seeds"], batch["imgs"])):
            rel = self.store.image_relpath(run.guide, run.gamma, i)
            write_png_atomic(self.store.path(rel), img)
            rows.append(dict(guide=run.guide, gamma=run.gamma, label=y, idx=i, seed=s, path=rel,
                             sha256=sha256_file(self.store.path(rel)), nn_idx=m.nn_idx[j],
                             nn_raw=m.nn_raw[j], nn_score=m.nn_score[j], normalizer=m.normalizer[j],
                             gu=None if m.gu is None else m.gu[j],
                             on_target=None if hits is None else bool(hits[j])))
        ids = self.store.add_images(rows)
        return ev.ImagesGenerated(tuple(
            ev.GeneratedImage(id=k, guide=r["guide"], gamma=r["gamma"], label=r["label"], index=r["idx"],
                              seed=r["seed"], path=r["path"], best_score=float(r["nn_score"][0]),
                              best_train=int(r["nn_idx"][0]),
                              gu_ratio=None if r["gu"] is None else float(r["gu"]))
            for k, r in zip(ids, rows)), part=run.part)


@torch.no_grad()
def on_target(classifier, x: torch.Tensor, labels: list[int], time_dependent: bool) -> np.ndarray | None:
    """Whether the guiding classifier puts each stored image (x in [-1, 1], at t = 0) in its target label: a guided
    run at chance is a broken attack. None for unguided images, which have no target."""
    if classifier is None:
        return None
    logits = classifier(x, torch.zeros(len(x), dtype=torch.long, device=x.device)) if time_dependent else classifier(x)
    return (logits.argmax(1).cpu().numpy() == np.asarray(labels)).astype(bool)


@torch.no_grad()
def _accuracy(model, x: torch.Tensor, labels: np.ndarray) -> float:
    pred = batched(lambda b: model(b).argmax(1), x)
    return float((pred.numpy() == labels).mean())


def _batches(todo: list[int], size: int) -> list[list[int]]:
    """The batches a single process makes of the indices left to do: a distributed run makes the same ones, so that
    every image is computed in the same company (float rounding depends on the batch)."""
    return [todo[b:b + size] for b in range(0, len(todo), size)]


def _weights(model: ResNetClassifier) -> tuple[dict, dict]:
    """A classifier as plain data that torch.distributed can carry: its architecture and weights."""
    return dict(model.arch), {k: v.cpu() for k, v in model.state_dict().items()}


def _classifier_of(packed: tuple[dict, dict]) -> ResNetClassifier:
    arch, state = packed
    model = ResNetClassifier(**arch)
    model.load_state_dict(state)
    return model.eval()
