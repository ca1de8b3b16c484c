"""An audit run in a process of its own, its events relayed to the listener over a pipe.

The GUI runs audits this way so that an engine that dies (killed for lack of memory, a crash in native code) takes
only itself down: the window says the run stopped, and everything stored so far, verdicts included, stays.

The protocol, one JSON object a line:
- parent to child, on stdin: first the request {"config": TOML text, "out": folder} or {"resume": folder}, then
  "pause", "resume" or "cancel" lines. End of input (the parent is gone) is a cancel: the run stops after its
  batch, resumable.
- child to parent, on the pipe that was its stdout: {"type": "opened", "audit_dir"} once the audit exists, then the
  pipeline's events, then {"type": "end", "status": ok | cancelled | input_error | error, ...}. Anything the
  engine's libraries print goes to stderr instead, which the parent keeps the end of for the message it shows if
  the child dies.
MetricsUpdated is not relayed: its scores are the CLI's; a window scores the stored rows under its own bands."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Self

from . import events as ev
from .errors import Cancelled, EngineStopped, InputError

STDERR_LINES = 20
# The child yields the CPU to the window it serves: on a machine whose every core the engine's torch threads fill, a
# window at the same priority waits for the scheduler (stalls of 100-200 ms measured on 2 cores), while a nice
# engine loses nothing when the window is idle.
ENGINE_NICE = 10
_EVENTS = {cls.__name__: cls for cls in (ev.StageStarted, ev.Progress, ev.StageFinished, ev.CurvePoint,
                                         ev.HealthUpdated, ev.ImagesGenerated, ev.Warning, ev.AuditFinished)}


@dataclass(frozen=True)
class Opened:
    """The audit folder exists and holds an openable audit; pid: the engine's process."""

    audit_dir: str
    pid: int


def encode(e: ev.Event) -> dict:
    return {"type": type(e).__name__, **asdict(e)}


def decode(d: dict) -> ev.Event:
    fields = {k: v for k, v in d.items() if k != "type"}
    cls = _EVENTS[d["type"]]
    if cls is ev.ImagesGenerated:
        fields["images"] = tuple(ev.GeneratedImage(**g) for g in fields["images"])
    elif cls is ev.HealthUpdated:
        fields["buckets"] = tuple(tuple(b) for b in fields["buckets"])
    return cls(**fields)


# ----- the child ----------------------------------------------------------------------------------------------------
def serve() -> int:
    """The child's main: reads the request from stdin, runs the audit, writes events to what was stdout."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the protocol

    def send(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")

    if hasattr(os, "nice"):
        os.nice(ENGINE_NICE)
    control = ev.RunControl()
    request = json.loads(sys.stdin.readline() or "{}")

    def listen() -> None:
        for line in sys.stdin:
            word = line.strip()
            if word == "pause":
                control.pause()
            elif word == "resume":
                control.resume()
            elif word == "cancel":
                break
        control.cancel()

    threading.Thread(target=listen, daemon=True, name="side-engine-control").start()
    warnings: list[ev.Warning] = []
    try:
        pipeline = _pipeline(request, lambda msg, path=None: warnings.append(ev.Warning(msg, path)))
        try:
            send({"type": "opened", "audit_dir": str(pipeline.store.root)})
            # Said while the inputs were read, before the listener had an audit to show them with.
            for w in warnings:
                send(encode(w))
            for e in pipeline.run(control):
                if not isinstance(e, ev.MetricsUpdated):
                    send(encode(e))
        finally:
            pipeline.store.close()
    except Cancelled:
        send({"type": "end", "status": "cancelled"})
        return 130
    except InputError as e:
        send({"type": "end", "status": "input_error", "path": e.path, "problem": e.problem})
        return 2
    except Exception as e:  # noqa: BLE001 - a bug: the traceback goes to stderr, its one line to the window
        import traceback

        traceback.print_exc()
        send({"type": "end", "status": "error", "message": f"{type(e).__name__}: {e}"})
        return 1
    send({"type": "end", "status": "ok"})
    return 0


def _pipeline(request: dict, warn):
    import tomllib

    from .config import config_from_dict
    from .pipeline import AuditPipeline

    if "resume" in request:
        return AuditPipeline.reopen(request["resume"], warn)
    cfg = config_from_dict(tomllib.loads(request["config"]), "<the new-audit form>")
    return AuditPipeline.prepare(cfg, request["out"], warn)


# ----- the parent ---------------------------------------------------------------------------------------------------
def engine_command() -> list[str]:
    """How to start the child: this Python with the module, or in a frozen bundle (PyInstaller), whose executables
    take no -m, the bundle's `side` beside the running program with its hidden `engine-process` command."""
    if getattr(sys, "frozen", False):
        here = Path(sys.executable)
        return [str(here.with_name("side" + here.suffix)), "engine-process"]
    return [sys.executable, "-m", "side_engine.engine_process"]


class EngineProcess:
    """One audit run in a child process. relay() yields Opened, then the run's events; it returns when the run
    completes and raises Cancelled, InputError or EngineStopped as the run ends otherwise."""

    def __init__(self, request: dict):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(engine_command(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                     env=env)
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr  # all three are pipes
        self._to_child, self._events, self._errors = self.proc.stdin, self.proc.stdout, self.proc.stderr
        self.stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._readers = [threading.Thread(target=self._read_events, daemon=True, name="side-engine-events"),
                         threading.Thread(target=self._read_stderr, daemon=True, name="side-engine-stderr")]
        for t in self._readers:
            t.start()
        self._send(json.dumps(request))

    @classmethod
    def new(cls, config_toml: str, out: str) -> EngineProcess:
        return cls({"config": config_toml, "out": out})

    @classmethod
    def resume(cls, audit_dir: str) -> EngineProcess:
        return cls({"resume": audit_dir})

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _send(self, line: str) -> None:
        try:
            self._to_child.write(line + "\n")
            self._to_child.flush()
        except (BrokenPipeError, ValueError):
            pass  # the child has gone; relay() says how

    def _read_events(self) -> None:
        for line in self._events:
            self._lines.put(line)
        self._lines.put(None)

    def _read_stderr(self) -> None:
        for line in self._errors:
            self.stderr.append(line.rstrip("\n"))
            sys.stderr.write(line)  # for bug reports, as an engine in this process would have printed it

    def relay(self, control: ev.RunControl, poll_s: float = 0.05) -> Iterator[ev.Event | Opened]:
        """Passes control's pause and cancel on to the child as they change."""
        paused = cancelled = False
        while True:
            if control.cancelled and not cancelled:
                cancelled = True
                self._send("cancel")
            elif control.paused != paused and not cancelled:
                paused = control.paused
                self._send("pause" if paused else "resume")
            try:
                line = self._lines.get(timeout=poll_s)
            except queue.Empty:
                continue
            if line is None:
                raise self._died()
            d = json.loads(line)
            kind = d["type"]
            if kind == "opened":
                yield Opened(d["audit_dir"], self.pid)
            elif kind == "end":
                self._finish(d)
                return
            else:
                yield decode(d)

    def _finish(self, end: dict) -> None:
        self._to_child.close()
        self.proc.wait()
        status = end["status"]
        if status == "cancelled":
            raise Cancelled
        if status == "input_error":
            raise InputError(end["path"], end["problem"])
        if status == "error":
            raise EngineStopped(end["message"])

    def _died(self) -> EngineStopped:
        code = self.proc.wait()
        if code < 0:
            name = signal.Signals(-code).name
            why = f"was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
        else:
            last = next((line for line in reversed(self.stderr) if line.strip()), "")
            why = f"exited with code {code}" + (f": {last.strip()}" if last else "")
        return EngineStopped(f"The engine process {why}. Everything it stored is kept: resume the audit to go on "
                             "from there.")

    def close(self, grace_s: float = 30.0) -> None:
        """Ends the child if it still runs (the listener gave up on it): a cancel, which stops it after its batch,
        then a kill if that takes longer than grace_s."""
        if self.proc.poll() is None:
            self._send("cancel")
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait()
        for t in self._readers:
            t.join()
        for f in (self._to_child, self._events, self._errors):
            if not f.closed:
                with contextlib.suppress(BrokenPipeError):
                    f.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    sys.exit(serve())
