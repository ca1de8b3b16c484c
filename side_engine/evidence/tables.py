"""The report's tables of the audit's metrics, the same in the PDF and the HTML: AMS/UMS per run, their 95%
intervals, and each guided run against Random."""

from __future__ import annotations

from dataclasses import dataclass

from ..matching.metrics import ALL, N_FLIPS, N_RESAMPLES, Bands, GroupResult, at_chance, p_text, ratio_text
from ..vocabulary import BANDS_HIGH_FIRST, OUTSIDE, Direction
from .selection import ChosenImage
from .text import fmt

TABLE_NOTE = "All generated images of the audit, not only the exported pairs. N_G: images per row."
TRUNCATED_NOTE = ("* UMS may undercount: some image's k-th stored neighbour still lies inside the band "
                  "(store more neighbours: matching.k).")
TARGET_NOTE = ("On target: share of a guided run's images that its classifier puts, at t = 0, in the label it was "
               "guided to{chance}.")
AT_CHANCE_NOTE = ("! No better than chance: that run's guidance is not reaching its target labels, so its AMS/UMS say "
                  "nothing about the model.")
INTERVAL_NOTE = (f"95% intervals, %. AMS: Wilson score interval (a proportion of N_G images). UMS: percentile "
                 f"bootstrap over the run's generated images ({N_RESAMPLES} resamples, fixed seed), each image "
                 "carrying its share of the band's distinct training matches; 0.00–0.00 where no image has a match "
                 "in the band (resampling cannot show the unseen).")
VERSUS_NOTE = ("Each guided run against random sampling, image by image on the n indices both runs hold (index i "
               "starts from the same noise and label in every run). Each cell: the ratio guided / random, then the "
               "one-sided p-value of guided > random and, in brackets, p times the number of gammas tried with that "
               f"guidance (Bonferroni). AMS: exact McNemar test; UMS: paired sign-flip test ({N_FLIPS} random "
               "swaps of the two runs' images per index). All bands: AMS in any band; the sum of the bands' UMS.")


@dataclass(frozen=True)
class Table:
    title: str
    head: list[str]
    rows: list[list[str]]
    widths: tuple[float, ...]  # mm in the PDF: 190 in all, the A4 page less its margins
    notes: list[str]


def metric_tables(results: tuple[GroupResult, ...], direction: Direction, chance: float | None) -> list[Table]:
    tables = [_metrics_table(results, direction, chance), _interval_table(results)]
    if any(r.vs_random for r in results):
        tables.append(_versus_table(results))
    return tables


def _metrics_table(results: tuple[GroupResult, ...], direction: Direction, chance: float | None) -> Table:
    head = (["guidance", "gamma", "N_G"] + [f"band {b.label}\nAMS / UMS %" for b in BANDS_HIGH_FIRST]
            + [f"{direction.percentile}th pct. of\nbest {direction.unit}", "Gu ratio\n< 1/3", "on target"])
    rows, truncated, flagged = [], False, False
    for r in results:
        cells = []
        for b in BANDS_HIGH_FIRST:
            mark = "*" if b in r.ums_truncated else ""
            truncated |= bool(mark)
            cells.append(f"{100 * r.ams[b]:.2f} / {100 * r.ums[b]:.2f}{mark}")
        low = at_chance(r.target_rate, r.n, chance)
        flagged |= low
        target = "n/a" if r.target_rate is None else f"{100 * r.target_rate:.0f}%" + (" !" if low else "")
        rows.append([r.guide.label, f"{r.gamma:g}", str(r.n), *cells, fmt(r.percentile, 3),
                     "n/a" if r.gu is None else f"{100 * r.gu:.1f}%", target])
    notes = [TABLE_NOTE] + [TRUNCATED_NOTE] * truncated
    if any(r.target_rate is not None for r in results):
        notes.append(TARGET_NOTE.format(chance="" if chance is None else f" (chance: {100 * chance:.0f}%)"))
    notes += [AT_CHANCE_NOTE] * flagged
    return Table("AMS / UMS per band and gamma", head, rows, (30, 16, 11, 27, 27, 27, 20, 16, 16), notes)


def _range(ci: tuple[float, float] | None) -> str:
    return f"{100 * ci[0]:.2f}–{100 * ci[1]:.2f}" if ci else "n/a"


def _interval_table(results: tuple[GroupResult, ...]) -> Table:
    head = ["guidance", "gamma"] + [f"band {b.label}\n{m} %" for b in BANDS_HIGH_FIRST for m in ("AMS", "UMS")]
    rows = [[r.guide.label, f"{r.gamma:g}"] + [_range(ci.get(b)) for b in BANDS_HIGH_FIRST
                                               for ci in (r.ams_ci, r.ums_ci)] for r in results]
    return Table("95% intervals", head, rows, (30, 16) + (24,) * 6, [INTERVAL_NOTE])


def _versus_table(results: tuple[GroupResult, ...]) -> Table:
    groups = (ALL, *BANDS_HIGH_FIRST)
    head = ["guidance", "gamma", "n", ""] + ["all bands" if g == ALL else f"band {g.label}" for g in groups]
    rows = []
    for r in results:
        v = r.vs_random
        if not v:
            continue
        for m in ("ams", "ums"):
            cells = [f"ratio {ratio_text(c.ratio, c.guided)}\np {p_text(c.p)} ({p_text(c.p_bonferroni)})"
                     for c in (getattr(v, m)[g] for g in groups)]
            lead = [r.guide.label, f"{r.gamma:g}", str(v.n)] if m == "ams" else ["", "", ""]
            rows.append([*lead, m.upper(), *cells])
    return Table("Against random sampling", head, rows, (30, 16, 10, 14) + (30,) * 4, [VERSUS_NOTE])


CHOSEN_NOTE = ("All generated images of the audit, not only the exported pairs: a generated image counts where the "
               "training image is among its stored neighbours, in the band of its score on it.")


def chosen_table(c: ChosenImage, bands: Bands) -> Table:
    """How many generated images match one chosen training image in each band."""
    head = ["band", f"edges ({bands.direction.unit})", "generated images", "of them, as their nearest"]
    rows = [[b.label, bands.band(b).interval, str(c.matched[b]), str(c.nearest[b])] for b in BANDS_HIGH_FIRST]
    rows.append([OUTSIDE, "", str(c.matched[""]), str(c.nearest[""])])
    return Table(f"Generated images near training image #{c.index}", head, rows, (45, 45, 50, 50), [CHOSEN_NOTE])
