"""The audited model: an unconditional, epsilon-predicting diffusers UNet2DModel and its noise schedule.

Accepted layouts: a pipeline folder (model_index.json + unet/ + scheduler/, as DDPMPipeline.save_pretrained
writes it) or a bare UNet2DModel folder plus a scheduler folder. Weights are loaded from safetensors only; a
pickle checkpoint is refused, never unpickled, and one planted beside the safetensors weights is ignored (neither
opened nor recorded).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from .dataset import sha256_file
from .errors import InputError

if TYPE_CHECKING:
    from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# What UNet2DModel.from_pretrained(use_safetensors=True) reads: one file, or the index of a sharded checkpoint.
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json")
CONVERT_HINT = ("convert it once in a trusted environment: UNet2DModel.from_pretrained(DIR, use_safetensors=False)"
                ".save_pretrained(DIR, safe_serialization=True)")


@dataclass
class TargetModel:
    unet: UNet2DModel  # eval mode
    scheduler_config: dict
    folder: Path
    files: list[tuple[str, str]]  # (path relative to folder, sha256) of every file that defines the model

    @property
    def channels(self) -> int:
        return int(self.unet.config["in_channels"])

    @property
    def size(self) -> int:
        s = self.unet.config["sample_size"]
        return int(s if isinstance(s, int) else s[0])

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler_config.get("num_train_timesteps", 1000))

    def ddim(self) -> DDIMScheduler:
        from diffusers import DDIMScheduler

        # from_config returns (scheduler, unused kwargs) only when asked to with return_unused_kwargs
        return cast("DDIMScheduler", DDIMScheduler.from_config(self.scheduler_config))

    def noise_schedule(self) -> DDPMScheduler:
        """The scheduler the model was trained with (its add_noise is TDKD's forward process)."""
        from diffusers import DDPMScheduler

        # from_config returns (scheduler, unused kwargs) only when asked to with return_unused_kwargs
        return cast("DDPMScheduler", DDPMScheduler.from_config(self.scheduler_config))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, f"not valid JSON ({e})") from None


def _locate(path: Path, scheduler: str) -> tuple[Path, Path]:
    """(unet folder, scheduler folder)."""
    if not path.exists():
        raise InputError(path, "model folder does not exist")
    if not path.is_dir():
        if path.suffix in PICKLE_SUFFIXES:
            raise InputError(path, f"is a pickle checkpoint; SIDE loads safetensors only - {CONVERT_HINT}")
        raise InputError(path, "model must be a diffusers folder (model_index.json + unet/ + scheduler/)")
    index = path / "model_index.json"
    if index.exists():
        entries = _read_json(index)
        unet_entry = entries.get("unet")
        if unet_entry is None:
            raise InputError(index, "pipeline has no 'unet' component")
        if isinstance(unet_entry, list) and len(unet_entry) == 2 and unet_entry[1] != "UNet2DModel":
            raise InputError(index, f"unet is a {unet_entry[1]}; SIDE audits unconditional UNet2DModel pipelines")
        unet_dir, sched_dir = path / "unet", path / "scheduler"
    elif (path / "config.json").exists():
        unet_dir = path
        sched_dir = Path(scheduler) if scheduler else path.parent / "scheduler"
        if not scheduler and (path / "scheduler_config.json").exists():
            sched_dir = path
    else:
        raise InputError(path, "not a diffusers model folder (no model_index.json and no config.json)")
    if scheduler:
        sched_dir = Path(scheduler)
    if not (unet_dir / "config.json").exists():
        raise InputError(unet_dir, "no config.json for the UNet")
    if not (sched_dir / "scheduler_config.json").exists():
        raise InputError(sched_dir, "no scheduler_config.json: give the scheduler folder as model.scheduler")
    return unet_dir, sched_dir


def load_target(path: str | Path, scheduler: str = "", device: str = "cpu", dtype=None) -> TargetModel:
    import torch
    from diffusers import UNet2DModel

    path = Path(path).expanduser().resolve()
    unet_dir, sched_dir = _locate(path, scheduler)

    config = _read_json(unet_dir / "config.json")
    cls = config.get("_class_name", "UNet2DModel")
    if cls != "UNet2DModel":
        raise InputError(unet_dir / "config.json", f"is a {cls}; SIDE audits unconditional UNet2DModel models")
    if config.get("num_class_embeds") or config.get("class_embed_type"):
        raise InputError(unet_dir / "config.json", "is a class-conditional UNet; SIDE audits unconditional models")
    if config.get("in_channels", 3) != config.get("out_channels", 3):
        raise InputError(unet_dir / "config.json", "in_channels and out_channels differ: not an image-space DPM")

    # The weights diffusers loads (use_safetensors=True: never the pickle beside them, which is ignored: neither
    # opened nor hashed). Without them a pickle checkpoint is refused unopened, whatever other files lie there.
    if not any((unet_dir / name).is_file() for name in WEIGHT_NAMES):
        pickles = sorted(p.name for p in unet_dir.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise InputError(unet_dir / pickles[0],
                             f"is a pickle checkpoint; SIDE loads safetensors only - {CONVERT_HINT}")
        others = sorted(p.name for p in unet_dir.glob("*.safetensors"))
        if others:
            raise InputError(unet_dir, f"no {WEIGHT_NAMES[0]} in the UNet folder (found {', '.join(others)})")
        raise InputError(unet_dir, "no safetensors weights in the UNet folder")

    sched_config = _read_json(sched_dir / "scheduler_config.json")
    prediction = sched_config.get("prediction_type", "epsilon")
    if prediction != "epsilon":
        raise InputError(sched_dir / "scheduler_config.json",
                         f"prediction_type is '{prediction}'; SIDE's guidance needs an epsilon-predicting model")

    from diffusers.utils import logging as diffusers_logging

    # diffusers' advice to install accelerate is noise in a CLI whose every line should matter.
    diffusers_logging.set_verbosity_error()
    try:
        unet = UNet2DModel.from_pretrained(unet_dir, use_safetensors=True, local_files_only=True)
    except (OSError, ValueError, RuntimeError) as e:
        raise InputError(unet_dir, f"could not load the UNet ({str(e).splitlines()[0][:200]})") from None
    # The ignores: diffusers decorates ModelMixin.to with functools.wraps, whose typeshed stub binds no self.
    unet.eval().requires_grad_(False).to(device)  # pyright: ignore[reportArgumentType]
    if dtype is not None and dtype != torch.float32:
        unet.to(dtype=dtype)  # pyright: ignore[reportCallIssue]

    files = []
    for folder in {path, unet_dir, sched_dir}:
        for f in sorted(folder.iterdir()):
            if f.is_file() and (f.suffix in (".json", ".safetensors")):
                files.append((os.path.relpath(f, path), sha256_file(f)))
    return TargetModel(unet=unet, scheduler_config=sched_config, folder=path, files=sorted(set(files)))
