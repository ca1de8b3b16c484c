"""Markdown tables and the gamma-curve figure of docs/RESULTS.md, from finished audits: every number is what
`side report AUDIT_DIR --json` gives (the same function makes both).

    python docs/results/tables.py AUDIT_DIR --svg docs/results/NAME.svg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from side_engine.cli import report_dict
from side_engine.evidence import gamma_plot_svg
from side_engine.matching.metrics import ALL, GroupResult

NAMES = {"none": "Random", "td": "SIDE", "ti": "OL-TI"}


def pct(v: float) -> str:
    return f"{100 * v:.2f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("audit")
    p.add_argument("--svg")
    a = p.parse_args(argv)
    d = report_dict(a.audit)
    bands = ["low", "mid", "high"]
    print("| method | gamma | N_G | " + " | ".join(f"{b} AMS [95% CI]" for b in bands) + " | "
          + " | ".join(f"{b} UMS [95% CI]" for b in bands) + " | on target |")
    print("|---|---|---|" + "---|" * 7)
    for r in d["results"]:
        ams = [f"{pct(r['ams'][b])} [{pct(r['ams_ci'][b][0])}, {pct(r['ams_ci'][b][1])}]" for b in bands]
        ums = [f"{pct(r['ums'][b])} [{pct(r['ums_ci'][b][0])}, {pct(r['ums_ci'][b][1])}]" for b in bands]
        rate = "-" if r["target_rate"] is None else f"{100 * r['target_rate']:.0f}%"
        print(f"| {NAMES[r['guide']]} | {r['gamma']:g} | {r['n']} | " + " | ".join(ams + ums) + f" | {rate} |")
    print()
    print("| method | gamma | n | AMS all bands: ratio, p, p Bonf. | UMS all bands: ratio, p, p Bonf. | "
          "low AMS ratio, p | mid AMS ratio, p | high AMS ratio, p |")
    print("|---|---|---|---|---|---|---|---|")
    for r in d["results"]:
        v = r.get("vs_random")
        if not v:
            continue

        def cell(c):
            ratio = f"{c['ratio']:.2f}" if c["ratio"] is not None else ("∞" if c["guided"] > 0 else "-")
            return f"{ratio}, {c['p']:.2g}"

        print(f"| {NAMES[r['guide']]} | {r['gamma']:g} | {v['n']} | {cell(v['ams'][ALL])}, "
              f"{v['ams'][ALL]['p_bonferroni']:.2g} | {cell(v['ums'][ALL])}, {v['ums'][ALL]['p_bonferroni']:.2g} | "
              + " | ".join(cell(v["ams"][b]) for b in bands) + " |")
    if a.svg:
        results = [GroupResult(guide=r["guide"], gamma=r["gamma"], n=r["n"], ams=r["ams"], ums=r["ums"],
                               percentile=r["percentile"], ams_ci={k: tuple(c) for k, c in r["ams_ci"].items()},
                               ums_ci={k: tuple(c) for k, c in r["ums_ci"].items()}) for r in d["results"]]
        Path(a.svg).write_text(gamma_plot_svg(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
