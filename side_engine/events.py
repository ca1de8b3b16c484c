"""What the engine says while it works: small immutable records, never tensors or widgets.

Stages are generators of these events; the CLI and the GUI are listeners. A RunControl carries the
cancel and pause requests the other way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import Cancelled


@dataclass(frozen=True)
class StageStarted:
    stage: str  # load | classifier | sample | labels | tdkd | extract
    total: int | None = None
    unit: str = ""
    part: str = ""  # e.g. "td γ=5" for one run of the extraction sweep


@dataclass(frozen=True)
class Progress:
    stage: str
    done: int
    total: int | None
    part: str = ""


@dataclass(frozen=True)
class StageFinished:
    stage: str
    seconds: float
    summary: str = ""
    part: str = ""
    skipped: bool = False  # already complete in the store (resume)


@dataclass(frozen=True)
class CurvePoint:
    """One logged training step of a classifier (stage "classifier" = f_TI, "tdkd" = f_TD)."""

    stage: str
    step: int
    loss: float
    accuracy: float | None = None


@dataclass(frozen=True)
class HealthUpdated:
    """Agreement of f_TD with the pseudo labels per t-bucket: the attack's health check."""

    buckets: tuple[tuple[int, int, float], ...]  # (t_lo, t_hi inclusive, agreement)


@dataclass(frozen=True)
class GeneratedImage:
    id: int
    guide: str  # none | td | ti
    gamma: float
    label: int
    index: int
    seed: int
    path: str  # relative to the audit folder
    best_score: float
    best_train: int  # index into the training set
    gu_ratio: float | None


@dataclass(frozen=True)
class ImagesGenerated:
    images: tuple[GeneratedImage, ...]
    part: str = ""


@dataclass(frozen=True)
class MetricsUpdated:
    results: tuple  # tuple[metrics.GroupResult, ...]


@dataclass(frozen=True)
class Warning:  # noqa: A001 (always read as ev.Warning: the events module is imported as a namespace)
    message: str
    path: str | None = None


@dataclass(frozen=True)
class AuditFinished:
    audit_dir: str
    seconds: float


Event = (StageStarted | Progress | StageFinished | CurvePoint | HealthUpdated | ImagesGenerated | MetricsUpdated
         | Warning | AuditFinished)
Listener = Callable[[Event], None]
T = TypeVar("T")

# The one cancel hook: long work calls it between units (a batch, a sampler step, a run of the bootstrap); it returns
# to go on, blocks while paused, and raises Cancelled to stop. RunControl.check is one; so is what the GUI's worker
# hands to engine functions it runs.
Check = Callable[[], None]


def no_check() -> None:
    """The Check of work nobody can stop."""


def run_to_end(run: Generator[Event, None, T], listener: Listener | None = None) -> T:
    """A generator of events run to its end (the CLI, scripts, tests): each event handed to listener, its return
    value returned."""
    while True:
        try:
            e = next(run)
        except StopIteration as stop:
            return stop.value
        if listener is not None:
            listener(e)


@dataclass
class RunControl:
    """Cancel and pause requests from a listener's thread, checked by the engine between batches."""

    _cancel: threading.Event = field(default_factory=threading.Event)
    _running: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._running.set()

    def cancel(self) -> None:
        with self._lock:
            self._cancel.set()
            self._running.set()

    def pause(self) -> None:
        # A cancel wins over any later pause: a paused worker with a cancel pending would wait for a resume that no
        # listener sends once it has asked to cancel.
        with self._lock:
            if not self._cancel.is_set():
                self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def check(self) -> None:
        """Block while paused; raise Cancelled once a cancel was asked for."""
        self._running.wait()
        if self._cancel.is_set():
            raise Cancelled
