"""The one training loop, behind f_TI, f_TD and the demo DDPM: per-step seeded batches, checkpoints, resume.

Each step's randomness comes from a generator seeded by (seed, step), so a resumed run draws the same batches
it would have drawn without the interruption. What a checkpoint holds is the caller's (a Checkpoint): a classifier
keeps its weights, its optimiser's state and the step; the demo DDPM also keeps its optimiser, EMA and data generator.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Protocol, TypeVar

import torch
from torch import nn

from ..atomic import replacing
from ..events import Check
from .classifier import ResNetClassifier, load_classifier

M = TypeVar("M", bound=nn.Module)

# (model, the step's generator) -> loss tensor, accuracy float (NaN where the model has none)
StepFn = Callable[[M, torch.Generator], tuple[torch.Tensor, float]]


class Checkpoint(Protocol):
    def restore(self) -> int:
        """Loads what was saved into the model (and whatever else it keeps); the step it was saved at, 0 if none."""
        ...

    def save(self, step: int) -> None: ...


class WeightsCheckpoint:
    """A classifier's weights, its optimiser's state and the step, in one safetensors file (written whole or not at
    all), so that a resumed training takes the same steps as one never stopped."""

    FORMAT = "side-training-checkpoint-1"

    def __init__(self, model: ResNetClassifier, path: Path, optimizer: torch.optim.Optimizer):
        self.model = model
        self.path = path
        self.optimizer = optimizer

    def restore(self) -> int:
        from safetensors import safe_open

        if not self.path.exists():
            return 0
        with safe_open(str(self.path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != self.FORMAT:
                # An earlier engine's checkpoint kept the weights alone: the optimiser's moments restart.
                saved, extra = load_classifier(self.path)
                self.model.load_state_dict(saved.state_dict())
                return int(extra.get("step", 0))
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is no mapping)
        self.model.load_state_dict({k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")})
        state: dict[int, dict[str, torch.Tensor]] = {}
        for name, t in tensors.items():
            if name.startswith("optimizer/"):
                _, i, key = name.split("/", 2)
                state.setdefault(int(i), {})[key] = t
        sd = self.optimizer.state_dict()
        sd["state"] = state
        self.optimizer.load_state_dict(sd)
        return int(meta["step"])

    def save(self, step: int) -> None:
        from safetensors.torch import save_file

        tensors = {f"model/{k}": v.detach().contiguous().cpu() for k, v in self.model.state_dict().items()}
        for i, s in self.optimizer.state_dict()["state"].items():
            tensors.update({f"optimizer/{i}/{k}": v.detach().contiguous().cpu() for k, v in s.items()
                            if isinstance(v, torch.Tensor)})
        with replacing(self.path) as tmp:
            save_file(tensors, tmp, metadata={"format": self.FORMAT, "step": str(step)})


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint file was saved at (either format), -1 where there is none."""
    from safetensors import safe_open

    if not path.exists():
        return -1
    with safe_open(str(path), framework="pt") as f:
        return int((f.metadata() or {}).get("step", -1))


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def fit(
    model: M,
    step_fn: StepFn[M],
    optimizer: torch.optim.Optimizer,
    steps: int,
    seed: int,
    checkpoint: Checkpoint,
    check: Check,
    log_every: int = 10,
    checkpoint_every: int = 100,
    lr_at: Callable[[int], float] | None = None,
    max_grad_norm: float | None = None,
    after_step: Callable[[int], None] | None = None,
) -> Generator[tuple[int, float, float], None, M]:
    """Train in place from the checkpoint's step, yielding (step, mean loss, mean accuracy) every log_every steps;
    returns the model in eval mode. lr_at(step) sets the learning rate before each step; after_step(step) runs
    after each optimiser step with the count of steps done (an EMA update, a snapshot).

    Whatever stops the loop (an exception, a cancel, the consumer closing the generator) first checkpoints."""
    start = step = checkpoint.restore()
    model.train()
    losses, accs = [], []
    try:
        while step < steps:
            check()
            if lr_at is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step)
            loss, acc = step_fn(model, step_generator(seed, step))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            step += 1
            if after_step is not None:
                after_step(step)
            losses.append(loss.item())
            accs.append(acc)
            if step % log_every == 0 or step == steps:
                yield step, sum(losses) / len(losses), sum(accs) / len(accs)
                losses, accs = [], []
            if step % checkpoint_every == 0:
                checkpoint.save(step)
    except BaseException:
        if step > start:
            checkpoint.save(step)
        raise
    return model.eval()
