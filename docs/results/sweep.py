"""The gamma sweeps behind docs/RESULTS.md: a demo model's audit with a given label source and N_G per gamma.

    python docs/results/sweep.py regime classifier --n 2048 --out AUDIT_DIR [--gammas 0,0.5,1,...] [--no-ol-ti]
    python docs/results/sweep.py regime clusters --n 2048 --out AUDIT_DIR

The config is the demo's (side_engine.demo.demo_config) with the sweep's extraction settings; it is written to
AUDIT_DIR/audit.toml like any audit's, so `side run --resume AUDIT_DIR` continues an interrupted sweep and
`side report AUDIT_DIR --json` reads it.
"""

from __future__ import annotations

import argparse
import sys

from side_engine.cli import ProgressPrinter
from side_engine.demo import DEMO_MODELS, demo_config
from side_engine.pipeline import AuditPipeline

from tdkd_settings import parse_variant  # this folder's script

GAMMAS = "0,0.5,1,2,3,5,8,12,20"


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model", help="regime | memorizing | a demo model folder")
    p.add_argument("labels", choices=("classifier", "clusters"))
    p.add_argument("--n", type=int, default=2048, help="N_G per gamma")
    p.add_argument("--gammas", default=GAMMAS)
    p.add_argument("--no-ol-ti", action="store_true")
    p.add_argument("--tdkd", default="", help="overrides of [tdkd], e.g. n_syn=2048,steps=4000")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    cfg = demo_config(model=DEMO_MODELS.get(a.model, a.model))
    cfg.name = f"sweep: {a.model} model, {a.labels} labels, N_G {a.n}"
    cfg.labels.source = a.labels
    cfg.extraction.gammas = [float(g) for g in a.gammas.split(",")]
    cfg.extraction.n_per_gamma = a.n
    cfg.extraction.ol_ti = not a.no_ol_ti
    cfg.runtime.threads = a.threads
    cfg.tdkd = parse_variant(a.tdkd, cfg.tdkd)
    pipeline = AuditPipeline.prepare(cfg, a.out)
    listener = ProgressPrinter()
    try:
        for e in pipeline.run():
            listener(e)
    finally:
        pipeline.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
