"""The grid PNGs for print, and what every view draws with: each pair's three tiles (generated | nearest training |
difference) made from the exported files, and the one Unicode font of the grid and the PDF."""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..dataset import to_model_space
from ..shipped import folder
from ..vocabulary import DIFF_GAIN, DIFFERENCE, EQUAL, NEAREST, Direction
from .context import ExportContext
from .selection import Pair
from .text import band_text, grid_lines, show_controls

ROWS_PER_PAGE = 3  # grid rows per PNG: three rows and the header have about A4's shape, so a page prints full width
TILE_MIN = 192  # px: smaller images are upscaled (nearest neighbour, whole factors) to at least this
# Grid sizes in px for a tile of TILE_MIN; larger tiles scale them all, so that a page printed to A4's width
# has the same text size (about 10 pt) whatever the model's image size.
MARGIN = 16
FONT_PX = 15
LINE_PX = 19
TEXT_LINES = 4
COLUMN_TITLES = (("generated",), (NEAREST,), (DIFFERENCE, EQUAL))
# An export of chosen training images (export --image): the training tile is the chosen one, nearest or not.
CHOSEN_TITLES = (("generated",), ("chosen training image",), (DIFFERENCE, EQUAL))
# How the grid's subtitle says which way is closer: short enough to fit beside the bands at the smallest tile.
CLOSER = {Direction.DISTANCE: "lower nL2 = closer", Direction.SIMILARITY: "higher = closer"}

Tiles3 = tuple[Image.Image, Image.Image, Image.Image]

# DejaVu Sans (Bitstream Vera licence, resources/fonts/LICENSE): Latin, Greek, Cyrillic and most symbols, so
# notes and folder names read as typed.
FONT_DIR = folder("side_engine.fonts")
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
MISSING_GLYPH = "\u25a1"  # stands in, visibly, for a character the font lacks (CJK, for one)


@functools.cache
def font_path(style: str = "") -> Path:
    path = FONT_DIR / FONT_FILES[style]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the installation of SIDE Inspector is incomplete")
    return path


@functools.cache
def _covered() -> frozenset[int]:
    """Code points both faces can draw. fontTools comes with fpdf2, which subsets fonts with it."""
    from fontTools.ttLib import TTFont

    return frozenset.intersection(*(frozenset(TTFont(font_path(s), lazy=True).getBestCmap() or ()) for s in FONT_FILES))


def printable(s: str) -> str:
    """s with every character the font cannot draw replaced by MISSING_GLYPH: fpdf2 would silently drop them,
    and a note that loses words without a trace misleads; manifest.json, pairs.csv and the HTML keep them."""
    covered = _covered()
    s = show_controls(s).replace("\t", " ")
    return "".join(c if ord(c) in covered or c == "\n" else MISSING_GLYPH for c in s)


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


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def train_in_model_space(path: Path, like: np.ndarray) -> np.ndarray:
    """The training image as the matcher compared it: the model's channels and size."""
    with Image.open(path) as img:
        arr = to_model_space(img, 1 if like.ndim == 2 else 3, like.shape[0])
    return arr[0] if like.ndim == 2 else arr.transpose(1, 2, 0)


def pair_tiles(gen: np.ndarray, train: np.ndarray) -> Tiles3:
    # White where equal: dark ink on paper is where the images differ, and a page of it prints cleanly.
    diff = (255 - np.minimum(255, DIFF_GAIN * np.abs(gen.astype(np.int16) - train.astype(np.int16)))).astype(np.uint8)
    s = tile_scale(gen.shape[0])

    def up(a: np.ndarray) -> Image.Image:
        return Image.fromarray(a).convert("RGB").resize((a.shape[1] * s, a.shape[0] * s), Image.Resampling.NEAREST)

    return up(gen), up(train), up(diff)


class Tiles:
    """Each pair's tiles, made from the exported files when a view asks for them, so memory stays flat however
    many pairs are exported; `step` is told each time, the export's progress."""

    def __init__(self, root: Path, pairs: tuple[Pair, ...], step: Callable[[], None]):
        self.root, self.pairs, self.step = root, pairs, step

    def __getitem__(self, i: int) -> Tiles3:
        p = self.pairs[i]
        gen = read_png(self.root / p.gen_file)
        tiles = pair_tiles(gen, train_in_model_space(self.root / p.train_file, gen))
        self.step()
        return tiles

    def __iter__(self) -> Iterator[Tiles3]:
        return (self[i] for i in range(len(self.pairs)))


def column_titles(ctx: ExportContext) -> tuple[tuple[str, ...], ...]:
    return CHOSEN_TITLES if ctx.chosen else COLUMN_TITLES


def enlarged(path: Path, at_least: int) -> Image.Image:
    """An exported image in RGB, enlarged by a whole factor (nearest neighbour) to at least `at_least` px wide, so
    that its pixels stay pixels in print; a larger image as it is."""
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    s = max(1, math.ceil(at_least / rgb.width))
    return rgb.resize((rgb.width * s, rgb.height * s), Image.Resampling.NEAREST)


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@functools.cache
def _font(px: int, style: str = "") -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(style)), px)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    text = printable(text)
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def render_grid(rows: list[tuple[Tiles3, list[str]]], title: str, subtitle: str,
                titles: tuple[tuple[str, ...], ...] = COLUMN_TITLES) -> Image.Image:
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
    for c, lines in enumerate(titles):
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


def grid_names(n_pairs: int) -> list[str]:
    """grid.png when the pairs fit one page, else grid-01.png, grid-02.png, ..."""
    pages = math.ceil(n_pairs / ROWS_PER_PAGE)
    return ["grid.png"] if pages == 1 else [f"grid-{k:02d}.png" for k in range(1, pages + 1)]


def write_grids(folder: Path, ctx: ExportContext, tiles: Tiles) -> list[str]:
    """Every grid page into folder; returns their file names."""
    subtitle = f"{ctx.unit} bands {band_text(ctx)}   ({CLOSER[ctx.direction]})"
    names = grid_names(len(ctx.pairs))
    for k, name in enumerate(names, start=1):
        page = range((k - 1) * ROWS_PER_PAGE, min(k * ROWS_PER_PAGE, len(ctx.pairs)))
        head = ctx.title + (f"   page {k}/{len(names)}" if len(names) > 1 else "")
        render_grid([(tiles[i], grid_lines(ctx.pairs[i], ctx)) for i in page], head, subtitle,
                    column_titles(ctx)).save(folder / name)
    return names
