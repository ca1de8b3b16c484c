"""Inference over many images in fixed-size batches, so that memory stays bounded whatever their number."""

from __future__ import annotations

from collections.abc import Callable

import torch

INFERENCE_BATCH = 256  # images per forward pass: a few MB of activations for the classifiers and descriptors here


def batched(fn: Callable[..., torch.Tensor], *tensors: torch.Tensor, batch: int = INFERENCE_BATCH) -> torch.Tensor:
    """fn applied to matching slices of the tensors (all of the same length), results concatenated in order."""
    n = len(tensors[0])
    return torch.cat([fn(*(t[i:i + batch] for t in tensors)) for i in range(0, n, batch)])
