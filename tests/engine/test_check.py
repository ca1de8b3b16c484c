"""Was this picture extracted? A reviewer holds a picture (a rights holder's, in the training folder or not) and asks
which of the audit's generated and training images lie closest to it, scored as the audit scores its own pairs."""

import json
import shutil
import sqlite3

import numpy as np
import pytest
import torch
from PIL import Image

from side_engine import cli
from side_engine import events as ev
from side_engine.errors import InputError
from side_engine.evidence.manifest import MANIFEST
from side_engine.evidence.verify import verify_export
from side_engine.questions.check import Checker, check_images
from side_engine.store import AuditStore
from side_engine.vocabulary import BandName

from helpers import grid_rows


def stored(audit):
    """Every generated image of the audit with its stored matches, and the training list."""
    store = AuditStore.open(audit)
    try:
        return store.images(), store.training_images(), store.train_path, store.config.matching.alpha, \
            store.n_neighbours
    finally:
        store.close()


def closest_pair(audit):
    """The generated image with the lowest stored score, and its training image. No other generated image scores
    lower on that training image: each scores at least its own best."""
    rows, training, root, _, _ = stored(audit)
    g = min(rows, key=lambda r: (float(r.best), r.id))
    return g, training[g.best_train], root / training[g.best_train].path


def test_a_generated_images_own_png_comes_back_first_with_a_perfect_score(finished_audit):
    rows, *_ = stored(finished_audit)
    picked = [rows[0], rows[-1]]  # a random image and a guided one
    answers = check_images(finished_audit, [finished_audit / r.path for r in picked])
    for r, a in zip(picked, answers):
        first = a.generated[0]
        assert (first.id, first.guide, first.gamma, first.path) == (r.id, r.guide, r.gamma, r.path)
        assert first.score == 0.0 and first.raw == 0.0 and first.band is BandName.HIGH
        assert a.generated[1].score > 0
        assert a.sha256 == r.sha256  # the stored PNG's bytes: the audit recorded the same hash


def test_a_training_image_finds_itself_and_the_generated_images_stored_against_it(finished_audit):
    g_star, t_star, t_file = closest_pair(finished_audit)
    rows, _, _, alpha, n = stored(finished_audit)
    (a,) = check_images(finished_audit, [t_file], top=len(rows))

    assert a.training[0].index == t_star.idx and a.training[0].path == t_star.path
    assert a.training[0].score == 0.0 and a.training[0].band is BandName.HIGH
    # Against the training images the picture is the query, calibrated as the matcher calibrates a generated image:
    # alpha times the mean of its n nearest training distances (its own 0 among them).
    assert a.normalizer == pytest.approx(alpha * np.mean([t.raw for t in a.training[:n]]), rel=1e-12)
    assert a.training[1].score == pytest.approx(a.training[1].raw / a.normalizer, rel=1e-12)
    assert a.generated[0].id == g_star.id and np.float32(a.generated[0].score) == np.float32(g_star.best)


def test_checking_a_training_file_gives_back_every_score_the_audit_stored_on_it(finished_audit):
    """A pair the gallery shows in a band is in that band when its training file is checked: each generated image is
    the query, as in the audit, scored under its own stored normaliser."""
    rows, training, root, *_ = stored(finished_audit)
    held = sorted({int(j) for r in rows for j in r.nn_idx})
    answers = check_images(finished_audit, [root / training[j].path for j in held], top=len(rows))
    compared = 0
    for j, a in zip(held, answers, strict=True):
        got = {m.id: m for m in a.generated}
        for r in rows:
            for hit in np.flatnonzero(r.nn_idx == j):
                m = got[r.id]
                # The store keeps nn_raw and nn_score as float32: the check's float64 rounds to the stored bits.
                assert np.float32(m.score) == r.nn_score[hit], (j, r.id)
                assert np.float32(m.raw) == r.nn_raw[hit] and m.normalizer == r.normalizer
                compared += 1
        assert [(m.score, m.id) for m in a.generated] == sorted((m.score, m.id) for m in a.generated)
    assert compared == sum(len(r.nn_idx) for r in rows)


def test_the_closest_generated_images_are_the_lowest_scores_across_batches(finished_audit):
    """The running top is kept by score while the stored PNGs are read a few at a time: the same as scoring all."""
    _, _, t_file = closest_pair(finished_audit)
    rows, *_ = stored(finished_audit)
    (everything,) = check_images(finished_audit, [t_file], top=len(rows))
    with Checker(finished_audit, batch=3) as checker:
        (a,) = ev.run_to_end(checker.answers([checker.read(t_file)], top=4))
    assert [(m.id, m.score) for m in a.generated] == [(m.id, m.score) for m in everything.generated[:4]]


def test_a_slightly_noised_copy_still_finds_its_generated_image_in_the_high_band(finished_audit, tmp_path):
    rows, *_ = stored(finished_audit)
    r = rows[len(rows) // 2]
    with Image.open(finished_audit / r.path) as img:
        arr = np.asarray(img).astype(int)
    noisy = np.clip(arr + np.random.default_rng(0).integers(-3, 4, arr.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    (a,) = check_images(finished_audit, [tmp_path / "noisy.png"])
    assert a.generated[0].id == r.id
    assert a.generated[0].score > 0 and a.generated[0].band is BandName.HIGH


def test_an_unrelated_flat_grey_picture_is_in_no_high_band(finished_audit, tmp_path):
    Image.new("L", (64, 64), 128).save(tmp_path / "grey.png")
    (a,) = check_images(finished_audit, [tmp_path / "grey.png"])
    assert a.generated and a.training
    assert all(m.band is not BandName.HIGH for m in a.generated + a.training)


def exif_rotated(arr, path):
    """The picture stored turned on its side, with the EXIF tag that tells a viewer to turn it upright."""
    img = Image.fromarray(arr).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to view: undoes ROTATE_90 (counter-clockwise)
    img.save(path, exif=exif)


@pytest.mark.parametrize("form", ["16-bit greyscale", "RGB", "EXIF-rotated"])
def test_a_picture_is_read_as_the_audit_read_its_training_images(finished_audit, tmp_path, form):
    """The same pixels in another file form are the same picture to the check, as they were to the audit."""
    rows, *_ = stored(finished_audit)
    r = rows[1]
    with Image.open(finished_audit / r.path) as img:
        arr = np.asarray(img)
    path = tmp_path / "picture.png"
    if form == "16-bit greyscale":
        Image.fromarray(arr.astype(np.uint16) * 257).save(path)
    elif form == "RGB":
        Image.fromarray(arr).convert("RGB").save(path)
    else:
        exif_rotated(arr, path)
    (a,) = check_images(finished_audit, [path])
    assert a.generated[0].id == r.id
    assert a.generated[0].score == 0.0 and a.generated[0].band is BandName.HIGH


def test_an_unreadable_picture_is_one_line_naming_it(finished_audit, tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    good = tmp_path / "good.png"
    Image.new("L", (8, 8), 3).save(good)
    good.write_bytes(good.read_bytes()[:30])  # truncated
    for bad in (tmp_path / "notes.png", good, tmp_path / "absent.png"):
        with pytest.raises(InputError) as e:
            check_images(finished_audit, [bad])
        assert str(bad) in str(e.value) and "\n" not in str(e.value)


def test_an_audit_without_stored_training_descriptors_computes_them_and_says_so(finished_audit, audit_copy,
                                                                                tmp_path):
    g_star, _, t_file = closest_pair(finished_audit)
    pictures = [finished_audit / g_star.path, t_file]
    with_cache = check_images(finished_audit, pictures)
    shutil.rmtree(audit_copy / "descriptors")
    events: list = []
    without = check_images(audit_copy, pictures, listener=events.append)
    assert [(m.index, m.score) for a in without for m in a.training] == \
        [(m.index, m.score) for a in with_cache for m in a.training]
    assert [(m.id, m.score) for a in without for m in a.generated] == \
        [(m.id, m.score) for a in with_cache for m in a.generated]
    assert any(isinstance(e, ev.Warning) and "computing them from" in e.message for e in events)
    assert not (audit_copy / "descriptors").exists()  # the audit is not changed

    with sqlite3.connect(audit_copy / "audit.sqlite") as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'train_path'", (str(tmp_path / "moved"),))
    with pytest.raises(InputError) as e:
        check_images(audit_copy, pictures)
    assert str(tmp_path / "moved") in str(e.value) and "training folder is gone" in str(e.value)


def test_a_descriptor_other_than_the_audits_is_refused(audit_copy):
    """Scores of another descriptor would not mean the audit's bands (a TorchScript file replaced since the audit)."""
    meta = audit_copy / "descriptors" / "train.json"
    d = json.loads(meta.read_text())
    d["descriptor"]["sha256"] = "0" * 64
    meta.write_text(json.dumps(d))
    rows, *_ = stored(audit_copy)
    with pytest.raises(InputError) as e:
        check_images(audit_copy, [audit_copy / rows[0].path])
    assert "training descriptors were made with" in str(e.value) and "0" * 64 in str(e.value)


def test_the_answer_streams_progress_over_every_generated_image(finished_audit):
    rows, *_ = stored(finished_audit)
    events: list = []
    with Checker(finished_audit, batch=4) as checker:
        answers = ev.run_to_end(checker.answers([checker.read(finished_audit / rows[0].path)], top=2),
                                  events.append)
    done = [e.done for e in events if isinstance(e, ev.Progress)]
    assert done == list(range(4, len(rows), 4)) + [len(rows)]
    assert len(answers[0].generated) == 2 and len(answers[0].training) == 2


# ----- the CLI ------------------------------------------------------------------------------------------------------
def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_the_closest_images_with_scores_and_bands(finished_audit, capsys):
    g_star, t_star, t_file = closest_pair(finished_audit)
    code, out, err = run_cli(capsys, "check", finished_audit, finished_audit / g_star.path, t_file, "--top", "3",
                             "--quiet")
    assert code == 0, err
    first_gen = [line for line in out.splitlines() if line.strip().startswith("1. image")]
    first_train = [line for line in out.splitlines() if line.strip().startswith("1. training")]
    assert f"image {g_star.id} " in first_gen[0] and "0.0000" in first_gen[0] and "band high" in first_gen[0]
    assert f"training #{t_star.idx} " in first_train[1] and "band high" in first_train[1]
    assert t_star.path in first_train[1]

    code, out, _ = run_cli(capsys, "check", finished_audit, t_file, "--json", "--quiet")
    d = json.loads(out)
    assert code == 0 and d["score"] == "nL2" and d["direction"] == "distance"
    (a,) = d["answers"]
    assert a["training"][0] == {**a["training"][0], "training_index": t_star.idx, "score": 0.0, "band": "high"}
    assert a["generated"][0]["image_id"] == g_star.id and len(a["generated"]) == 5


def test_cli_refuses_an_unreadable_picture_or_a_bad_audit_with_exit_2(finished_audit, tmp_path, capsys):
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, out, err = run_cli(capsys, "check", finished_audit, tmp_path / "x.png", "--quiet")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"error: {tmp_path / 'x.png'}: unreadable image (UnidentifiedImageError)"]
    code, _, err = run_cli(capsys, "check", tmp_path, tmp_path / "x.png")
    assert code == 2 and str(tmp_path) in err and "not an audit folder" in err


@pytest.mark.parametrize("device, problem", [("bogus", "'bogus' is not a device: give cpu, cuda or cuda:N"),
                                             ("cuda", "cuda was asked for but torch sees no GPU")])
def test_cli_refuses_a_device_it_cannot_use_in_one_line(finished_audit, capsys, monkeypatch, device, problem):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a machine with a GPU
    rows, *_ = stored(finished_audit)
    code, out, err = run_cli(capsys, "check", finished_audit, finished_audit / rows[0].path, "--device", device)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"error: --device: {problem}"]


def test_cli_refuses_an_export_folder_it_cannot_write_before_checking(finished_audit, tmp_path, capsys):
    rows, *_ = stored(finished_audit)
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    code, out, err = run_cli(capsys, "check", finished_audit, finished_audit / rows[0].path, "--export",
                             tmp_path / "notes.txt" / "evidence")
    # Nothing checked, nothing printed: the one line says why, with no progress before it.
    assert code == 2 and out == ""
    problem = "is a file, not a folder: the export cannot be written under it"
    assert err.strip().splitlines() == [f"error: {tmp_path / 'notes.txt'}: {problem}"]


def test_cli_export_is_an_evidence_folder_that_verify_checks(finished_audit, tiny_model, tmp_path, capsys):
    g_star, t_star, t_file = closest_pair(finished_audit)
    out = tmp_path / "evidence"
    code, _, err = run_cli(capsys, "check", finished_audit, t_file, "--top", "2", "--export", out, "--quiet")
    assert code == 0, err
    assert (out / "outside" / "01.png").read_bytes() == t_file.read_bytes()
    # 2 generated and 2 training matches: four rows, three to a page as in a pair export
    assert sorted(p.name for p in out.glob("grid*.png")) == ["grid-01.png", "grid-02.png"]
    assert [grid_rows(out / "grid-01.png"), grid_rows(out / "grid-02.png")] == [3, 1]
    assert (out / "README.txt").is_file() and (out / "pairs.csv").is_file() and (out / "check.csv").is_file()
    manifest = json.loads((out / MANIFEST).read_text())
    (picture,) = manifest["check"]["pictures"]
    assert picture["file"] == "outside/01.png" and picture["training"][0]["training_index"] == t_star.idx
    assert picture["generated"][0]["image_id"] == g_star.id
    assert [p["image_id"] for p in manifest["pairs"]] == [g["image_id"] for g in picture["generated"]]
    with Image.open(out / picture["training"][0]["file"]) as img, Image.open(t_file) as orig:
        assert np.array_equal(np.asarray(img), np.asarray(orig))

    assert run_cli(capsys, "verify", out)[0] == 0
    # Like any pair export: the model regenerates the exported generated images.
    report = verify_export(out, tiny_model)
    assert report.ok, report.problems
    assert sorted(i for i, _ in report.regenerated) == sorted(g["image_id"] for g in picture["generated"])

    with open(out / "outside" / "01.png", "ab") as f:
        f.write(b"\0")
    code, _, err = run_cli(capsys, "verify", out)
    assert code == 1 and f"{out / 'outside' / '01.png'}: changed since export" in err


class TinyEmbed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.proj = torch.nn.Linear(8 * 16, 16)

    def forward(self, x):
        return torch.nn.functional.normalize(self.proj(torch.relu(self.conv(x))[:, :, ::4, ::4].flatten(1)), dim=1)


def test_an_embedding_audit_scores_the_picture_by_cosine_as_it_stored_its_pairs(tiny_config, tmp_path):
    from side_engine.pipeline import AuditPipeline

    torch.manual_seed(0)
    embed = tmp_path / "embed.torchscript.pt"
    torch.jit.trace(TinyEmbed().eval(), torch.rand(2, 3, 16, 16)).save(str(embed))
    tiny_config.matching.descriptor = "torchscript"
    tiny_config.matching.path = str(embed)
    tiny_config.matching.resize = 16
    audit = tmp_path / "audit"
    pipeline = AuditPipeline.prepare(tiny_config, audit)
    list(pipeline.run())
    pipeline.store.close()

    rows, training, root, *_ = stored(audit)
    g = max(rows, key=lambda r: (float(r.nn_raw[0]), -r.id))  # the closest pair: the largest cosine
    t_file = root / training[g.best_train].path
    own, picture = check_images(audit, [audit / g.path, t_file])
    assert own.generated[0].id == g.id and own.generated[0].score == pytest.approx(1.0, abs=1e-5)
    assert own.normalizer == 1.0 and own.generated[0].band is BandName.HIGH
    assert picture.training[0].index == g.best_train and picture.training[0].score == pytest.approx(1.0, abs=1e-5)
    assert picture.generated[0].id == g.id
    assert picture.generated[0].score == pytest.approx(float(g.nn_score[0]), abs=1e-5)
    assert [m.score for m in picture.generated] == sorted((m.score for m in picture.generated), reverse=True)
