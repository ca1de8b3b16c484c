"""kill -9 trials: an audit killed at random moments, resumed, and compared with one never stopped.

    python tests/kill_trials.py --trials 40 [--seed 0] [--json OUT.json]

Each trial starts `side run CONFIG --out DIR` in a process of its own, kills it with SIGKILL at one moment, then
reruns the same command with `--resume` until it completes. Three kinds of moment, drawn in turn:
- time: a delay drawn uniformly over the uninterrupted run's duration, from outside (start-up included);
- work: the same, from the moment audit.toml appears, over the rest of the run (the stages themselves);
- commit: inside the engine, just before its K-th SQLite COMMIT (K drawn over the run's commits): the transaction
  in flight is lost;
- png: inside the engine, during its K-th PNG write: the temporary file is cut to half its bytes, then the kill.
The resumed audit must then hold the same files as the uninterrupted one (no orphan, no temporary file), every
image byte-identical, every classifier with the same tensors and metadata, and the same `side report --json`.

tests/engine/test_kills.py runs a few trials of each kind in `make test`; docs/RELIABILITY.md has the figures of a
full run."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

KINDS = ("time", "work", "commit", "png")
# Files whose bytes say nothing about the results: the writer's lock, and the database, compared through
# `side report --json` (its pages differ with the order of writes).
NOT_COMPARED = {"audit.lock", "audit.sqlite", "audit.sqlite-wal", "audit.sqlite-shm"}


@dataclass
class Trial:
    kind: str
    at: float  # seconds after the start (time) or after audit.toml appeared (work); the COMMIT or PNG write, from 1
    killed: bool  # the engine was still running when the kill came (False: it had finished first)
    stage: str  # where the kill left the audit: setup (no audit.toml yet), a stage not yet done, or complete
    resumes: int
    same: bool
    problems: list[str]


def build_inputs(work: Path) -> Path:
    """A tiny model, a training folder and a config whose run makes some hundred commits and PNGs; returns the
    config's path."""
    sys.path.insert(0, str(Path(__file__).parent))
    from side_engine.config import ExtractionConfig

    from helpers import make_training_folder, save_tiny_pipeline, tiny_config_for

    cfg = tiny_config_for(save_tiny_pipeline(work / "model"), make_training_folder(work / "train"))
    cfg.classifier.steps = 150
    cfg.tdkd.n_syn = 48
    cfg.tdkd.steps = 150
    cfg.extraction = ExtractionConfig(gammas=[0.0, 5.0], n_per_gamma=24, steps=5, batch=4, ol_ti=True)
    path = work / "audit.toml"
    path.write_text(cfg.to_toml())
    return path


def _env() -> dict:
    # One thread: float sums then do not depend on how many cores are free, so the runs can be compared bit for bit.
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0"}


def _side(args: list[str], fault: tuple[str, int] | None = None) -> list[str]:
    if fault is None:
        return [sys.executable, "-m", "side_engine", *args]
    return [sys.executable, __file__, "child", fault[0], str(fault[1]), "--", *args]


def _wait_for(path: Path, p: subprocess.Popen) -> None:
    while not path.exists() and p.poll() is None:
        time.sleep(0.005)


def count_faults(config: Path, work: Path) -> dict[str, float]:
    """Runs the audit once uninterrupted, counting its COMMITs and PNG writes; returns the range each kind of
    moment is drawn from and leaves the audit in work/reference."""
    counts, out = work / "counts.json", work / "reference"
    t0 = time.monotonic()
    p = subprocess.Popen(_side(["run", str(config), "--out", str(out), "--quiet"], ("count", 0)),
                         env={**_env(), "SIDE_KILL_TRIALS_COUNTS": str(counts)})
    _wait_for(out / "audit.toml", p)
    t1 = time.monotonic()
    if p.wait() != 0:
        raise RuntimeError("the uninterrupted run failed")
    t2 = time.monotonic()
    c = json.loads(counts.read_text())
    return {"time": t2 - t0, "work": t2 - t1, "commit": c["commit"], "png": c["png"]}


def run_trial(config: Path, reference: Path, out: Path, kind: str, at: float, max_resumes: int = 5) -> Trial:
    args = ["run", str(config), "--out", str(out), "--quiet"]
    if kind in ("time", "work"):
        p = subprocess.Popen(_side(args), env=_env(), stderr=subprocess.DEVNULL)
        if kind == "work":
            _wait_for(out / "audit.toml", p)
        try:
            p.wait(timeout=at)
            killed = False
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
            killed = True
    else:
        rc = subprocess.run(_side(args, (kind, int(at))), env=_env(), stderr=subprocess.DEVNULL).returncode
        killed = rc == -signal.SIGKILL
    stage = _stage(out)
    resumes = 0
    problems: list[str] = []
    while resumes < max_resumes and not _complete(out):
        resumes += 1
        # Killed before audit.toml was written, the folder holds no audit yet: the same command starts it again.
        again = ["run", "--resume", str(out), "--quiet"] if (out / "audit.toml").exists() else args
        r = subprocess.run(_side(again), env=_env(), capture_output=True, text=True)
        if r.returncode != 0:
            problems.append(f"resume {resumes} exited {r.returncode}: {r.stderr.strip().splitlines()[-1:]}")
            break
    if not problems:
        problems = compare(reference, out)
    return Trial(kind, at, killed, stage, resumes, not problems, problems)


def _stage(out: Path) -> str:
    if not (out / "audit.toml").exists():
        return "setup"
    from side_engine.store import AuditStore

    store = AuditStore.open(out)
    try:
        if store.complete:
            return "complete"
        if not store.n_train:
            return "inputs"  # the audit's records of its model and training set
        done = {name for name, status in store.stages().items() if status == "done"}
        return next((s for s in ("classifier", "sample", "labels", "tdkd") if s not in done), "extract")
    finally:
        store.close()


def _complete(out: Path) -> bool:
    if not (out / "audit.toml").exists():
        return False
    from side_engine.store import AuditStore

    try:
        store = AuditStore.open(out)
    except Exception:  # noqa: BLE001 - an audit that cannot be opened is not complete; the resume will say why
        return False
    try:
        return store.complete
    finally:
        store.close()


def _files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*")
            if not p.is_dir() and p.relative_to(root).as_posix() not in NOT_COMPARED}


def _same_safetensors(a: Path, b: Path) -> bool:
    """Same tensors and metadata. The bytes may differ: safetensors writes the metadata in hash-map order."""
    from safetensors import safe_open

    with safe_open(a, "pt") as fa, safe_open(b, "pt") as fb:
        if fa.metadata() != fb.metadata() or sorted(fa.keys()) != sorted(fb.keys()):
            return False
        return all(fa.get_tensor(k).equal(fb.get_tensor(k)) for k in fa.keys())  # noqa: SIM118 (no mapping)


def compare(reference: Path, out: Path) -> list[str]:
    problems = []
    ref, got = _files(reference), _files(out)
    for rel in sorted(set(got) - set(ref)):
        problems.append(f"extra file {rel}")
    for rel in sorted(set(ref) - set(got)):
        problems.append(f"missing file {rel}")
    for rel in sorted(set(ref) & set(got)):
        same = (_same_safetensors(ref[rel], got[rel]) if rel.endswith(".safetensors")
                else ref[rel].read_bytes() == got[rel].read_bytes())
        if not same:
            problems.append(f"different {rel}")
    reports = [subprocess.run(_side(["report", str(a), "--json"]), env=_env(), capture_output=True, text=True).stdout
               for a in (reference, out)]
    if reports[0] != reports[1] or not reports[0]:
        problems.append("side report --json differs")
    return problems


def trials(n: int, seed: int = 0, work: Path | None = None, log=print) -> list[Trial]:
    """n trials, the kinds in turn, their moments drawn with random.Random(seed)."""
    own = work is None
    work = work or Path(tempfile.mkdtemp(prefix="side-kill-trials-"))
    try:
        config = build_inputs(work)
        span = count_faults(config, work)
        log("uninterrupted: {time:.1f} s, {work:.1f} s of it after audit.toml appeared, {commit:.0f} commits, "
            "{png:.0f} PNG writes".format(**span))
        rng = random.Random(seed)
        out = []
        for i in range(n):
            kind = KINDS[i % len(KINDS)]
            at = round(rng.uniform(0.0, span[kind]), 2) if kind in ("time", "work") else rng.randint(1, int(span[kind]))
            trial = run_trial(config, work / "reference", work / f"trial-{i}", kind, at)
            shutil.rmtree(work / f"trial-{i}", ignore_errors=True)
            outcome = "same" if trial.same else "DIFFERENT: " + "; ".join(trial.problems)
            log(f"trial {i + 1}/{n}: {kind} at {at}: {'killed' if trial.killed else 'finished first'}, "
                f"in {trial.stage}, {trial.resumes} resume(s), {outcome}")
            out.append(trial)
        return out
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


# ----- the engine with a fault planted (runs in the child process) ------------------------------------------------
def child(kind: str, k: int, argv: list[str]) -> int:
    import sqlite3

    from PIL import Image

    counts = {"commit": 0, "png": 0}

    def kill() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    connect = sqlite3.connect

    def traced(*a, **kw):
        conn = connect(*a, **kw)

        def on_statement(sql: str) -> None:
            if sql.strip().upper().startswith("COMMIT"):
                counts["commit"] += 1
                if kind == "commit" and counts["commit"] == k:
                    kill()

        conn.set_trace_callback(on_statement)
        return conn

    sqlite3.connect = traced  # type: ignore[assignment]
    save = Image.Image.save

    def cut_save(self, fp, *a, **kw):
        save(self, fp, *a, **kw)
        if isinstance(fp, (str, os.PathLike)) and str(fp).endswith(".png.tmp"):
            counts["png"] += 1
            if kind == "png" and counts["png"] == k:
                size = os.path.getsize(fp)
                with open(fp, "r+b") as f:
                    f.truncate(size // 2)
                kill()

    Image.Image.save = cut_save  # type: ignore[method-assign]
    from side_engine.cli import main

    try:
        return main(argv)
    finally:
        if kind == "count":
            Path(os.environ["SIDE_KILL_TRIALS_COUNTS"]).write_text(json.dumps(counts))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "child":
        sep = argv.index("--")
        return child(argv[1], int(argv[2]), argv[sep + 1:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the trials here")
    a = p.parse_args(argv)
    results = trials(a.trials, a.seed)
    for kind in KINDS:
        of = [t for t in results if t.kind == kind]
        print(f"{kind}: {sum(t.killed for t in of)} killed, {sum(t.same for t in of)}/{len(of)} same after resume")
    if a.json:
        Path(a.json).write_text(json.dumps([asdict(t) for t in results], indent=1))
    return 0 if all(t.same for t in results) else 1


if __name__ == "__main__":
    sys.exit(main())
