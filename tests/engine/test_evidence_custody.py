"""Who made an export and with which engine: a signed manifest.json that `side verify --trust` and OpenSSH check,
and the sampler revision that tells a changed file from an engine that samples differently."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from pypdf import PdfReader

from side_engine import provenance
from side_engine.cli import main
from side_engine.evidence import MANIFEST, export_evidence
from side_engine.evidence import verify as verify_mod
from side_engine.evidence.signing import SIGNATURE, keygen, load_private_key
from side_engine.evidence.verify import verify_export
from side_engine.store import AuditStore


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    return {name: (folder / name, keygen(folder / name, name)) for name in ("auditor", "stranger")}


@pytest.fixture(scope="module")
def signed(finished_audit, keys, tmp_path_factory):
    return export_evidence(finished_audit, tmp_path_factory.mktemp("signed") / "out", top=2,
                           sign_key=load_private_key(keys["auditor"][0]))


def copy(export, tmp_path):
    return shutil.copytree(export, tmp_path / "copy")


def test_a_signed_export_names_its_signer_and_verifies_against_the_trusted_key(signed, keys, capsys):
    path, auditor = keys["auditor"]
    assert main(["verify", str(signed), "--trust", f"{path}.pub"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"signed by {auditor.fingerprint}, the trusted key")
    assert main(["verify", str(signed)]) == 0
    assert "not checked against a trusted key" in capsys.readouterr().out
    readme = (signed / "README.txt").read_text(encoding="utf-8")
    assert auditor.fingerprint in readme and auditor.public_key in readme
    pdf = "".join(p.extract_text() for p in PdfReader(signed / "report.pdf").pages)
    assert auditor.fingerprint in pdf.replace("\n", "")
    body = json.loads((signed / MANIFEST).read_text(encoding="utf-8"))
    assert body["signed_by"] == {"public_key": auditor.public_key, "fingerprint": auditor.fingerprint}


def test_the_signature_is_checked_on_the_very_bytes_that_were_parsed(signed, keys, tmp_path, monkeypatch):
    """manifest.json is read once: a file swapped between a second read for the signature and the parse would have
    the signature vouch for bytes the check never looked at."""
    export = copy(signed, tmp_path)
    genuine = (export / MANIFEST).read_bytes()
    read = verify_mod._read_member
    reads = []

    def swapped_after_the_first_read(root, rel, *a, **k):
        if rel == MANIFEST:
            reads.append(rel)
            if len(reads) > 1:  # what a second read would find: other bytes
                return genuine + b" "
        return read(root, rel, *a, **k)

    monkeypatch.setattr(verify_mod, "_read_member", swapped_after_the_first_read)
    report = verify_export(export, trust=keys["auditor"][1])
    assert report.ok and report.trusted and reads == [MANIFEST]


def test_openssh_alone_checks_the_signature(signed, keys, tmp_path):
    if shutil.which("ssh-keygen") is None:
        pytest.skip("OpenSSH's ssh-keygen is not installed")
    path, _ = keys["auditor"]
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"auditor {(path.parent / (path.name + '.pub')).read_text()}")
    r = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "auditor", "-n", "side-evidence",
                        "-s", str(signed / SIGNATURE)], input=(signed / MANIFEST).read_bytes(), capture_output=True)
    r.stdout, r.stderr = r.stdout.decode(), r.stderr.decode()
    assert r.returncode == 0 and 'Good "side-evidence" signature for auditor' in r.stdout + r.stderr


def test_one_changed_byte_of_the_manifest_fails_the_signature(signed, tmp_path):
    export = copy(signed, tmp_path)
    data = bytearray((export / MANIFEST).read_bytes())
    at = data.index(b'"exported": "') + len(b'"exported": "')
    data[at] = ord("1") if data[at] != ord("1") else ord("2")
    (export / MANIFEST).write_bytes(bytes(data))
    problems = verify_export(export).problems
    why = "does not match manifest.json (changed since it was signed, or a forged signature)"
    assert f"{export / SIGNATURE}: {why}" in problems


def test_a_stranger_s_signature_fails_the_trusted_key(signed, keys, tmp_path, capsys):
    export = copy(signed, tmp_path)
    stranger, auditor = keys["stranger"][1], keys["auditor"][1]
    assert main(["verify", str(export), "--trust", f"{keys['stranger'][0]}.pub"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"FAILED {export / SIGNATURE}: signed by {auditor.fingerprint}, not by the trusted key {stranger.fingerprint}"]
    # A stranger re-signing the same manifest is caught even without --trust: the manifest names the auditor.
    from side_engine.evidence.signing import sign

    (export / SIGNATURE).write_text(sign((export / MANIFEST).read_bytes(), load_private_key(keys["stranger"][0])))
    assert verify_export(export).problems == [
        f"{export / SIGNATURE}: signed by {stranger.fingerprint}, not the signer manifest.json names"]


def test_an_unsigned_export_verifies_as_unsigned(finished_audit, keys, tmp_path, capsys):
    export = export_evidence(finished_audit, tmp_path / "plain", top=1)
    assert not (export / SIGNATURE).exists()
    assert main(["verify", str(export)]) == 0
    assert capsys.readouterr().out.strip().endswith("; not signed")
    assert main(["verify", str(export), "--trust", f"{keys['auditor'][0]}.pub"]) == 1
    assert "the export is not signed, and --trust asks for a signature" in capsys.readouterr().err
    assert "Not signed" in (export / "README.txt").read_text(encoding="utf-8")


def test_a_bad_key_is_one_line(tmp_path, finished_audit, capsys):
    bad = tmp_path / "key"
    bad.write_text("not a key")
    assert main(["export", str(finished_audit), "--out", str(tmp_path / "x"), "--sign", str(bad)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {bad}: not a private key file (OpenSSH or PEM)"]
    assert main(["verify", str(tmp_path), "--trust", str(bad)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {bad}: not an Ed25519 public key in OpenSSH's form (ssh-ed25519 AAAA...)"]


def test_an_audit_records_what_made_it(finished_audit):
    store = AuditStore.open(finished_audit)
    assert store.made_by == provenance.engine()
    store.close()


def test_another_sampler_revision_is_said_to_be_the_engine_not_tampering(signed, tiny_model, monkeypatch):
    made = json.loads((signed / MANIFEST).read_text(encoding="utf-8"))["made_by"]
    assert made["sampler_revision"] == provenance.SAMPLER_REVISION
    assert verify_export(signed, tiny_model).ok  # the same engine regenerates it
    monkeypatch.setattr(verify_mod, "SAMPLER_REVISION", provenance.SAMPLER_REVISION + 1)
    report = verify_export(signed, tiny_model)
    assert report.regenerated == []
    said = (f"{signed / MANIFEST}: images made with sampler revision {made['sampler_revision']} (SIDE Inspector "
            f"{made['engine_version']}); this engine ({made['engine_version']}) samples with revision "
            f"{provenance.SAMPLER_REVISION + 1}, whose pixels differ by design, so nothing was regenerated. Not a sign "
            f"of tampering: the files' hashes are checked above. To regenerate, install "
            f"side-inspector=={made['engine_version']}")
    assert report.problems == [said]
