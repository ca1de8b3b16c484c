"""report.html: the report as one self-contained file (tiles as data: URLs, the figure inline), which keeps every
character of notes and folder names that the PDF's font cannot show."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from PIL import Image

from .context import ExportContext
from .grid import TILE_MIN, Tiles, Tiles3, column_titles, enlarged, png_bytes
from .selection import ChosenImage, Pair
from .tables import Table, chosen_table
from .text import (
    INTRO,
    chosen_fields,
    chosen_heading,
    info_fields,
    is_hash,
    match_caption,
    pair_fields,
    pair_heading,
    show_controls,
)

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#111;padding:0 1em}h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.92em}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;
vertical-align:top}th{background:#f3f3f3}table.kv th{width:15em}.mono{font-family:ui-monospace,Menlo,Consolas,
monospace;font-size:.9em;word-break:break-all}.pair{border:1px solid #bbb;border-radius:6px;padding:.8em;
margin:1.2em 0;page-break-inside:avoid}.tiles{display:flex;gap:14px;flex-wrap:wrap}figure{margin:0}
figcaption{font-size:.85em;color:#444}img{image-rendering:pixelated;border:1px solid #999;display:block}
.pair table.kv{margin-top:.8em}.pair.verdict-copy{border:2px solid #a00}.verdict-copy h3{color:#a00}
.note{font-size:.85em;color:#555}.chosen-top{display:flex;gap:1.2em;align-items:flex-start;flex-wrap:wrap}
.matches{display:flex;gap:10px;flex-wrap:wrap;margin-top:.6em}.matches a{color:inherit;text-decoration:none}
.matches figcaption{font-size:.78em}
"""


def _esc(text: str) -> str:
    """Text as HTML text: markup characters and quotes escaped, bidi and other controls shown as code points."""
    return html.escape(show_controls(text))


def write_html(path: Path, ctx: ExportContext, tiles: Tiles) -> None:
    """Written pair by pair, so that memory holds one pair's tiles at a time."""
    title = _esc(ctx.title)
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{title}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{title}</h1>",
             f"<p>{_esc(INTRO)}</p>", _kv(info_fields(ctx))]
    for t in ctx.tables:
        parts += _table(t, "h2")
    parts.append(f"<div>{ctx.gamma_svg}</div>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(parts))
        for c in ctx.chosen:
            f.write(_chosen(c, ctx, tiles.root))
        f.write(f"<h2>Pairs ({len(ctx.pairs)})</h2>")
        for p, t in zip(ctx.pairs, tiles, strict=True):
            f.write(_pair(p, t, ctx))
        f.write("</body></html>\n")


def _table(t: Table, heading: str) -> list[str]:
    parts = [f"<{heading}>{_esc(t.title)}</{heading}><table>",
             "<tr>" + "".join(f"<th>{_lines(h)}</th>" for h in t.head) + "</tr>"]
    parts += ["<tr>" + "".join(f"<td>{_lines(c)}</td>" for c in r) + "</tr>" for r in t.rows]
    parts.append("</table>")
    return parts + [f"<p class=note>{_esc(note)}</p>" for note in t.notes]


THUMB_PX = 96  # a generated image's width in a chosen training image's grid: the PNG itself, enlarged by the browser


def _data_url(data: bytes) -> str:
    return f"data:image/png;base64,{base64.b64encode(data).decode()}"


def _chosen(c: ChosenImage, ctx: ExportContext, root: Path) -> str:
    """A chosen training image's section: the image beside its facts, its matches per band, and its pairs as a grid
    of generated images (the exported files themselves), closest first, each linking to its pair below."""
    picture = enlarged(root / c.file, 2 * TILE_MIN)
    by_rank = {p.rank: p for p in ctx.pairs}
    figs = []
    for rank in c.pairs:
        p = by_rank[rank]
        caption = "<br>".join(_esc(line) for line in match_caption(p, ctx))
        with Image.open(root / p.gen_file) as img:
            height = round(THUMB_PX * img.height / img.width)
        figs.append(f'<a href="#pair-{rank}"><figure><img alt="generated image {p.row.id}" width="{THUMB_PX}" '
                    f'height="{height}" src="{_data_url((root / p.gen_file).read_bytes())}">'
                    f"<figcaption>{caption}</figcaption></figure></a>")
    pairs = (f"<h3>Its pairs in this export, closest first</h3><div class=matches>{''.join(figs)}</div>"
             if figs else "")
    return (f'<section class="chosen" id="training-{c.index}"><h2>{_esc(chosen_heading(c))}</h2>'
            f'<div class="chosen-top"><figure><img alt="training image {c.index}" width="{picture.width}" '
            f'height="{picture.height}" src="{_data_url(png_bytes(picture))}"></figure>{_kv(chosen_fields(c, ctx))}'
            f'</div>{"".join(_table(chosen_table(c, ctx.bands), "h3"))}{pairs}</section>\n')


def _lines(text: str) -> str:
    return "<br>".join(_esc(x) for x in show_controls(text).split("\n"))


def _kv(fields: list[tuple[str, str]]) -> str:
    rows = []
    for k, v in fields:
        cell = "<br>".join(f'<span class="mono">{_esc(x)}</span>' if is_hash(x) else _esc(x)
                           for x in show_controls(v).split("\n"))
        rows.append(f"<tr><th>{_esc(k)}</th><td>{cell}</td></tr>")
    return '<table class="kv">' + "".join(rows) + "</table>"


def _pair(p: Pair, t: Tiles3, ctx: ExportContext) -> str:
    figs = "".join(
        f'<figure><img alt="{_esc(name[0])}" width="{img.width}" height="{img.height}" '
        f'src="{_data_url(png_bytes(img))}">'
        f"<figcaption>{_esc(', '.join(name))}</figcaption></figure>"
        for img, name in zip(t, column_titles(ctx), strict=True))
    # The class is the stored verdict ("copy", "not_copy"), which the style sheet keys on.
    return (f'<section class="pair verdict-{p.verdict or "none"}" id="pair-{p.rank}">'
            f"<h3>{_esc(pair_heading(p, ctx))}</h3>"
            f'<div class="tiles">{figs}</div>{_kv(pair_fields(p, ctx))}</section>\n')
