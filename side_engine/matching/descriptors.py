"""Descriptors: anything that maps a batch of images to vectors the matcher compares.

pixels: the raw image in [0, 1], compared by per-pixel RMS distance (Carlini's l2; calibrated in similarity.py).
sscd / torchscript: a user-supplied TorchScript model whose outputs are L2-normalised; compared by cosine.
SSCD (sscd_disc_mixup.torchscript.pt) cannot be downloaded at run time: the user supplies the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from torch.nn import functional as F

from ..errors import InputError
from ..vocabulary import Direction

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Descriptor(Protocol):
    name: str
    direction: Direction
    identity: dict  # what makes its vectors: name and settings (the training descriptor cache is keyed by it)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """images (N, C, H, W) float in [0, 1] -> (N, d) float32."""
        ...


class PixelDescriptor:
    name = "pixels"
    direction = Direction.DISTANCE
    identity = {"name": "pixels"}  # noqa: RUF012  (read only)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images.reshape(len(images), -1).float()


class TorchScriptDescriptor:
    """A TorchScript embedding model; SSCD's preprocessing: short side to `resize`, ImageNet mean/std."""

    direction = Direction.SIMILARITY

    def __init__(self, path: str | Path, name: str = "torchscript", resize: int = 288, device: str = "cpu"):
        path = Path(path).expanduser()
        if not path.exists():
            raise InputError(path, "descriptor file does not exist")
        try:
            self.model = torch.jit.load(str(path), map_location=device).eval()
        except (RuntimeError, ValueError) as e:
            raise InputError(path, f"not a TorchScript model ({str(e).splitlines()[0][:160]})") from None
        for param in self.model.parameters():
            param.requires_grad_(False)  # a fixed descriptor: autograd only ever tracks the input images
        self.name = name
        self.resize = resize
        from ..dataset import sha256_file

        self.identity = {"name": name, "resize": resize, "sha256": sha256_file(path)}
        self.device = device
        self.mean = torch.tensor(IMAGENET_MEAN, device=device)[:, None, None]
        self.std = torch.tensor(IMAGENET_STD, device=device)[:, None, None]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Differentiable in the images when they require grad inside torch.enable_grad (guidance through the
        nearest-centre f_TI of the clusters source); otherwise it runs without autograd, as matching needs."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and images.requires_grad):
            return self._embed(images)

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device).float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h, w = x.shape[-2:]
        if self.resize and min(h, w) != self.resize:
            scale = self.resize / min(h, w)
            x = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear", antialias=True,
                              align_corners=False)
        out = self.model((x - self.mean) / self.std)
        return F.normalize(out.float(), dim=1)


def make_descriptor(kind: str, path: str = "", resize: int = 288, device: str = "cpu") -> Descriptor:
    if kind == "pixels":
        return PixelDescriptor()
    if kind in ("sscd", "torchscript"):
        return TorchScriptDescriptor(path, name=kind, resize=resize, device=device)
    raise ValueError(kind)
