"""Moving a band edge re-scores the AMS/UMS table to exactly what side_engine's metric function returns."""

from __future__ import annotations

import numpy as np

from side_engine.matching.metrics import BAND_NAMES, Bands, score_groups
from side_engine.store import AuditStore

from helpers import open_audit


def engine_values(audit_dir, bands):
    store = AuditStore.open(audit_dir)
    a = store.score_arrays()
    groups = score_groups(a.guide, a.gamma, a.nn_idx, a.nn_score, bands, int(store.meta("n_train")), a.gu)
    store.close()
    return {(g.guide, g.gamma): {**{f"ams_{b}": g.ams[b] for b in BAND_NAMES},
                                 **{f"ums_{b}": g.ums[b] for b in BAND_NAMES}} for g in groups}


def shown_values(panel):
    names = {"random": "none", "TD": "td", "TI": "ti"}
    return {(names[run.split()[0]], gamma): row for (run, gamma), row in panel.table_values().items()}


def test_dragging_and_typing_band_edges_rescore_table_and_badges(window, qtbot, audit_copy):
    open_audit(qtbot, window, audit_copy)
    panel = window.audit.bands
    window.audit.tabs.setCurrentWidget(panel)
    best = np.sort(window.audit.model.best)
    cut1, cut2 = round(float(best[len(best) // 3]), 3), round(float(best[2 * len(best) // 3]), 3)
    assert cut1 < cut2

    # Drag: the low band's region over the upper two thirds of the scores.
    with qtbot.waitSignal(panel.resultsChanged, timeout=5000):
        panel.regions["low"].setRegion((cut1, 2.0))
    dragged = Bands(low=(cut1, 2.0), mid=(1.4, 1.6), high=(0.0, 1.4), direction="distance")
    assert panel.bands == dragged
    assert shown_values(panel) == engine_values(audit_copy, dragged)
    assert any(row["ams_low"] > 0 for row in shown_values(panel).values())
    assert panel.spins[("low", 0)].value() == cut1

    # Type: contiguous bands over the scores, so every band holds some images.
    with qtbot.waitSignal(panel.resultsChanged, timeout=5000):
        for (name, c), v in {("low", 0): cut2, ("mid", 1): cut2, ("mid", 0): cut1, ("high", 1): cut1}.items():
            panel.spins[(name, c)].setValue(v)
    typed = Bands(low=(cut2, 2.0), mid=(cut1, cut2), high=(0.0, cut1), direction="distance")
    assert panel.bands == typed
    values = shown_values(panel)
    assert values == engine_values(audit_copy, typed)
    assert any(row["ams_mid"] > 0 for row in values.values())
    model = window.audit.model
    assert list(model.band) == list(typed.classify(model.best))

    # Bands that change while the user looks at the gallery show in the table once the Bands tab is back.
    window.audit.tabs.setCurrentWidget(window.audit.split)
    wide = Bands(low=(cut1, 2.0), mid=(0.5, cut1), high=(0.0, 0.5), direction="distance")
    with qtbot.waitSignal(panel.resultsChanged, timeout=5000):
        panel.set_bands(wide)
    window.audit.tabs.setCurrentWidget(panel)
    assert shown_values(panel) == engine_values(audit_copy, wide)


def test_overlapping_bands_are_refused_with_the_reason(window, qtbot, audit_copy):
    open_audit(qtbot, window, audit_copy)
    panel = window.audit.bands
    before = panel.bands
    panel.spins[("high", 1)].setValue(1.5)
    assert "overlap" in panel.problem.text()
    assert panel.bands == before


def test_every_value_carries_its_interval_and_the_plots_their_error_bars(window, qtbot, audit_copy):
    from side_engine.matching.metrics import ums_intervals

    open_audit(qtbot, window, audit_copy)
    panel = window.audit.bands
    window.audit.tabs.setCurrentWidget(panel)
    ums_col = 2 + len(BAND_NAMES)

    def ums_tip(row=0, k=0):
        return panel.table.item(row, ums_col + k).toolTip()

    # The bootstrap runs on the worker thread; the table says so until it is done.
    qtbot.waitUntil(lambda: "being computed" not in ums_tip(), timeout=10_000)
    a = panel.arrays
    expected = ums_intervals(a.guide, a.gamma, a.nn_idx, a.nn_score, panel.bands)
    for r, g in enumerate(panel.results):
        for k, b in enumerate(BAND_NAMES):
            lo, hi = g.ams_ci[b]
            assert f"{100 * lo:.2f}–{100 * hi:.2f} %" in panel.table.item(r, 2 + k).toolTip()
            lo, hi = expected[(g.guide, g.gamma)][b]
            assert f"{100 * lo:.2f}–{100 * hi:.2f} %" in ums_tip(r, k)
    for metric in ("ams", "ums"):
        assert panel._bars[(metric, "td", "high")].isVisible()

    # New bands: the intervals of the old ones are never shown for them.
    best = np.sort(window.audit.model.best)
    cut = round(float(best[len(best) // 2]), 3)
    panel.set_bands(Bands(low=(cut, 2.0), mid=(1.4, cut), high=(0.0, 1.4), direction="distance"))
    panel.rescore()
    assert "being computed" in ums_tip()
    qtbot.waitUntil(lambda: "being computed" not in ums_tip(), timeout=10_000)
    expected = ums_intervals(a.guide, a.gamma, a.nn_idx, a.nn_score, panel.bands)
    lo, hi = expected[(panel.results[0].guide, panel.results[0].gamma)]["low"]
    assert f"{100 * lo:.2f}–{100 * hi:.2f} %" in ums_tip(0, 0)


def test_a_guided_run_at_chance_is_flagged_in_the_run_and_bands_tabs(window, qtbot, audit_copy):
    import sqlite3

    from side_engine.config import Run
    from side_gui.band_panel import OFF_TARGET, WARNING

    db = sqlite3.connect(audit_copy / "audit.sqlite")
    with db:  # 3 labels, 6 images a run: none of 6 is at chance, 6 of 6 is not
        db.execute("UPDATE images SET on_target = 0 WHERE guide = 'td'")
        db.execute("UPDATE images SET on_target = 1 WHERE guide = 'ti'")
    db.close()
    view = open_audit(qtbot, window, audit_copy)
    td, ti = (view.run.rows[("extract", Run(g, 5.0).part)].target for g in ("td", "ti"))
    assert td.text() == "⚠ on target 0%" and td.toolTip().startswith(OFF_TARGET)
    assert WARNING.name() in td.styleSheet()
    assert ti.text() == "on target 100%" and OFF_TARGET not in ti.toolTip() and not ti.styleSheet()

    view.tabs.setCurrentWidget(view.bands)
    table = view.bands.table
    rate = {table.item(r, 0).text(): table.item(r, table.columnCount() - 1) for r in range(table.rowCount())}
    assert rate["TD γ=5"].text() == "⚠ 0" and rate["TD γ=5"].background().color() == WARNING
    assert rate["TD γ=5"].toolTip().startswith(OFF_TARGET) and "chance: 33%" in rate["TD γ=5"].toolTip()
    assert rate["TI γ=5"].text() == "100" and rate["random"].text() == "—"
