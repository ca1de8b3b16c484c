"""A confirmation on fresh images: a guided run against Random on the image indices from FIRST on only.

The sweep chose its best gamma on images 0..FIRST-1; the confirmation audit (a copy of the sweep's folder with
`gammas = [0, G]` and a larger `n_per_gamma` in its audit.toml, then `side run --resume`) adds images FIRST.. of
Random and of that gamma. Tested on those alone, the p-value needs no correction for the choice of gamma.

    python docs/results/confirm.py AUDIT_DIR --guide td --gamma 3 --first 2048
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from side_engine.matching.metrics import ALL
from side_engine.matching.uncertainty import RunScores, compare_with_random
from side_engine.store import AuditStore
from side_engine.vocabulary import Guide


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("audit")
    p.add_argument("--guide", default="td")
    p.add_argument("--gamma", type=float, required=True)
    p.add_argument("--first", type=int, default=2048)
    a = p.parse_args(argv)
    store = AuditStore.open(a.audit)
    s = store.score_arrays()

    def run(guide, gamma):
        sel = (s.guide == guide) & (s.gamma == gamma) & (s.idx >= a.first)
        return RunScores(s.idx[sel], s.nn_idx[sel], s.nn_score[sel])

    v = compare_with_random(run(a.guide, a.gamma), run(Guide.NONE, 0.0), store.config.band_set())
    out = {"audit": a.audit, "guide": a.guide, "gamma": a.gamma, "first_index": a.first, **v.as_json()}
    print(json.dumps(out, indent=2))
    for m in ("ams", "ums"):
        c = v.ams[ALL] if m == "ams" else v.ums[ALL]
        print(f"{m.upper()} all bands on {v.n} fresh images: guided {100 * c.guided:.2f}% vs Random "
              f"{100 * c.random:.2f}%, ratio {c.ratio:.2f}, one-sided p {c.p:.3g}", file=sys.stderr)
    return 0 if np.isfinite(v.n) else 1


if __name__ == "__main__":
    sys.exit(main())
