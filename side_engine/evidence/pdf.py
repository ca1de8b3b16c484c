"""report.pdf (fpdf2): the facts, the metric tables and the figure, then a page per chosen training image (export
--image) and one page per pair, so that each page is an exhibit that can be cited or printed alone."""

from __future__ import annotations

import io
from pathlib import Path

from .context import ExportContext
from .grid import FONT_FILES, MISSING_GLYPH, TILE_MIN, Tiles, column_titles, enlarged, font_path, printable
from .selection import ChosenImage
from .tables import Table, chosen_table
from .text import INTRO, chosen_fields, chosen_heading, info_fields, is_hash, match_caption, pair_fields, pair_heading

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
    texts = ([ctx.title] + [v for _, v in info] + [v for p in ctx.pairs for _, v in pair_fields(p, ctx)]
             + [v for c in ctx.chosen for _, v in chosen_fields(c, ctx)])
    if any(MISSING_GLYPH in printable(t) for t in texts):
        pdf.ln(1)
        pdf.multi_cell(0, 5, MISSING_NOTE, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    _pdf_fields(pdf, info, key_w=48)

    pdf.add_page()
    for k, t in enumerate(ctx.tables):
        _pdf_table(pdf, t, 14 if k == 0 else 12)
    pdf.image(io.BytesIO(ctx.gamma_svg.encode()), x=pdf.l_margin, w=pdf.epw)

    pdf.set_draw_color(150)
    # Each pair's page, linked from the thumbnails of the training images' pages before it.
    links = {p.rank: pdf.add_link() for p in ctx.pairs} if ctx.chosen else {}
    for c in ctx.chosen:
        _chosen_page(pdf, c, ctx, tiles.root, links)

    tile_w = (pdf.epw - 8) / 3
    titles = column_titles(ctx)
    for p, t in zip(ctx.pairs, tiles, strict=True):
        pdf.add_page()
        if p.rank in links:
            pdf.set_link(links[p.rank], page=pdf.page)
        pdf.set_font(FONT, "B", 12)
        pdf.cell(0, 7, printable(pair_heading(p, ctx)), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "", 8)
        y = pdf.get_y()
        for c, (img, name) in enumerate(zip(t, titles, strict=True)):
            x = pdf.l_margin + c * (tile_w + 4)
            pdf.set_xy(x, y)
            pdf.cell(tile_w, 4, ", ".join(name))
            pdf.image(img, x=x, y=y + 5, w=tile_w, h=tile_w * img.height / img.width)
            pdf.rect(x, y + 5, tile_w, tile_w * img.height / img.width)  # the white difference tile needs an edge
        pdf.set_xy(pdf.l_margin, y + 7 + tile_w * t[0].height / t[0].width)
        _pdf_fields(pdf, pair_fields(p, ctx), key_w=44)
        pdf.ln(5)
    pdf.output(str(path))


def _pdf_table(pdf, t: Table, size: float) -> None:
    pdf.set_font(FONT, "B", size)
    pdf.cell(0, 8, printable(t.title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 8.5)
    with pdf.table(col_widths=t.widths, text_align="CENTER", line_height=4.4) as table:
        for r in [t.head, *t.rows]:
            table.row(r)
    pdf.set_font(FONT, "", 8)
    for note in t.notes:
        pdf.multi_cell(0, 4, note, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)


GRID_COLUMNS = 7  # generated images per row of a training image's page
PICTURE_MM = 58  # the training image's width on its page: its facts beside it keep a SHA-256 on one line


def _chosen_page(pdf, c: ChosenImage, ctx: ExportContext, root: Path, links: dict[int, int]) -> None:
    """A chosen training image: the image large beside its facts, how many generated images of the audit match it
    per band, and its pairs in this export as a grid of generated images, closest first, each linked to its page."""
    pdf.add_page()
    pdf.set_font(FONT, "B", 14)
    pdf.multi_cell(0, 7, printable(chosen_heading(c)), align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    top = pdf.get_y()
    picture = enlarged(root / c.file, 4 * TILE_MIN)
    pic_h = PICTURE_MM * picture.height / picture.width
    pdf.image(picture, x=pdf.l_margin, y=top, w=PICTURE_MM, h=pic_h)
    pdf.rect(pdf.l_margin, top, PICTURE_MM, pic_h)
    margin = pdf.l_margin
    pdf.set_left_margin(margin + PICTURE_MM + 5)
    pdf.set_xy(pdf.l_margin, top)
    _pdf_fields(pdf, chosen_fields(c, ctx), key_w=26, hash_size=7)
    pdf.set_left_margin(margin)
    pdf.set_xy(margin, max(pdf.get_y(), top + pic_h) + 5)
    _pdf_table(pdf, chosen_table(c, ctx.bands), 11)
    if not c.pairs:
        return
    pdf.set_font(FONT, "B", 11)
    pdf.cell(0, 7, "Its pairs in this export, closest first (a click opens the pair's page)",
             new_x="LMARGIN", new_y="NEXT")
    gap = 3
    w = (pdf.epw - (GRID_COLUMNS - 1) * gap) / GRID_COLUMNS
    by_rank = {p.rank: p for p in ctx.pairs}
    y = pdf.get_y()
    for k, rank in enumerate(c.pairs):
        p = by_rank[rank]
        img = enlarged(root / p.gen_file, TILE_MIN)
        h = w * img.height / img.width
        col = k % GRID_COLUMNS
        if col == 0:
            if pdf.will_page_break(h + 12):
                pdf.add_page()
                pdf.set_font(FONT, "B", 11)
                pdf.cell(0, 7, printable(f"{chosen_heading(c)}: its pairs, continued"), new_x="LMARGIN", new_y="NEXT")
            y = pdf.get_y()
        x = pdf.l_margin + col * (w + gap)
        pdf.image(img, x=x, y=y, w=w, h=h, link=links.get(rank, ""))
        pdf.rect(x, y, w, h)
        pdf.set_font(FONT, "", 6.5)
        for j, line in enumerate(match_caption(p, ctx)):
            pdf.set_xy(x, y + h + 0.5 + 2.9 * j)
            pdf.cell(w, 2.9, printable(line))
        if col == GRID_COLUMNS - 1 or k == len(c.pairs) - 1:
            pdf.set_xy(pdf.l_margin, y + h + 12)


def _pdf_fields(pdf, fields: list[tuple[str, str]], key_w: float, hash_size: float = 8.5) -> None:
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
            pdf.set_font("Courier" if is_hash(line) else FONT, "", hash_size if is_hash(line) else 9)
            pdf.multi_cell(0, 4.6, printable(line), align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.set_y(max(pdf.get_y(), y + key_h))
