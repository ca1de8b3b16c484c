"""Sampling: the engine's extraction at gamma = 0 against diffusers' DDIMPipeline, and one guided DDIM step against
one unguided step, on the demo model and on a CIFAR-10-sized DDPM UNet (35.7M parameters, random weights).

Extraction (ours): AuditPipeline's extract stage as an audit runs it: side_engine.method.guidance.sample, the uint8
conversion, the matcher (pixels, nL2, against the training set), the PNG written atomically and hashed, one
SQLite transaction per batch, and the running AMS/UMS. Each timed run gets an empty store made beforehand.
diffusers: DDIMPipeline(unet, the same DDIM scheduler) with the same batches, steps, eta = 0 and the same
per-image generators, so both draw the same noise; the images are compared afterwards.
Guidance: one step of side_engine.method.guidance.sample (steps=1) with gamma 5 and a time-dependent classifier of the
engine's default architecture (what TDKD distils, random weights), against the same step at gamma 0; on a CPU
the pair is timed again on one thread, where no op waits for a pool thread to be scheduled.
Both sides of a ratio run alternately in this process (harness.alternate) after an untimed one-step call of each;
the ratio is the median over back-to-back pairs, the absolute times the median of each side.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import Figure, alternate, fmt_ratio, fmt_s, gpu_not_measured, median, sync, timed

# google/ddpm-cifar10-32's UNet (Ho et al.'s CIFAR-10 model): 35.7M parameters, attention at 16x16.
CIFAR_UNET = dict(
    sample_size=32,
    in_channels=3,
    out_channels=3,
    block_out_channels=(128, 256, 256, 256),
    layers_per_block=2,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
)
CIFAR_TRAIN = 50_000  # CIFAR-10's training set: what each generated image is matched against
GAMMA = 5.0
NUM_LABELS = 10


@dataclass(frozen=True)
class Size:
    images: int  # per extraction run
    batch: int
    steps: int  # DDIM steps of an extraction run
    repeats: int  # extraction runs per side
    step_repeats: int  # single guided / unguided steps per side
    n_train: int = 0  # 0: the model's own training set


def sizes(model: str, device: str, quick: bool) -> Size:
    """On 2 shared cores many short runs, not a few long ones: the load moves within a minute, and a pair of runs
    next to each other sees the same load. Fewer DDIM steps than an audit's 50 make the store and the matching
    weigh more, not less."""
    gpu = device.startswith("cuda")
    if model == "demo":
        if quick:
            return Size(images=16, batch=16, steps=5, repeats=2, step_repeats=3)
        # the demo audit's batch (demo.demo_config)
        if gpu:
            return Size(images=128, batch=64, steps=50, repeats=5, step_repeats=20)
        return Size(images=64, batch=64, steps=20, repeats=9, step_repeats=15)
    if quick:
        return Size(images=2, batch=2, steps=2, repeats=2, step_repeats=3, n_train=5_000)
    if gpu:
        return Size(images=256, batch=64, steps=50, repeats=5, step_repeats=20, n_train=CIFAR_TRAIN)
    # one CIFAR-sized UNet call on 8 images takes about a second on 2 quiet cores
    return Size(images=8, batch=8, steps=4, repeats=9, step_repeats=9, n_train=CIFAR_TRAIN)


def _cifar_model(folder: Path) -> Path:
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    DDPMPipeline(unet=UNet2DModel(**CIFAR_UNET), scheduler=DDPMScheduler(num_train_timesteps=1000)).save_pretrained(
        folder, safe_serialization=True)
    return folder


def _random_training_set(n: int, channels: int, size: int, root: Path):
    """n uniform random images: the search costs the same whatever they show, and no files are needed."""
    from side_engine.dataset import TrainingSet

    g = torch.Generator().manual_seed(n)
    images = torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8).float().div_(255)
    return TrainingSet(root=root, images=images, paths=[f"{i}.png" for i in range(n)], sha256=[""] * n,
                       labels=np.arange(n) % NUM_LABELS, class_names=[str(c) for c in range(NUM_LABELS)])


def _config(model_path: Path, train_root: Path, s: Size, dtype: str, device: str):
    from side_engine.config import AuditConfig, DataConfig, ExtractionConfig, ModelConfig, RuntimeConfig

    return AuditConfig(
        name="sampling benchmark", model=ModelConfig(path=str(model_path)), data=DataConfig(train=str(train_root)),
        extraction=ExtractionConfig(gammas=[0.0], n_per_gamma=s.images, steps=s.steps, batch=s.batch),
        runtime=RuntimeConfig(device=device, dtype=dtype))


class Bench:
    """One model on one device in one dtype: its target, training set, matcher and the two sides of each ratio."""

    def __init__(self, model: str, device: str, dtype: str, quick: bool, work: Path):
        from side_engine.config import ClassifierConfig, TDKDConfig
        from side_engine.dataset import load_training_set
        from side_engine.demo import DEMO_MODEL, demo_training_folder
        from side_engine.matching.descriptors import make_descriptor
        from side_engine.matching.matcher import Matcher
        from side_engine.method.classifier import ResNetClassifier
        from side_engine.target import load_target

        self.model, self.device, self.work = model, device, work
        self.dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
        self.size = s = sizes(model, device, quick)
        path = DEMO_MODEL if model == "demo" else _cifar_model(work / "cifar-model")
        self.target = load_target(path, device=device)
        if s.n_train:
            self.train = _random_training_set(s.n_train, self.target.channels, self.target.size, work / "train")
        else:
            self.train = load_training_set(demo_training_folder(), self.target.channels, self.target.size)
        self.cfg = _config(path, self.train.root, s, dtype, device)
        m = self.cfg.matching
        self.matcher = Matcher(make_descriptor(m.descriptor, m.path, m.resize, device), self.train.images.to(device),
                               k=m.k, n_neighbours=m.n_neighbours, alpha=m.alpha, chunk=m.chunk)
        c, t = ClassifierConfig(), TDKDConfig()
        torch.manual_seed(0)
        self.classifier = ResNetClassifier(self.target.channels, NUM_LABELS, c.width, c.blocks,
                                           t.time_embed_dim).eval().to(device)
        self._stores: list = []
        self._last_store = None

    # ----- extraction at gamma 0: the engine against DDIMPipeline -----------------------------------------------
    def _plan(self) -> list[tuple[list[int], list[int]]]:
        """(labels, seeds) per batch, as the extract stage derives them."""
        from side_engine.method.guidance import image_seed
        from side_engine.pipeline import target_label

        e = self.cfg.extraction
        out = []
        for b in range(0, e.n_per_gamma, e.batch):
            idx = list(range(b, min(b + e.batch, e.n_per_gamma)))
            labels = [target_label(e, NUM_LABELS, i) for i in idx]
            out.append((labels, [image_seed(e.seed, y, i) for y, i in zip(labels, idx)]))
        return out

    def make_stores(self, n: int) -> None:
        from side_engine.store import AuditStore

        base = len(self._stores)
        self._stores += [AuditStore.create(self.work / f"audit-{base + i}", self.cfg) for i in range(n)]

    def engine(self) -> None:
        from side_engine.events import RunControl
        from side_engine.pipeline import AuditPipeline

        store = self._stores.pop(0)
        pipe = AuditPipeline(store, store.config, self.target, self.train, self.matcher, None)
        pipe.num_labels = NUM_LABELS
        for _ in pipe._extract_stage(RunControl()):
            pass
        if self._last_store is not None:
            self._last_store.close()
            shutil.rmtree(self._last_store.root, ignore_errors=True)
        self._last_store = store

    def ddim_pipeline(self):
        from diffusers import DDIMPipeline

        pipe = DDIMPipeline(unet=self.target.unet, scheduler=self.target.ddim())
        pipe.set_progress_bar_config(disable=True)
        e = self.cfg.extraction
        autocast = torch.autocast(torch.device(self.device).type, dtype=self.dtype,
                                  enabled=self.dtype != torch.float32)
        plan = self._plan()

        def run():
            from side_engine.method.guidance import generators

            out = []
            with autocast:
                for _, seeds in plan:
                    out.append(pipe(batch_size=len(seeds), generator=generators(seeds), eta=e.eta,
                                    num_inference_steps=e.steps, output_type="np").images)
            self.diffusers_images = np.concatenate(out)
        return run

    def images_agree(self) -> float:
        """Largest grey-level difference between the engine's stored images and DDIMPipeline's."""
        from PIL import Image

        store = self._last_store
        ours = np.stack([np.asarray(Image.open(store.path(r.path))) for r in sorted(store.images(),
                                                                                      key=lambda r: r.idx)])
        theirs = (self.diffusers_images * 255).round().astype(np.int16)
        theirs = theirs[..., 0] if ours.ndim == 3 else theirs
        return float(np.abs(ours.astype(np.int16) - theirs).max())

    # ----- one guided step against one unguided step -----------------------------------------------------------
    def sample(self, gamma: float):
        from side_engine.method.guidance import classifier_cond_fn, sample

        labels, seeds = self._plan()[0]
        sched = self.target.ddim()

        def run():
            sample(self.target.unet, sched, seeds, steps=1, gamma=gamma,
                   cond_fn=classifier_cond_fn(self.classifier, labels, True), dtype=self.dtype)
        return run


def _paired(a: list[float], b: list[float]) -> float:
    """Median of a[i] / b[i]: alternate() ran each pair back to back, so each ratio is taken under one load."""
    return median([x / y for x, y in zip(a, b)])


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _label(model: str) -> str:
    return "demo model (1.1M params, 16x16x1)" if model == "demo" else "CIFAR-10-sized UNet (35.7M params, 32x32x3)"


def _measure(model: str, device: str, dtype: str, quick: bool) -> list[Figure]:
    work = Path(tempfile.mkdtemp(prefix=f"side-bench-sampling-{model}-"))
    try:
        b = Bench(model, device, dtype, quick, work)
        s = b.size
        on = "" if device == "cpu" else f" [{device}, {'bf16 autocast' if dtype == 'bfloat16' else 'float32'}]"
        # Untimed round: a one-step call of each side (MKL/cuDNN set-up, allocator) instead of a full run.
        from side_engine.method.guidance import classifier_cond_fn, sample

        labels, seeds = b._plan()[0]
        for gamma in (0.0, GAMMA):
            sample(b.target.unet, b.target.ddim(), seeds, steps=1, gamma=gamma,
                   cond_fn=classifier_cond_fn(b.classifier, labels, True), dtype=b.dtype)
        b.matcher.match(torch.rand(len(seeds), b.target.channels, b.target.size, b.target.size, device=device))
        sync(device)

        b.make_stores(s.repeats)
        diffusers_run = b.ddim_pipeline()
        load0 = os.getloadavg()
        ex = alternate({"engine": b.engine, "diffusers": diffusers_run}, s.repeats, warmup=0, device=device)
        te, td = median(ex["engine"]), median(ex["diffusers"])
        ratio = _paired(ex["diffusers"], ex["engine"])  # of images/s
        agree = b.images_agree()
        match_t = timed(lambda: b.matcher.match(torch.rand(s.batch, b.target.channels, b.target.size,
                                                           b.target.size, device=device)), device)

        gs = alternate({"guided": b.sample(GAMMA), "unguided": b.sample(0.0)}, s.step_repeats, warmup=0,
                       device=device)
        tg, tu = median(gs["guided"]), median(gs["unguided"])
        step_ratio = _paired(gs["guided"], gs["unguided"])
        one = None
        if device == "cpu":
            # The same pair on one thread: on a busy machine each op of a thread pool waits to be scheduled, and
            # the classifier's many small ops pay that more than the UNet's large ones; one thread pays none.
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                one = alternate({"guided": b.sample(GAMMA), "unguided": b.sample(0.0)}, s.step_repeats, warmup=1)
            finally:
                torch.set_num_threads(threads)
        unet_params, clf_params = _params(b.target.unet), _params(b.classifier)
        common = dict(model=_label(model), unet_params=unet_params, classifier_params=clf_params, device=device,
                      dtype=dtype, torch_threads=torch.get_num_threads(), repeats=s.repeats,
                      loadavg_before=load0, loadavg_after=os.getloadavg())
        return [
            Figure(
                figure=(f"sampling: extraction at gamma=0 (streamed to the store + matched against {len(b.train):,}) "
                        f"vs diffusers DDIMPipeline, {_label(model)}, {s.images} images, batch {s.batch}, "
                        f"{s.steps} DDIM steps{on}"),
                goal=">= 0.95x DDIMPipeline's images/s",
                measured=(f"{fmt_ratio(ratio)} ({s.images / te:.2f} vs {s.images / td:.2f} images/s; "
                          f"{fmt_s(te)} vs {fmt_s(td)} per run)"),
                met=ratio >= 0.95,
                details=dict(common, engine_s=ex["engine"], diffusers_s=ex["diffusers"], engine_median_s=te,
                             diffusers_median_s=td, ratio_images_per_s_median_of_pairs=ratio, images=s.images,
                             batch=s.batch, steps=s.steps, n_train=len(b.train), matching_one_batch_s=match_t,
                             max_grey_level_difference_engine_vs_diffusers=agree),
            ),
            Figure(
                figure=(f"sampling: one guided DDIM step (f_TD gradient, gamma={GAMMA:g}) vs one unguided step, "
                        f"{_label(model)}, batch {s.batch}{on}"),
                goal="<= 1.15x",
                measured=(f"{fmt_ratio(step_ratio)} ({fmt_s(tg)} vs {fmt_s(tu)} per step)"
                          + (f"; on 1 thread {fmt_ratio(_paired(one['guided'], one['unguided']))} "
                             f"({fmt_s(median(one['guided']))} vs {fmt_s(median(one['unguided']))})" if one else "")),
                met=step_ratio <= 1.15,
                details=dict(common, guided_s=gs["guided"], unguided_s=gs["unguided"], step_repeats=s.step_repeats,
                             one_thread_guided_s=one and one["guided"], one_thread_unguided_s=one and one["unguided"],
                             guided_median_s=tg, unguided_median_s=tu, ratio_median_of_pairs=step_ratio,
                             batch=s.batch, timed="side_engine.method.guidance.sample with steps=1, noise included",
                             classifier="ResNetClassifier, the engine's default f_TD (width 32, blocks [1,1,1], "
                                        "time embedding 128), random weights, eval mode"),
            ),
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(device: str = "cpu", quick: bool = False) -> list[Figure]:
    figures = []
    runs = [("demo", "float32"), ("cifar", "float32")]
    if device.startswith("cuda"):
        runs.append(("cifar", "bfloat16"))
    for model, dtype in runs:
        figs = _measure(model, device, dtype, quick)
        for f in figs:
            print(f"  {f.figure}: {f.measured}", flush=True)
        figures += figs
    if not device.startswith("cuda"):
        figures.append(gpu_not_measured("sampling", "CIFAR-10-sized UNet, float32 and bf16"))
    return figures
