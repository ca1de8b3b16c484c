"""The AMS/UMS-against-gamma figure, as SVG: inline in the HTML, vector in the PDF."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from ..matching.metrics import GroupResult
from ..vocabulary import BANDS_HIGH_FIRST, BandName, Guide

# The guided series (each starts from Random at gamma 0) in colours and dashes that also part in grey print.
SERIES = ((Guide.TD, "#1f4e9c", ""), (Guide.TI, "#c0601a", "5 3"))
WHISKER_SHIFT = {Guide.TD: -2.5, Guide.TI: 2.5}  # px: SIDE's and OL-TI's intervals at one gamma side by side
METRICS = ("ams", "ums")


PW, PH = 250, 120  # one panel's plot area, px


def gamma_plot_svg(results: Sequence[GroupResult]) -> str:
    """Panels (rows: bands high, mid, low; columns: AMS, UMS) of % against gamma; each guided series starts from
    the random (gamma 0) group when there is one."""
    left, top, gap_x, gap_y = 46, 44, 40, 46
    width, height = left + 2 * (PW + gap_x), top + 3 * (PH + gap_y) + 4
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="Helvetica" font-size="11">'),
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>']
    lx = left
    for guide, colour, dash in SERIES:
        if any(r.guide == guide for r in results):
            out.append(f'<line x1="{lx}" y1="14" x2="{lx + 24}" y2="14" stroke="{colour}" stroke-width="2" '
                       f'stroke-dasharray="{dash or "none"}"/>')
            out.append(f'<text x="{lx + 30}" y="18">{html.escape(guide.label)}</text>')
            lx += 130
    out.append(f'<text x="{lx}" y="18" fill="#555555">gamma 0 = random sampling</text>')
    for bi, band in enumerate(BANDS_HIGH_FIRST):
        for mi, metric in enumerate(METRICS):
            out += _panel(results, band, metric, left + mi * (PW + gap_x), top + bi * (PH + gap_y))
    out.append(f'<text x="{left + PW + gap_x // 2}" y="{height - 8}" text-anchor="middle" fill="#555555">'
               "gamma (guidance scale); vertical lines: 95% intervals</text>")
    out.append("</svg>")
    return "\n".join(out)


def _panel(results: Sequence[GroupResult], band: BandName, metric: str, x0: int, y0: int) -> list[str]:
    """One metric of one band against gamma, its plot area's top left corner at (x0, y0)."""
    gammas = sorted({r.gamma for r in results})
    gmax = max(gammas) or 1.0
    # the axis reaches the top of every 95% interval, drawn as a whisker on each point
    cis = {(r.guide, r.gamma): getattr(r, metric + "_ci").get(band) for r in results}
    vals = [100 * getattr(r, metric)[band] for r in results] + [100 * c[1] for c in cis.values() if c]
    ymax = _nice_ceiling(max([*vals, 0.0]))

    def sx(g: float) -> float:
        return x0 + 8 + (PW - 16) * g / gmax  # inset: whiskers clear the frame

    def sy(v: float) -> float:
        return y0 + PH - PH * v / ymax

    out = [f'<text x="{x0}" y="{y0 - 8}" font-weight="bold">{metric.upper()} {band.label} %</text>',
           f'<rect x="{x0}" y="{y0}" width="{PW}" height="{PH}" fill="none" stroke="#888888"/>']
    for v in (0.0, ymax / 2, ymax):
        out.append(f'<line x1="{x0 - 3}" y1="{sy(v):.1f}" x2="{x0}" y2="{sy(v):.1f}" stroke="#888888"/>')
        out.append(f'<text x="{x0 - 5}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    for g in gammas:
        out.append(f'<line x1="{sx(g):.1f}" y1="{y0 + PH}" x2="{sx(g):.1f}" y2="{y0 + PH + 3}" stroke="#888888"/>')
        out.append(f'<text x="{sx(g):.1f}" y="{y0 + PH + 14}" text-anchor="middle">{g:g}</text>')
    base = [r for r in results if r.guide == Guide.NONE]
    for guide, colour, dash in SERIES:
        runs = [r for r in results if r.guide == guide]
        if not runs:
            continue
        pts = [(r.gamma, 100 * getattr(r, metric)[band]) for r in base + runs]
        xy = " ".join(f"{sx(g):.1f},{sy(v):.1f}" for g, v in pts)
        out.append(f'<polyline points="{xy}" fill="none" stroke="{colour}" stroke-width="2" '
                   f'stroke-dasharray="{dash or "none"}"/>')
        out += [f'<line x1="{x:.1f}" y1="{sy(100 * c[0]):.1f}" x2="{x:.1f}" '
                f'y2="{sy(100 * c[1]):.1f}" stroke="{colour}" stroke-width="1"/>'
                for r in runs if (c := cis[(r.guide, r.gamma)])
                for x in (sx(r.gamma) + WHISKER_SHIFT[guide],)]
        out += [f'<circle cx="{sx(g):.1f}" cy="{sy(v):.1f}" r="2.5" fill="{colour}"/>' for g, v in pts]
    for r in base:
        g, v, c = r.gamma, 100 * getattr(r, metric)[band], cis[(r.guide, r.gamma)]
        if c:
            out.append(f'<line x1="{sx(g):.1f}" y1="{sy(100 * c[0]):.1f}" x2="{sx(g):.1f}" '
                       f'y2="{sy(100 * c[1]):.1f}" stroke="black" stroke-width="1"/>')
        out.append(f'<circle cx="{sx(g):.1f}" cy="{sy(v):.1f}" r="3" fill="black"/>')
    return out


def _nice_ceiling(v: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is >= v (1 for nothing), so axis ticks read cleanly."""
    if v <= 0:
        return 1.0
    p = 10 ** math.floor(math.log10(v))
    return next(m * p for m in (1, 2, 5, 10) if m * p >= v * (1 - 1e-9))
