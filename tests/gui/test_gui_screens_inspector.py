"""A reviewer at the pair inspector: an unguided pair has no target, the difference and the scores are named as the
export names them, the band and Gu's ratio say why they disagree, a neighbour can be looked at large, the verdict
buttons stay put while the comparison blinks, hashes copy whole, and the inspector fits a window 1024 pixels wide.
Its images are read on a thread pool: a pair chosen and at once another shows the second's images alone, a pair
stepped back to shows at once, and a neighbour past the five tiles is read when the Training images tab asks for it."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import threading

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QApplication

from side_engine.evidence.grid import COLUMN_TITLES, DIFF_GAIN, pair_tiles, tile_scale
from side_engine.matching.metrics import Bands
from side_engine.vocabulary import NO_TARGET, OUTSIDE, Direction, Guide
from side_gui import pair_inspector
from side_gui.pair_inspector import LOADING
from side_gui.training_view import NO_PAIR

from helpers import open_gallery


def sampled(view, n: int) -> np.ndarray:
    """The n x n image a view shows, read at the centres of the blocks it was scaled up to."""
    img = view.pixmap().toImage().convertToFormat(QImage.Format_Grayscale8)
    centres = ((np.arange(n) + 0.5) * img.height() / n).astype(int)
    return np.array([[img.pixelColor(int(x), int(y)).red() for x in centres] for y in centres])


def gray(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("L"), dtype=np.uint8)


def first_of(audit, guide: Guide):
    return next(r for r in map(audit.store.image, map(int, audit.model.ids)) if r.guide is guide)


def test_an_unguided_pair_says_it_has_no_target_label(window, qtbot, audit_copy):
    audit = open_gallery(window, qtbot, audit_copy)
    fields = audit.inspector.fields
    random = first_of(audit, Guide.NONE)
    audit.inspector.show_image(random.id)
    assert fields["target"].text() == NO_TARGET == "none (unguided)"
    assert fields["guidance"].text() == "random (no guidance)"
    assert (fields["index"].text(), fields["seed"].text()) == (str(random.idx), str(random.seed))

    guided = first_of(audit, Guide.TD)
    audit.inspector.show_image(guided.id)
    assert fields["target"].text() == f"{guided.label} (class_{guided.label})"  # the class the guidance aimed at


def test_the_difference_view_and_the_scores_use_the_exports_words(window, qtbot, audit_copy, shown):
    audit = open_gallery(window, qtbot, audit_copy)
    inspector = shown(audit.inspector)
    row = audit.store.image(inspector.image_id)
    generated = gray(audit.store.path(row.path))
    nearest = gray(audit.store.train_path / audit.store.training_images()[row.best_train].path)

    # The titles, the mode and the caption read as the exported grid's column titles; the tile is the grid's tile.
    assert inspector.train_title.text() == f"<b>{COLUMN_TITLES[1][0].capitalize()}</b>"
    assert inspector.mode.currentText() == COLUMN_TITLES[2][0] == f"|difference| \u00d7 {DIFF_GAIN}"
    largest = int(np.abs(generated.astype(int) - nearest.astype(int)).max())
    assert inspector.caption.text().splitlines() == [", ".join(COLUMN_TITLES[2]),
                                                     f"largest difference {largest} of 255"]
    step = tile_scale(generated.shape[0])
    tile = np.asarray(pair_tiles(generated, nearest)[2])[::step, ::step, 0]
    assert np.array_equal(sampled(inspector.third_view, generated.shape[0]), tile)

    # The score is named by the audit's descriptor, as in the export: nL2 and the raw l2 beside it.
    names = {key: name.text() for key, name in inspector.field_names.items()}
    assert audit.store.direction is Direction.DISTANCE
    assert (names["best"], names["raw"]) == ("best nL2", "raw l2 (RMS, 0..1)")
    assert inspector.fields["best"].text() == f"{row.best:.4f}  (smaller = closer)"


@pytest.mark.parametrize("stored_gu", [None, 0.2], ids=["as-matched", "gu-flags-it"])
def test_the_band_and_gu_say_why_they_disagree(window, qtbot, audit_copy, stored_gu):
    if stored_gu is not None:
        # In the tiny audit no nearest image is much closer than the second nearest (ratios near 1): this copy
        # makes Gu's ratio call every pair memorized.
        with contextlib.closing(sqlite3.connect(audit_copy / "audit.sqlite")) as db, db:
            db.execute("UPDATE images SET gu = ?", (stored_gu,))
    audit = open_gallery(window, qtbot, audit_copy)
    fields = audit.inspector.fields
    row = audit.store.image(audit.inspector.image_id)
    assert row.gu is not None
    within, beyond = row.best + 0.001, row.best / 2

    def bands(high_edge):
        return Bands(low=(high_edge + 0.002, high_edge + 0.004), mid=(high_edge, high_edge + 0.002),
                     high=(0.0, high_edge), direction=Direction.DISTANCE)

    gu_says_copy = row.gu < 1 / 3
    # Bands that contradict Gu's ratio for this pair: the row "why they differ" says which looks at what.
    audit.bands.set_bands(bands(beyond if gu_says_copy else within))
    why = fields["why"].text()
    assert not fields["why"].isHidden()
    if gu_says_copy:
        assert fields["band"].text().startswith(OUTSIDE)
        assert why == (f"Gu's ratio finds the nearest training image much closer than the second nearest "
                       f"({row.gu:.3f} < 1/3); the band looks only at how close it is, and nL2 {row.best:.3f} is "
                       f"{OUTSIDE}.")
    else:
        assert fields["band"].text() == f"high: nL2 in [0, {within:g})"
        assert why == (f"The band looks only at how close the nearest training image is (nL2 {row.best:.3f}: band "
                       f"high); Gu's ratio asks whether it is much closer than the second nearest, and here it is "
                       f"not ({row.gu:.3f} \u2265 1/3).")
    assert fields["gu"].text().startswith(f"{row.gu:.3f}: {'memorized' if gu_says_copy else 'not memorized'} by Gu")

    # Bands that agree with it: nothing to explain.
    audit.bands.set_bands(bands(within if gu_says_copy else beyond))
    assert fields["why"].isHidden()


def test_clicking_a_neighbour_shows_it_large_until_another_pair(window, qtbot, audit_copy, shown):
    audit = open_gallery(window, qtbot, audit_copy)
    inspector = shown(audit.inspector)
    store = audit.store
    row = store.image(inspector.image_id)
    training = store.training_images()
    generated = gray(store.path(row.path))
    n = generated.shape[0]

    # Each neighbour says what its number is, its class and its file.
    second = training[int(row.nn_idx[1])]
    tile = inspector.neighbours.button(1)
    assert inspector.neigh_note.text().startswith("nL2 to the generated image (smaller = closer)")
    assert tile.toolTip().startswith(f"training image #{second.idx}: {second.path}\nlabel {second.label} "
                                     f"(class_{second.label})\nnL2 {row.nn_score[1]:.4f} to the generated image")
    assert tile.text().splitlines()[0].startswith(f"{row.nn_score[1]:.3f}")

    assert np.array_equal(sampled(inspector.train_view, n), gray(store.train_path / training[row.best_train].path))
    qtbot.mouseClick(tile, Qt.LeftButton)
    neighbour = gray(store.train_path / second.path)
    assert inspector.train_title.text() == f"<b>Neighbour 2: #{second.idx}</b>"
    assert np.array_equal(sampled(inspector.train_view, n), neighbour)
    largest = int(np.abs(generated.astype(int) - neighbour.astype(int)).max())
    assert inspector.caption.text().endswith(f"largest difference {largest} of 255")  # compared with it too
    assert tile.isChecked()

    qtbot.keyClick(audit.gallery.list, Qt.Key_J)
    assert inspector.image_id != row.id
    assert inspector.train_title.text() == "<b>Nearest training image</b>"
    assert inspector.neighbours.button(0).isChecked()


def test_blinking_does_not_move_the_verdict_buttons(window, qtbot, audit_copy, shown):
    audit = open_gallery(window, qtbot, audit_copy)
    inspector = shown(audit.inspector)
    inspector.mode.setCurrentIndex(inspector.mode.findText("blink"))
    copy = inspector.buttons.button(0)
    for width, height in ((1280, 820), (1024, 700)):
        window.resize(width, height)
        seen = {}
        for _ in range(4):
            inspector.blink.timeout.emit()  # a tick now, not in 450 ms
            QApplication.processEvents()  # the layout follows the caption's new text
            seen[inspector.caption.text()] = copy.mapTo(window, copy.rect().topLeft()).y()
        assert set(seen) == {"blinking, now: generated", "blinking, now: nearest training image"}
        assert len(set(seen.values())) == 1, (width, seen)


def test_hashes_are_short_on_screen_and_copied_whole(window, qtbot, audit_copy):
    audit = open_gallery(window, qtbot, audit_copy)
    window.resize(1280, 820)
    row = audit.store.image(audit.inspector.image_id)
    value = audit.inspector.fields["generated sha"]
    assert value.text() == f'{row.sha256[:8]}\u2026{row.sha256[-8:]} <a href="copy">copy</a>'
    assert value.toolTip().startswith(row.sha256)
    value.linkActivated.emit("copy")  # the click on "copy"
    assert QGuiApplication.clipboard().text() == row.sha256
    assert value.text().endswith("copied")
    meta = audit.inspector.meta
    qtbot.waitUntil(lambda: meta.widget().width() <= meta.viewport().width())
    assert meta.widget().minimumSizeHint().width() <= meta.viewport().width()  # no scrolling sideways


def test_the_inspector_fits_beside_the_gallery_in_a_1024_pixel_window(window, qtbot, audit_copy):
    audit = open_gallery(window, qtbot, audit_copy)
    assert audit.inspector.minimumSizeHint().width() < 400  # 426 before its neighbours and images could narrow
    assert window.minimumSizeHint().width() <= 1024


def test_a_pair_chosen_and_at_once_another_shows_the_second_alone_read_off_the_gui_thread(window, qtbot, audit_copy,
                                                                                          shown, monkeypatch):
    """A reviewer clicks a pair and, before its images are read, presses J: the first pair's metadata stands beside
    "loading…", never beside the images of the pair shown before it, and the first pair's images, read late, never
    show beside the second's. Every image is read on a pool thread, none on the GUI thread."""
    audit = open_gallery(window, qtbot, audit_copy)
    inspector = shown(audit.inspector)
    store = audit.store
    first, second = (audit.model.data(audit.model.index(r), audit.model.IdRole) for r in (4, 5))
    held = str(store.path(store.image(first).path))
    readers, started, gate = [], [], threading.Event()
    read = pair_inspector.gray_or_rgb

    def slow_read(path):
        readers.append(threading.current_thread())
        started.append(str(path))
        if str(path) == held:
            gate.wait(5)  # the first pair's generated image is slow to read: the reviewer is quicker
        return read(path)

    monkeypatch.setattr(pair_inspector, "gray_or_rgb", slow_read)
    audit.gallery.list.setCurrentIndex(audit.model.index(4))
    assert inspector.image_id == first and inspector.fields["image"].text() == str(first)
    assert [inspector.gen_view.text(), inspector.third_view.text()] == [LOADING, LOADING]
    assert inspector.gen_view.pixmap().isNull() and inspector.third_view.pixmap().isNull()
    view = inspector.gen_view
    view.resize(view.width() - 10, view.height())  # the splitter moved meanwhile: the text stays
    assert view.text() == LOADING

    qtbot.waitUntil(lambda: held in started)  # on its way, on a pool thread, when the reviewer moves on
    qtbot.keyClick(audit.gallery.list, Qt.Key_J)
    assert inspector.image_id == second
    with qtbot.waitSignal(inspector.decoded.arrived, check_params_cb=lambda path, _: path == held):
        gate.set()
    shown(inspector)
    row = store.image(second)
    generated = gray(store.path(row.path))
    nearest = gray(store.train_path / store.training_images()[row.best_train].path)
    assert not np.array_equal(gray(held), generated)
    n = generated.shape[0]
    assert np.array_equal(sampled(inspector.gen_view, n), generated)
    assert np.array_equal(sampled(inspector.train_view, n), nearest)
    largest = int(np.abs(generated.astype(int) - nearest.astype(int)).max())
    assert inspector.caption.text().endswith(f"largest difference {largest} of 255")
    assert held in started and readers and threading.main_thread() not in readers


def test_a_pair_stepped_back_to_shows_at_once_without_reading_it_again(window, qtbot, audit_copy, shown, monkeypatch):
    audit = open_gallery(window, qtbot, audit_copy)
    inspector = shown(audit.inspector)
    first = inspector.image_id
    qtbot.keyClick(audit.gallery.list, Qt.Key_J)
    assert shown(inspector).image_id != first
    reads = []
    read = pair_inspector.gray_or_rgb
    monkeypatch.setattr(pair_inspector, "gray_or_rgb", lambda path: reads.append(path) or read(path))
    qtbot.keyClick(audit.gallery.list, Qt.Key_K)
    assert inspector.image_id == first and not inspector.loading
    assert not inspector.gen_view.pixmap().isNull() and inspector.caption.text().startswith("|difference|")
    assert reads == []


def test_a_neighbour_past_the_five_tiles_is_compared_under_its_rank(window, qtbot, audit_copy, shown, monkeypatch):
    """The Training images tab compares a generated image with whichever of its k neighbours was chosen: one past
    the five tiles is read too, and its title names its rank."""
    audit = open_gallery(window, qtbot, audit_copy)
    audit.tabs.setCurrentWidget(audit.training)
    inspector = audit.training.inspector
    store = inspector.store
    row = store.image(int(audit.model.ids[0]))
    # The tiny audit keeps 3 neighbours: this row keeps 8.
    far = np.array([j for j in range(store.n_train) if j not in row.nn_idx][:5], np.int32)
    scores = row.nn_score[-1] + np.arange(1, 6, dtype=np.float32)
    wide = dataclasses.replace(row, nn_idx=np.concatenate([row.nn_idx, far]),
                               nn_score=np.concatenate([row.nn_score, scores]),
                               nn_raw=np.concatenate([row.nn_raw, scores]))
    image = store.image
    monkeypatch.setattr(store, "image", lambda i: wide if i == row.id else image(i))

    inspector.show_pair(row.id, int(far[3]))
    shown(inspector)
    assert inspector.train_title.text() == f"<b>Neighbour 7: #{far[3]}</b>"
    assert inspector.neigh_group.title() == "Top-5 training neighbours"
    assert not any(tile.isChecked() for tile in inspector.neighbours.buttons())
    generated = gray(store.path(row.path))
    chosen = gray(store.train_path / store.training_images()[int(far[3])].path)
    n = generated.shape[0]
    assert np.array_equal(sampled(inspector.train_view, n), chosen)
    largest = int(np.abs(generated.astype(int) - chosen.astype(int)).max())
    assert inspector.caption.text().endswith(f"largest difference {largest} of 255")

    inspector.show_image(-1)  # no training image chosen: the tab says what to choose
    assert inspector.gen_view.text() == NO_PAIR and not inspector.loading
