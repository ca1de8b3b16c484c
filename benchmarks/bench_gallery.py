"""Gallery scale: an audit of 500k generated images opened in the real window; scroll it from top to bottom.

Side by side: the same scroll in an audit of 10k images, so the ratio of the slowest frames says whether the
view stays virtualised (1x: the size does not matter). Each size runs in a child process of its own, so that its
peak RSS is its own; the audit folders are built beforehand (benchmarks/synthetic.py), not by the child."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.harness import Figure, fmt_ratio, peak_rss_mb

GOAL_RSS_MB = 1536
JUMPS = 200
STEPS = 300


def open_audit(app, w, audit: str) -> tuple[float, float]:
    """Opens the audit as the menu does; returns the time until the window shows it and the longest the GUI
    thread went without turning its event loop meanwhile (a 5 ms timer's longest gap)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    gaps = {"last": time.perf_counter(), "max": 0.0}

    def tick():
        now = time.perf_counter()
        gaps["max"] = max(gaps["max"], now - gaps["last"])
        gaps["last"] = now

    timer = QTimer(interval=5)
    timer.timeout.connect(tick)
    w.auditShown.connect(loop.quit)
    timer.start()
    t0 = time.perf_counter()
    gaps["last"] = t0
    w.open_audit(audit)
    loop.exec()
    shown = time.perf_counter() - t0
    tick()  # the gap that ends with the view shown counts too
    timer.stop()
    app.processEvents()  # the reader's thread finishes
    return shown, gaps["max"]


def child(audit: str) -> dict:
    """Runs in its own process: open the audit, lay out the gallery, scroll, measure."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["bench"])
    from side_gui.main_window import MainWindow

    rss_start = peak_rss_mb()
    w = MainWindow()
    w.confirm_close = lambda: True
    w.resize(1280, 820)
    w.show()
    app.processEvents()
    open_s, open_gap_s = open_audit(app, w, audit)
    view = w.audit
    view.tabs.setCurrentWidget(view.split)
    lst = view.gallery.list
    # Batched layout goes on in timer slices after the model is set; wait until the scroll range stops growing.
    t0 = time.perf_counter()
    last, stable = -1, 0
    while stable < 20:
        app.processEvents()
        m = lst.verticalScrollBar().maximum()
        stable = stable + 1 if m == last else 0
        last = m
    layout_s = time.perf_counter() - t0
    sb = lst.verticalScrollBar()

    def frame(value: int) -> float:
        t = time.perf_counter()
        sb.setValue(value)
        lst.viewport().repaint()
        app.processEvents()
        return time.perf_counter() - t

    frames = [frame(int(v)) for v in np.linspace(0, sb.maximum(), JUMPS)]
    # and line by line, as a wheel would, at the top, the middle and the end
    for start in (0, sb.maximum() // 2, max(0, sb.maximum() - STEPS * sb.singleStep())):
        frames += [frame(start + i * sb.singleStep()) for i in range(STEPS // 3)]
    model = view.model
    t = time.perf_counter()
    view.bands.set_bands(view.bands.bands)
    model.set_bands(view.bands.bands)
    badges_s = time.perf_counter() - t
    t = time.perf_counter()
    model.set_sort("gamma")
    sort_s = time.perf_counter() - t
    out = dict(rows=model.rowCount(), open_s=open_s, open_gui_gap_s=open_gap_s, layout_s=layout_s, frames=len(frames),
               slowest_frame_ms=max(frames) * 1e3, median_frame_ms=float(np.median(frames)) * 1e3,
               p99_frame_ms=float(np.percentile(frames, 99)) * 1e3, band_badges_ms=badges_s * 1e3,
               resort_ms=sort_s * 1e3, peak_rss_mb=peak_rss_mb(), rss_after_imports_mb=rss_start,
               scroll_max=sb.maximum())
    w.close()
    return out


def run(device: str = "cpu", quick: bool = False) -> list[Figure]:
    from benchmarks.synthetic import make_audit

    big = 50_000 if quick else 500_000
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (10_000, big):
            t = time.perf_counter()
            audit = make_audit(os.path.join(tmp, str(n)), n)
            build = time.perf_counter() - t
            env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
            out = subprocess.run([sys.executable, "-m", "benchmarks.bench_gallery", str(audit)], env=env,
                                 capture_output=True, text=True, check=True).stdout
            res[n] = json.loads(out.strip().splitlines()[-1]) | {"build_audit_s": build}
    small, large = res[10_000], res[big]
    ratio = large["slowest_frame_ms"] / small["slowest_frame_ms"]
    return [
        Figure(figure=f"Gallery of {big:,} pairs: peak RSS of the app",
               goal=f"< {GOAL_RSS_MB / 1024:.1f} GB" if not quick else "-",
               measured=f"{large['peak_rss_mb']:.0f} MB ({small['peak_rss_mb']:.0f} MB at 10k; "
                        f"{large['rss_after_imports_mb']:.0f} MB before opening)",
               met=(large["peak_rss_mb"] < GOAL_RSS_MB) if not quick else None, details={"10k": small, "big": large}),
        Figure(figure=f"Gallery of {big:,} pairs: slowest frame scrolling top to bottom",
               goal="-",
               measured=f"{large['slowest_frame_ms']:.1f} ms ({fmt_ratio(ratio)} the 10k gallery's "
                        f"{small['slowest_frame_ms']:.1f} ms; median {large['median_frame_ms']:.1f} ms)",
               met=None, details={"frames": large["frames"]}),
        Figure(figure=f"Gallery of {big:,} pairs: opening the audit from the menu (read on a thread); longest "
                      "stall of the GUI thread meanwhile",
               goal="-",
               measured=f"shown after {large['open_s']:.2f} s, stall {large['open_gui_gap_s'] * 1e3:.0f} ms; layout "
                        f"{large['layout_s']:.2f} s (10k: {small['open_s']:.2f} s, "
                        f"{small['open_gui_gap_s'] * 1e3:.0f} ms; {small['layout_s']:.2f} s)",
               met=None),
        Figure(figure=f"Gallery of {big:,} pairs: badges after a band edge moves; re-sort",
               goal="-",
               measured=f"{large['band_badges_ms']:.0f} ms; {large['resort_ms']:.0f} ms (10k: "
                        f"{small['band_badges_ms']:.1f} ms; {small['resort_ms']:.1f} ms)",
               met=None),
    ]


if __name__ == "__main__":
    print(json.dumps(child(sys.argv[1])))
