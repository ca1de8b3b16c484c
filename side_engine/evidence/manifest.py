"""The export's records for machines and for a reader without SIDE Inspector: manifest.json (every pair's
provenance and the SHA-256 of every other file), SHA256SUMS, pairs.csv and README.txt."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from ..config import AuditConfig
from ..dataset import sha256_file
from ..store import FileRecord
from .context import ExportContext
from .selection import Pair, selection_text
from .text import made_with, pairs_word

FORMAT = "side-evidence/2"  # 2: made_by and signed_by
READABLE_FORMATS = ("side-evidence/1", FORMAT)
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
README = "README.txt"
CSV_EXTRA = ("ddim_steps", "eta", "dtype", "audit_seed", "model_weights_sha256")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_bytes(body: dict) -> bytes:
    """The manifest as written: canonical JSON carrying the SHA-256 of itself without that one field, so that
    any changed byte in manifest.json is caught and blamed on manifest.json itself."""
    dump = lambda d: (json.dumps(d, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()  # noqa: E731
    return dump({**body, "manifest_sha256": sha256_bytes(dump(body))})


def sums_bytes(files: dict[str, str], manifest_sha256: str) -> bytes:
    """SHA256SUMS in `sha256sum -c` format: every file but itself, manifest.json included."""
    entries = sorted({**files, MANIFEST: manifest_sha256}.items())
    return "".join(f"{h}  {p}\n" for p, h in entries).encode()


def sampler(cfg: AuditConfig) -> dict:
    e = cfg.extraction
    return {"scheduler": "DDIM", "steps": e.steps, "eta": e.eta, "dtype": cfg.runtime.dtype,
            "device": cfg.runtime.device, "audit_seed": e.seed, "labels": e.labels, "batch": e.batch,
            "n_per_gamma": e.n_per_gamma,
            "guidance": "eps - sqrt(1 - abar_t) * gamma * grad log softmax(f(x_t[, t]))[label]"}


def weights_sha(model_files: tuple[FileRecord, ...]) -> str:
    return ";".join(f"{r.path}={r.sha256}" for r in model_files if r.path.endswith(".safetensors"))


def pair_dict(p: Pair, ctx: ExportContext) -> dict:
    r = p.row
    return {
        "rank": p.rank, "image_id": r.id, "guide": r.guide, "gamma": r.gamma, "label": r.label,
        "label_name": p.label_name, "index": r.idx, "seed": r.seed,
        "score": p.score, "score_unit": ctx.unit, "band": p.band or "", "raw_score": p.raw,
        "raw_score_name": ctx.raw_name, "gu_ratio": r.gu,
        "generated_file": p.gen_file, "generated_sha256": r.sha256,
        "training_index": p.train_index, "neighbour": p.neighbour + 1, "training_file": p.train_file,
        "training_source": p.train_source,
        "training_sha256": p.train_sha256,
        "classifier_file": f"classifiers/{p.classifier}.safetensors" if p.classifier else "",
        "classifier_sha256": ctx.classifiers[p.classifier] if p.classifier else "",
        "verdict": p.verdict or "", "note": p.note,
        "neighbours": [{"training_index": int(i), "score": float(s)}
                       for i, s in zip(r.nn_idx, r.nn_score, strict=True)],
    }


# A cell starting with one of these is a formula to a spreadsheet program (= + - @; tab and carriage return too,
# by OWASP's CSV-injection advice): text cells that do get a leading apostrophe, which spreadsheets show as text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A value as pairs.csv writes it. Only text is guarded: numbers (a negative score, a gamma) are written by the
    csv module as numbers from Python's int and float, never from text, so "-0.25" stays a number to a spreadsheet
    while a note "-2+3" or "=HYPERLINK(...)" becomes "'-2+3" and reads as text. manifest.json keeps the exact text."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def write_csv(path: Path, ctx: ExportContext) -> None:
    pairs = [pair_dict(p, ctx) for p in ctx.pairs]
    cols = [k for k in pairs[0] if k != "neighbours"]
    s, weights = sampler(ctx.config), weights_sha(ctx.model_files)
    # With a byte-order mark, spreadsheet programs read the file as UTF-8 (accented and CJK notes intact).
    with open(path, "w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f)
        w.writerow(cols + list(CSV_EXTRA))
        for d in pairs:
            w.writerow([csv_cell(v) for v in
                        [d[k] for k in cols] + [s["steps"], s["eta"], s["dtype"], s["audit_seed"], weights]])


def write_readme(path: Path, ctx: ExportContext, grids: list[str]) -> None:
    signed = (f"Signed by the key {ctx.signer.fingerprint}:\n  {ctx.signer.public_key}\n"
              "manifest.json.sig is its signature of manifest.json (OpenSSH's format, namespace side-evidence).\n"
              "Check it against the key you trust:\n"
              "  side verify THIS_FOLDER --trust KEY.pub\n"
              "or with OpenSSH alone, KEY.pub's line in a file allowed_signers as `auditor ssh-ed25519 AAAA...`:\n"
              "  ssh-keygen -Y verify -f allowed_signers -I auditor -n side-evidence -s manifest.json.sig "
              "< manifest.json\n"
              "A good signature proves that the key's holder exported this folder; not that the model audited is the\n"
              "one deployed." if ctx.signer else
              "Not signed: the SHA-256 values show that nothing changed since export, not who exported it.\n"
              "An export is signed with `side export ... --sign KEY`.")
    path.write_text(README_TEXT.format(
        signed=signed, made_with=made_with(ctx.made_by),
        title=ctx.title, date=ctx.date, version=ctx.version, n=pairs_word(len(ctx.pairs)),
        selection=selection_text(ctx.selection), grids=grids[0] if len(grids) == 1 else f"{grids[0]} ..."),
        encoding="utf-8")


def write_manifest(folder: Path, ctx: ExportContext, extra: dict | None = None) -> bytes:
    """manifest.json and SHA256SUMS, over every file already in folder: written last. Returns manifest.json's
    bytes (what a signature signs). extra: sections of an export of another kind (a check's "check"), beside the
    pairs."""
    cfg = ctx.config
    body = {
        "format": FORMAT, "exported": ctx.date, "engine_version": ctx.version, "title": ctx.title,
        "made_by": ctx.made_by,
        "signed_by": None if ctx.signer is None else {"public_key": ctx.signer.public_key,
                                                      "fingerprint": ctx.signer.fingerprint},
        "audit": {"name": cfg.name, "folder": str(ctx.audit_dir), "created": ctx.created,
                  "engine_version": ctx.audit_engine_version},
        "model": {"folder": ctx.model_folder, "files": [{"path": r.path, "sha256": r.sha256} for r in ctx.model_files]},
        "training": {"folder": str(ctx.train_folder), "n_images": ctx.n_train,
                     "manifest_sha256": ctx.training_manifest_sha256},
        "descriptor": ctx.descriptor, "score": ctx.unit, "direction": ctx.bands.direction,
        "bands": {b.name: [b.lo, b.hi] for b in ctx.bands.all()}, "bands_overridden_at_export": ctx.bands_overridden,
        "labels_source": cfg.labels.source, "sampler": sampler(cfg),
        "classifiers": {k: {"file": f"classifiers/{k}.safetensors", "sha256": h} for k, h in ctx.classifiers.items()},
        "selection": ctx.selection, "results": [r.as_json() for r in ctx.results],
        "pairs": [pair_dict(p, ctx) for p in ctx.pairs],
        **(extra or {}),
        "files": {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()},
    }
    data = manifest_bytes(body)
    (folder / MANIFEST).write_bytes(data)
    (folder / SUMS).write_bytes(sums_bytes(body["files"], sha256_bytes(data)))
    return data


README_TEXT = """SIDE Inspector evidence export
==============================

{title}
Exported {date} by SIDE Inspector {version}; {n} selected ({selection}).

What is here
  report.pdf, report.html   the same report for print and for a browser (the HTML is one self-contained file)
  {grids:<25} each row: generated image | nearest training image | their difference (x4, white = equal)
  generated/                the generated images, lossless PNG, exactly as the audit stored them
  training/                 the pairs' training images, byte for byte as they were in the training folder
  pairs.csv                 one line per pair: scores, band, gamma, label, seed, files and SHA-256
  manifest.json             everything above plus the sampler settings and the SHA-256 of every other file
  classifiers/, audit.toml  what it takes to regenerate the generated images (with the model)
  SHA256SUMS                the same hashes in the format of `sha256sum -c`
  manifest.json.sig         a signed export's signature of manifest.json (see "Who made it")

How to verify
  1. Integrity, with nothing but coreutils:   sha256sum -c SHA256SUMS
     (also run `side verify` below: it also catches extra files and edits to SHA256SUMS itself)
  2. Integrity with SIDE Inspector:           side verify THIS_FOLDER
     re-hashes every file; any changed, missing or extra file fails and is named.
  3. Regeneration:                            side verify THIS_FOLDER --model MODEL_FOLDER
     checks the model's files against the SHA-256 recorded here, regenerates every generated image from its
     seed, label, gamma and classifier, and fails if any pixel differs from the exported image by more than
     the tolerance in docs/EVIDENCE.md (1 grey level on the same kind of machine and dtype).
     The images were made with:
       {made_with}
     An engine of another sampler revision samples other pixels by design: verify says so, and which
     version to install to regenerate them.

Who made it
{signed}

The SHA-256 values detect change. To make the export tamper-evident without a signature, publish or send the
SHA-256 of manifest.json separately:
  sha256sum manifest.json
"""
