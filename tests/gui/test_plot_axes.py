"""The app's plots draw their axes from pixels they keep: switching tabs does not set the tick text again, a new
range does."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QPainter, QPicture
from PySide6.QtWidgets import QApplication, QTabWidget, QWidget

from side_gui.plots import plot_widget


def _tick_text_drawn(monkeypatch) -> list[str]:
    """The orientation of every axis whose tick text is set (pyqtgraph's own AxisItem.paint)."""
    drawn: list[str] = []
    paint = pg.AxisItem.paint

    def counted(self, p, opt, widget):
        drawn.append(self.orientation)
        return paint(self, p, opt, widget)

    monkeypatch.setattr(pg.AxisItem, "paint", counted)
    return drawn


def test_a_plot_shown_again_draws_its_axes_from_kept_pixels(qtbot, monkeypatch):
    drawn = _tick_text_drawn(monkeypatch)
    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    plot = plot_widget("axes_plot")
    plot.plot([0, 1, 2, 3], [1, 3, 2, 4])
    tabs.addTab(plot, "plot")
    tabs.addTab(QWidget(), "other")
    tabs.resize(500, 400)
    tabs.show()
    qtbot.waitUntil(lambda: {"bottom", "left"} <= set(drawn))

    def shown_again_draws_nothing() -> bool:
        """pyqtgraph's auto-range takes a few showings to settle (its points' padding depends on the range it
        sets), and each change of range redraws the axes: wait for a showing that changes nothing."""
        QApplication.processEvents()
        drawn.clear()
        tabs.setCurrentIndex(1)
        tabs.repaint()
        tabs.setCurrentIndex(0)
        tabs.repaint()
        return drawn == []

    qtbot.waitUntil(shown_again_draws_nothing)
    for _ in range(3):
        assert shown_again_draws_nothing()

    plot.setXRange(10, 20, padding=0)
    qtbot.waitUntil(lambda: "bottom" in drawn)


def test_a_figure_for_print_keeps_pyqtgraphs_own_axes():
    """A saved figure's axes must go into the SVG as text and lines, not as the screen's pixels."""
    figure = plot_widget("figure", cached=False)
    assert type(figure.getAxis("left")) is pg.AxisItem


def test_the_grid_looks_as_pyqtgraphs_translucent_one_on_white_and_lies_under_the_data(qtbot):
    plot = plot_widget("grid_plot")
    qtbot.addWidget(plot)
    plot.plot([0, 1, 2, 3], [1, 3, 2, 4])
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.resize(500, 300)
    axis = plot.getAxis("left")
    picture = QPicture()
    painter = QPainter(picture)
    try:
        own = pg.AxisItem.generateDrawSpecs(axis, painter)
        opaque = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    assert own is not None and opaque is not None
    translucent = [pen.color() for pen, _, _ in own[1] if pen.color().alpha() < 255]
    assert translucent, "pyqtgraph's grid is translucent: nothing to compare"
    for (pen, _, _), (theirs, _, _) in zip(opaque[1], own[1]):
        c, a = theirs.color(), theirs.color().alphaF()
        assert pen.color().alpha() == 255
        for mine, their in ((pen.color().red(), c.red()), (pen.color().green(), c.green()),
                            (pen.color().blue(), c.blue())):
            assert abs(mine - (a * their + (1 - a) * 255)) <= 1


def test_a_curve_is_drawn_over_the_grid_not_cut_by_it(qtbot):
    plot = plot_widget("grid_plot")
    qtbot.addWidget(plot)
    plot.plot([0, 10], [0.5, 0.5], pen=pg.mkPen((255, 0, 0), width=3))
    plot.showGrid(x=True, y=True, alpha=0.5)
    plot.setXRange(0, 10, padding=0)
    plot.setYRange(0, 1, padding=0)
    plot.resize(500, 300)
    plot.show()
    qtbot.waitExposed(plot)
    image = plot.grab().toImage()
    view = plot.getViewBox().sceneBoundingRect().toAlignedRect()
    y = view.center().y()
    row = [image.pixelColor(x, y).getRgb()[:3] for x in range(view.left() + 4, view.right() - 4)]
    assert set(row) == {(255, 0, 0)}, "the grid's lines cross the curve"
