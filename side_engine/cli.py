"""`side`: the engine headless. The CLI is one more listener of the pipeline's events.

Exit codes: 0 ok, 1 `side verify` found a problem, 2 bad input (one line naming the file and the problem),
130 cancelled.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sqlite3
import sys
from pathlib import Path

from .vocabulary import BANDS_HIGH_FIRST, GUIDES, VERDICTS, Direction

os.environ.setdefault("HF_HUB_OFFLINE", "1")

EXIT_OK, EXIT_INPUT, EXIT_CANCELLED = 0, 2, 130
EXIT_VERIFY_FAILED = 1


class ProgressPrinter:
    """Listener: one tqdm bar per stage (and per leg of the gamma sweep), warnings and summaries as lines."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.bar = None

    def _close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __call__(self, e) -> None:
        from tqdm import tqdm

        from . import events as ev

        if self.quiet:
            return
        if isinstance(e, ev.StageStarted):
            self._close()
            label = e.stage + (f" [{e.part}]" if e.part else "")
            self.bar = tqdm(total=e.total, desc=f"{label:<22}", unit=e.unit or "it", file=sys.stderr,
                            dynamic_ncols=True, leave=True)
        elif isinstance(e, ev.Progress) and self.bar is not None:
            self.bar.n = e.done
            self.bar.refresh()
        elif isinstance(e, ev.CurvePoint) and self.bar is not None:
            self.bar.set_postfix(loss=f"{e.loss:.3f}", acc=f"{(e.accuracy or 0):.2f}", refresh=False)
        elif isinstance(e, ev.StageFinished):
            self._close()
            label = e.stage + (f" [{e.part}]" if e.part else "")
            state = "already done" if e.skipped else f"{e.seconds:.1f}s"
            print(f"{label}: {e.summary} ({state})", file=sys.stderr)
        elif isinstance(e, ev.Warning):
            (tqdm.write if self.bar else print)(f"warning: {e.message}", file=sys.stderr)
        elif isinstance(e, ev.AuditFinished):
            self._close()
            print(f"audit complete in {e.seconds:.0f}s: {e.audit_dir}", file=sys.stderr)


def _scan_progress(quiet: bool):
    """progress(done, total) for reading the training folder, which happens before the audit's events begin."""
    if quiet:
        return None
    from tqdm import tqdm

    bars: list = []

    def progress(done: int, total: int) -> None:
        if not bars:
            # disable=None: only on a terminal, where it redraws in place; a log would get a line per redraw
            bars.append(tqdm(total=total, desc=f"{'read training images':<22}", unit="image", file=sys.stderr,
                             dynamic_ncols=True, leave=False, disable=None))
        bars[0].n = done
        bars[0].refresh()
        if done >= total:
            bars[0].close()

    return progress


def _run_pipeline(pipeline, quiet: bool) -> int:
    from .errors import Cancelled

    listener = ProgressPrinter(quiet)
    try:
        for e in pipeline.run():
            listener(e)
    except (KeyboardInterrupt, Cancelled):
        listener._close()
        if pipeline.world.is_main:
            print("cancelled; everything finished so far is saved. Continue with: side run --resume "
                  f"{pipeline.store.root}", file=sys.stderr)
        return EXIT_CANCELLED
    return EXIT_OK


def cmd_run(args) -> int:
    from .config import load_config
    from .distributed import join, leave, world_from_env
    from .pipeline import AuditPipeline

    world = world_from_env()
    warn = lambda msg, path=None: print(f"warning: {msg}", file=sys.stderr)  # noqa: E731
    if not world.is_main:
        warn = lambda msg, path=None: None  # noqa: E731  (rank 0 says it once)
    if not args.resume and (args.config is None or args.out is None):
        print("usage: side run CONFIG.toml --out AUDIT_DIR  (or: side run --resume AUDIT_DIR)", file=sys.stderr)
        return EXIT_INPUT
    if args.resume and (args.out or args.config) is None:
        raise SystemExit("side run --resume AUDIT_DIR")
    join(world)
    finished = False
    try:
        scan = _scan_progress(args.quiet or not world.is_main)
        if args.resume:
            pipeline = AuditPipeline.reopen(args.out or args.config, warn, world, scan)
        elif world.distributed and world.share(lambda: _holds_same_audit(args.out, load_config(args.config))):
            # torchrun restarts a failed job with the same command line: it continues what is stored.
            if world.is_main:
                print(f"{args.out} holds this config's audit: continuing it", file=sys.stderr)
            pipeline = AuditPipeline.reopen(args.out, warn, world, scan)
        else:
            pipeline = AuditPipeline.prepare(load_config(args.config), args.out, warn, world, scan)
        code = _run_pipeline(pipeline, args.quiet or not world.is_main)
        if code == EXIT_OK and world.is_main and not args.quiet:
            print_report(pipeline.store.root)
        finished = code == EXIT_OK
        return code
    finally:
        leave(world, finished)


def _holds_same_audit(out: str, cfg) -> bool:
    from .config import load_config
    from .store import CONFIG_NAME

    path = Path(out) / CONFIG_NAME
    return path.is_file() and load_config(path).to_dict() == cfg.to_dict()


def cmd_demo(args) -> int:
    from .demo import DEMO_MODELS, demo_config
    from .pipeline import AuditPipeline
    from .store import CONFIG_NAME

    out = Path(args.out or "side-demo-audit" + ("-quick" if args.quick else ""))
    warn = lambda msg, path=None: print(f"warning: {msg}", file=sys.stderr)  # noqa: E731
    if (out / CONFIG_NAME).exists():
        print(f"{out} holds an earlier demo audit: continuing it", file=sys.stderr)
        pipeline = AuditPipeline.reopen(out, warn, progress=_scan_progress(args.quiet))
    else:
        name: str = args.model
        model = DEMO_MODELS.get(name, name)
        pipeline = AuditPipeline.prepare(demo_config(args.quick, model), out, warn, progress=_scan_progress(args.quiet))
    code = _run_pipeline(pipeline, args.quiet)
    if code == EXIT_OK and not args.quiet:
        print_report(pipeline.store.root)
    return code


def report_dict(audit_dir) -> dict:
    from .matching.metrics import chance_level
    from .store import AuditStore

    store = AuditStore.open(audit_dir)
    try:
        bands = store.config.band_set()
        return {
            "descriptor": store.descriptor,
            "bands": {b.name: [b.lo, b.hi] for b in bands.all()},
            "target_chance": chance_level(store.stage_info("labels").get("counts")),
            "results": [r.as_json() for r in store.score(bands, uncertainty=True)],
        }
    except DAMAGED as e:
        raise damaged(audit_dir, e) from None
    finally:
        store.close()


# What a damaged audit.sqlite gives its typed readers and the report's formatting (a meta value that is not a
# number, or is bytes; a table gone): one line, not a traceback. A bug in the readers would also end here; the
# exception's name says which.
DAMAGED = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError, sqlite3.Error)


def damaged(audit_dir, e: Exception):
    from .errors import InputError

    first = (str(e).splitlines() or [""])[0][:200]
    return InputError(audit_dir, f"audit is damaged, cannot report it ({type(e).__name__}: {first})")


def _pct_range(ci) -> str:
    return f"{100 * ci[0]:.2f}–{100 * ci[1]:.2f}" if ci else "-"


def format_report(d: dict) -> str:
    """Three tables at most 110 columns wide: the metrics per run, their 95% intervals, each guided run against
    Random. An interval beside every number would not fit a terminal."""
    from .matching.metrics import ALL, N_FLIPS, N_RESAMPLES, Bands, at_chance, p_text, ratio_text

    direction = Direction.of_descriptor(d["descriptor"])
    unit = direction.unit
    names = list(d["bands"])
    band_set = Bands(**{n: tuple(edges) for n, edges in d["bands"].items()}, direction=direction)
    bands = "  ".join(f"{n} {band_set.band(n).interval}" for n in names)
    pct = f"p{direction.percentile} best"
    chance = d.get("target_chance")
    lines = [f"descriptor {d['descriptor']} ({unit}); bands {bands}",
             f"{'guide':<6}{'gamma':>6}{'N_G':>6}   " + "".join(f"{'AMS/UMS ' + n + ' %':>18}" for n in names)
             + f"{pct:>9}{'Gu<1/3':>8}{'on target':>11}"]
    flagged = False
    for r in d["results"]:
        cells = "".join(f"{100 * r['ams'][n]:>9.2f}/{100 * r['ums'][n]:<8.2f}" for n in names)
        gu = "" if r.get("gu") is None else f"{100 * r['gu']:>7.1f}%"
        rate = r.get("target_rate")
        low = at_chance(rate, r["n"], chance)
        flagged |= low
        target = "-" if rate is None else f"{100 * rate:.0f}%" + (" !" if low else "  ")
        lines.append(f"{r['guide']:<6}{r['gamma']:>6g}{r['n']:>6}   {cells}{r['percentile']:>9.3f}{gu:>8}"
                     f"{target:>11}")
    if any(r.get("target_rate") is not None for r in d["results"]):
        lines.append("on target: share of a guided run's images that its classifier puts in their target label"
                     + ("" if chance is None else f" (chance {100 * chance:.0f}%)"))
    if flagged:
        lines.append("! no better than chance: guidance is not reaching its target labels, so this run's AMS/UMS "
                     "say nothing about the model")

    lines += ["", f"95% intervals, %: AMS Wilson score; UMS bootstrap over the run's images ({N_RESAMPLES} resamples)",
              f"{'guide':<6}{'gamma':>6}" + "".join(f"{m + ' ' + n:>15}" for n in names for m in ("AMS", "UMS"))]
    for r in d["results"]:
        cells = "".join(f"{_pct_range(r[m + '_ci'].get(n)):>15}" for n in names for m in ("ams", "ums"))
        lines.append(f"{r['guide']:<6}{r['gamma']:>6g}{cells}")

    versus = [r for r in d["results"] if r.get("vs_random")]
    if versus:
        groups = [ALL] + names
        lines += ["", ("vs Random, image by image on the n indices both runs hold: ratio guided / Random and "
                       "one-sided p of guided > Random"),
                  f"(AMS: exact McNemar test; UMS: paired sign-flip test, {N_FLIPS} flips);",
                  "pB: p times the number of gammas tried with that guide (Bonferroni)",
                  " " * 23 + "".join(f"{'all bands' if g == ALL else g:^21}" for g in groups),
                  f"{'guide':<6}{'gamma':>6}{'n':>6}{'':5}" + f"{'ratio':>9}{'p':>6}{'pB':>6}" * len(groups)]
        for r in versus:
            v = r["vs_random"]
            for m in ("ams", "ums"):
                head = f"{r['guide']:<6}{r['gamma']:>6g}{v['n']:>6}" if m == "ams" else " " * 18
                cells = "".join(f"{ratio_text(c['ratio'], c['guided']):>9}{p_text(c['p']):>6}"
                                f"{p_text(c['p_bonferroni']):>6}" for c in (v[m][g] for g in groups))
                lines.append(f"{head}  {m.upper()}{cells}")
        if any(r["vs_random"]["n"] < r["n"] for r in versus):
            lines.append("n < N_G: the two runs do not hold the same image indices; only the common ones are compared")
    return "\n".join(line.rstrip() for line in lines)


def print_report(audit_dir) -> None:
    print(format_report(report_dict(audit_dir)))


def cmd_report(args) -> int:
    if len(args.audits) > 1:
        return cmd_compare(args)
    if args.json and (args.by_image or args.csv):
        # A table of every image is no JSON object: refused rather than ignored, so that a script learns it.
        print("error: --json goes with the summary report or a comparison; --by-image and --csv give tables (CSV or "
              "Parquet with --csv FILE)", file=sys.stderr)
        return EXIT_INPUT
    if args.by_image:
        return cmd_report_by_image(args)
    if args.csv:
        return cmd_report_table(args)
    args.audit = args.audits[0]
    d = report_dict(args.audit)
    try:
        text = json.dumps(d, indent=2) if args.json else format_report(d)
    except DAMAGED as e:
        raise damaged(args.audit, e) from None
    print(text)
    return EXIT_OK


def cmd_compare(args) -> int:
    """`side report A B ...`: the audits side by side, B ... against A (docs/COMPARE.md)."""
    from .questions.compare import DifferentAudits, compare_audits, format_comparison

    if args.by_image or args.csv:
        print("error: --by-image and --csv report one audit; compare audits without them", file=sys.stderr)
        return EXIT_INPUT
    try:
        c = compare_audits(args.audits, accept_differences=args.accept_differences)
    except DifferentAudits as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT
    print(json.dumps(c.as_json(), indent=2) if args.json else format_comparison(c))
    return EXIT_OK


def cmd_report_by_image(args) -> int:
    """`side report AUDIT --by-image [--csv FILE]`: the training images at risk (side_engine/questions/by_image.py)."""
    from .questions.by_image import format_table, training_table, write_table
    from .store import AuditStore

    audit = args.audits[0]
    store = AuditStore.open(audit)
    try:
        table = training_table(store)
        if args.csv:
            n = write_table(table, args.csv)
            print(f"{n} training image(s) written to {args.csv}, most at risk first (columns: docs/REPORT_CSV.md)",
                  file=sys.stderr)
        else:
            print(format_table(table))
    except DAMAGED as e:
        raise damaged(audit, e) from None
    finally:
        store.close()
    return EXIT_OK


def cmd_report_table(args) -> int:
    from .questions.table import write_table

    audit = args.audits[0]
    try:
        n = write_table(audit, args.csv)
    except DAMAGED as e:
        raise damaged(audit, e) from None
    print(f"{n} generated image(s) written to {args.csv} (columns: docs/REPORT_CSV.md)", file=sys.stderr)
    return EXIT_OK


def cmd_train_demo(args) -> int:
    import dataclasses

    from .demo import DEMO_SPECS, train_demo

    spec = DEMO_SPECS[args.model]
    changes = {k: v for k, v in (("steps", args.steps), ("per_class", args.per_class)) if v is not None}
    if args.snapshots:
        changes["snapshots"] = tuple(int(s) for s in args.snapshots.split(","))
    spec = dataclasses.replace(spec, **changes)
    out = train_demo(args.out, spec, log=lambda s: print(s, file=sys.stderr, flush=True))
    print(f"demo model written to {out}", file=sys.stderr)
    return EXIT_OK


def _signing_key(path: str):
    """The private key to sign with; its passphrase from SIDE_KEY_PASSPHRASE, or asked for on a terminal."""
    from .errors import InputError
    from .evidence.signing import load_private_key

    secret = os.environ.get("SIDE_KEY_PASSPHRASE")
    try:
        return load_private_key(path, secret.encode() if secret is not None else None)
    except InputError as e:
        if secret is not None or "passphrase" not in e.problem or not sys.stdin.isatty():
            raise
    import getpass

    return load_private_key(path, getpass.getpass(f"passphrase for {path}: ").encode())


def cmd_export(args) -> int:
    from .evidence import export_evidence

    key = _signing_key(args.sign) if args.sign else None
    out = export_evidence(args.audit, args.out, band=args.band, verdict=args.verdict, guide=args.guide,
                          gamma=args.gamma, top=args.top, training_images=args.image, sign_key=key)
    print(f"evidence written to {out}; check it with: side verify {shlex.quote(str(out))} --model MODEL_DIR"
          + (f" --trust {shlex.quote(args.sign + '.pub')}" if args.sign else ""), file=sys.stderr)
    return EXIT_OK


def cmd_verify(args) -> int:
    from .evidence.signing import load_public_key
    from .evidence.verify import REGEN_TOLERANCE, verify_export

    trust = load_public_key(args.trust) if args.trust else None
    report = verify_export(args.export, args.model, args.device, trust=trust)
    for line in report.problems:
        print(f"FAILED {line}", file=sys.stderr)
    worst = report.max_difference
    regen = "" if worst is None else (f"; {len(report.regenerated)} image(s) regenerated, largest pixel difference "
                                      f"{worst} grey level(s) (tolerance {REGEN_TOLERANCE})")
    if report.signer is None:
        signed = "; not signed" if not args.trust else ""
    elif report.trusted:
        signed = f"; signed by {report.signer.fingerprint}, the trusted key"
    else:
        signed = (f"; signed by {report.signer.fingerprint}" + ("" if args.trust else
                  ", not checked against a trusted key (--trust KEY.pub)"))
    print(f"{'FAILED' if report.problems else 'OK'}: {report.checked_files} file(s) checked{regen}{signed}")
    return EXIT_VERIFY_FAILED if report.problems else EXIT_OK


def format_answers(answers, unit: str, closer: str) -> str:
    """What `side check` prints per outside image: its closest generated images, then its closest training images."""
    from .vocabulary import OUTSIDE

    def scored(m) -> str:
        return f"{unit} {m.score:8.4f}  {'band ' + m.band.label if m.band else OUTSIDE:<17}"

    distance = unit == Direction.DISTANCE.unit
    out = []
    for a in answers:
        # As in the audit, the generated image is the query of its pair; against a training image the picture is.
        own = ", each generated image under its own normaliser" if distance else ""
        mine = f" ({unit} under the picture's normaliser {a.normalizer:.4g})" if distance else ""
        out.append(f"{a.image}\n  sha256 {a.sha256}\n  closest generated images ({unit}, {closer}{own}):")
        out += [f"    {k:>2}. image {g.id:<8} {g.guide.tag + (f' γ={g.gamma:g}' if g.gamma else ''):<10} "
                f"{scored(g)} {g.path}" for k, g in enumerate(a.generated, start=1)]
        out.append(f"  closest training images{mine}:")
        out += [f"    {k:>2}. training #{t.index:<14} {scored(t)} {t.path}" for k, t in enumerate(a.training, start=1)]
    return "\n".join(out)


def cmd_check(args) -> int:
    from . import events as ev
    from .evidence.check_export import export_check, export_folder
    from .questions.check import Checker

    if args.export:
        export_folder(args.export)  # refused before any picture is read, not after the whole check
    listener = ProgressPrinter(args.quiet)
    with Checker(args.audit, device=args.device) as checker:
        # Every picture is read before any descriptor is computed: an unreadable one ends the command at once.
        images = [checker.read(p) for p in args.images]
        answers = ev.run_to_end(checker.answers(images, args.top), listener)
        bands, direction = checker.bands, checker.direction
    if args.json:
        print(json.dumps({"audit": str(Path(args.audit).resolve()), "score": direction.unit,
                          "direction": str(direction), "bands": {b.name: [b.lo, b.hi] for b in bands.all()},
                          "answers": [a.as_json() for a in answers]}, indent=2))
    else:
        print("bands: " + ", ".join(f"{n.label} {bands.band(n).interval}" for n in BANDS_HIGH_FIRST))
        print(format_answers(answers, direction.unit, direction.closer))
    if args.export:
        out = export_check(args.audit, answers, args.export)
        print(f"evidence written to {out}; check it with: side verify {shlex.quote(str(out))}", file=sys.stderr)
    return EXIT_OK


def cmd_engine_process(_args) -> int:
    from .engine_process import serve

    return serve()


def cmd_keygen(args) -> int:
    from .evidence.signing import keygen

    signer = keygen(args.out, args.comment)
    print(f"private key written to {args.out} (keep it to yourself), public key to {args.out}.pub "
          f"(give it to reviewers); fingerprint {signer.fingerprint}", file=sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="side", description="SIDE Inspector: audit an unconditional diffusion model "
                                "for memorized training images.")
    p.add_argument("--version", action="version", version=f"side {__version__}")
    # Listed by hand: engine-process is the app's, not a command for people.
    sub = p.add_subparsers(dest="command", required=True,
                           metavar="{run,demo,report,export,verify,check,keygen,train-demo}")

    r = sub.add_parser("run", help="run an audit from a config file (or --resume one)")
    r.add_argument("config", nargs="?", help="CONFIG.toml (docs/CONFIG.md)")
    r.add_argument("--out", help="the audit folder to create")
    r.add_argument("--resume", action="store_true", help="continue the audit in --out (or the folder given)")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="the shipped demo audit")
    d.add_argument("--out", help="audit folder (default ./side-demo-audit)")
    d.add_argument("--quick", action="store_true", help="a smoke run in well under a minute")
    d.add_argument("--model", default="regime", metavar="regime|memorizing",
                   help="regime (default): a DDPM that memorizes a little, where SIDE has room to show; "
                        "memorizing: one that copies on a large share of plain samples")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_demo)

    rep = sub.add_parser("report", help="AMS/UMS per band and gamma of an audit; several audits: compare them")
    rep.add_argument("audits", nargs="+", metavar="AUDIT")
    rep.add_argument("--json", action="store_true", help="one JSON object (docs/REPORT_JSON.md)")
    rep.add_argument("--by-image", action="store_true",
                     help="the training images at risk: per training image, how many generated images fell in "
                          "each band on it")
    rep.add_argument("--csv", metavar="FILE", help="write the table as CSV (.parquet: Parquet, with pyarrow) instead "
                     "of printing it: every generated image with all its scores, or with --by-image every training "
                     "image (docs/REPORT_CSV.md)")
    rep.add_argument("--accept-differences", action="store_true",
                     help="compare audits whose descriptors, bands or k differ (listed first)")
    rep.set_defaults(func=cmd_report)

    x = sub.add_parser("export", help="write a self-contained, verifiable evidence folder (docs/EVIDENCE.md)")
    x.add_argument("audit")
    x.add_argument("--out", required=True, help="a new (or empty) folder")
    x.add_argument("--band", choices=[str(b) for b in BANDS_HIGH_FIRST],
                   help="only pairs whose best match is in this band (with --image: whose score on that training "
                        "image is)")
    x.add_argument("--verdict", choices=[str(v) for v in VERDICTS], help="only pairs with this verdict")
    x.add_argument("--guide", choices=[str(g) for g in GUIDES],
                   help="only images of this guidance: none (random sampling), td (SIDE, f_TD), ti (OL-TI, f_TI)")
    x.add_argument("--gamma", type=float, help="only images generated at this gamma")
    x.add_argument("--top", type=int, help="only the N closest pairs (after the other filters)")
    x.add_argument("--image", type=int, action="append", metavar="N",
                   help="the pairs of training image N (its index in the audit; repeat for several): every generated "
                        "image that holds it among its k stored neighbours, closest on it first, and a page for it "
                        "in the report")
    x.add_argument("--sign", metavar="KEY", help="sign manifest.json with this Ed25519 private key (OpenSSH, or "
                   "`side keygen`); its passphrase from SIDE_KEY_PASSPHRASE or asked for")
    x.set_defaults(func=cmd_export)

    v = sub.add_parser("verify", help="re-check an evidence folder; with --model also regenerate its images")
    v.add_argument("export")
    v.add_argument("--model", help="the audited model's folder: regenerate every generated image and compare")
    v.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N for the regeneration")
    v.add_argument("--trust", metavar="KEY.pub", help="the export must be signed by this public key (OpenSSH form)")
    v.set_defaults(func=cmd_verify)

    c = sub.add_parser("check", help="was this picture extracted? the audit's generated and training images closest "
                       "to outside images (docs/CHECK.md)")
    c.add_argument("audit")
    c.add_argument("images", nargs="+", metavar="IMAGE", help="image files, inside the training folder or not")
    c.add_argument("--top", type=int, default=5, help="how many closest generated and training images (default 5)")
    c.add_argument("--json", action="store_true", help="one JSON object (docs/CHECK.md)")
    c.add_argument("--export", metavar="DIR",
                   help="also write the answer as an evidence folder (side verify checks it)")
    c.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N for the descriptors")
    c.add_argument("--quiet", action="store_true", help="no progress on stderr")
    c.set_defaults(func=cmd_check)

    # The app's engine in a process of its own (engine_process.py), for a frozen bundle that cannot run -m.
    e = sub.add_parser("engine-process")
    e.set_defaults(func=cmd_engine_process)

    k = sub.add_parser("keygen", help="make an Ed25519 key to sign exports with (side export --sign)")
    k.add_argument("--out", required=True, help="the private key's file; the public key goes to OUT.pub")
    k.add_argument("--comment", default="", help="a note in the public key, such as your name")
    k.set_defaults(func=cmd_keygen)

    t = sub.add_parser("train-demo", help="reproduce the shipped demo model")
    t.add_argument("--out", default="demo-model", help="output folder (resumes from its checkpoint)")
    t.add_argument("--model", choices=("regime", "memorizing"), default="regime",
                   help="which shipped demo model to reproduce (default: regime)")
    t.add_argument("--steps", type=int, help="training steps (default: the shipped model's)")
    t.add_argument("--per-class", type=int, help="training digits per class (default: the shipped model's)")
    t.add_argument("--snapshots", help="comma-separated steps at which to also write the EMA model to "
                   "OUT/snapshots/step-N (to choose a training length)")
    t.set_defaults(func=cmd_train_demo)
    return p


def main(argv=None) -> int:
    from .distributed import world_from_env
    from .errors import InputError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as e:
        if world_from_env().is_main:  # under torchrun every rank gets rank 0's error; one says it
            print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except BrokenPipeError:
        # `side report A | head`: the reader has gone; say nothing more to it (Python would print a traceback when
        # it flushes stdout at exit).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
