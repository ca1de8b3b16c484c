"""report.html: the report as one self-contained file (tiles as data: URLs, the figure inline), which keeps every
character of notes and folder names that the PDF's font cannot show."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from .context import ExportContext
from .grid import COLUMN_TITLES, Tiles, Tiles3, png_bytes
from .selection import Pair
from .text import INTRO, info_fields, is_hash, pair_fields, pair_heading, show_controls

STYLE = """
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
        parts += [f"<h2>{_esc(t.title)}</h2><table>",
                  "<tr>" + "".join(f"<th>{_lines(h)}</th>" for h in t.head) + "</tr>"]
        parts += ["<tr>" + "".join(f"<td>{_lines(c)}</td>" for c in r) + "</tr>" for r in t.rows]
        parts.append("</table>")
        parts += [f"<p class=note>{_esc(note)}</p>" for note in t.notes]
    parts += [f"<div>{ctx.gamma_svg}</div>", f"<h2>Pairs ({len(ctx.pairs)})</h2>"]
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(parts))
        for p, t in zip(ctx.pairs, tiles, strict=True):
            f.write(_pair(p, t, ctx))
        f.write("</body></html>\n")


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
        f'src="data:image/png;base64,{base64.b64encode(png_bytes(img)).decode()}">'
        f"<figcaption>{_esc(', '.join(name))}</figcaption></figure>"
        for img, name in zip(t, COLUMN_TITLES, strict=True))
    # The class is the stored verdict ("copy", "not_copy"), which the style sheet keys on.
    return (f'<section class="pair verdict-{p.verdict or "none"}" id="pair-{p.rank}">'
            f"<h3>{_esc(pair_heading(p, ctx))}</h3>"
            f'<div class="tiles">{figs}</div>{_kv(pair_fields(p, ctx))}</section>\n')
