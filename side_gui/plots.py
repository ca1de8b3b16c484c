"""How the app makes its pyqtgraph plots, and writes them as figures for print."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPixmap
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QFileDialog, QLabel, QWidget

PRINT_WIDTH = 2400  # pixels of a saved PNG: 8 inches at PRINT_DPI
PRINT_DPI = 300


class PixmapAxis(pg.AxisItem):
    """An axis that keeps its rendered pixels until pyqtgraph drops its picture (a new range, size, label or
    style). Replaying the tick text on every paint was half the time of showing the Bands tab, and Qt's own item
    cache did not help: Qt forgets an item's cached pixels whenever its view is hidden, i.e. on every tab switch.

    Its grid is drawn in opaque colours, each pyqtgraph's translucent one as it would look on `background`: Qt
    draws translucent lines 15x slower (4 ms of an axis's 5 ms each time a streamed image moved a range), so the
    axis lies behind the plot's data (plot_widget), where nothing shows through it."""

    def __init__(self, orientation: str, background: QColor | None = None, **kwargs):
        super().__init__(orientation, **kwargs)
        self.background = QColor("white") if background is None else background
        self._opaque_pens: dict[tuple, QPen] = {}  # by (rgba, width): a grid has a few, drawn often
        self._pixmap: QPixmap | None = None
        self._drawn: tuple | None = None  # what the pixmap shows: (picture, rect, pixel ratio)

    def generateDrawSpecs(self, p):
        specs = super().generateDrawSpecs(p)
        if specs is None or self.grid is False:
            return specs
        axis, ticks, texts = specs
        return axis, [(self._opaque(pen), a, b) for pen, a, b in ticks], texts

    def _opaque(self, pen: QPen) -> QPen:
        c = pen.color()
        if c.alpha() == 255:
            return pen
        key = (c.rgba(), pen.widthF())
        out = self._opaque_pens.get(key)
        if out is None:
            bg, a = self.background, c.alphaF()
            out = QPen(pen)
            out.setColor(QColor.fromRgbF(*(a * x + (1 - a) * y for x, y in (
                (c.redF(), bg.redF()), (c.greenF(), bg.greenF()), (c.blueF(), bg.blueF())))))
            self._opaque_pens[key] = out
        return out

    def paint(self, p, opt, widget):
        rect = self.boundingRect().toAlignedRect()
        ratio = p.device().devicePixelRatioF() if p.device() is not None else 1.0
        if self._pixmap is None or self._drawn != (self.picture, rect, ratio):  # a dropped picture is None
            pixmap = QPixmap(rect.size() * ratio)
            pixmap.setDevicePixelRatio(ratio)
            pixmap.fill(Qt.transparent)
            painter = QPainter(pixmap)
            painter.setRenderHints(p.renderHints())
            painter.translate(-rect.topLeft())
            try:
                super().paint(painter, opt, widget)  # makes pyqtgraph's picture where it had none, and plays it
            finally:
                painter.end()
            self._pixmap, self._drawn = pixmap, (self.picture, rect, ratio)
        p.drawPixmap(rect.topLeft(), self._pixmap)


def plot_widget(name: str, cached: bool = True) -> pg.PlotWidget:
    """A white plot, its axes drawn from pixmaps of their own (PixmapAxis). A figure to be saved is not cached:
    its axes would go into the SVG as bitmaps."""
    axes = {side: PixmapAxis(side) for side in ("left", "bottom")} if cached else None
    w = pg.PlotWidget(objectName=name, axisItems=axes)
    w.setBackground("w")
    for axis in (axes or {}).values():
        axis.setZValue(-1)  # behind the view box: its opaque grid under the data, not over it
    return w


_SHOWN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # each plot item's data as last given


def set_data(item, **data) -> None:
    """item.setData(**data) unless that is what it shows: each setData costs pyqtgraph a re-layout of the item, and a
    re-score while images stream moves the points of the run being extracted only (7-10 ms a plot in all)."""
    key = {k: (np.asarray(v).tobytes() if not np.isscalar(v) else v) for k, v in data.items()}
    if _SHOWN.get(item) == key:
        return
    item.setData(**data)
    _SHOWN[item] = key


FIGURE_SIZE = (860, 620)  # a saved figure's layout, in screen pixels; written PRINT_WIDTH wide


def lay_out_for_print(fig: pg.PlotWidget, caption: str) -> None:
    """An uncached plot (plot_widget(cached=False)) as a figure for print: the caption as its title, black axes in
    one font, laid out at FIGURE_SIZE whatever the window's size, never on screen. Its items are drawn after."""
    # The generic family, which the SVG names as such: a viewer without the font Qt picked for "Sans Serif" set the
    # text in a serif font of other widths, in gaps.
    font = QFont("sans-serif", 10)
    fig.setTitle(caption, justify="left")
    head = fig.plotItem.titleLabel
    head.item.setFont(font)
    height = head.item.boundingRect().height() + 8  # the title row fits one line unless told
    head.setMaximumHeight(height)
    fig.plotItem.layout.setRowFixedHeight(0, height)
    fig.plotItem.layout.setContentsMargins(8, 8, 24, 8)  # the plot does not end at the image's right edge
    for side in ("left", "bottom"):
        axis = fig.getAxis(side)
        axis.setPen("k")
        axis.setTextPen("k")
        axis.setStyle(tickFont=font)
        axis.label.setFont(font)
        axis.setLabel(axis.labelText, **{"font-size": "11pt"})
    fig.setAttribute(Qt.WA_DontShowOnScreen)
    fig.resize(*FIGURE_SIZE)
    fig.show()  # lays the plot out at that size


def save_figure(plot: pg.PlotWidget, base: Path, title: str) -> list[Path]:
    """The plot as BASE.png (PRINT_WIDTH pixels wide, marked PRINT_DPI) and BASE.svg (title: the SVG's <title>).
    Both are made in memory and then written, so that a folder that cannot be written raises OSError."""
    import pyqtgraph.exporters as ex

    exporter = ex.ImageExporter(plot.plotItem)
    exporter.parameters()["width"] = PRINT_WIDTH  # the height follows the plot's aspect
    image = exporter.export(toBytes=True)
    per_metre = round(PRINT_DPI / 0.0254)
    image.setDotsPerMeterX(per_metre)
    image.setDotsPerMeterY(per_metre)
    png = QByteArray()
    buffer = QBuffer(png)
    buffer.open(QIODevice.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()

    # Qt's own SVG writer: pyqtgraph's SVGExporter fails on the closed paths ("... Z") that Qt 6.11 writes
    # (pyqtgraph issue #3495).
    source = plot.plotItem.sceneBoundingRect()
    size = QSize(round(source.width()), round(source.height()))
    svg = QByteArray()
    buffer = QBuffer(svg)
    buffer.open(QIODevice.WriteOnly)
    generator = QSvgGenerator()
    generator.setOutputDevice(buffer)
    generator.setSize(size)
    generator.setViewBox(QRect(0, 0, size.width(), size.height()))
    generator.setTitle(title)
    # At the plot's own DPI: at the generator's default (72) fonts shrink, and with them the axes' layout, away from
    # the curves.
    generator.setResolution(plot.logicalDpiX())
    painter = QPainter(generator)
    white = QColor("white")
    # Export mode: symbols drawn as paths, not stamped from pyqtgraph's bitmap atlas.
    exporter.setExportMode(True, {"antialias": True, "background": white, "painter": painter})
    try:
        painter.fillRect(QRectF(0, 0, size.width(), size.height()), white)
        plot.scene().render(painter, QRectF(0, 0, size.width(), size.height()), source)
    finally:
        exporter.setExportMode(False)
        painter.end()
    buffer.close()

    written = []
    for suffix, data in ((".png", png), (".svg", svg)):
        path = base.with_name(base.name + suffix)
        path.write_bytes(data.data())
        written.append(path)
    return written


def ask_and_save(parent: QWidget, title: str, save: Callable[[str], list[Path]], said: QLabel) -> None:
    """Save plots…: a folder asked for, the figures written there by save(folder), and `said` tells what came of it
    (the files in its tooltip)."""
    folder = QFileDialog.getExistingDirectory(parent, title)
    if not folder:
        return
    try:
        written = save(folder)
    except OSError as e:
        said.setText(f"Could not save the plots in {folder}: {e.strerror or e}")
        said.setToolTip("")
        return
    said.setText(f"Saved {len(written)} files (PNG and SVG) in {folder}")
    said.setToolTip("\n".join(p.name for p in written))
