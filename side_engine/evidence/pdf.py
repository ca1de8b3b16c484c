"""report.pdf (fpdf2): the facts, the metric tables and the figure, then one page per pair, so that each page is
an exhibit that can be cited or printed alone."""

from __future__ import annotations

import io
from pathlib import Path

from .context import ExportContext
from .grid import COLUMN_TITLES, FONT_FILES, MISSING_GLYPH, Tiles, font_path, printable
from .text import INTRO, info_fields, is_hash, pair_fields, pair_heading

FONT = "DejaVu"
MISSING_NOTE = (f"{MISSING_GLYPH} stands for a character the PDF's font cannot show (CJK, for one); report.html, "
                "pairs.csv and manifest.json hold the exact text.")


def write_pdf(path: Path, ctx: ExportContext, tiles: Tiles) -> None:
    from fpdf import FPDF

    info = info_fields(ctx)
    pdf = FPDF(format="A4")
    for style in FONT_FILES:
        pdf.add_font(FONT, style, str(font_path(style)))
    pdf.set_title(ctx.title)
    pdf.set_creator(f"SIDE Inspector {ctx.version}")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font(FONT, "B", 18)
    pdf.multi_cell(0, 9, printable(ctx.title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 10)
    pdf.multi_cell(0, 5, INTRO, align="L", new_x="LMARGIN", new_y="NEXT")
    texts = [ctx.title] + [v for _, v in info] + [v for p in ctx.pairs for _, v in pair_fields(p, ctx)]
    if any(MISSING_GLYPH in printable(t) for t in texts):
        pdf.ln(1)
        pdf.multi_cell(0, 5, MISSING_NOTE, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    _pdf_fields(pdf, info, key_w=48)

    pdf.add_page()
    for k, t in enumerate(ctx.tables):
        pdf.set_font(FONT, "B", 14 if k == 0 else 12)
        pdf.cell(0, 8, t.title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "", 8.5)
        with pdf.table(col_widths=t.widths, text_align="CENTER", line_height=4.4) as table:
            for r in [t.head, *t.rows]:
                table.row(r)
        pdf.set_font(FONT, "", 8)
        for note in t.notes:
            pdf.multi_cell(0, 4, note, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    pdf.image(io.BytesIO(ctx.gamma_svg.encode()), x=pdf.l_margin, w=pdf.epw)

    tile_w = (pdf.epw - 8) / 3
    pdf.set_draw_color(150)
    for p, t in zip(ctx.pairs, tiles, strict=True):
        pdf.add_page()
        pdf.set_font(FONT, "B", 12)
        pdf.cell(0, 7, printable(pair_heading(p, ctx)), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "", 8)
        y = pdf.get_y()
        for c, (img, name) in enumerate(zip(t, COLUMN_TITLES, strict=True)):
            x = pdf.l_margin + c * (tile_w + 4)
            pdf.set_xy(x, y)
            pdf.cell(tile_w, 4, ", ".join(name))
            pdf.image(img, x=x, y=y + 5, w=tile_w, h=tile_w * img.height / img.width)
            pdf.rect(x, y + 5, tile_w, tile_w * img.height / img.width)  # the white difference tile needs an edge
        pdf.set_xy(pdf.l_margin, y + 7 + tile_w * t[0].height / t[0].width)
        _pdf_fields(pdf, pair_fields(p, ctx), key_w=44)
        pdf.ln(5)
    pdf.output(str(path))


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
            pdf.set_font("Courier" if is_hash(line) else FONT, "", 8.5 if is_hash(line) else 9)
            pdf.multi_cell(0, 4.6, printable(line), align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.set_y(max(pdf.get_y(), y + key_h))
