"""Sampling: our own DDIM loop with power-prior classifier guidance (method doc section 2).

    g      = grad_x log_softmax(f(x_t, t))[y]
    eps^   = eps_theta(x_t, t) - sqrt(1 - abar_t) * gamma * g                       (the guided score)
    x0^    = clip(x0(x_t, eps_theta)) + (1 - abar_t) / sqrt(abar_t) * gamma * g     (the guided x0, never clipped)
    x_t-1  = sqrt(abar_prev) * x0^ + sqrt(1 - abar_prev - sigma^2) * eps^ + sigma * z (DDIM)

Only the unguided x0 estimate is clipped, and only if the scheduler clips (every DDPMPipeline folder does). Adding
the guidance to eps and then calling a clipping DDIM step is wrong: the step clips the guidance out of x0 at high t
while it survives, with the opposite sign, in the direction term, so the step moves against the gradient
(cosine about -0.9 measured on the demo). guided-diffusion clips the unguided estimate first for the same reason.
Unlike guided-diffusion we keep diffusers' direction term (the unclipped eps, plus guidance), so that the guided
sampler tends to the plain one as gamma -> 0 and a comparison with Random measures the guidance alone.

gamma = 0 is plain unconditional DDIM, identical to diffusers' DDIMPipeline given the same noise. Every image
draws its noise from its own generator, seeded from (audit seed, label, index), so in exact arithmetic it does not
depend on its batch, and the same index starts from the same noise at every gamma (a sweep compares like with like).
In floating point the batch's composition changes the rounding, and strong guidance can amplify that (up to 33 grey
levels measured for a batch of one on CPU): bit-exact regeneration repeats the image's original batch
(verify.py; docs/EVIDENCE.md).

Any change here that can move a generated pixel bumps provenance.SAMPLER_REVISION.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from torch.nn import functional as F

from ..events import Check

if TYPE_CHECKING:
    from diffusers import DDIMScheduler, UNet2DModel
    from diffusers.schedulers.scheduling_ddim import DDIMSchedulerOutput

# cond_fn(x_t, t) -> the guidance gradient g for each image, as guided-diffusion's samplers are handed one
CondFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def image_seed(audit_seed: int, label: int, index: int) -> int:
    """The noise seed of one generated image; gamma is deliberately not part of it (see module doc)."""
    digest = hashlib.sha256(f"side:{audit_seed}:{label}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def syn_seed(audit_seed: int, index: int) -> int:
    """The noise seed of one unconditional sample of D_syn (kept apart from the extraction's seeds)."""
    digest = hashlib.sha256(f"side-syn:{audit_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generators(seeds, device="cpu") -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def initial_noise(gens: list[torch.Generator], shape: tuple[int, ...], device: str | torch.device = "cpu"
                  ) -> torch.Tensor:
    """One draw per image from its own generator, as diffusers' randn_tensor does with a list of generators."""
    return torch.cat([torch.randn((1, *shape), generator=g, device=g.device) for g in gens]).to(device)


def classifier_cond_fn(classifier, labels, time_dependent: bool) -> CondFn:
    """cond_fn of a classifier: grad_x log p(y | x_t, t) for each image and its label y (images are independent: the
    classifier is in eval mode). A time-independent classifier (f_TI, OL-TI) is shown x_t without t."""

    def cond_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        y = torch.as_tensor(labels, dtype=torch.long, device=x_t.device)
        with torch.enable_grad():
            x = x_t.detach().float().requires_grad_(True)
            logits = classifier(x, t.expand(len(x))) if time_dependent else classifier(x)
            selected = F.log_softmax(logits.float(), dim=1).gather(1, y[:, None]).sum()
            (grad,) = torch.autograd.grad(selected, x)
        return grad

    return cond_fn


@torch.no_grad()
def sample(
    unet: UNet2DModel,
    scheduler: DDIMScheduler,
    seeds: Sequence[int],
    steps: int = 50,
    eta: float = 0.0,
    gamma: float = 0.0,
    cond_fn: CondFn | None = None,
    dtype: torch.dtype = torch.float32,
    check: Check | None = None,
) -> torch.Tensor:
    """Generate one image per seed, (N, C, H, W) in [-1, 1], guided by gamma * cond_fn(x_t, t) when both are given.

    scheduler: a DDIMScheduler (fresh or reused; set_timesteps is called here). check is called between steps and
    may raise to abandon the batch."""
    device = unet.device
    size = unet.config["sample_size"]
    size = (size, size) if isinstance(size, int) else tuple(size)
    gens = generators(seeds)
    x = initial_noise(gens, (unet.config["in_channels"], *size), device)
    cond = cond_fn if gamma != 0 else None  # gamma 0 is plain DDIM, whatever cond_fn is
    stepper = unclipped(scheduler) if cond is not None else scheduler
    stepper.set_timesteps(steps)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    for t in stepper.timesteps:
        if check is not None:
            check()
        with autocast:
            eps = unet(x.to(unet.dtype), t).sample.float()
            g = cond(x, t.to(device)) if cond is not None else None
        x = denoise_step(scheduler, stepper, x, t, eps, gamma, g, eta, gens)
    return x


def denoise_step(scheduler: DDIMScheduler, stepper: DDIMScheduler, x: torch.Tensor, t: torch.Tensor,
                 eps: torch.Tensor, gamma: float = 0.0, g: torch.Tensor | None = None, eta: float = 0.0,
                 gens: list[torch.Generator] | None = None) -> torch.Tensor:
    """One DDIM step from x_t; with a gradient g, guided as in the module doc (stepper: unclipped(scheduler))."""
    if g is None:
        return _ddim_step(scheduler, eps, t, x, eta, gens)
    abar = scheduler.alphas_cumprod[t].to(x.device)  # one value, not the whole schedule, to the device each step
    guided = eps - (1 - abar).sqrt() * gamma * g
    x_prev = _ddim_step(stepper, guided, t, x, eta, gens)
    x0 = (x - (1 - abar).sqrt() * eps) / abar.sqrt()
    return x_prev + _abar_prev(stepper, t).to(x.device).sqrt() * (clip_x0(scheduler, x0) - x0)


def _ddim_step(scheduler: DDIMScheduler, eps: torch.Tensor, t: torch.Tensor, x: torch.Tensor, eta: float,
               gens: list[torch.Generator] | None) -> torch.Tensor:
    """x_t-1 of diffusers' DDIM step; with eta > 0 each image's noise comes from its own generator."""
    # The ignore: diffusers annotates timestep as an int and generator as one Generator; step takes the timesteps
    # tensor and a list of generators, as diffusers' own pipelines pass them.
    out = scheduler.step(eps, t, x, eta=eta, generator=gens if eta > 0 else None)  # pyright: ignore[reportArgumentType]
    return cast("DDIMSchedulerOutput", out).prev_sample  # the tuple only with return_dict=False


def unclipped(scheduler: DDIMScheduler) -> DDIMScheduler:
    """The same DDIM scheduler with its x0 clipping and thresholding off (for the guided step)."""
    if not _clips(scheduler):
        return scheduler
    # from_config returns (scheduler, unused kwargs) only when asked to with return_unused_kwargs
    return cast("DDIMScheduler", type(scheduler).from_config(scheduler.config, clip_sample=False, thresholding=False))


def clip_x0(scheduler, x0: torch.Tensor) -> torch.Tensor:
    """The x0 estimate as the scheduler's own step clips (or thresholds) it."""
    cfg = scheduler.config
    if cfg.get("thresholding"):
        return scheduler._threshold_sample(x0)
    if cfg.get("clip_sample"):
        r = cfg.get("clip_sample_range", 1.0)
        return x0.clamp(-r, r)
    return x0


def _clips(scheduler) -> bool:
    return bool(scheduler.config.get("clip_sample") or scheduler.config.get("thresholding"))


def _abar_prev(stepper, t) -> torch.Tensor:
    """abar at the step's target timestep, as DDIMScheduler.step finds it."""
    prev = int(t) - stepper.config.num_train_timesteps // stepper.num_inference_steps
    return stepper.alphas_cumprod[prev] if prev >= 0 else stepper.final_alpha_cumprod


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] (N, C, H, W) -> uint8 (N, H, W) for one channel, (N, H, W, 3) for three: what the PNGs hold."""
    arr = ((x.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return arr[:, 0] if arr.shape[1] == 1 else arr.transpose(0, 2, 3, 1)


def from_uint8(arr: np.ndarray) -> torch.Tensor:
    """uint8 images as stored -> (N, C, H, W) float in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(arr)).float().div_(255.0)
    return t[:, None] if t.dim() == 3 else t.permute(0, 3, 1, 2)
