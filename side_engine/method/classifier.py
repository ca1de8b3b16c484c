"""The ResNet classifier of SIDE's appendix C, time-independent (f_TI) or time-dependent (f_TD).

f_TD is f_TI's network with ONE time module, placed right after the first BatchNorm of the first block of
layer1: h = Conv -> BN -> TimeModule(h, t) -> ReLU -> Conv -> BN; out = ReLU(h + shortcut(x)).
Weights are saved as safetensors, the architecture in the file's metadata.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

import torch
from torch import nn
from torch.nn import functional as F

from ..atomic import replacing
from ..errors import InputError


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps, (N,) -> (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class TimeModule(nn.Module):
    """e = Linear(SiLU(GroupNorm(embed(t)))) -> (scale, shift); h * (1 + scale) + shift."""

    def __init__(self, channels: int, embed_dim: int):
        super().__init__()
        self.embed_dim = embed_dim
        self.norm = nn.GroupNorm(min(32, embed_dim // 4), embed_dim)
        self.proj = nn.Linear(embed_dim, 2 * channels)
        # Zero init: distillation starts from a network that ignores t, then learns how much t matters.
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e = self.proj(F.silu(self.norm(timestep_embedding(t, self.embed_dim))))
        scale, shift = e[:, :, None, None].chunk(2, dim=1)
        return h * (1 + scale) + shift


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, time_embed_dim: int | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.time = TimeModule(c_out, time_embed_dim) if time_embed_dim else None
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out else nn.Identity()
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
        h = self.bn1(self.conv1(x))
        if self.time is not None:
            h = self.time(h, t)
        h = self.bn2(self.conv2(F.relu(h)))
        return F.relu(h + self.shortcut(x))


class ClassifierArch(TypedDict):
    """ResNetClassifier's constructor arguments, as a classifier file's metadata stores them."""

    in_channels: int
    num_classes: int
    width: int
    blocks: list[int]
    time_embed_dim: int | None


class ResNetClassifier(nn.Module):
    """Stem conv, one stage per entry of blocks (width doubling, stride 2 after the first), pool, linear."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32, blocks: Sequence[int] = (1, 1, 1),
                 time_embed_dim: int | None = None):
        super().__init__()
        self.arch = ClassifierArch(in_channels=in_channels, num_classes=num_classes, width=width, blocks=list(blocks),
                                   time_embed_dim=time_embed_dim)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        layers = []
        c = width
        for i, n in enumerate(blocks):
            c_out = width * 2**i
            for j in range(n):
                first = i == 0 and j == 0
                layers.append(BasicBlock(c, c_out, 2 if (i > 0 and j == 0) else 1,
                                         time_embed_dim if first else None))
                c = c_out
        self.layers = nn.ModuleList(layers)
        self.head = nn.Linear(c, num_classes)

    @property
    def time_dependent(self) -> bool:
        return self.arch["time_embed_dim"] is not None

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        if self.time_dependent:
            if t is None:
                raise ValueError("a time-dependent classifier needs t")
            t = t.expand(x.shape[0]) if t.dim() == 0 else t
        h = self.stem(x)
        for layer in self.layers:
            h = layer(h, t)
        return self.head(h.mean(dim=(2, 3)))

    @classmethod
    def from_time_independent(cls, f_ti: ResNetClassifier, time_embed_dim: int) -> ResNetClassifier:
        """f_TD initialised from f_TI's weights; the new time module starts as the identity."""
        arch: ClassifierArch = {**f_ti.arch, "time_embed_dim": time_embed_dim}
        f_td = cls(**arch)
        missing, unexpected = f_td.load_state_dict(f_ti.state_dict(), strict=False)
        assert not unexpected and all(".time." in k for k in missing), (missing, unexpected)
        return f_td


def save_classifier(model: ResNetClassifier, path: Path, extra: dict | None = None) -> None:
    from safetensors.torch import save_file

    meta = {"arch": json.dumps(model.arch), **{k: json.dumps(v) for k, v in (extra or {}).items()}}
    with replacing(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, tmp, metadata=meta)


def load_classifier(path: str | Path) -> tuple[ResNetClassifier, dict]:
    """(model in eval mode, metadata). Anything but a SIDE classifier in safetensors is an InputError."""
    from safetensors import SafetensorError, safe_open

    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(path, "classifier file does not exist")
    if path.suffix != ".safetensors":
        raise InputError(path, "classifier must be a .safetensors file (pickle checkpoints are never loaded)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is no mapping)
    except (SafetensorError, OSError) as e:
        raise InputError(path, f"not a readable safetensors file ({e})") from None
    if "arch" not in meta:
        raise InputError(path, "no 'arch' metadata: not a classifier written by SIDE Inspector")
    arch = json.loads(meta["arch"])
    model = ResNetClassifier(**arch)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise InputError(path, f"weights do not match the stored architecture ({str(e).splitlines()[0]})") from None
    extra = {k: json.loads(v) for k, v in meta.items() if k != "arch"}
    return model.eval(), extra
