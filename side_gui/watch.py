"""Following an audit that another process writes (a `side run` in a terminal, rank 0 of a torchrun job, on this
machine or a mounted folder): a reader on a worker thread polls the writer's lock and the store, and yields what
changed; the view applies it on the GUI thread. The reader never writes audit.sqlite: verdicts go to
verdicts.sqlite (store.VERDICTS_NAME).

How far a run is comes from the store alone: the stages table says which stages are done, the curves how many
training steps f_TI and f_TD have taken, and the rows of syn_images and images (per guide and gamma) how many images
each stage has made; audit.toml gives each total."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from side_engine import events as ev
from side_engine.config import AuditConfig, sweep
from side_engine.matching.metrics import ScoreArrays
from side_engine.store import AuditStore, CurvePoint, HealthBucket
from side_engine.vocabulary import Guide

from .gallery_view import PairColumns, read_columns
from .worker import Job

POLL_S = 0.5  # while a writer is at work
IDLE_POLL_S = 2.0  # while none is: one may start (a resume from a terminal)
CURVES = ("classifier", "tdkd")


@dataclass(frozen=True)
class Snapshot:
    """What a poll of the audit found; rows and curve points are those new since the poll before."""

    token: int  # which following of the view read it: one stopped may still have a snapshot on its way
    writer: bool  # another process holds the audit's writer claim
    complete: bool
    n_train: int  # 0 until the run has recorded its inputs
    stages: dict[str, dict]  # done stages: name -> stored info
    syn: int  # images of D_syn stored
    steps: dict[str, int]  # last training step stored per curve (classifier, tdkd)
    counts: dict[tuple[Guide, float], int]  # images stored per leg of the sweep
    curves: dict[str, list[CurvePoint]]  # new points per curve
    health: tuple[HealthBucket, ...] | None  # None: unchanged
    arrays: ScoreArrays  # new rows
    columns: PairColumns | None  # their gallery columns (None when there are none)


@dataclass(frozen=True)
class StageState:
    """One row of the run panel as the store tells it."""

    stage: str
    part: str
    state: str  # waiting | running | stopped | done
    done: int = 0
    total: int | None = None
    unit: str = ""
    summary: str = ""


def follow_job(root: str, after_id: int, steps: dict[str, int], token: int, wake: threading.Event) -> Job:
    """Polls the audit in `root` (rows after after_id and curve points after steps are new) until it is complete and
    no writer holds it. Stop it with the worker's cancel and wake.set(). Yields a Snapshot whenever something
    changed, the first one always."""

    def run(control: ev.RunControl) -> Iterator[Snapshot]:
        store = AuditStore.open(root)
        try:
            after = after_id
            counts: dict[tuple[Guide, float], int] = {
                (Guide(g), float(y)): n for g, y, n in store.db.execute(
                    "SELECT guide, gamma, COUNT(*) FROM images WHERE id <= ? GROUP BY guide, gamma", (after,))}
            last_step = {c: steps.get(c, 0) for c in CURVES}
            health: tuple[HealthBucket, ...] | None = None
            last = None
            while True:
                control.check()
                writer = store.writer_active()
                # Read after the probe: a writer that has just let go has stored everything it will.
                complete = store.complete
                stages = {name: _info(info) for name, status, info in store.db.execute(
                    "SELECT name, status, info FROM stages") if status == "done"}
                syn = store.db.execute("SELECT COUNT(*) FROM syn_images").fetchone()[0]
                curves = {}
                for c in CURVES:
                    new = [CurvePoint(*r) for r in store.db.execute(
                        "SELECT step, loss, accuracy FROM curves WHERE stage = ? AND step > ? ORDER BY step",
                        (c, last_step[c]))]
                    if new:
                        curves[c] = new
                        last_step[c] = new[-1].step
                now_health = tuple(store.health())
                new_health = None if now_health == health else now_health
                health = now_health
                arrays = store.score_arrays(after_id=after)
                columns = None
                if len(arrays.ids):
                    after = int(arrays.ids[-1])
                    columns = read_columns(store, arrays)
                    for (g, y), n in _leg_counts(arrays).items():
                        counts[(g, y)] = counts.get((g, y), 0) + n
                n_train = store.n_train
                key = (writer, complete, n_train, tuple(sorted(stages)), syn)
                if key != last or curves or new_health is not None or columns is not None:
                    last = key
                    yield Snapshot(token, writer, complete, n_train, stages, syn, dict(last_step), dict(counts), curves,
                                   new_health, arrays, columns)
                if complete and not writer:
                    return
                wake.wait(POLL_S if writer else IDLE_POLL_S)
        finally:
            store.close()

    return run


def _info(text: str | None) -> dict:
    return json.loads(text) if text else {}


def _leg_counts(a: ScoreArrays) -> dict[tuple[Guide, float], int]:
    out: dict[tuple[Guide, float], int] = {}
    for g, y in zip(a.guide, a.gamma):
        key = (Guide(str(g)), float(y))
        out[key] = out.get(key, 0) + 1
    return out


def stage_states(cfg: AuditConfig, snap: Snapshot) -> list[StageState]:
    """Each row of the run panel from a snapshot: done where the store says so; the first stage not done is running
    while a writer is at work (every leg of the sweep with images but not all of them: ranks of a job work side by
    side), stopped where it has begun and no writer is left."""
    out = [StageState("load", "", "done", summary=f"{snap.n_train} training images") if snap.n_train
           else StageState("load", "", "running" if snap.writer else "waiting")]
    held = {"sample": f"{snap.syn} unconditional samples (D_syn)"}
    # (stage, images or steps so far, their total, unit)
    plan = []
    if cfg.labels.source == "classifier":
        plan.append(("classifier", snap.steps.get("classifier", 0), cfg.classifier.steps, "step"))
    plan += [("sample", snap.syn, cfg.tdkd.n_syn, "image"), ("labels", 0, None, "step"),
             ("tdkd", snap.steps.get("tdkd", 0), cfg.tdkd.steps, "step")]
    current = bool(snap.n_train)  # the first stage not done is at work
    for stage, done, total, unit in plan:
        if stage in snap.stages:
            summary = snap.stages[stage].get("summary") or held.get(stage, "")
            out.append(StageState(stage, "", "done", summary=summary))
            continue
        if current:
            current = False
            state = "running" if snap.writer else "stopped" if done else "waiting"
            out.append(StageState(stage, "", state, min(done, total or done), total, unit))
        else:
            out.append(StageState(stage, "", "waiting"))
    n = cfg.extraction.n_per_gamma
    for run in sweep(cfg):
        done = snap.counts.get((run.guide, float(run.gamma)), 0)
        if done >= n:
            out.append(StageState("extract", run.part, "done", n, n, "image", f"{n} images"))
        elif done or (current and snap.writer):
            current = False
            out.append(StageState("extract", run.part, "running" if snap.writer else "stopped", done, n, "image"))
        else:
            out.append(StageState("extract", run.part, "waiting", 0, n, "image"))
    return out
