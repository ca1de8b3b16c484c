"""The one worker type: what a job yields, returns or raises arrives on the GUI thread as signals, in order, and a
cancel stops a job at its next check."""

from __future__ import annotations

import threading

from side_engine import events as ev
from side_engine.errors import InputError
from side_gui.worker import GeneratorWorker


def test_yields_then_the_return_value_then_finished(qtbot, gui_thread):
    threads = []

    def job(_control):
        threads.append(threading.current_thread())
        yield "first"
        yield "second"
        return 42

    w = GeneratorWorker(job)
    s = gui_thread(w)
    with qtbot.waitSignals([s.yielded, s.yielded, s.returned, s.finished], order="strict", timeout=10_000,
                           check_params_cbs=[lambda x: x == "first", lambda x: x == "second", lambda x: x == 42,
                                             None]):
        w.start()
    assert w.wait() and not w.is_running()
    assert len(threads) == 1 and threads[0] is not threading.main_thread()


def test_an_input_error_is_one_line_for_the_window(qtbot, gui_thread):
    def job(_control):
        yield "read"
        raise InputError("/audits/a", "not an audit folder")

    w = GeneratorWorker(job)
    s = gui_thread(w)
    with qtbot.waitSignals([s.yielded, s.errored, s.finished], order="strict", timeout=10_000,
                           check_params_cbs=[None, lambda m: m == "/audits/a: not an audit folder", None]):
        w.start()
    assert w.wait()


def test_a_bug_is_named_with_its_type_and_its_traceback_goes_to_stderr(qtbot, gui_thread, capfd):
    def job(_control):
        yield from ()
        raise KeyError("n_train")

    w = GeneratorWorker(job)
    s = gui_thread(w)
    with qtbot.waitSignals([s.errored, s.finished], order="strict", timeout=10_000,
                           check_params_cbs=[lambda m: m == "KeyError: 'n_train'", None]):
        w.start()
    assert w.wait()
    assert capfd.readouterr().err.splitlines()[-1] == "KeyError: 'n_train'"


def test_a_cancel_stops_the_job_at_its_next_check(qtbot, gui_thread):
    """The job's check blocks while paused and raises Cancelled once cancelled: the worker says aborted, not
    errored, and the job's work after that check never runs."""
    after_check = []

    def job(control: ev.RunControl):
        yield "paused"
        control.check()
        after_check.append(True)
        yield "never"

    w = GeneratorWorker(job)
    s = gui_thread(w)
    w.pause()
    with qtbot.waitSignal(s.yielded, timeout=10_000):
        w.start()
    with qtbot.waitSignals([s.aborted, s.finished], order="strict", timeout=10_000):
        w.cancel()
    assert w.wait()
    assert after_check == []


def test_progress_is_rate_limited_but_its_last_step_always_arrives(qtbot, gui_thread):
    def job(_control):
        for done in range(1, 1001):
            yield ev.Progress("extract", done, 1000)

    w = GeneratorWorker(job, throttle_s=3600)
    s = gui_thread(w)
    got = []
    s.yielded.connect(got.append)
    with qtbot.waitSignal(s.finished, timeout=10_000):
        w.start()
    assert w.wait()
    assert [e.done for e in got] == [1, 1000]
