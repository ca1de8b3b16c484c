"""Moving a band edge re-scores the AMS/UMS table to exactly what side_engine's metric function returns."""

from __future__ import annotations

import numpy as np

from side_engine.matching.metrics import BAND_NAMES, Bands
from side_engine.matching.uncertainty import ums_intervals
from side_engine.store import AuditStore
from side_engine.vocabulary import GUIDES, BandName, Direction, Guide

from helpers import open_audit

HIGH, MID, LOW = BandName.HIGH, BandName.MID, BandName.LOW


def engine_values(audit_dir, bands):
    store = AuditStore.open(audit_dir)
    groups = store.score(bands)
    store.close()
    return {(g.guide, g.gamma): {**{f"ams_{b}": g.ams[b] for b in BAND_NAMES},
                                 **{f"ums_{b}": g.ums[b] for b in BAND_NAMES}} for g in groups}


def shown_values(panel):
    """The table's values by (Guide, gamma), read back from the run names it prints ("random", "TD γ=5")."""
    guides = {g.tag: g for g in GUIDES}
    return {(guides[run.split()[0]], gamma): row for (run, gamma), row in panel.table_values().items()}


def images_counted(panel, band: BandName) -> int:
    """Images the table puts in a band over all runs: its AMS of each run times that run's N."""
    return round(sum(g.ams[band] * g.n for g in panel.results))


def test_dragging_and_typing_band_edges_rescore_table_and_badges(window, qtbot, audit_copy):
    open_audit(qtbot, window, audit_copy)
    panel = window.audit.bands
    window.audit.tabs.setCurrentWidget(panel)
    best = np.sort(window.audit.model.best)
    cut1, cut2 = round(float(best[len(best) // 3]), 3), round(float(best[2 * len(best) // 3]), 3)
    assert cut1 < cut2
    # Scores are float32, and so is every comparison of them with an edge.
    above1, above2 = (len(best) - int(np.searchsorted(best, np.float32(c))) for c in (cut1, cut2))

    # Drag: the low band's region over the upper two thirds of the scores.
    with qtbot.waitSignal(panel.resultsChanged, timeout=5000):
        panel.regions[LOW].setRegion((cut1, 2.0))
    dragged = Bands(low=(cut1, 2.0), mid=(1.4, 1.6), high=(0.0, 1.4), direction=Direction.DISTANCE)
    assert panel.bands == dragged
    assert shown_values(panel) == engine_values(audit_copy, dragged)
    assert images_counted(panel, LOW) == above1
    assert panel.spins[(LOW, 0)].value() == cut1

    # Type: contiguous bands over the scores, so every band holds some images.
    with qtbot.waitSignal(panel.resultsChanged, timeout=5000):
        for (name, c), v in {(LOW, 0): cut2, (MID, 1): cut2, (MID, 0): cut1, (HIGH, 1): cut1}.items():
            panel.spins[(name, c)].setValue(v)
    typed = Bands(low=(cut2, 2.0), mid=(cut1, cut2), high=(0.0, cut1), direction=Direction.DISTANCE)
    assert panel.bands == typed
    assert shown_values(panel) == engine_values(audit_copy, typed)
    assert [images_counted(panel, b) for b in (HIGH, MID, LOW)] == [len(best) - above1, above1 - above2, above2]
    model = window.audit.model
    assert list(model.band) == list(typed.classify(model.best))

    # Bands that change while the user looks at the gallery show in the table once the Bands tab is back.
    window.audit.tabs.setCurrentWidget(window.audit.split)
    wide = Bands(low=(cut1, 2.0), mid=(0.5, cut1), high=(0.0, 0.5), direction=Direction.DISTANCE)
    with qtbot.waitSignal(panel.resultsChanged, timeout=5000):
        panel.set_bands(wide)
    window.audit.tabs.setCurrentWidget(panel)
    assert shown_values(panel) == engine_values(audit_copy, wide)


def test_overlapping_bands_are_refused_with_the_reason(window, qtbot, audit_copy):
    open_audit(qtbot, window, audit_copy)
    panel = window.audit.bands
    before = panel.bands
    assert before == Bands(low=(1.6, 1.8), mid=(1.4, 1.6), high=(0.0, 1.4), direction=Direction.DISTANCE)
    panel.spins[(HIGH, 1)].setValue(1.5)
    assert panel.problem.text() == "bands high and mid overlap"
    assert panel.bands == before


def test_every_value_carries_its_interval_and_the_plots_their_error_bars(window, qtbot, audit_copy):
    open_audit(qtbot, window, audit_copy)
    panel = window.audit.bands
    window.audit.tabs.setCurrentWidget(panel)
    ums_col = 2 + len(BAND_NAMES)
    computing = "95% interval: being computed…"
    bootstrap = "(bootstrap over the run's images, N"

    def ums_tip(row=0, k=0):
        return panel.table.item(row, ums_col + k).toolTip()

    # The bootstrap runs on the worker thread; the table says so until it is done.
    qtbot.waitUntil(lambda: ums_tip() != computing, timeout=10_000)
    a = panel.arrays
    expected = ums_intervals(a, panel.bands)
    for r, g in enumerate(panel.results):
        for k, b in enumerate(BAND_NAMES):
            lo, hi = g.ams_ci[b]
            assert panel.table.item(r, 2 + k).toolTip() == (
                f"95% interval {100 * lo:.2f}–{100 * hi:.2f} % (Wilson score, N = {g.n})")
            lo, hi = expected[(g.guide, g.gamma)][b]
            assert ums_tip(r, k) == f"95% interval {100 * lo:.2f}–{100 * hi:.2f} % {bootstrap} = {g.n})"
    # The plots follow a turn of the event loop each after the table (band_panel: one repaint a turn).
    qtbot.waitUntil(lambda: all((m, Guide.TD, HIGH) in panel._bars for m in ("ams", "ums")))
    for metric in ("ams", "ums"):
        assert panel._bars[(metric, Guide.TD, HIGH)].isVisible()

    # New bands: the intervals of the old ones are never shown for them.
    best = np.sort(window.audit.model.best)
    cut = round(float(best[len(best) // 2]), 3)
    panel.set_bands(Bands(low=(cut, 2.0), mid=(1.4, cut), high=(0.0, 1.4), direction=Direction.DISTANCE))
    panel.rescore()
    assert ums_tip() == computing
    qtbot.waitUntil(lambda: ums_tip() != computing, timeout=10_000)
    expected = ums_intervals(a, panel.bands)
    first = panel.results[0]
    lo, hi = expected[(first.guide, first.gamma)][LOW]
    assert ums_tip(0, 0) == f"95% interval {100 * lo:.2f}–{100 * hi:.2f} % {bootstrap} = {first.n})"


def test_a_guided_run_at_chance_is_flagged_in_the_run_and_bands_tabs(window, qtbot, audit_copy):
    import sqlite3

    from side_engine.config import Run
    from side_gui.band_panel import OFF_TARGET, WARNING

    db = sqlite3.connect(audit_copy / "audit.sqlite")
    with db:  # 3 labels, 6 images a run: none of 6 is at chance, 6 of 6 is not
        db.execute("UPDATE images SET on_target = 0 WHERE guide = ?", (Guide.TD,))
        db.execute("UPDATE images SET on_target = 1 WHERE guide = ?", (Guide.TI,))
    db.close()
    at_chance = (f"{OFF_TARGET}: 0% of this run's images are put in their target label by the guiding classifier "
                 "(chance: 33%), so this run's AMS/UMS say nothing about the model")
    above = "100% of this run's images are put in their target label by the guiding classifier (chance: 33%)"
    view = open_audit(qtbot, window, audit_copy)
    td, ti = (view.run.rows[("extract", Run(g, 5.0).part)].target for g in (Guide.TD, Guide.TI))
    assert (td.text(), td.toolTip()) == ("⚠ on target 0%", at_chance)
    assert td.styleSheet() == f"background: {WARNING.name()}; padding: 1px 4px;"
    assert (ti.text(), ti.toolTip(), ti.styleSheet()) == ("on target 100%", above, "")

    view.tabs.setCurrentWidget(view.bands)
    table = view.bands.table
    rate = {table.item(r, 0).text(): table.item(r, table.columnCount() - 1) for r in range(table.rowCount())}
    assert list(rate) == ["random", "TD γ=5", "TI γ=5"]
    assert rate["TD γ=5"].text() == "⚠ 0" and rate["TD γ=5"].background().color() == WARNING
    assert rate["TD γ=5"].toolTip() == at_chance
    assert (rate["TI γ=5"].text(), rate["TI γ=5"].toolTip()) == ("100", above)
    assert (rate["random"].text(), rate["random"].toolTip()) == ("—", "")


def test_a_plot_item_is_given_data_only_when_its_points_change(qtbot, monkeypatch):
    """While images stream, a re-score leaves every run but the one being extracted as it was: its items keep theirs."""
    import pyqtgraph as pg

    from side_gui.plots import set_data

    curve, other = pg.PlotDataItem(), pg.PlotDataItem()
    given = []
    monkeypatch.setattr(pg.PlotDataItem, "setData", lambda self, *a, **k: given.append(k))
    set_data(curve, x=[0.0, 3.0], y=[1.5, 2.5])
    set_data(curve, x=[0.0, 3.0], y=[1.5, 2.5])
    assert len(given) == 1
    set_data(curve, x=[0.0, 3.0], y=[1.5, 2.75])
    assert given[-1]["y"] == [1.5, 2.75] and len(given) == 2
    set_data(other, x=[0.0, 3.0], y=[1.5, 2.75])
    assert len(given) == 3, "another item with the same points is given them"
