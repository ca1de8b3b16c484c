"""The shipped demo models: small DDPMs trained on subsets of scikit-learn's digits.

"regime" (the default) memorizes a little, as the models of the SIDE paper do: plain sampling rarely copies, so
guidance has room to show. "memorizing" copies on a large share of plain samples. The training images are rebuilt
from scikit-learn at run time (nothing is downloaded); `side train-demo --model NAME` reproduces the committed model
in resources/demo/NAME (installed as the package side_engine.demo_models) from a fixed seed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from PIL import Image

from .errors import Cancelled
from .events import Check, no_check
from .shipped import folder

if TYPE_CHECKING:
    from diffusers import UNet2DModel
    from sklearn.utils import Bunch

    from .config import AuditConfig, ExtractionConfig

RESOURCES = folder("side_engine.demo_models")


@dataclass(frozen=True)
class DemoSpec:
    per_class: int = 20  # 200 images: small enough for a 1.1M-parameter UNet to memorize (Gu et al.)
    size: int = 16
    subset_seed: int = 0
    train_seed: int = 0
    steps: int = 4_000
    batch: int = 64
    lr: float = 3e-4
    warmup: int = 200
    ema_decay: float = 0.999
    checkpoint_every: int = 500
    # Steps at which the EMA weights are also written to out/snapshots/step-N: the lr schedule does not depend on
    # the total, so a snapshot equals a model trained for exactly N steps (how a training length is chosen).
    snapshots: tuple[int, ...] = ()


# The shipped demo models. "regime" memorizes a little, as the models of the SIDE paper do (Random's low band a few
# percent, mid and high under 1%); "memorizing" copies on a large share of plain samples (no headroom for guidance).
DEMO_SPECS = {
    "regime": DemoSpec(per_class=170, steps=1600),
    "memorizing": DemoSpec(),
}
DEMO_MODELS = {name: RESOURCES / name for name in DEMO_SPECS}
DEFAULT_DEMO = "regime"
DEMO_MODEL = DEMO_MODELS[DEFAULT_DEMO]


def build_demo_dataset(out: str | Path, spec: DemoSpec = DemoSpec()) -> Path:
    """Write the demo training set as an image folder, one subfolder per digit (ImageFolder convention).

    Each 8x8 digit (0..16) is upsampled bilinearly to spec.size and stored as a lossless 8-bit PNG."""
    from sklearn.datasets import load_digits

    out = Path(out)
    # Without return_X_y a Bunch; sklearn's unannotated return is inferred as either.
    digits = cast("Bunch", load_digits())
    rng = np.random.default_rng(spec.subset_seed)
    imgs = torch.from_numpy(digits.images).float().div(16.0)[:, None]
    imgs = torch.nn.functional.interpolate(imgs, size=(spec.size, spec.size), mode="bilinear", align_corners=False)
    imgs = (imgs.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    for label in range(10):
        idx = np.flatnonzero(digits.target == label)
        chosen = np.sort(rng.choice(idx, size=spec.per_class, replace=False))
        d = out / str(label)
        d.mkdir(parents=True, exist_ok=True)
        for i in chosen:
            Image.fromarray(imgs[i, 0]).save(d / f"digit_{i:04d}.png")
    return out


def demo_unet_config(size: int = 16) -> dict:
    return dict(
        sample_size=size,
        in_channels=1,
        out_channels=1,
        block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        norm_num_groups=8,
    )


class DemoCheckpoint:
    """The demo DDPM's training state: weights, optimiser, EMA and the data generator, so that a resumed run
    continues the very stream of batches it stopped in. Our own file of plain tensors, never a user's."""

    def __init__(self, path: Path, unet, optimizer, ema, gen: torch.Generator):
        self.path, self.unet, self.optimizer, self.ema, self.gen = path, unet, optimizer, ema, gen

    def restore(self) -> int:
        if not self.path.exists():
            return 0
        state = torch.load(self.path, weights_only=True)
        self.unet.load_state_dict(state["unet"])
        self.optimizer.load_state_dict(state["opt"])
        self.ema.load_state_dict(state["ema"])
        self.gen.set_state(state["gen"])
        return int(state["step"])

    def save(self, step: int) -> None:
        tmp = self.path.with_suffix(".tmp")
        torch.save({"unet": self.unet.state_dict(), "opt": self.optimizer.state_dict(),
                    "ema": self.ema.state_dict(), "gen": self.gen.get_state(), "step": step}, tmp)
        tmp.replace(self.path)


def train_demo(
    out: str | Path,
    spec: DemoSpec = DemoSpec(),
    log: Callable[[str], None] = print,
    check: Check = no_check,
) -> Path:
    """Train the demo DDPM into out/ (a DDPMPipeline folder, safetensors) with training.fit, resuming from
    out/checkpoint. A cancel (check raising) leaves the checkpoint to resume from."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
    from diffusers.training_utils import EMAModel

    from .dataset import load_training_set
    from .method.training import fit

    out = Path(out)
    data_dir = out / "checkpoint" / "data"
    if not data_dir.exists():
        build_demo_dataset(data_dir, spec)
    train = load_training_set(data_dir, channels=1, size=spec.size)
    x_all = train.images * 2 - 1

    torch.manual_seed(spec.train_seed)
    unet = UNet2DModel(**demo_unet_config(spec.size))
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    ema = EMAModel(unet.parameters(), decay=spec.ema_decay, model_cls=UNet2DModel, model_config=unet.config)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=spec.lr, weight_decay=0.0)
    # One generator for the whole run, saved in the checkpoint (not fit's per-step ones): the shipped demo
    # models were trained on this stream, and `side train-demo` must remake them.
    gen = torch.Generator().manual_seed(spec.train_seed)
    checkpoint = DemoCheckpoint(out / "checkpoint" / "state.pt", unet, optimizer, ema, gen)

    def step(model: UNet2DModel, _step_gen: torch.Generator) -> tuple[torch.Tensor, float]:
        idx = torch.randint(0, len(x_all), (spec.batch,), generator=gen)
        x0 = x_all[idx]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, scheduler.config["num_train_timesteps"], (spec.batch,), generator=gen)
        # The ignore: diffusers annotates add_noise's timesteps as an IntTensor; its own training scripts pass
        # int64 ones, as here.
        noisy = scheduler.add_noise(x0, noise, t)  # pyright: ignore[reportArgumentType]
        return torch.nn.functional.mse_loss(model(noisy, t).sample, noise), float("nan")

    def after_step(step: int) -> None:
        ema.step(unet.parameters())
        if step in spec.snapshots:
            ema.store(unet.parameters())
            ema.copy_to(unet.parameters())
            DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(out / "snapshots" / f"step-{step}",
                                                                         safe_serialization=True)
            ema.restore(unet.parameters())
            checkpoint.save(step)

    if checkpoint.path.exists():
        log(f"resuming from {checkpoint.path}")
    try:
        run = fit(unet, step, optimizer, spec.steps, spec.train_seed, checkpoint, check, log_every=100,
                  checkpoint_every=spec.checkpoint_every, lr_at=lambda s: spec.lr * min(1.0, (s + 1) / spec.warmup),
                  max_grad_norm=1.0, after_step=after_step)
        for done, loss, _ in run:
            log(f"step {done}/{spec.steps} loss {loss:.4f}")
    except Cancelled:
        return out

    ema.copy_to(unet.parameters())
    unet.eval()
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(out, safe_serialization=True)
    (out / "demo_spec.json").write_text(json.dumps(asdict(spec), indent=2) + "\n")
    checkpoint.save(spec.steps)
    return out


def demo_training_folder(spec: DemoSpec = DEMO_SPECS[DEFAULT_DEMO]) -> Path:
    """A demo model's training images, rebuilt from scikit-learn into the user's cache on first use."""
    import os
    import shutil

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "side-inspector"
    folder = cache / f"demo-digits-{spec.size}px-{spec.per_class}x10-seed{spec.subset_seed}"
    if not (folder / "9").exists():
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        build_demo_dataset(tmp, spec)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return folder


def demo_spec_of(model: str | Path) -> DemoSpec:
    """The spec a demo model folder was trained with (its demo_spec.json); a model folder without one is audited
    against the default demo's digits."""
    from .errors import InputError

    path = Path(model) / "demo_spec.json"
    if not path.is_file():
        if (Path(model) / "model_index.json").is_file() or (Path(model) / "config.json").is_file():
            return DEMO_SPECS[DEFAULT_DEMO]
        raise InputError(model, f"is neither a shipped demo model ({', '.join(DEMO_SPECS)}) nor a model folder")
    data = json.loads(path.read_text())
    data["snapshots"] = tuple(data.get("snapshots", ()))
    return DemoSpec(**data)


def demo_audit_settings(name: str) -> tuple[str, int, ExtractionConfig]:
    """(labels source, D_syn size, gamma sweep) of each shipped model's demo. The regime model's copies are rare
    (Random: about 5% of images in the low band, almost none above), so its demo spends its minutes on one gamma with
    many images: at 128 per gamma no difference from Random could be told from noise. Gamma 3 with clusters labels
    (surrogate labels from the model's own samples) is the best of the full sweep, confirmed on fresh images, where
    the digit labels' gain did not hold up (docs/RESULTS.md)."""
    from .config import ExtractionConfig

    if name == "memorizing":
        return "classifier", 512, ExtractionConfig(gammas=[0.0, 2.0, 5.0, 10.0, 20.0], n_per_gamma=128, steps=50,
                                                   batch=64, ol_ti=True)
    return "clusters", 2048, ExtractionConfig(gammas=[0.0, 3.0], n_per_gamma=2048, steps=50, batch=64, ol_ti=False)


def demo_config(quick: bool = False, model: str | Path = DEMO_MODEL) -> AuditConfig:
    """The shipped demo audit of a demo model folder. quick: a smoke run of the whole pipeline in well under a
    minute."""
    from .config import (
        AuditConfig,
        ClassifierConfig,
        DataConfig,
        ExtractionConfig,
        LabelsConfig,
        ModelConfig,
        TDKDConfig,
    )

    spec = demo_spec_of(model)
    name = next((k for k, v in DEMO_SPECS.items() if v == spec), DEFAULT_DEMO)
    labels, n_syn, extraction = demo_audit_settings(name)
    cfg = AuditConfig(
        name=f"demo: DDPM on {spec.per_class * 10} digits (16x16), {name}",
        model=ModelConfig(path=str(Path(model).resolve())),
        data=DataConfig(train=str(demo_training_folder(spec))),
        labels=LabelsConfig(source=labels),
        classifier=ClassifierConfig(steps=400),
        tdkd=TDKDConfig(n_syn=n_syn, steps=1500),
        extraction=extraction,
    )
    if quick:
        cfg.name = "demo (quick)"
        cfg.labels.source = "classifier"  # 64 samples are too few for the clusters' k-means
        cfg.classifier.steps = 60
        cfg.tdkd.n_syn = 64
        cfg.tdkd.sample_steps = 10
        cfg.tdkd.steps = 60
        cfg.extraction = ExtractionConfig(gammas=[0.0, 10.0], n_per_gamma=16, steps=10, batch=16, ol_ti=True)
    return cfg
