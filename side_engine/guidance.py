"""Sampling: our own DDIM loop with power-prior classifier guidance (method doc section 2).

    g      = grad_x log_softmax(f(x_t, t))[y]
    eps^   = eps_theta(x_t, t) - sqrt(1 - abar_t) * gamma * g
    x_t-1  = DDIM.step(eps^, t, x_t)

gamma = 0 is plain unconditional DDIM, identical to diffusers' DDIMPipeline given the same noise. Every image
draws its noise from its own generator, seeded from (audit seed, label, index), so in exact arithmetic it does not
depend on its batch, and the same index starts from the same noise at every gamma (a sweep compares like with like).
In floating point the batch's composition changes the rounding, and strong guidance can amplify that (up to 33 grey
levels measured for a batch of one on CPU): bit-exact regeneration repeats the image's original batch
(verify.py; docs/EVIDENCE.md).
"""

from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F


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


def initial_noise(gens: list[torch.Generator], shape: tuple[int, ...], device="cpu") -> torch.Tensor:
    """One draw per image from its own generator, as diffusers' randn_tensor does with a list of generators."""
    return torch.cat([torch.randn((1, *shape), generator=g, device=g.device) for g in gens]).to(device)


def guidance_gradient(classifier, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor,
                      time_dependent: bool) -> torch.Tensor:
    """grad_x log p(y | x_t, t) for each image (images are independent: the classifier is in eval mode)."""
    with torch.enable_grad():
        x = x_t.detach().float().requires_grad_(True)
        logits = classifier(x, t.expand(len(x))) if time_dependent else classifier(x)
        selected = F.log_softmax(logits.float(), dim=1).gather(1, labels[:, None]).sum()
        (grad,) = torch.autograd.grad(selected, x)
    return grad


@torch.no_grad()
def sample(
    unet,
    scheduler,
    seeds,
    steps: int = 50,
    eta: float = 0.0,
    gamma: float = 0.0,
    classifier=None,
    labels=None,
    time_dependent: bool = True,
    dtype: torch.dtype = torch.float32,
    should_stop: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Generate one image per seed, (N, C, H, W) in [-1, 1].

    scheduler: a DDIMScheduler (fresh or reused; set_timesteps is called here). should_stop is called between
    steps and may raise to abandon the batch."""
    device = unet.device
    size = unet.config.sample_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    gens = generators(seeds)
    x = initial_noise(gens, (unet.config.in_channels, *size), device)
    guided = gamma != 0 and classifier is not None
    if guided:
        labels = torch.as_tensor(labels, dtype=torch.long, device=device)
        alphas_cumprod = scheduler.alphas_cumprod.to(device)
    scheduler.set_timesteps(steps)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    for t in scheduler.timesteps:
        if should_stop is not None:
            should_stop()
        with autocast:
            eps = unet(x.to(unet.dtype), t).sample.float()
            if guided:
                g = guidance_gradient(classifier, x, t.to(device), labels, time_dependent)
                eps = eps - (1 - alphas_cumprod[t]).sqrt() * gamma * g
        x = scheduler.step(eps, t, x, eta=eta, generator=gens if eta > 0 else None).prev_sample
    return x


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] (N, C, H, W) -> uint8 (N, H, W) for one channel, (N, H, W, 3) for three: what the PNGs hold."""
    arr = ((x.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return arr[:, 0] if arr.shape[1] == 1 else arr.transpose(0, 2, 3, 1)


def from_uint8(arr: np.ndarray) -> torch.Tensor:
    """uint8 images as stored -> (N, C, H, W) float in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(arr)).float().div_(255.0)
    return t[:, None] if t.dim() == 3 else t.permute(0, 3, 1, 2)
