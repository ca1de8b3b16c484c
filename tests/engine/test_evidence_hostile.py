"""Evidence that arrives from elsewhere (issue #13): `side verify` on a folder someone else made, and reports
whose notes and names were written to mislead."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from side_engine import cli
from side_engine.errors import InputError
from side_engine.evidence import MANIFEST, SUMS, export_evidence, manifest_bytes, sums_bytes
from side_engine.evidence import verify as verify_mod
from side_engine.evidence.verify import verify_export
from side_engine.store import AuditStore


@pytest.fixture(scope="module")
def exported(finished_audit, tmp_path_factory):
    return export_evidence(finished_audit, tmp_path_factory.mktemp("hostile") / "out", top=2)


def _copy(exported, tmp_path, name="copy"):
    return shutil.copytree(exported, tmp_path / name, symlinks=True)


def _body(export):
    body = json.loads((export / MANIFEST).read_text(encoding="utf-8"))
    del body["manifest_sha256"]
    return body


def _forge(export, body):
    """Rewrite manifest.json and SHA256SUMS consistently, as a forger would."""
    data = manifest_bytes(body)
    (export / MANIFEST).write_bytes(data)
    (export / SUMS).write_bytes(sums_bytes(body["files"], hashlib.sha256(data).hexdigest()))


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("entry", ["../outside.txt", "generated/../../outside.txt", "/ABS/outside.txt"])
def test_files_outside_the_export_fail_naming_the_entry(exported, tmp_path, entry):
    export = _copy(exported, tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("not part of it")
    entry = entry.replace("/ABS", str(tmp_path))
    body = _body(export)
    body["files"][entry] = _sha(outside)
    _forge(export, body)
    report = verify_export(export)
    assert len(report.problems) == 1, report.problems
    assert report.problems[0].startswith(f"{export / entry}: listed in manifest.json but ")
    assert "inside the export" in report.problems[0]


def test_a_pair_pointing_outside_is_never_opened(exported, tiny_model, tmp_path):
    """The pair's generated_file is read for the pixel comparison: it must be one of the checked files."""
    export = _copy(exported, tmp_path)
    body = _body(export)
    real = body["pairs"][0]["generated_file"]
    shutil.copy(export / real, tmp_path / "elsewhere.png")
    body["pairs"][0]["generated_file"] = str(tmp_path / "elsewhere.png")
    _forge(export, body)
    report = verify_export(export, tiny_model)
    assert report.problems == [(f"{tmp_path / 'elsewhere.png'}: pair 1's generated image is not among the "
                               "export's files")]


def test_symlinks_are_not_followed(exported, tmp_path, capsys):
    export = _copy(exported, tmp_path)
    rel = _body(export)["pairs"][0]["training_file"]
    shutil.copy(export / rel, tmp_path / "outside.png")  # same bytes: only the link gives it away
    (export / rel).unlink()
    (export / rel).symlink_to(tmp_path / "outside.png")
    report = verify_export(export)
    assert report.problems == [f"{export / rel}: a symbolic link (an export holds none; not followed)"]

    linked_dir = _copy(exported, tmp_path, "dir")
    shutil.move(linked_dir / "training", tmp_path / "training-outside")
    (linked_dir / "training").symlink_to(tmp_path / "training-outside")
    assert cli.main(["verify", str(linked_dir)]) == 1
    err = capsys.readouterr().err
    assert f"{linked_dir / 'training'}: a symbolic link" in err

    manifest_link = _copy(exported, tmp_path, "manifest")
    shutil.move(manifest_link / MANIFEST, tmp_path / "m.json")
    (manifest_link / MANIFEST).symlink_to(tmp_path / "m.json")
    assert verify_export(manifest_link).problems == [
        f"{manifest_link / MANIFEST}: a symbolic link (an export holds none; not followed)"]


def test_duplicated_entries_are_named(exported, tmp_path):
    export = _copy(exported, tmp_path)
    data = (export / MANIFEST).read_text(encoding="utf-8")
    first = next(iter(_body(export)["files"]))
    line = next(x for x in data.splitlines() if x.strip().startswith(json.dumps(first)))
    (export / MANIFEST).write_text(data.replace(line, line.rstrip(",") + ",\n" + line, 1), encoding="utf-8")
    assert verify_export(export).problems == [f"{export / MANIFEST}: names {first!r} twice (changed or forged)"]

    sums = _copy(exported, tmp_path, "sums")
    lines = (sums / SUMS).read_text().splitlines(keepends=True)
    (sums / SUMS).write_text("".join(lines[:2] + lines[1:2] + lines[2:]))
    entry = lines[1].split("  ", 1)[1].strip()
    assert verify_export(sums).problems == [
        f"{sums / SUMS}: changed since export (does not match manifest.json: line 3 repeats {entry!r})"]

    outside = _copy(exported, tmp_path, "sums-outside")
    with open(outside / SUMS, "a") as f:
        f.write(f"{'0' * 64}  ../../etc/passwd\n")
    assert verify_export(outside).problems == [
        (f"{outside / SUMS}: changed since export (does not match manifest.json: line {len(lines) + 1} "
        "('../../etc/passwd') is not what manifest.json lists)")]


def test_enormous_files_are_refused_unread(exported, tmp_path):
    export = _copy(exported, tmp_path)
    with open(export / "report.pdf", "r+b") as f:  # sparse: no disk used, and never read
        f.truncate(verify_mod.MAX_FILE_BYTES + 1)
    report = verify_export(export)
    assert report.problems == [(f"{export / 'report.pdf'}: {verify_mod.MAX_FILE_BYTES + 1} bytes, more than any "
                               f"file an export holds (limit {verify_mod.MAX_FILE_BYTES}): not read")]

    manifest = _copy(exported, tmp_path, "manifest")
    with open(manifest / MANIFEST, "r+b") as f:
        f.truncate(verify_mod.MAX_MANIFEST_BYTES + 1)
    assert verify_export(manifest).problems[0].startswith(f"{manifest / MANIFEST}: {verify_mod.MAX_MANIFEST_BYTES + 1}"
                                                          " bytes, more than any file")

    sums = _copy(exported, tmp_path, "sums")
    with open(sums / SUMS, "r+b") as f:
        f.truncate(1 << 40)
    assert verify_export(sums).problems[0].startswith(f"{sums / SUMS}: {1 << 40} bytes, more than any file")


def test_names_that_are_not_utf8_are_named_printably(exported, tmp_path, capsys):
    export = _copy(exported, tmp_path)
    odd = os.fsencode(export / "generated") + b"/\xff\xfe\nx.png"
    with open(odd, "wb") as f:
        f.write(b"x")
    report = verify_export(export)
    assert report.problems == [f"{export}/generated/\\xff\\xfe\\nx.png: name is not valid UTF-8, not part of an export"]
    assert cli.main(["verify", str(export)]) == 1
    assert capsys.readouterr().err.count("\n") == 1  # one line per finding

    # A manifest naming a lone surrogate (JSON's \udcff) cannot be canonical UTF-8.
    forged = _copy(exported, tmp_path, "forged")
    text = (forged / MANIFEST).read_text(encoding="utf-8").replace('"files": {', '"files": {\n    "\\udcff": "00",', 1)
    (forged / MANIFEST).write_text(text, encoding="utf-8")
    assert verify_export(forged).problems == [(f"{forged / MANIFEST}: not a valid evidence manifest (changed or "
                                              "damaged)")]


def _break_header(path, length):
    data = bytearray(path.read_bytes())
    data[:8] = length.to_bytes(8, "little")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("length", [1 << 40, 200_000_000])
def test_oversized_safetensors_header_in_the_model_is_one_line(exported, tiny_model, tmp_path, capsys, length):
    model = shutil.copytree(tiny_model, tmp_path / "model")
    weights = model / "unet" / "diffusion_pytorch_model.safetensors"
    _break_header(weights, length)
    with pytest.raises(InputError) as e:
        verify_export(exported, model)
    assert str(e.value).startswith(f"{weights}: safetensors header of {length} bytes")
    assert cli.main(["verify", str(exported), "--model", str(model)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_malformed_classifier_header_in_the_export_is_one_line(exported, tiny_model, tmp_path):
    export = _copy(exported, tmp_path)
    path = export / "classifiers" / "td.safetensors"
    data = bytearray(path.read_bytes())
    n = int.from_bytes(data[:8], "little")
    data[8:8 + n] = b"[" + b" " * (n - 1)  # same length, not a JSON object
    path.write_bytes(bytes(data))
    body = _body(export)
    body["files"]["classifiers/td.safetensors"] = _sha(path)
    _forge(export, body)
    assert verify_export(export).ok
    report = verify_export(export, tiny_model)
    assert report.problems == [f"{path}: safetensors header is not valid JSON: refused"]


def test_regeneration_never_unpickles(exported, tiny_model, monkeypatch):
    import pickle

    import torch

    def refuse(*a, **k):
        raise AssertionError("pickle loaded")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch.jit, "load", refuse)
    report = verify_export(exported, tiny_model)
    assert report.ok, report.problems


HOSTILE = 'x<script>alert(1)</script><img src=x onerror=alert(2)>"\'\n2nd line \u202egpj.exe'
FOLDER = "au<script>alert(3)<img src=y onerror=alert(4)>'\"\u202efdp.exe"


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_hostile_notes_and_names_are_shown_literally(audit_copy, tmp_path):
    from pypdf import PdfReader

    audit = audit_copy.rename(audit_copy.with_name(FOLDER))
    store = AuditStore.open(audit)
    image_id = store.images()[0].id
    store.set_verdict(image_id, "copy", HOSTILE)
    store.close()
    out = export_evidence(audit, tmp_path / "ev", verdict="copy")
    assert verify_export(out).ok

    page = (out / "report.html").read_text(encoding="utf-8")
    assert "\u202e" not in page  # the override is shown as its code point, not obeyed
    parsed = _Tags()
    parsed.feed(page)
    assert not [t for t, _ in parsed.tags if t == "script"]
    assert not [a for _, a in parsed.tags if any(k.startswith("on") for k in a)]
    text = "".join(parsed.text)
    assert 'x<script>alert(1)</script><img src=x onerror=alert(2)>"\'' in text
    assert "2nd line [U+202E]gpj.exe" in text
    assert FOLDER.replace("\u202e", "[U+202E]") in text
    assert "<br>2nd line" in page  # the note's line break is kept

    pdf = "".join(p.extract_text() for p in PdfReader(out / "report.pdf").pages)
    assert 'x<script>alert(1)</script><img src=x onerror=alert(2)>"\'' in pdf
    assert "[U+202E]gpj.exe" in pdf and "[U+202E]fdp.exe" in pdf and "\u202e" not in pdf

    assert json.loads((out / MANIFEST).read_text(encoding="utf-8"))["pairs"][0]["note"] == HOSTILE


@pytest.mark.parametrize("note", ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_csv_text_never_becomes_a_formula(audit_copy, tmp_path, note):
    store = AuditStore.open(audit_copy)
    store.set_verdict(store.images()[0].id, "copy", note)
    store.close()
    out = export_evidence(audit_copy, tmp_path / "ev", verdict="copy")
    with open(out / "pairs.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["note"] == "'" + note
    assert all(not v.startswith(("=", "+", "@", "\t", "\r")) for r in rows for v in r.values())


def test_numbers_stay_numbers_in_csv():
    from side_engine.evidence.manifest import csv_cell

    assert csv_cell(-0.25) == -0.25 and csv_cell(-3) == -3 and csv_cell("-3") == "'-3"
    assert csv_cell("plain") == "plain" and csv_cell("") == "" and csv_cell(None) is None


def _rendered(chromium: str, page, profile) -> str:
    """The page's DOM after headless Chromium has loaded it and run whatever scripts it would run."""
    r = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", "--virtual-time-budget=2000", "--dump-dom", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


RUNS = "<script>document.body.dataset.ran='script'</script><img src=x onerror=\"document.body.dataset.ran='img'\">"


def test_report_html_runs_no_script_in_a_browser(audit_copy, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium is not installed (.ci/run installs Debian's chromium)")
    store = AuditStore.open(audit_copy)
    store.set_verdict(store.images()[0].id, "copy", RUNS)
    store.close()
    out = export_evidence(audit_copy, tmp_path / "ev", verdict="copy")
    # The same text pasted raw into a page does run: the browser would show it if the report let it through.
    control = tmp_path / "control.html"
    control.write_text(f"<!DOCTYPE html><html><body><p>{RUNS}</p></body></html>", encoding="utf-8")
    assert 'data-ran="' in _rendered(chromium, control, tmp_path / "profile")

    dom = _rendered(chromium, out / "report.html", tmp_path / "profile")
    assert "data-ran" not in dom
    assert RUNS.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in dom  # shown as text
