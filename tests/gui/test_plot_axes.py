"""The app's plots draw their axes from pixels they keep: switching tabs does not set the tick text again, a new
range does."""

from __future__ import annotations

import pyqtgraph as pg
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

    def settled() -> bool:
        """A repaint that sets no tick text: the plot's layout and ranges have found their place."""
        QApplication.processEvents()  # a layout still posted would move the plot after the check
        drawn.clear()
        tabs.repaint()
        return drawn == []

    qtbot.waitUntil(settled)
    for _ in range(3):
        tabs.setCurrentIndex(1)
        tabs.repaint()
        tabs.setCurrentIndex(0)
        tabs.repaint()
    assert drawn == []

    plot.setXRange(10, 20, padding=0)
    qtbot.waitUntil(lambda: "bottom" in drawn)


def test_a_figure_for_print_keeps_pyqtgraphs_own_axes():
    """A saved figure's axes must go into the SVG as text and lines, not as the screen's pixels."""
    figure = plot_widget("figure", cached=False)
    assert type(figure.getAxis("left")) is pg.AxisItem
