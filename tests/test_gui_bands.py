"""Moving a band edge re-scores the AMS/UMS table to exactly what side_engine's metric function returns."""

from __future__ import annotations

import numpy as np

from side_engine.metrics import BAND_NAMES, Bands, score_groups
from side_engine.store import AuditStore

from gui_fixtures import no_dangling_qt, open_audit, temp_settings, window  # noqa: F401


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
