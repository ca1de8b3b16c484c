"""What several tests build or do: tiny models and training folders, the tiny audit config, and the GUI steps a
user takes (open a window, open an audit, fill the new-audit form). Qt is imported inside the GUI helpers only, so
that the engine's tests run where Qt is not installed."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from PIL import Image

TINY_SIZE = 8


def make_tiny_unet(channels: int = 1, size: int = TINY_SIZE, seed: int = 0):
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=size, in_channels=channels, out_channels=channels, block_out_channels=(4, 8),
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        layers_per_block=1, norm_num_groups=4,
    ).eval()


def save_tiny_pipeline(path, channels: int = 1, size: int = TINY_SIZE):
    from diffusers import DDPMPipeline, DDPMScheduler

    DDPMPipeline(unet=make_tiny_unet(channels, size), scheduler=DDPMScheduler(num_train_timesteps=100)).save_pretrained(
        path, safe_serialization=True)
    return path


def make_training_folder(path, classes: int = 3, per_class: int = 6, size: int = TINY_SIZE, mode: str = "L",
                         seed: int = 0):
    """Class folders of random blocky images: distinct enough that a classifier can tell them apart."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        d = path / f"class_{c}"
        d.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, (size, size))
        for i in range(per_class):
            arr = np.clip(base + rng.normal(0, 20, (size, size)), 0, 255).astype(np.uint8)
            img = Image.fromarray(arr, "L")
            (img.convert(mode) if mode != "L" else img).save(d / f"img_{i}.png")
    return path


def tiny_config_for(model, train):
    from side_engine.config import (
        AuditConfig,
        ClassifierConfig,
        DataConfig,
        ExtractionConfig,
        MatchingConfig,
        ModelConfig,
        TDKDConfig,
    )

    return AuditConfig(
        name="tiny",
        model=ModelConfig(path=str(model)),
        data=DataConfig(train=str(train)),
        classifier=ClassifierConfig(width=8, blocks=[1, 1], steps=10, batch=8),
        tdkd=TDKDConfig(n_syn=12, sample_steps=3, sample_batch=8, steps=10, batch=8, time_embed_dim=16,
                        health_buckets=4),
        extraction=ExtractionConfig(gammas=[0.0, 5.0], n_per_gamma=6, steps=3, batch=4, ol_ti=True),
        matching=MatchingConfig(k=3),
    )


def new_window(qtbot):
    """A shown MainWindow that pytest-qt closes after the test, its run (if any) cancelled first."""
    from side_gui.main_window import MainWindow

    def stop_run(w):
        # A test that failed with a run going would otherwise reach pytest-qt's close with the worker alive, and the
        # window's modal "stop the running audit?" question would wait for a click that never comes.
        if w.is_running():
            w.cancel_run()
            qtbot.waitUntil(lambda: not w.is_running(), timeout=30_000)

    w = MainWindow()
    qtbot.addWidget(w, before_close_func=stop_run)
    w.show()
    return w


def open_audit(qtbot, window, path):
    """Opens an audit as the user does (it is read on a thread) and returns its view once the window shows it."""
    with qtbot.waitSignal(window.auditShown, timeout=30_000):
        assert window.open_audit(str(path))
    return window.audit


def open_gallery(window, qtbot, audit_dir):
    """Opens an audit and its Gallery tab with the keyboard's focus on the list, as a reviewer starts."""
    open_audit(qtbot, window, audit_dir)
    audit = window.audit
    audit.tabs.setCurrentIndex(1)
    window.activateWindow()
    qtbot.waitActive(window)
    audit.gallery.list.setFocus()
    return audit


def fill_form(window, qtbot, tiny_config, tmp_path):
    cfg_file = tmp_path / "tiny.toml"
    cfg_file.write_text(tiny_config.to_toml())
    window.stack.setCurrentWidget(window.form)
    window.form.load_config_file(str(cfg_file))
    out = tmp_path / "audit"
    qtbot.keyClicks(window.form.out.edit, str(out))
    assert window.form.start_btn.isEnabled(), window.form.problems()
    return out


def hold_at_next_images(worker) -> list:
    """Pauses the run once it has stored a batch of images; the returned list fills when it has.

    The slot runs on the worker's thread, which passes the pause to the engine's process at once; that stops at its
    next check after the pause arrives, a batch or two later (slow_leg gives it the room), and a cancel or a quit
    lands mid-extraction."""
    from PySide6.QtCore import Qt

    from side_engine import events as ev

    held = []

    def hold(e):
        if isinstance(e, ev.ImagesGenerated) and not held:
            worker.pause()
            held.append(e)

    worker.yielded.connect(hold, Qt.DirectConnection)
    return held


def slow_leg(cfg) -> None:
    """A first leg of several batches, each slow enough that a pause sent after the first arrives before the last."""
    cfg.extraction.n_per_gamma = 24
    cfg.extraction.steps = 20


def stopped_early(store, cfg) -> int:
    """The images a held run stored: whole batches, the leg it was held in not finished."""
    n = store.image_count()
    assert n % cfg.extraction.batch == 0 and cfg.extraction.batch <= n < cfg.extraction.n_per_gamma
    return n


def grid_rows(png) -> int:
    """Rows on a grid page, counted as the grey rules drawn under each row across the page's text width."""
    with Image.open(png) as g:
        a = np.asarray(g.convert("RGB"))
    return int(np.all(a[:, 16:-16] == 204, axis=(1, 2)).sum())


def dangling(threads, timers) -> list[str]:
    """What is still running among the QThreads and QTimers a test started."""
    from shiboken6 import isValid

    out = [f"QThread {t.objectName() or t!r} still running" for t in threads if isValid(t) and t.isRunning()]
    out += [f"QTimer {t.objectName() or t!r} (interval {t.interval()} ms) still active" for t in timers
            if isValid(t) and t.isActive()]
    return out


@contextlib.contextmanager
def read_only_view(folder, view):
    """folder seen at view through a read-only bind mount, as on read-only media; the test is skipped where this
    machine does not allow the mount (root and the mount capability are needed). Root ignores file modes, so a
    chmod would not do."""
    import os
    import shutil
    import subprocess

    import pytest

    view.mkdir(parents=True)
    if os.geteuid() != 0 or shutil.which("mount") is None or subprocess.run(
            ["mount", "--bind", str(folder), str(view)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here (needs root and the mount capability)")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        yield view
    finally:
        subprocess.run(["umount", str(view)], check=False)
