"""The headless CLI: bad input gets one line naming the file and exit code 2, and leaves no audit behind."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w

from side_engine.cli import format_report, main


def write_config(path: Path, cfg) -> Path:
    path.write_text(tomli_w.dumps(cfg.to_dict()))
    return path


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def expect_bad_input(capsys, tmp_path, cfg, needle: str):
    out = tmp_path / "audit"
    code, _, err = run_cli(capsys, "run", write_config(tmp_path / "c.toml", cfg), "--out", out)
    assert code == 2
    line = error_line(err)
    assert needle in line, line
    assert not out.exists()  # nothing half-written
    return line


def test_missing_model_folder(capsys, tmp_path, tiny_config):
    tiny_config.model.path = str(tmp_path / "nowhere")
    line = expect_bad_input(capsys, tmp_path, tiny_config, "model folder does not exist")
    assert str(tmp_path / "nowhere") in line


def test_pickle_checkpoint_is_refused_with_how_to_convert(capsys, tmp_path, tiny_config, tiny_model):
    model = tmp_path / "pickled"
    shutil.copytree(tiny_model, model)
    st = model / "unet" / "diffusion_pytorch_model.safetensors"
    st.rename(st.with_suffix(".bin"))
    tiny_config.model.path = str(model)
    line = expect_bad_input(capsys, tmp_path, tiny_config, "pickle checkpoint")
    assert "diffusion_pytorch_model.bin" in line and "safe_serialization=True" in line


def test_conditional_unet_is_refused(capsys, tmp_path, tiny_config, tiny_model):
    model = tmp_path / "cond"
    shutil.copytree(tiny_model, model)
    index = json.loads((model / "model_index.json").read_text())
    index["unet"] = ["diffusers", "UNet2DConditionModel"]
    (model / "model_index.json").write_text(json.dumps(index))
    tiny_config.model.path = str(model)
    expect_bad_input(capsys, tmp_path, tiny_config, "UNet2DConditionModel")


def test_class_conditional_unet2d_is_refused(capsys, tmp_path, tiny_config, tiny_model):
    model = tmp_path / "classcond"
    shutil.copytree(tiny_model, model)
    cfg = json.loads((model / "unet" / "config.json").read_text())
    cfg["num_class_embeds"] = 10
    (model / "unet" / "config.json").write_text(json.dumps(cfg))
    tiny_config.model.path = str(model)
    expect_bad_input(capsys, tmp_path, tiny_config, "class-conditional")


def test_empty_training_folder(capsys, tmp_path, tiny_config):
    (tmp_path / "empty").mkdir()
    tiny_config.data.train = str(tmp_path / "empty")
    expect_bad_input(capsys, tmp_path, tiny_config, "no readable images")


def test_corrupt_training_folder(capsys, tmp_path, tiny_config):
    bad = tmp_path / "corrupt" / "a"
    bad.mkdir(parents=True)
    (bad / "x.png").write_bytes(b"not a png")
    (bad / "y.jpg").write_bytes(b"\xff\xd8 broken")
    tiny_config.data.train = str(tmp_path / "corrupt")
    expect_bad_input(capsys, tmp_path, tiny_config, "no readable images")


def test_a_few_bad_files_are_named_skipped_and_counted(capsys, tmp_path, tiny_config, tiny_train):
    train = tmp_path / "train"
    shutil.copytree(tiny_train, train)
    (train / "class_0" / "broken.png").write_bytes(b"garbage")
    (train / "class_1" / "notes.txt").write_text("hello")
    tiny_config.data.train = str(train)
    tiny_config.extraction.gammas = [0.0]
    code, _, err = run_cli(capsys, "run", write_config(tmp_path / "c.toml", tiny_config), "--out", tmp_path / "a",
                           "--quiet")
    assert code == 0
    assert "class_0/broken.png: unreadable image" in err and "class_1/notes.txt: not an image file" in err
    from side_engine.store import AuditStore

    assert len(AuditStore.open(tmp_path / "a").skipped) == 2


def test_user_classifier_with_mismatched_channels(capsys, tmp_path, tiny_config):
    from side_engine.method.classifier import ResNetClassifier, save_classifier

    path = tmp_path / "rgb.safetensors"
    save_classifier(ResNetClassifier(3, 3, width=8, blocks=[1]), path)
    tiny_config.labels.classifier = str(path)
    line = expect_bad_input(capsys, tmp_path, tiny_config, "channels")
    assert "rgb.safetensors" in line


def test_flat_folder_with_classifier_source_points_to_clusters(capsys, tmp_path, tiny_config, tiny_train):
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in Path(tiny_train).rglob("*.png"):
        shutil.copy(p, flat / f"{p.parent.name}_{p.name}")
    tiny_config.data.train = str(flat)
    expect_bad_input(capsys, tmp_path, tiny_config, "labels.source = 'clusters'")


@pytest.mark.parametrize("text, needle", [
    ("[model\npath = 1", "not valid TOML"),
    ("[model]\npath = 'x'\n[data]\ntrain = 'y'\n[extraction]\ngamas = [1]\n", "unknown key 'gamas'"),
    ("[model]\npath = 'x'\n[data]\ntrain = 'y'\n[extraction]\nn_per_gamma = 'many'\n", "must be a whole number"),
    (("[model]\npath = 'x'\n[data]\ntrain = 'y'\n[bands]\nlow = [0.4, 0.55]\nmid = [0.5, 0.6]\nhigh = [0.6, 1.0]\n"
      "[matching]\ndescriptor = 'sscd'\npath = 'sscd.pt'\n"), "overlap"),
    ("[data]\ntrain = 'y'\n", "model.path is required"),
])
def test_malformed_config(capsys, tmp_path, text, needle):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    code, _, err = run_cli(capsys, "run", cfg, "--out", tmp_path / "audit")
    assert code == 2
    line = error_line(err)
    assert needle in line and str(cfg) in line
    assert not (tmp_path / "audit").exists()


def test_existing_audit_folder_is_not_overwritten(capsys, tmp_path, tiny_config, finished_audit):
    code, _, err = run_cli(capsys, "run", write_config(tmp_path / "c.toml", tiny_config), "--out", finished_audit)
    assert code == 2 and "--resume" in error_line(err)


def test_report_json_shape(capsys, finished_audit):
    code, out, _ = run_cli(capsys, "report", finished_audit, "--json")
    assert code == 0
    d = json.loads(out)
    assert d["descriptor"] == "pixels"
    assert d["bands"] == {"low": [1.6, 1.8], "mid": [1.4, 1.6], "high": [0.0, 1.4]}
    assert [(r["guide"], r["gamma"], r["n"]) for r in d["results"]] == [("none", 0.0, 6), ("td", 5.0, 6),
                                                                         ("ti", 5.0, 6)]
    for r in d["results"]:
        assert set(r["ams"]) == set(r["ums"]) == {"low", "mid", "high"}
        assert isinstance(r["percentile"], float)
        for m in ("ams", "ums"):
            assert set(r[m + "_ci"]) == {"low", "mid", "high"}
            assert all(lo <= r[m][b] <= hi for b, (lo, hi) in r[m + "_ci"].items())
    assert d["target_chance"] == pytest.approx(1 / 3)  # the tiny training set has 3 classes
    random, *guided = d["results"]
    assert random["target_rate"] is None and random["vs_random"] is None
    for r in guided:
        assert 0 <= r["target_rate"] <= 1
        v = r["vs_random"]
        assert v["n"] == 6
        for m in ("ams", "ums"):
            assert set(v[m]) == {"low", "mid", "high", "all"}
            for c in v[m].values():
                assert set(c) == {"ratio", "p", "p_bonferroni", "guided", "random"}
                assert 0 < c["p"] <= c["p_bonferroni"] <= 1  # one gamma per guide: the same p


def test_report_text_shows_intervals_and_the_comparison_with_random_within_120_columns(capsys, finished_audit):
    code, out, _ = run_cli(capsys, "report", finished_audit)
    assert code == 0
    assert "AMS/UMS high %" in out and "on target" in out
    assert "95% intervals" in out and "vs Random" in out and "McNemar" in out and "sign-flip" in out
    assert max(len(line) for line in out.splitlines()) <= 120


def test_resume_of_a_complete_audit_adds_nothing(capsys, audit_copy):
    code, _, _ = run_cli(capsys, "run", "--resume", audit_copy, "--quiet")
    assert code == 0
    from side_engine.store import AuditStore

    assert AuditStore.open(audit_copy).image_count() == 18


def test_a_second_process_cannot_run_an_audit_that_one_is_running(audit_copy):
    from side_engine.pipeline import AuditPipeline

    def resume():
        return subprocess.run([sys.executable, "-m", "side_engine", "run", "--resume", str(audit_copy), "--quiet"],
                              capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})

    running = AuditPipeline.reopen(audit_copy)
    try:
        proc = resume()
    finally:
        running.store.close()
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {audit_copy.resolve()}: another run is writing this audit; let it finish or cancel it first"]
    assert resume().returncode == 0  # the claim ends with the run that held it


def test_exit_code_2_from_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "side_engine", "report", str(tmp_path / "none")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'none'}: audit folder does not exist"]


def test_an_audit_from_the_engine_before_the_guidance_fix_reads_but_does_not_resume(audit_copy, capsys):
    import sqlite3

    with sqlite3.connect(audit_copy / "audit.sqlite") as db:  # what schema 1 looked like: no on_target column
        db.execute("ALTER TABLE images DROP COLUMN on_target")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        # nor did it record what made it
        db.execute("DELETE FROM meta WHERE key IN ('sampler_revision', 'torch_version', 'diffusers_version')")
    assert main(["report", str(audit_copy), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["results"] and all(r["target_rate"] is None for r in d["results"])
    assert main(["run", "--resume", str(audit_copy), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(audit_copy) in err and "cannot be resumed" in err


@pytest.mark.parametrize(("descriptor", "bands", "line"), [
    # the default nL2 bands: none reaches the top of the range (2), so every band is half-open
    ("pixels", {"low": [1.6, 1.8], "mid": [1.4, 1.6], "high": [0.0, 1.4]},
     "bands low [1.6, 1.8)  mid [1.4, 1.6)  high [0, 1.4)"),
    # a custom nL2 band ending at 1.0 is half-open (a guess from the value alone closed it); one ending at 2 is closed
    ("pixels", {"low": [1.0, 2.0], "mid": [0.5, 1.0], "high": [0.0, 0.5]},
     "bands low [1, 2]  mid [0.5, 1)  high [0, 0.5)"),
    # cosine: the band reaching 1 includes it
    ("sscd", {"low": [0.4, 0.5], "mid": [0.5, 0.6], "high": [0.6, 1.0]},
     "bands low [0.4, 0.5)  mid [0.5, 0.6)  high [0.6, 1]"),
])
def test_the_report_closes_exactly_the_band_that_includes_its_upper_edge(descriptor, bands, line):
    text = format_report({"descriptor": descriptor, "bands": bands, "target_chance": None, "results": []})
    assert text.splitlines()[0].endswith(line)
