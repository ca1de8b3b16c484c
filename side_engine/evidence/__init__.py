"""Evidence export: a folder that stands on its own, that a reader can check without the audit (docs/EVIDENCE.md).

The folder holds the selected pairs as lossless files (the generated PNG exactly as the audit stored it, the
training image byte for byte as it was on disk), the classifier weights and audit.toml needed to regenerate
every generated image, three views of the same content (grid PNGs for print, report.pdf, a self-contained
report.html), pairs.csv, and manifest.json: every pair's provenance plus the SHA-256 of every other file.
`side verify` (verify.py) re-checks all of it. The folder is built next to its destination and renamed into
place at the end, so an export is either complete or absent.
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import html
import io
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .. import __version__
from ..dataset import sha256_file, to_model_space
from ..errors import InputError
from ..matching.metrics import (ALL, BAND_NAMES, N_FLIPS, N_RESAMPLES, Bands, GroupResult, at_chance, chance_level, p_text,
                      ratio_text, score_groups, with_uncertainty)
from ..store import CONFIG_NAME, DB_NAME, VERDICTS, AuditStore, ImageRow

FORMAT = "side-evidence/1"
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
README = "README.txt"
ROWS_PER_PAGE = 3  # grid rows per PNG: three rows and the header have about A4's shape, so a page prints full width
TILE_MIN = 192  # px: smaller images are upscaled (nearest neighbour, whole factors) to at least this
# Grid sizes in px for a tile of TILE_MIN; larger tiles scale them all, so that a page printed to A4's width
# has the same text size (about 10 pt) whatever the model's image size.
MARGIN = 16
FONT_PX = 15
LINE_PX = 19
TEXT_LINES = 4
DIFF_GAIN = 4  # the difference tile shows 4 x |generated - training|: a 10-level difference must not look equal
GUIDES = {"none": "random (no guidance)", "td": "SIDE (f_TD)", "ti": "OL-TI (f_TI)"}
COLUMN_TITLES = (("generated",), ("nearest training image",), (f"|difference| \u00d7 {DIFF_GAIN}", "white = equal"))


def classifier_name(guide: str, labels_source: str) -> str | None:
    """The file in classifiers/ that guided images of this guide: f_TD, or f_TI (for labels from clusters f_TI
    is the nearest-centre classifier over the stored centres)."""
    if guide == "none":
        return None
    if guide == "td":
        return "td"
    return "clusters" if labels_source == "clusters" else "ti"


def tile_scale(size: int) -> int:
    """The whole-number upscale factor of an image side of `size` pixels in the grid, PDF and HTML."""
    return max(1, math.ceil(TILE_MIN / size))


def _px(tile: int, size: int) -> int:
    return round(size * max(1.0, tile / TILE_MIN))


def grid_header(tile: int) -> int:
    """Title, bands line, a gap, two lines of column titles."""
    return _px(tile, MARGIN) + 4 * _px(tile, LINE_PX) + _px(tile, 8)


def row_height(tile: int) -> int:
    return tile + TEXT_LINES * _px(tile, LINE_PX) + _px(tile, MARGIN)


def grid_height(rows: int, tile: int) -> int:
    return grid_header(tile) + rows * row_height(tile)


@dataclass
class Pair:
    rank: int
    row: ImageRow
    band: str
    verdict: str
    note: str
    label_name: str
    train_index: int
    train_source: str  # path inside the training folder
    train_sha256: str
    train_file: str  # path inside the export
    gen_file: str
    classifier: str | None  # "td" | "ti" | None


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_bytes(body: dict) -> bytes:
    """The manifest as written: canonical JSON carrying the SHA-256 of itself without that one field, so that
    any changed byte in manifest.json is caught and blamed on manifest.json itself."""
    dump = lambda d: (json.dumps(d, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()  # noqa: E731
    return dump({**body, "manifest_sha256": _sha256_bytes(dump(body))})


def sums_bytes(files: dict[str, str], manifest_sha256: str) -> bytes:
    """SHA256SUMS in `sha256sum -c` format: every file but itself, manifest.json included."""
    entries = sorted({**files, MANIFEST: manifest_sha256}.items())
    return "".join(f"{h}  {p}\n" for p, h in entries).encode()


# ----- selection ---------------------------------------------------------------------------------------------------
@dataclass
class Columns:
    """One value per generated image, aligned: what a selection is made from. The GUI's gallery model holds the
    same five columns, so its export dialog counts exactly the pairs an export of that choice writes."""

    ids: np.ndarray
    guide: np.ndarray
    gamma: np.ndarray
    best: np.ndarray  # float32 as the audit stores it: the same band as the gallery's badges and AMS/UMS
    verdict: np.ndarray  # '' where none

    @classmethod
    def of(cls, store: AuditStore) -> "Columns":
        a = store.score_arrays()
        given = store.verdicts()
        return cls(a.ids, a.guide, a.gamma, a.best,
                   np.array([given.get(int(i), ("", ""))[0] for i in a.ids], dtype=object))


def select(cols, bands: Bands, *, band=None, verdict=None, guide=None, gamma=None, top=None,
           image_ids=None) -> np.ndarray:
    """Positions in cols of the pairs the filters keep, closest match first (ties by id); top N applies last."""
    pos = np.flatnonzero(_keep(cols, bands, band, verdict, guide, gamma, image_ids))
    sign = 1.0 if bands.direction == "distance" else -1.0
    pos = pos[np.lexsort((cols.ids[pos], sign * cols.best[pos].astype(float)))]
    return pos if top is None else pos[:top]


def count(cols, bands: Bands, *, band=None, verdict=None, guide=None, gamma=None, top=None, image_ids=None) -> int:
    """len(select(...)) without the sort, which costs 200 ms at 500,000 images: cheap enough to recount a dialog's
    choice at every change on the GUI thread."""
    n = int(np.count_nonzero(_keep(cols, bands, band, verdict, guide, gamma, image_ids)))
    return n if top is None else min(n, top)


def _keep(cols, bands: Bands, band, verdict, guide, gamma, image_ids) -> np.ndarray:
    if band is not None and band not in BAND_NAMES:
        raise ValueError(f"band must be one of {BAND_NAMES}")
    if verdict is not None and verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}")
    if guide is not None and guide not in GUIDES:
        raise ValueError(f"guide must be one of {tuple(GUIDES)}")
    keep = np.ones(len(cols.ids), bool)
    if image_ids is not None:
        keep &= np.isin(cols.ids, np.asarray(list(image_ids), np.int64))
    if band is not None:
        # Bands never overlap (Bands.validate), so this is classify(best) == band without a string per image.
        keep &= bands.band(band).contains(cols.best)
    if verdict is not None:
        keep &= cols.verdict == verdict
    if guide is not None:
        keep &= cols.guide == guide
    if gamma is not None:
        keep &= np.abs(cols.gamma - float(gamma)) <= 1e-9
    return keep


def _selection_text(sel: dict) -> str:
    words = {"image_ids": lambda v: f"{len(v)} chosen image(s)", "band": "band {}".format,
             "verdict": "verdict {}".format, "guide": GUIDES.get, "gamma": lambda v: f"gamma {float(v):g}",
             "top": "the {} closest".format}
    parts = [say(sel[k]) for k, say in words.items() if sel.get(k) is not None]
    return ", ".join(parts) or "all generated images"


# ----- images ------------------------------------------------------------------------------------------------------
def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def _train_in_model_space(path: Path, like: np.ndarray) -> np.ndarray:
    """The training image as the matcher compared it: the model's channels and size."""
    with Image.open(path) as img:
        arr = to_model_space(img, 1 if like.ndim == 2 else 3, like.shape[0])
    return arr[0] if like.ndim == 2 else arr.transpose(1, 2, 0)


def _tiles(gen: np.ndarray, train: np.ndarray) -> tuple[Image.Image, Image.Image, Image.Image]:
    # White where equal: dark ink on paper is where the images differ, and a page of it prints cleanly.
    diff = (255 - np.minimum(255, DIFF_GAIN * np.abs(gen.astype(np.int16) - train.astype(np.int16)))).astype(np.uint8)
    s = tile_scale(gen.shape[0])
    return tuple(Image.fromarray(a).convert("RGB").resize((a.shape[1] * s, a.shape[0] * s), Image.NEAREST)
                 for a in (gen, train, diff))


class _Steps:
    """Progress over the whole export: each pair's files checked and copied, then each pair drawn in each of the
    three views, so 4 x pairs steps. Every step calls progress, whose exception (a cancel) stops the export."""

    def __init__(self, pairs: int, progress: Callable[[int, int], None] | None):
        self.total, self.progress, self.done = 4 * pairs, progress, 0

    def __call__(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


class _Tiles:
    """Each pair's tiles, made from the exported files when a view asks for them, so memory stays flat however
    many pairs are exported."""

    def __init__(self, root: Path, pairs: list[Pair], step: _Steps):
        self.root, self.pairs, self.step = root, pairs, step

    def __getitem__(self, i: int) -> tuple[Image.Image, Image.Image, Image.Image]:
        p = self.pairs[i]
        gen = _read_png(self.root / p.gen_file)
        tiles = _tiles(gen, _train_in_model_space(self.root / p.train_file, gen))
        self.step()
        return tiles

    def __iter__(self):
        return (self[i] for i in range(len(self.pairs)))


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# ----- the words every view shares ----------------------------------------------------------------------------------
def _fmt(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _band_text(bands: Bands) -> str:
    return ", ".join(f"{b.name} [{b.lo:g}, {b.hi:g}{']' if b.closed_hi else ')'}"
                     for b in (bands.band(n) for n in ("high", "mid", "low")))


def _label_text(p: Pair) -> str:
    # Beside a nearest training image of another class, a random image's label reads as the class it was asked
    # for; it guided nothing and only went into the seed.
    named = p.label_name and p.label_name != str(p.row.label)
    notes = ([p.label_name] if named else []) + (["seed only"] if p.row.guide == "none" else [])
    return f"{p.row.label} ({', '.join(notes)})" if notes else str(p.row.label)


def _pairs_word(n: int) -> str:
    return f"{n} pair" + ("" if n == 1 else "s")


VERDICT_WORDS = {"copy": "Copy", "not_copy": "Not a copy", "unsure": "Unsure"}  # as the gallery says them


def _band_word(p: Pair) -> str:
    return f"band {p.band}" if p.band else "outside the bands"


def _grid_lines(p: Pair, unit: str) -> list[str]:
    r = p.row
    gu = "" if r.gu is None else f"   Gu ratio {_fmt(r.gu, 3)}"
    return [
        f"#{p.rank}  image {r.id}   {GUIDES[r.guide]}   gamma {r.gamma:g}   label {_label_text(p)}",
        f"{unit} {_fmt(r.best)}   {_band_word(p)}{gu}   verdict {VERDICT_WORDS.get(p.verdict, 'none')}",
        f"seed {r.seed}   training #{p.train_index} {p.train_source}",
        f"note: {' / '.join(p.note.splitlines())}" if p.note else "",
    ]


def _pair_heading(p: Pair, n: int, unit: str) -> str:
    verdict = f", marked {VERDICT_WORDS[p.verdict]}" if p.verdict else ""
    return f"Pair {p.rank} of {n}: image {p.row.id}, {unit} {_fmt(p.row.best)}, {_band_word(p)}{verdict}"


def _pair_fields(p: Pair, unit: str, raw_name: str, hashes: dict[str, str]) -> list[tuple[str, str]]:
    r = p.row
    fields = [
        ("image id", str(r.id)), ("guidance", GUIDES[r.guide]), ("gamma", f"{r.gamma:g}"),
        ("target label", _label_text(p)), ("index in sweep", str(r.idx)), ("noise seed", str(r.seed)),
        (f"best {unit}", _fmt(r.best)), ("band", p.band or "outside the bands"), (raw_name, _fmt(float(r.nn_raw[0]))),
    ]
    if r.gu is not None:
        fields.append(("Gu ratio (nearest / 2nd)", _fmt(r.gu, 3)))
    fields += [
        ("verdict", VERDICT_WORDS.get(p.verdict, "none")), ("note", p.note or "-"),
        ("nearest training image", f"#{p.train_index} {p.train_source} in the training folder"),
        ("generated file", f"{p.gen_file}\n{r.sha256}"), ("training file", f"{p.train_file}\n{p.train_sha256}"),
    ]
    if p.classifier:
        fields.append(("guiding classifier", f"classifiers/{p.classifier}.safetensors\n{hashes[p.classifier]}"))
    others = ", ".join(f"#{int(i)} {s:.3f}" for i, s in zip(r.nn_idx[1:], r.nn_score[1:]))
    if others:
        fields.append((f"next neighbours ({unit})", others))
    return fields


# ----- fonts: one Unicode font for the PDF and the grid ----------------------------------------------------------------
# DejaVu Sans (Bitstream Vera licence, resources/fonts/LICENSE): Latin, Greek, Cyrillic and most symbols, so
# notes and folder names read as typed. Installed from a wheel the fonts sit in side_engine/fonts (pyproject maps
# them there); in a clone or an editable install they are read from resources/fonts.
FONT_DIRS = (Path(__file__).resolve().parents[1] / "fonts", Path(__file__).resolve().parents[2] / "resources" / "fonts")
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
MISSING_GLYPH = "\u25a1"  # stands in, visibly, for a character the font lacks (CJK, for one)


@functools.cache
def font_path(style: str = "") -> Path:
    for d in FONT_DIRS:
        if (d / FONT_FILES[style]).is_file():
            return d / FONT_FILES[style]
    raise FileNotFoundError(f"{FONT_FILES[style]} is in none of {[str(d) for d in FONT_DIRS]}: the installation "
                            "of SIDE Inspector is incomplete")


@functools.cache
def _covered() -> frozenset[int]:
    """Code points both faces can draw. fontTools comes with fpdf2, which subsets fonts with it."""
    from fontTools.ttLib import TTFont

    return frozenset.intersection(*(frozenset(TTFont(font_path(s), lazy=True).getBestCmap()) for s in FONT_FILES))


def printable(s: str) -> str:
    """s with every character the font cannot draw replaced by MISSING_GLYPH: fpdf2 would silently drop them,
    and a note that loses words without a trace misleads; manifest.json, pairs.csv and the HTML keep them."""
    covered = _covered()
    return "".join(c if ord(c) in covered or c == "\n" else MISSING_GLYPH for c in s.replace("\t", " "))


# ----- grid ------------------------------------------------------------------------------------------------------------
@functools.cache
def _font(px: int, style: str = ""):
    return ImageFont.truetype(str(font_path(style)), px)


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    text = printable(text)
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def render_grid(rows: list[tuple[tuple[Image.Image, ...], list[str]]], title: str, subtitle: str) -> Image.Image:
    """One page: each row is generated | nearest training | difference, its lines printed under the tiles."""
    tile = rows[0][0][0].width
    margin, line = _px(tile, MARGIN), _px(tile, LINE_PX)
    width = 3 * tile + 4 * margin
    page = Image.new("RGB", (width, grid_height(len(rows), rows[0][0][0].height)), "white")
    draw = ImageDraw.Draw(page)
    font, bold = _font(_px(tile, FONT_PX)), _font(_px(tile, FONT_PX), "B")
    text_w = width - 2 * margin
    draw.text((margin, margin), _fit(draw, title, bold, text_w), fill="black", font=bold)
    draw.text((margin, margin + line), _fit(draw, subtitle, font, text_w), fill="#333333", font=font)
    for c, lines in enumerate(COLUMN_TITLES):
        for j, text in enumerate(lines):
            draw.text((margin + c * (tile + margin), margin + (2 + j) * line + _px(tile, 8)),
                      _fit(draw, text, font, tile), fill="#333333", font=font)
    y = grid_header(tile)
    for tiles, lines in rows:
        h = tiles[0].height
        for c, t in enumerate(tiles):
            x = margin + c * (tile + margin)
            page.paste(t, (x, y))
            draw.rectangle((x - 1, y - 1, x + t.width, y + h), outline="#999999")
        for j, text in enumerate(lines):
            draw.text((margin, y + h + line // 5 + j * line), _fit(draw, text, font, text_w), fill="black", font=font)
        y += row_height(h)
        draw.line((margin, y - margin // 2, width - margin, y - margin // 2), fill="#cccccc")
    return page


# ----- the AMS/UMS-against-gamma plot, as SVG: inline in the HTML, vector in the PDF ---------------------------------
SERIES = (("td", "SIDE (f_TD)", "#1f4e9c", ""), ("ti", "OL-TI (f_TI)", "#c0601a", "5 3"))
WHISKER_SHIFT = {"td": -2.5, "ti": 2.5}  # px: SIDE's and OL-TI's intervals at one gamma side by side


def gamma_plot_svg(results: list[GroupResult]) -> str:
    """Panels (rows: bands high, mid, low; columns: AMS, UMS) of % against gamma; each guided series starts from
    the random (gamma 0) group when there is one."""
    pw, ph, left, top, gap_x, gap_y = 250, 120, 46, 44, 40, 46
    width, height = left + 2 * (pw + gap_x), top + 3 * (ph + gap_y) + 4
    gammas = sorted({r.gamma for r in results})
    gmax = max(gammas) or 1.0
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="Helvetica" font-size="11">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>']
    lx = left
    for _, name, colour, dash in SERIES:
        if any(r.guide == _ for r in results):
            out.append(f'<line x1="{lx}" y1="14" x2="{lx + 24}" y2="14" stroke="{colour}" stroke-width="2" '
                       f'stroke-dasharray="{dash or "none"}"/>')
            out.append(f'<text x="{lx + 30}" y="18">{html.escape(name)}</text>')
            lx += 130
    out.append(f'<text x="{lx}" y="18" fill="#555555">gamma 0 = random sampling</text>')
    for bi, band in enumerate(("high", "mid", "low")):
        for mi, metric in enumerate(("ams", "ums")):
            x0, y0 = left + mi * (pw + gap_x), top + bi * (ph + gap_y)
            # the axis reaches the top of every 95% interval, drawn as a whisker on each point
            cis = {(r.guide, r.gamma): getattr(r, metric + "_ci").get(band) for r in results}
            vals = [100 * getattr(r, metric)[band] for r in results] + [100 * c[1] for c in cis.values() if c]
            ymax = _nice_ceiling(max(vals + [0.0]))
            sx = lambda g: x0 + 8 + (pw - 16) * g / gmax  # noqa: E731  (inset: whiskers clear the frame)
            sy = lambda v: y0 + ph - ph * v / ymax  # noqa: E731
            out.append(f'<text x="{x0}" y="{y0 - 8}" font-weight="bold">{metric.upper()} {band} %</text>')
            out.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#888888"/>')
            for v in (0.0, ymax / 2, ymax):
                out.append(f'<line x1="{x0 - 3}" y1="{sy(v):.1f}" x2="{x0}" y2="{sy(v):.1f}" stroke="#888888"/>')
                out.append(f'<text x="{x0 - 5}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
            for g in gammas:
                out.append(f'<line x1="{sx(g):.1f}" y1="{y0 + ph}" x2="{sx(g):.1f}" y2="{y0 + ph + 3}" '
                           f'stroke="#888888"/>')
                out.append(f'<text x="{sx(g):.1f}" y="{y0 + ph + 14}" text-anchor="middle">{g:g}</text>')
            base = [r for r in results if r.guide == "none"]
            for guide, _, colour, dash in SERIES:
                pts = [(r.gamma, 100 * getattr(r, metric)[band]) for r in base + [r for r in results
                                                                                    if r.guide == guide]]
                if len(pts) <= len(base):
                    continue
                xy = " ".join(f"{sx(g):.1f},{sy(v):.1f}" for g, v in pts)
                out.append(f'<polyline points="{xy}" fill="none" stroke="{colour}" stroke-width="2" '
                           f'stroke-dasharray="{dash or "none"}"/>')
                out += [f'<line x1="{x:.1f}" y1="{sy(100 * c[0]):.1f}" x2="{x:.1f}" '
                        f'y2="{sy(100 * c[1]):.1f}" stroke="{colour}" stroke-width="1"/>'
                        for r in results if r.guide == guide and (c := cis[(r.guide, r.gamma)])
                        for x in (sx(r.gamma) + WHISKER_SHIFT[guide],)]
                out += [f'<circle cx="{sx(g):.1f}" cy="{sy(v):.1f}" r="2.5" fill="{colour}"/>' for g, v in pts]
            for r in base:
                g, v, c = r.gamma, 100 * getattr(r, metric)[band], cis[(r.guide, r.gamma)]
                if c:
                    out.append(f'<line x1="{sx(g):.1f}" y1="{sy(100 * c[0]):.1f}" x2="{sx(g):.1f}" '
                               f'y2="{sy(100 * c[1]):.1f}" stroke="black" stroke-width="1"/>')
                out.append(f'<circle cx="{sx(g):.1f}" cy="{sy(v):.1f}" r="3" fill="black"/>')
    out.append(f'<text x="{left + pw + gap_x // 2}" y="{height - 8}" text-anchor="middle" fill="#555555">'
               "gamma (guidance scale); vertical lines: 95% intervals</text>")
    out.append("</svg>")
    return "\n".join(out)


def _nice_ceiling(v: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is >= v (1 for nothing), so axis ticks read cleanly."""
    if v <= 0:
        return 1.0
    p = 10 ** math.floor(math.log10(v))
    return next(m * p for m in (1, 2, 5, 10) if m * p >= v * (1 - 1e-9))


@dataclass
class Table:
    """One table of the report, the same in the PDF and the HTML."""

    title: str
    head: list[str]
    rows: list[list[str]]
    widths: tuple[float, ...]  # mm in the PDF: 190 in all, the A4 page less its margins
    notes: list[str]


def metric_tables(results: list[GroupResult], unit: str, chance: float | None) -> list[Table]:
    """AMS/UMS per run, their 95% intervals, and each guided run against Random (when the audit has both)."""
    tables = [_metrics_table(results, unit, chance), _interval_table(results)]
    if any(r.vs_random for r in results):
        tables.append(_versus_table(results))
    return tables


BANDS_HIGH_FIRST = ("high", "mid", "low")
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


def _metrics_table(results: list[GroupResult], unit: str, chance: float | None) -> Table:
    pct = "5th" if unit == "nL2" else "95th"
    head = (["guidance", "gamma", "N_G"] + [f"band {b}\nAMS / UMS %" for b in BANDS_HIGH_FIRST]
            + [f"{pct} pct. of\nbest {unit}", "Gu ratio\n< 1/3", "on target"])
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
        rows.append([GUIDES[r.guide], f"{r.gamma:g}", str(r.n), *cells, _fmt(r.percentile, 3),
                     "n/a" if r.gu is None else f"{100 * r.gu:.1f}%", target])
    notes = [TABLE_NOTE] + [TRUNCATED_NOTE] * truncated
    if any(r.target_rate is not None for r in results):
        notes.append(TARGET_NOTE.format(chance="" if chance is None else f" (chance: {100 * chance:.0f}%)"))
    notes += [AT_CHANCE_NOTE] * flagged
    return Table("AMS / UMS per band and gamma", head, rows, (30, 16, 11, 27, 27, 27, 20, 16, 16), notes)


def _interval_table(results: list[GroupResult]) -> Table:
    head = ["guidance", "gamma"] + [f"band {b}\n{m} %" for b in BANDS_HIGH_FIRST for m in ("AMS", "UMS")]
    rng = lambda ci: f"{100 * ci[0]:.2f}–{100 * ci[1]:.2f}" if ci else "n/a"  # noqa: E731
    rows = [[GUIDES[r.guide], f"{r.gamma:g}"] + [rng(getattr(r, m).get(b)) for b in BANDS_HIGH_FIRST
                                                 for m in ("ams_ci", "ums_ci")] for r in results]
    return Table("95% intervals", head, rows, (30, 16) + (24,) * 6, [INTERVAL_NOTE])


def _versus_table(results: list[GroupResult]) -> Table:
    groups = (ALL,) + BANDS_HIGH_FIRST
    head = ["guidance", "gamma", "n", ""] + ["all bands" if g == ALL else f"band {g}" for g in groups]
    rows = []
    for r in (r for r in results if r.vs_random):
        v = r.vs_random
        for m in ("ams", "ums"):
            cells = [f"ratio {ratio_text(c.ratio, c.guided)}\np {p_text(c.p)} ({p_text(c.p_bonferroni)})"
                     for c in (getattr(v, m)[g] for g in groups)]
            lead = [GUIDES[r.guide], f"{r.gamma:g}", str(v.n)] if m == "ams" else ["", "", ""]
            rows.append(lead + [m.upper()] + cells)
    return Table("Against random sampling", head, rows, (30, 16, 10, 14) + (30,) * 4, [VERSUS_NOTE])


# ----- PDF ---------------------------------------------------------------------------------------------------------------
INTRO = ("Generated images of a diffusion model next to their nearest training images, with the provenance needed "
         "to regenerate and check each one. manifest.json is the authoritative record; README.txt says how to "
         "verify.")
FONT = "DejaVu"
MISSING_NOTE = (f"{MISSING_GLYPH} stands for a character the PDF's font cannot show (CJK, for one); report.html, "
                "pairs.csv and manifest.json hold the exact text.")


def write_pdf(path: Path, info: list[tuple[str, str]], tables: list[Table], svg: str, pairs: list[Pair],
              tiles: _Tiles, unit: str, raw_name: str, hashes: dict[str, str],
              title: str) -> None:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    for style in FONT_FILES:
        pdf.add_font(FONT, style, str(font_path(style)))
    pdf.set_title(title)
    pdf.set_creator(f"SIDE Inspector {__version__}")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font(FONT, "B", 18)
    pdf.multi_cell(0, 9, printable(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 10)
    pdf.multi_cell(0, 5, INTRO, align="L", new_x="LMARGIN", new_y="NEXT")
    texts = [title] + [v for _, v in info] + [v for p in pairs for _, v in _pair_fields(p, unit, raw_name, hashes)]
    if any(MISSING_GLYPH in printable(t) for t in texts):
        pdf.ln(1)
        pdf.multi_cell(0, 5, MISSING_NOTE, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    _pdf_fields(pdf, info, key_w=48)

    pdf.add_page()
    for k, t in enumerate(tables):
        pdf.set_font(FONT, "B", 14 if k == 0 else 12)
        pdf.cell(0, 8, t.title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "", 8.5)
        with pdf.table(col_widths=t.widths, text_align="CENTER", line_height=4.4) as table:
            for r in [t.head] + t.rows:
                table.row(r)
        pdf.set_font(FONT, "", 8)
        for note in t.notes:
            pdf.multi_cell(0, 4, note, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    pdf.image(io.BytesIO(svg.encode()), x=pdf.l_margin, w=pdf.epw)

    tile_w = (pdf.epw - 8) / 3
    pdf.set_draw_color(150)
    for p, t in zip(pairs, tiles):
        pdf.add_page()  # one pair per page: each page is an exhibit that can be cited or printed alone
        pdf.set_font(FONT, "B", 12)
        pdf.cell(0, 7, printable(_pair_heading(p, len(pairs), unit)), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "", 8)
        y = pdf.get_y()
        for c, (img, name) in enumerate(zip(t, COLUMN_TITLES)):
            x = pdf.l_margin + c * (tile_w + 4)
            pdf.set_xy(x, y)
            pdf.cell(tile_w, 4, ", ".join(name))
            pdf.image(img, x=x, y=y + 5, w=tile_w, h=tile_w * img.height / img.width)
            pdf.rect(x, y + 5, tile_w, tile_w * img.height / img.width)  # the white difference tile needs an edge
        pdf.set_xy(pdf.l_margin, y + 7 + tile_w * t[0].height / t[0].width)
        _pdf_fields(pdf, _pair_fields(p, unit, raw_name, hashes), key_w=44)
        pdf.ln(5)
    pdf.output(str(path))


def _is_hash(s: str) -> bool:
    return len(s) == 64 and all(c in "0123456789abcdef" for c in s)


def _pdf_fields(pdf, fields: list[tuple[str, str]], key_w: float) -> None:
    """Key in bold, value beside it, ragged right; a value's lines that are SHA-256 hex are set in Courier.
    A key that wraps pushes the next field down."""
    for key, value in fields:
        pdf.set_font(FONT, "B", 9)
        key_h = 4.6 * len(pdf.multi_cell(key_w, 4.6, printable(key), dry_run=True, output="LINES"))
        if pdf.will_page_break(key_h):
            pdf.add_page()
        y = pdf.get_y()
        pdf.multi_cell(key_w, 4.6, printable(key), align="L", new_x="RIGHT", new_y="TOP")
        pdf.set_y(y)
        for line in value.split("\n"):
            pdf.set_x(pdf.l_margin + key_w)
            pdf.set_font("Courier" if _is_hash(line) else FONT, "", 8.5 if _is_hash(line) else 9)
            pdf.multi_cell(0, 4.6, printable(line), align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.set_y(max(pdf.get_y(), y + key_h))


# ----- HTML -------------------------------------------------------------------------------------------------------------
HTML_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#111;padding:0 1em}h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.92em}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;
vertical-align:top}th{background:#f3f3f3}table.kv th{width:15em}.mono{font-family:ui-monospace,Menlo,Consolas,
monospace;font-size:.9em;word-break:break-all}.pair{border:1px solid #bbb;border-radius:6px;padding:.8em;
margin:1.2em 0;page-break-inside:avoid}.tiles{display:flex;gap:14px;flex-wrap:wrap}figure{margin:0}
figcaption{font-size:.85em;color:#444}img{image-rendering:pixelated;border:1px solid #999;display:block}
.pair table.kv{margin-top:.8em}.pair.verdict-copy{border:2px solid #a00}.verdict-copy h3{color:#a00}
.note{font-size:.85em;color:#555}
"""


def _html_lines(text: str) -> str:
    return "<br>".join(html.escape(x) for x in text.split("\n"))


def _html_kv(fields: list[tuple[str, str]]) -> str:
    rows = []
    for k, v in fields:
        cell = "<br>".join(f'<span class="mono">{html.escape(x)}</span>' if _is_hash(x) else html.escape(x)
                           for x in v.split("\n"))
        rows.append(f"<tr><th>{html.escape(k)}</th><td>{cell}</td></tr>")
    return '<table class="kv">' + "".join(rows) + "</table>"


def write_html(path: Path, info, tables: list[Table], svg: str, pairs: list[Pair], tiles: _Tiles, unit: str,
               raw_name: str, hashes: dict[str, str], title: str) -> None:
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>",
             f"<style>{HTML_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p>{html.escape(INTRO)}</p>", _html_kv(info)]
    for t in tables:
        parts += [f"<h2>{html.escape(t.title)}</h2><table>",
                  "<tr>" + "".join(f"<th>{_html_lines(h)}</th>" for h in t.head) + "</tr>"]
        parts += ["<tr>" + "".join(f"<td>{_html_lines(c)}</td>" for c in r) + "</tr>" for r in t.rows]
        parts.append("</table>")
        parts += [f"<p class=note>{html.escape(note)}</p>" for note in t.notes]
    parts += [f"<div>{svg}</div>", f"<h2>Pairs ({len(pairs)})</h2>"]
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(parts))
        for p, t in zip(pairs, tiles):
            f.write(_html_pair(p, t, len(pairs), unit, raw_name, hashes))
        f.write("</body></html>\n")


def _html_pair(p: Pair, t, n: int, unit: str, raw_name: str, hashes: dict[str, str]) -> str:
    figs = "".join(
        f'<figure><img alt="{html.escape(name[0])}" width="{img.width}" height="{img.height}" '
        f'src="data:image/png;base64,{base64.b64encode(_png_bytes(img)).decode()}">'
        f"<figcaption>{html.escape(', '.join(name))}</figcaption></figure>" for img, name in zip(t, COLUMN_TITLES))
    return (f'<section class="pair verdict-{p.verdict or "none"}" id="pair-{p.rank}">'
            f"<h3>{html.escape(_pair_heading(p, n, unit))}</h3>"
            f'<div class="tiles">{figs}</div>{_html_kv(_pair_fields(p, unit, raw_name, hashes))}</section>\n')


# ----- README -----------------------------------------------------------------------------------------------------------
README_TEXT = """SIDE Inspector evidence export
==============================

{title}
Exported {date} by SIDE Inspector {version}; {n} selected ({selection}).

What is here
  report.pdf, report.html   the same report for print and for a browser (the HTML is one self-contained file)
  {grids:<25} each row: generated image | nearest training image | their difference (x4, white = equal)
  generated/                the generated images, lossless PNG, exactly as the audit stored them
  training/                 the nearest training images, byte for byte as they were in the training folder
  pairs.csv                 one line per pair: scores, band, gamma, label, seed, files and SHA-256
  manifest.json             everything above plus the sampler settings and the SHA-256 of every other file
  classifiers/, audit.toml  what it takes to regenerate the generated images (with the model)
  SHA256SUMS                the same hashes in the format of `sha256sum -c`

How to verify
  1. Integrity, with nothing but coreutils:   sha256sum -c SHA256SUMS
     (also run `side verify` below: it also catches extra files and edits to SHA256SUMS itself)
  2. Integrity with SIDE Inspector:           side verify THIS_FOLDER
     re-hashes every file; any changed, missing or extra file fails and is named.
  3. Regeneration:                            side verify THIS_FOLDER --model MODEL_FOLDER
     checks the model's files against the SHA-256 recorded here, regenerates every generated image from its
     seed, label, gamma and classifier, and fails if any pixel differs from the exported image by more than
     the tolerance in docs/EVIDENCE.md (1 grey level on the same kind of machine and dtype).

The SHA-256 values detect change; they do not prove who made the export. To make the export tamper-evident,
publish or send the SHA-256 of manifest.json separately:
  sha256sum manifest.json
"""


# ----- the export -------------------------------------------------------------------------------------------------------
def _walk(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(out, "already exists and is not empty: choose a new folder for the export")


def export_evidence(audit_dir, out_dir, *, band=None, verdict=None, guide=None, gamma=None, top=None,
                    image_ids=None, bands: Bands | None = None,
                    progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the evidence folder for the selected pairs of an audit (select() says which); returns its path.

    bands overrides the audit's bands (band filter, badges, AMS/UMS table); progress(done, total) is called
    as each pair is checked and copied and as it is drawn in each view (4 x pairs steps), and whatever it
    raises (Cancelled) stops the export and leaves nothing behind.
    Raises InputError for a non-empty or unwritable out_dir, an empty selection, or an audit or training file
    that no longer matches its recorded SHA-256."""
    out = Path(out_dir).expanduser().resolve()
    _check_out(out)
    if top is not None and top < 1:
        raise InputError(out, "--top must be at least 1")
    store = AuditStore.open(audit_dir)
    try:
        return _export(store, out, dict(band=band, verdict=verdict, guide=guide, gamma=gamma, top=top,
                                        image_ids=image_ids), bands, progress)
    finally:
        store.close()


def _export(store: AuditStore, out: Path, filters: dict, bands, progress) -> Path:
    cfg = store.config
    overridden = bands is not None and bands != cfg.band_set()
    bands = bands or cfg.band_set()
    ids = filters["image_ids"]
    selection = {**filters, "image_ids": None if ids is None else sorted(int(i) for i in ids)}
    cols = Columns.of(store)
    unknown = sorted(set(selection["image_ids"] or ()) - set(cols.ids.tolist()))
    if unknown:
        raise InputError(store.root / DB_NAME, f"no generated image with id {unknown[0]}")
    pos = select(cols, bands, **filters)
    if not len(pos):
        raise InputError(store.root, f"no generated image matches the selection ({_selection_text(selection)})")
    band_names = bands.classify(cols.best[pos])

    descriptor = store.meta("descriptor") or cfg.matching.descriptor
    unit = "nL2" if descriptor == "pixels" else "cosine"
    raw_name = "raw l2 (RMS, 0..1)" if descriptor == "pixels" else "cosine"
    verdicts = store.verdicts()
    class_names = json.loads(store.meta("class_names", "[]"))
    named = cfg.labels.source == "classifier" and not cfg.labels.classifier
    train_root = Path(store.meta("train_path") or cfg.data.train)
    train_rows = {i: (p, h) for i, p, _, h in store.training_images()}

    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as e:
        raise InputError(out.parent, f"cannot write the export here ({e.strerror})") from e
    try:
        hashes = _copy_fixed_files(store, tmp)
        step = _Steps(len(pos), progress)
        pairs = []
        for n, (image_id, bname) in enumerate(zip(cols.ids[pos], band_names), start=1):
            r = store.image(int(image_id))
            src = store.path(r.path)
            if not src.is_file():
                raise InputError(src, "generated image is missing from the audit")
            if sha256_file(src) != r.sha256:
                raise InputError(src, "generated image changed since the audit stored it (SHA-256 differs)")
            tsrc_rel, tsha = train_rows[r.best_train]
            tsrc = train_root / tsrc_rel
            if not tsrc.is_file():
                raise InputError(tsrc, "training image is missing (the training folder moved or changed)")
            if sha256_file(tsrc) != tsha:
                raise InputError(tsrc, "training image changed since the audit (SHA-256 differs)")
            gen_file = f"generated/{r.id:06d}.png"
            train_file = f"training/{r.best_train:06d}{tsrc.suffix.lower()}"
            for s, d in ((src, gen_file), (tsrc, train_file)):
                (tmp / d).parent.mkdir(exist_ok=True)
                shutil.copyfile(s, tmp / d)
            v, note = verdicts.get(r.id, ("", ""))
            pairs.append(Pair(rank=n, row=r, band=str(bname), verdict=v, note=note,
                              label_name=class_names[r.label] if named and r.label < len(class_names) else "",
                              train_index=r.best_train, train_source=tsrc_rel, train_sha256=tsha,
                              train_file=train_file, gen_file=gen_file,
                              classifier=classifier_name(r.guide, cfg.labels.source)))
            step()

        a = store.score_arrays()
        results = with_uncertainty(
            score_groups(a.guide, a.gamma, a.nn_idx, a.nn_score, bands, int(store.meta("n_train", "0")), a.gu,
                         a.on_target), a.guide, a.gamma, a.idx, a.nn_idx, a.nn_score, bands)
        tables = metric_tables(results, unit, chance_level(store.stage_info("labels").get("counts")))
        title = f"SIDE evidence: audit '{cfg.name or store.root.name}'"
        date = time.strftime("%Y-%m-%d %H:%M:%S %z")
        info = _info_fields(store, bands, overridden, selection, len(pairs), hashes, date, descriptor, unit)
        svg = gamma_plot_svg(results)
        tiles = _Tiles(tmp, pairs, step)

        subtitle = f"{unit} bands {_band_text(bands)}   (lower nL2 = closer)" if unit == "nL2" else \
            f"cosine bands {_band_text(bands)}   (higher = closer)"
        pages = [list(range(i, min(i + ROWS_PER_PAGE, len(pairs)))) for i in range(0, len(pairs), ROWS_PER_PAGE)]
        grid_names = ["grid.png"] if len(pages) == 1 else [f"grid-{k:02d}.png" for k in range(1, len(pages) + 1)]
        for k, (name, page) in enumerate(zip(grid_names, pages), start=1):
            head = title + (f"   page {k}/{len(pages)}" if len(pages) > 1 else "")
            render_grid([(tiles[i], _grid_lines(pairs[i], unit)) for i in page], head, subtitle).save(tmp / name)

        write_pdf(tmp / "report.pdf", info, tables, svg, pairs, tiles, unit, raw_name, hashes, title)
        write_html(tmp / "report.html", info, tables, svg, pairs, tiles, unit, raw_name, hashes, title)
        pair_dicts = [_pair_dict(p, unit, raw_name, hashes) for p in pairs]
        _write_csv(tmp / "pairs.csv", pair_dicts, _sampler(cfg), _weights_sha(store))
        grids = grid_names[0] if len(grid_names) == 1 else f"{grid_names[0]} ..."
        (tmp / README).write_text(README_TEXT.format(
            title=title, date=date, version=__version__, n=_pairs_word(len(pairs)),
            selection=_selection_text(selection), grids=grids), encoding="utf-8")

        body = {
            "format": FORMAT, "exported": date, "engine_version": __version__, "title": title,
            "audit": {"name": cfg.name, "folder": str(store.root), "created": store.meta("created"),
                      "engine_version": store.meta("engine_version")},
            "model": {"folder": store.meta("model_path") or cfg.model.path,
                      "files": [{"path": p, "sha256": h} for _, p, h in store.files("model")]},
            "training": {"folder": str(train_root), "n_images": len(train_rows),
                         "manifest_sha256": next((h for _, _, h in store.files("training_manifest")), None)},
            "descriptor": descriptor, "score": unit, "direction": bands.direction,
            "bands": {b.name: [b.lo, b.hi] for b in bands.all()}, "bands_overridden_at_export": overridden,
            "labels_source": cfg.labels.source, "sampler": _sampler(cfg),
            "classifiers": {k: {"file": f"classifiers/{k}.safetensors", "sha256": h} for k, h in hashes.items()},
            "selection": selection, "results": [r.as_json() for r in results], "pairs": pair_dicts,
            "files": _walk(tmp),
        }
        data = manifest_bytes(body)
        (tmp / MANIFEST).write_bytes(data)
        (tmp / SUMS).write_bytes(sums_bytes(body["files"], _sha256_bytes(data)))
        if out.exists():
            out.rmdir()  # checked empty above; rename cannot replace a directory on every platform
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _copy_fixed_files(store: AuditStore, tmp: Path) -> dict[str, str]:
    """audit.toml and every classifier file; returns {classifier name: SHA-256}."""
    shutil.copyfile(store.root / CONFIG_NAME, tmp / CONFIG_NAME)
    hashes = {}
    (tmp / "classifiers").mkdir()
    for name in ("ti", "td", "clusters"):
        src = store.classifier_path(name)
        if src.is_file():
            shutil.copyfile(src, tmp / "classifiers" / src.name)
            hashes[name] = sha256_file(src)
    if "td" not in hashes:
        raise InputError(store.root / "classifiers", "has no td.safetensors: the audit is not finished")
    return hashes


def _sampler(cfg) -> dict:
    e = cfg.extraction
    return {"scheduler": "DDIM", "steps": e.steps, "eta": e.eta, "dtype": cfg.runtime.dtype,
            "device": cfg.runtime.device, "audit_seed": e.seed, "labels": e.labels, "batch": e.batch,
            "n_per_gamma": e.n_per_gamma,
            "guidance": "eps - sqrt(1 - abar_t) * gamma * grad log softmax(f(x_t[, t]))[label]"}


def _weights_sha(store: AuditStore) -> str:
    return ";".join(f"{p}={h}" for _, p, h in store.files("model") if p.endswith(".safetensors"))


def _pair_dict(p: Pair, unit: str, raw_name: str, hashes: dict[str, str]) -> dict:
    r = p.row
    return {
        "rank": p.rank, "image_id": r.id, "guide": r.guide, "gamma": r.gamma, "label": r.label,
        "label_name": p.label_name, "index": r.idx, "seed": r.seed,
        "score": float(r.best), "score_unit": unit, "band": p.band, "raw_score": float(r.nn_raw[0]),
        "raw_score_name": raw_name, "gu_ratio": r.gu,
        "generated_file": p.gen_file, "generated_sha256": r.sha256,
        "training_index": p.train_index, "training_file": p.train_file, "training_source": p.train_source,
        "training_sha256": p.train_sha256,
        "classifier_file": f"classifiers/{p.classifier}.safetensors" if p.classifier else "",
        "classifier_sha256": hashes[p.classifier] if p.classifier else "",
        "verdict": p.verdict, "note": p.note,
        "neighbours": [{"training_index": int(i), "score": float(s)} for i, s in zip(r.nn_idx, r.nn_score)],
    }


CSV_EXTRA = ("ddim_steps", "eta", "dtype", "audit_seed", "model_weights_sha256")


def _write_csv(path: Path, pairs: list[dict], sampler: dict, weights: str) -> None:
    cols = [k for k in pairs[0] if k != "neighbours"]
    # With a byte-order mark, spreadsheet programs read the file as UTF-8 (accented and CJK notes intact).
    with open(path, "w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f)
        w.writerow(cols + list(CSV_EXTRA))
        for d in pairs:
            w.writerow([d[k] for k in cols] + [sampler["steps"], sampler["eta"], sampler["dtype"],
                                                sampler["audit_seed"], weights])


LABEL_SOURCES = {"classifier": "from f_TI, a classifier of the training folder's labels",
                 "clusters": "from k-means clusters of the model's own samples (no labels)"}
CLASSIFIERS = {"td": "f_TD", "ti": "f_TI", "clusters": "centres"}


def _info_fields(store, bands, overridden, selection, n, hashes, date, descriptor, unit) -> list[tuple[str, str]]:
    cfg = store.config
    e, m = cfg.extraction, cfg.matching
    f = [("audit", f"{cfg.name or '-'}  ({store.root})"), ("audit created", store.meta("created") or "-"),
         ("exported", f"{date}, SIDE Inspector {__version__} (audit made by {store.meta('engine_version')})"),
         ("selection", f"{_selection_text(selection)}: {_pairs_word(n)}, closest first"),
         ("model folder", store.meta("model_path") or cfg.model.path)]
    model = sorted(store.files("model"), key=lambda x: not x[1].endswith(".safetensors"))
    f += [("model weights" if p.endswith(".safetensors") else "model config", f"{p}\n{h}") for _, p, h in model]
    manifest = next((h for _, _, h in store.files("training_manifest")), "-")
    f += [("training folder", f"{store.meta('train_path') or cfg.data.train}  ({store.meta('n_train')} images)"),
          ("training manifest SHA-256", manifest),
          ("descriptor", f"{descriptor}, score {unit} ({'smaller' if bands.direction == 'distance' else 'larger'}"
                         f" = closer); k {m.k}, n {store.meta('n_neighbours') or m.n_neighbours}, alpha {m.alpha:g}"),
          ("bands", _band_text(bands) + ("  (set at export, not the audit's)" if overridden else "")),
          ("sampler", f"DDIM, {e.steps} steps, eta {e.eta:g}, {cfg.runtime.dtype} on {cfg.runtime.device}, "
                      f"audit seed {e.seed}, labels {e.labels}"),
          ("gamma sweep", ", ".join(f"{g:g}" for g in sorted(e.gammas)) + f"; {e.n_per_gamma} images each"
                          + ("; OL-TI baseline too" if e.ol_ti else "")),
          ("target labels", LABEL_SOURCES[cfg.labels.source])]
    f += [(f"classifier {CLASSIFIERS[k]}", f"classifiers/{k}.safetensors\n{h}") for k, h in hashes.items()]
    return f
