"""Entry point of `side-gui`: the start page, an audit folder, or the demo."""

from __future__ import annotations

import argparse
import os
import sys

SCREENSHOT_SIZE = (1400, 860)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="side-gui", description="SIDE Inspector: audit a diffusion model for "
                                "memorized training images.")
    p.add_argument("audit_dir", nargs="?", help="an audit folder to open")
    p.add_argument("--demo", action="store_true", help="open and run the shipped demo audit")
    p.add_argument("--out", help="folder for the demo audit (default: the app's data folder)")
    p.add_argument("--screenshot", metavar="FILE", help="save a PNG of the window once the audit has run")
    p.add_argument("--exit-when-done", action="store_true", help="quit once the audit has run (and the screenshot "
                   "is saved)")
    # For tests and CI: a seconds-long demo, another model, and quitting an idle window.
    p.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--demo-model", help=argparse.SUPPRESS)
    p.add_argument("--quit-after", type=int, metavar="MS", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def save_screenshot(window, path: str) -> None:
    from pathlib import Path

    audit = window.audit
    if audit is not None and audit.model.rowCount():
        audit.tabs.setCurrentIndex(1)
        audit.gallery.list.setCurrentIndex(audit.model.index(0))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(path, "PNG")


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from .icon import app_icon
    from .main_window import MainWindow, settle_heap

    app = QApplication.instance() or QApplication(["side-gui"])
    app.setApplicationName("side-gui")
    app.setOrganizationName("side-inspector")
    app.setWindowIcon(app_icon())
    window = MainWindow()
    settle_heap()  # the imports and the window live as long as the app: out of every later collection's sight
    if args.screenshot:
        # One size for every screenshot (the README's among them), whatever size the window was left at.
        window.resize(*SCREENSHOT_SIZE)
    window.show()
    code = {"rc": 0}

    def run_done(ok: bool) -> None:
        # Plots and the gallery settle through queued events: let them land before the grab.
        def finish():
            if args.screenshot:
                save_screenshot(window, args.screenshot)
            if args.exit_when_done:
                code["rc"] = 0 if ok else 1
                window.close()
                app.quit()

        QTimer.singleShot(300, finish)

    window.on_run_done = run_done
    if args.audit_dir:
        if args.screenshot or args.exit_when_done:
            window.auditShown.connect(lambda _: run_done(True))

        def failed(_path: str, message: str) -> None:
            print(message, file=sys.stderr)
            code["rc"] = 2
            if args.exit_when_done:
                window.close()
                app.quit()

        window.openFailed.connect(failed)
        window.open_audit(args.audit_dir)
    elif args.demo:
        window.run_demo(quick=args.quick, out=args.out, model=args.demo_model)
        if not window.is_running():
            code["rc"] = 2
            if args.exit_when_done:
                return 2
    if args.quit_after is not None:
        QTimer.singleShot(args.quit_after, window.close)
    rc = app.exec()
    return code["rc"] or rc
