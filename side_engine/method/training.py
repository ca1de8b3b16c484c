"""The one training loop behind f_TI and f_TD: AdamW, per-step seeded batches, checkpoints, resume.

Each step's randomness comes from a generator seeded by (seed, step), so a resumed run draws the same batches
it would have drawn without the interruption.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Generator

import torch

from .classifier import ResNetClassifier, load_classifier, save_classifier

# (model, step generator) -> loss tensor, accuracy float
StepFn = Callable[[ResNetClassifier, torch.Generator], tuple[torch.Tensor, float]]


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def fit(
    model: ResNetClassifier,
    step_fn: StepFn,
    steps: int,
    lr: float,
    weight_decay: float,
    seed: int,
    checkpoint: Path,
    check: Callable[[], None],
    log_every: int = 10,
    checkpoint_every: int = 100,
) -> Generator[tuple[int, float, float], None, ResNetClassifier]:
    """Train in place from the checkpoint's step if there is one, yielding (step, mean loss, mean accuracy)
    every log_every steps; returns the model in eval mode.

    The optimiser's moments restart with a resumed run (the weights and the step do not). Whatever stops the
    loop (an exception, a cancel, the consumer closing the generator) first checkpoints the weights."""
    start = 0
    if checkpoint.exists():
        saved, extra = load_classifier(checkpoint)
        model.load_state_dict(saved.state_dict())
        start = int(extra.get("step", 0))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    losses, accs = [], []
    step = start
    try:
        while step < steps:
            check()
            loss, acc = step_fn(model, step_generator(seed, step))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            losses.append(loss.item())
            accs.append(acc)
            if step % log_every == 0 or step == steps:
                yield step, sum(losses) / len(losses), sum(accs) / len(accs)
                losses, accs = [], []
            if step % checkpoint_every == 0:
                save_classifier(model, checkpoint, {"step": step})
    except BaseException:
        if step > start:
            save_classifier(model, checkpoint, {"step": step})
        raise
    return model.eval()
