"""One audit across several processes: torchrun / accelerate launch set RANK, WORLD_SIZE and LOCAL_RANK.

Rank 0 is the audit's one writer: it holds the store, runs the small training stages and writes every image. The
work that scales (D_syn sampling, every extraction leg) is cut into the very batches a single process would make,
dealt out in rounds of one batch per rank, and each round's results (PNG pixels, neighbours, scores) travel to rank
0 over torch.distributed, so ranks on other machines need the model and the training images but no shared folder.
A batch is computed exactly as a single process computes it, so the audit does not depend on the number of ranks.
Without those variables the world is one process and nothing here touches torch.distributed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

from .errors import InputError

T = TypeVar("T")
# Ranks wait in a collective while rank 0 trains f_TI and f_TD alone: far longer than torch's 30-minute default.
COLLECTIVE_TIMEOUT = timedelta(hours=24)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def device(self, resolved: str) -> str:
        """One device per local rank: a rank on a GPU machine takes cuda:LOCAL_RANK whichever GPU the config names."""
        return f"cuda:{self.local_rank}" if self.distributed and resolved.startswith("cuda") else resolved

    def share(self, make: Callable[[], T]) -> T:
        """make()'s value on every rank, computed on rank 0 only. An InputError there is raised on every rank, so
        that no rank waits for a value that will not come."""
        if not self.distributed:
            return make()
        import torch.distributed as dist

        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = ("ok", make())
            except InputError as e:
                box[0] = ("input", (str(e.path), e.problem))
            except BaseException as e:
                box[0] = ("error", f"{type(e).__name__}: {e}")
                dist.broadcast_object_list(box, src=0)
                raise
        dist.broadcast_object_list(box, src=0)
        kind, value = cast("tuple[str, Any]", box[0])
        if kind == "input":
            path, problem = value
            raise InputError(path, problem)
        if kind == "error":
            raise RuntimeError(f"rank 0 failed: {value}")
        return cast("T", value)

    def gather(self, value: T) -> list[T] | None:
        """Every rank's value, in rank order, on rank 0; None elsewhere."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.size if self.is_main else None
        dist.gather_object(value, out, dst=0)
        return out

    def rounds(self, batches: Sequence[T]) -> list[tuple[list[T], T | None]]:
        """The batches in rounds of one per rank: (the round's batches in order, this rank's batch or None)."""
        out = []
        for start in range(0, len(batches), self.size):
            group = list(batches[start:start + self.size])
            out.append((group, group[self.rank] if self.rank < len(group) else None))
        return out


SOLO = World()


def world_from_env(env: Mapping[str, str] | None = None) -> World:
    """The launcher's world (torchrun and accelerate launch both set these); one process when they are absent."""
    given: Mapping[str, str] = os.environ if env is None else env
    size = int(given.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SOLO
    return World(rank=int(given["RANK"]), size=size, local_rank=int(given.get("LOCAL_RANK", "0")))


def join(world: World) -> None:
    """Joins the process group: gloo between CPU ranks, nccl between GPU ranks (MASTER_ADDR / MASTER_PORT come from
    the launcher)."""
    if not world.distributed:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(world.local_rank)
        dist.init_process_group("nccl", timeout=COLLECTIVE_TIMEOUT)
    else:
        dist.init_process_group("gloo", timeout=COLLECTIVE_TIMEOUT)


def leave(world: World, finished: bool) -> None:
    """Leaves the process group. finished: every rank got to the end, so all wait for each other first; a rank that
    tore the group down while rank 0 still stored the last round could abort in gloo's threads."""
    if world.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            if finished:
                dist.barrier()
            dist.destroy_process_group()

