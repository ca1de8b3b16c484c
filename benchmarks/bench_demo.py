"""The demo audit end to end (what `side demo` runs: demo.demo_config(), the shipped model, every stage), wall time
per stage on this machine's cores.

A stage's time runs from the previous stage's StageFinished event to its own, so the stages partition the run
(the labels stage announces no start); the extraction's parts, one per guide and gamma, are summed and listed in
the details. The load row is AuditPipeline.prepare (model, training images, matcher, the new store), and the
import row the engine's modules (torch, diffusers) in this fresh process. Beside each wall time, the CPU seconds
of all the process's threads over it ("cores busy"): on a shared machine, how much of the cores the audit got.
One run: its stages take minutes, and nothing is compared side by side, so no ratio."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.harness import Figure, fmt_s

WHAT = {
    "import": "import torch, diffusers and the engine",
    "load": "prepare: model, training images, matcher, store",
    "classifier": "train f_TI",
    "sample": "D_syn: unconditional DDIM samples",
    "labels": "pseudo labels of D_syn",
    "tdkd": "distil f_TD, health",
    "extract": "the gamma sweep, each batch matched and stored",
}


def _fmt(s: float) -> str:
    return f"{int(s // 60)} min {s % 60:.0f} s" if s >= 60 else fmt_s(s)


def run(device: str = "cpu", quick: bool = False) -> list[Figure]:
    t0, c0 = time.perf_counter(), time.process_time()
    from side_engine import events as ev
    from side_engine.demo import demo_config
    from side_engine.pipeline import AuditPipeline

    wall: dict[str, float] = {"import": time.perf_counter() - t0}
    # CPU seconds of all this process's threads: against the wall time, how much of the cores it got.
    cpu: dict[str, float] = {"import": time.process_time() - c0}
    load0 = os.getloadavg()
    parts: list[dict] = []
    cfg = demo_config(quick=quick)
    cfg.runtime.device = device
    work = Path(tempfile.mkdtemp(prefix="side-bench-demo-"))
    try:
        t, c = time.perf_counter(), time.process_time()
        pipe = AuditPipeline.prepare(cfg, work / "audit")
        wall["load"], cpu["load"] = time.perf_counter() - t, time.process_time() - c
        t_run = last = time.perf_counter()
        last_cpu = time.process_time()
        for e in pipe.run():
            if isinstance(e, ev.StageFinished):
                now, now_cpu = time.perf_counter(), time.process_time()
                if e.stage != "load":
                    wall[e.stage] = wall.get(e.stage, 0.0) + now - last
                    cpu[e.stage] = cpu.get(e.stage, 0.0) + now_cpu - last_cpu
                    if e.part:
                        parts.append({"part": e.part, "s": now - last, "cpu_s": now_cpu - last_cpu})
                last, last_cpu = now, now_cpu
        run_s = time.perf_counter() - t_run
        images = pipe.store.image_count()
        pipe.store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = sum(wall.values())
    x = cfg.extraction
    config = dict(classifier_steps=cfg.classifier.steps, n_syn=cfg.tdkd.n_syn, sample_steps=cfg.tdkd.sample_steps,
                  tdkd_steps=cfg.tdkd.steps, gammas=x.gammas, n_per_gamma=x.n_per_gamma, ddim_steps=x.steps,
                  batch=x.batch, ol_ti=x.ol_ti, generated_images=images)
    common = dict(cores=len(os.sched_getaffinity(0)), device=device, quick=quick, config=config,
                  loadavg_before=load0, loadavg_after=os.getloadavg())
    name = "demo audit (quick)" if quick else "demo audit"
    figures = [Figure(f"{name} end to end: {stage} ({WHAT.get(stage, stage)})", "-",
                      f"{_fmt(s)} ({cpu[stage] / s:.1f} cores busy)", None,
                      dict(common, seconds=s, cpu_seconds=cpu[stage],
                           **({"parts": parts} if stage == "extract" else {})))
               for stage, s in wall.items()]
    figures.append(Figure(
        f"{name} end to end: total ({images} generated images, {len(x.gammas)} gammas"
        f"{' + OL-TI' if x.ol_ti else ''}, {x.steps} DDIM steps)", "-",
        f"{_fmt(total)} ({sum(cpu.values()) / total:.1f} cores busy; "
        f"{images / wall.get('extract', float('nan')):.2f} images/s while extracting)", None,
        dict(common, seconds=total, stages_s=wall, stages_cpu_s=cpu, pipeline_run_s=run_s)))
    return figures
