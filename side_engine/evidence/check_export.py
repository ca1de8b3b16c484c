"""The evidence folder of a check (questions/check.py): the outside pictures, the audit's images closest to them,
and the scores, written as `side export` writes pairs, so that `side verify` checks it the same way.

It holds what a pair export holds for the closest generated images (their PNGs, each one's own nearest training
image, classifiers/ and audit.toml to regenerate them, pairs.csv, manifest.json, SHA256SUMS) and, for the question
asked, the outside pictures byte for byte (outside/), their closest training images (training/), check.csv and the
manifest's "check" section with every score, and grid PNGs whose rows put each outside picture beside one of its
matches. The AMS/UMS report (report.pdf, report.html) answers another question and is left out.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..dataset import IMAGE_SUFFIXES, sha256_file
from ..errors import InputError, disk_full_is_input
from ..events import Check, no_check
from ..matching.metrics import Bands
from ..questions.check import Answer, GeneratedMatch, TrainingMatch, model_space, read_outside
from ..store import DB_NAME, AuditStore
from ..vocabulary import DIFFERENCE, EQUAL, NO_TARGET, OUTSIDE, BandName, Direction, Guide
from .context import ExportContext
from .export import Steps, copy_fixed_files, copy_pairs, copy_training_image, whole_or_nothing
from .grid import CLOSER, ROWS_PER_PAGE, Tiles3, grid_names, pair_tiles, read_png, render_grid, train_in_model_space
from .manifest import README, csv_cell, write_csv, write_manifest
from .selection import Pair
from .text import band_text, fmt

CHECK_CSV = "check.csv"
COLUMNS = (("outside picture",), ("its match in the audit",), (DIFFERENCE, EQUAL))


def export_folder(out_dir: str | Path) -> Path:
    """out_dir resolved, or an InputError where no export can be written there: a folder that holds files, a file,
    or a path under a file or an unwritable folder. Cheap, so that `side check --export` refuses before it checks."""
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(out, "already exists and is not empty: choose a new folder for the export")
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise InputError(existing, "is a file, not a folder: the export cannot be written under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(existing, "cannot write the export here (permission denied)")
    return out


def export_check(audit_dir: str | Path, answers: Sequence[Answer], out_dir: str | Path, *,
                 bands: Bands | None = None, check: Check | None = None) -> Path:
    """Write the evidence folder of these answers (Checker.answers of this audit); returns its path.

    bands: those the answers were banded with, when not the audit's. check() is called after each copied pair and
    drawn grid row and stops the export by raising (Cancelled), which leaves nothing behind. InputError for a
    non-empty or unwritable out_dir, no answers, or an outside picture, generated or training image whose bytes
    are no longer those the check or the audit recorded."""
    out = export_folder(out_dir)
    if not answers:
        raise InputError(out, "no checked picture to export")
    store = AuditStore.open(audit_dir)
    try:
        with disk_full_is_input(out, "export again; nothing was written there"):
            return _export(store, list(answers), out, bands, check or no_check)
    finally:
        store.close()


def _export(store: AuditStore, answers: list[Answer], out: Path, bands: Bands | None, check: Check) -> Path:
    cfg = store.config
    overridden = bands is not None and bands != cfg.band_set()
    bands = bands or cfg.band_set()
    ids = list(dict.fromkeys(g.id for a in answers for g in a.generated))
    with whole_or_nothing(out) as tmp:
        classifiers = copy_fixed_files(store, tmp)
        rows = [store.image(i) for i in ids]
        if any(r is None for r in rows):
            raise InputError(store.root / DB_NAME, "a checked generated image is no longer in the audit")
        # Each pair's band as a pair export gives it: of the generated image's stored best score.
        pair_bands = bands.classify(np.asarray([r.best for r in rows if r is not None], np.float32))
        pairs = copy_pairs(store, tmp, ids, pair_bands, Steps(len(ids), None, check))
        outside = _copy_outside(tmp, answers)
        training = _copy_training(store, tmp, answers, pairs)
        ctx = ExportContext.of(store, bands=bands, bands_overridden=overridden, selection={"image_ids": sorted(ids)},
                               pairs=tuple(pairs), results=(), chance=None, classifiers=classifiers)
        gen_files = {p.row.id: p.gen_file for p in pairs}
        grids = _write_grids(tmp, ctx, answers, outside, gen_files, training, store, check)
        write_csv(tmp / "pairs.csv", ctx)
        _write_check_csv(tmp / CHECK_CSV, ctx, answers, outside, gen_files, training)
        _write_readme(tmp / README, ctx, answers, grids)
        write_manifest(tmp, ctx, {"check": _check_section(ctx, answers, outside, gen_files, training)})
    return out


def _copy_outside(tmp: Path, answers: list[Answer]) -> list[str]:
    """Each outside picture, byte for byte, as outside/NN.ext (its own name may be anything; the manifest keeps it),
    checked against the SHA-256 the check read."""
    (tmp / "outside").mkdir()
    files = []
    for k, a in enumerate(answers, start=1):
        suffix = a.image.suffix.lower() if a.image.suffix.lower() in IMAGE_SUFFIXES else ""
        rel = f"outside/{k:02d}{suffix}"
        try:
            shutil.copyfile(a.image, tmp / rel)
        except OSError as e:
            raise InputError(a.image, f"cannot be read ({e.strerror or type(e).__name__})") from None
        if sha256_file(tmp / rel) != a.sha256:
            raise InputError(a.image, "changed since it was checked (SHA-256 differs): check it again")
        files.append(rel)
    return files


def _copy_training(store: AuditStore, tmp: Path, answers: list[Answer], pairs: list[Pair]) -> dict[int, str]:
    """The outside pictures' closest training images into training/ (beside the pairs' own), each checked against
    the SHA-256 the audit recorded; {training index: file in the export}."""
    rows = store.training_images()
    copied = {p.train_index: p.train_file for p in pairs}
    for t in (t for a in answers for t in a.training):
        copy_training_image(store, tmp, rows[t.index], copied)
    return copied


def _band_word(band: BandName | None) -> str:
    return f"band {band.label}" if band else OUTSIDE


def _score_line(ctx: ExportContext, m: GeneratedMatch | TrainingMatch) -> str:
    return f"{ctx.unit} {fmt(m.score)}   {_band_word(m.band)}   {ctx.raw_name} {fmt(m.raw)}"


def _rows(ctx: ExportContext, a: Answer, k: int) -> list[tuple[GeneratedMatch | TrainingMatch, list[str]]]:
    """What each grid row of outside picture k shows: the match, and the lines under the tiles."""
    name = f"outside picture {k} ({a.image.name})"
    rows: list[tuple[GeneratedMatch | TrainingMatch, list[str]]] = []
    for rank, g in enumerate(a.generated, start=1):
        target = NO_TARGET if g.guide is Guide.NONE else str(g.label)
        rows.append((g, [f"{name}  vs  generated image {g.id}, its #{rank} closest",
                         _score_line(ctx, g),
                         f"{g.guide.label}   gamma {g.gamma:g}   label {target}",
                         f"seed {g.seed}   {g.path} in the audit"]))
    for rank, t in enumerate(a.training, start=1):
        rows.append((t, [f"{name}  vs  training image #{t.index}, its #{rank} closest",
                         _score_line(ctx, t), f"{t.path} in the training folder", ""]))
    return rows


def _write_grids(tmp: Path, ctx: ExportContext, answers: list[Answer], outside: list[str], gen_files: dict[int, str],
                 training: dict[int, str], store: AuditStore, check: Check) -> list[str]:
    """Grid pages of rows outside picture | match | difference: each picture's generated matches then its training
    matches, from a page of its own, ROWS_PER_PAGE rows a page as in a pair export."""
    channels, size = model_space(store)
    pages: list[tuple[str, list[tuple[Tiles3, list[str]]]]] = []
    for k, (a, rel) in enumerate(zip(answers, outside, strict=True), start=1):
        pixels = read_outside(tmp / rel, channels, size).pixels
        seen = pixels[0] if channels == 1 else pixels.transpose(1, 2, 0)  # as a stored PNG reads
        rows = []
        for m, lines in _rows(ctx, a, k):
            other = (read_png(tmp / gen_files[m.id]) if isinstance(m, GeneratedMatch)
                     else train_in_model_space(tmp / training[m.index], seen))
            rows.append((pair_tiles(seen, other), lines))
            check()
        heading = f"SIDE check of outside picture {k} ({a.image.name})"
        pages += [(heading, rows[s:s + ROWS_PER_PAGE]) for s in range(0, len(rows), ROWS_PER_PAGE)]
    names = grid_names(len(pages) * ROWS_PER_PAGE)  # grid.png for one page, else grid-01.png, grid-02.png, ...
    subtitle = f"{ctx.unit} bands {band_text(ctx)}   ({CLOSER[ctx.direction]})"
    for p, (name, (heading, rows)) in enumerate(zip(names, pages, strict=True), start=1):
        render_grid(rows, heading + (f"   page {p}/{len(names)}" if len(names) > 1 else ""), subtitle,
                    COLUMNS).save(tmp / name)
    return names


def _check_section(ctx: ExportContext, answers: list[Answer], outside: list[str], gen_files: dict[int, str],
                   training: dict[int, str]) -> dict:
    """manifest.json's "check": each outside picture with its closest generated and training images and scores."""
    def band(b: BandName | None) -> str:
        return str(b) if b else ""

    return {
        "question": "which of the audit's generated and training images lie closest to each outside picture",
        "scoring": ("nL2 as the audit scores a (generated, training) pair, the query calibrated by alpha x its mean "
                    "RMS distance to its n nearest training images: against a generated image, the raw distance over "
                    "that generated image's stored normaliser (its `normalizer`); against a training image, over the "
                    "picture's own (the picture's `normalizer`)" if ctx.direction is Direction.DISTANCE
                    else "cosine of the descriptor's embeddings, as the audit scores a generated image"),
        "pictures": [{
            "file": rel, "source": str(a.image), "sha256": a.sha256, "normalizer": a.normalizer,
            "generated": [{"rank": r, "image_id": g.id, "file": gen_files[g.id], "sha256": g.sha256, "score": g.score,
                           "raw_score": g.raw, "normalizer": g.normalizer, "band": band(g.band)}
                          for r, g in enumerate(a.generated, start=1)],
            "training": [{"rank": r, "training_index": t.index, "file": training[t.index], "source": t.path,
                          "sha256": t.sha256, "score": t.score, "raw_score": t.raw, "band": band(t.band)}
                         for r, t in enumerate(a.training, start=1)],
        } for a, rel in zip(answers, outside, strict=True)],
    }


def _write_check_csv(path: Path, ctx: ExportContext, answers: list[Answer], outside: list[str],
                     gen_files: dict[int, str], training: dict[int, str]) -> None:
    """One line per (outside picture, match), UTF-8 with a byte-order mark as pairs.csv."""
    with open(path, "w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f)
        w.writerow(["outside_file", "outside_source", "outside_sha256", "match", "rank", "image_id", "training_index",
                    "score", "score_unit", "band", "raw_score", "raw_score_name", "file", "sha256"])
        for a, rel in zip(answers, outside, strict=True):
            head = [rel, a.image.as_posix(), a.sha256]
            for r, g in enumerate(a.generated, start=1):
                w.writerow([csv_cell(v) for v in head + ["generated", r, g.id, "", g.score, ctx.unit,
                                                         str(g.band or ""), g.raw, ctx.raw_name, gen_files[g.id],
                                                         g.sha256]])
            for r, t in enumerate(a.training, start=1):
                w.writerow([csv_cell(v) for v in head + ["training", r, "", t.index, t.score, ctx.unit,
                                                         str(t.band or ""), t.raw, ctx.raw_name, training[t.index],
                                                         t.sha256]])


def _write_readme(path: Path, ctx: ExportContext, answers: list[Answer], grids: list[str]) -> None:
    lines = []
    for k, a in enumerate(answers, start=1):
        top = a.generated[0] if a.generated else None
        closest = (f"closest generated image {top.id}, {ctx.unit} {fmt(top.score)} ({_band_word(top.band)})"
                   if top else "no generated image")
        lines.append(f"  {k}. {a.image.name}: {closest}")
    path.write_text(README_TEXT.format(
        title=f"SIDE check against audit '{ctx.config.name or ctx.audit_dir.name}'", date=ctx.date,
        version=ctx.version, answers="\n".join(lines), bands=band_text(ctx), closer=ctx.direction.closer,
        unit=ctx.unit, grids=grids[0] if len(grids) == 1 else f"{grids[0]} ...", n=len(ctx.pairs)),
        encoding="utf-8")


README_TEXT = """SIDE Inspector check: was this picture extracted?
=================================================

{title}
Exported {date} by SIDE Inspector {version}.

Each outside picture was matched, with the audit's own descriptor, against every image the audit generated and
every training image it recorded ({unit}, {closer}; bands {bands}):
{answers}

What is here
  {grids:<25} each row: outside picture | one of its closest generated or training images |
                            their difference (x4, white = equal), with the score and band under the tiles
  outside/                  the outside pictures, byte for byte as they were checked
  generated/                the closest generated images ({n}), lossless PNG, exactly as the audit stored them
  training/                 the closest training images, and each generated image's own nearest training image,
                            byte for byte as they were in the training folder
  check.csv                 one line per outside picture and match: rank, score, band, file and SHA-256
  pairs.csv                 the generated images as `side export` lists pairs: each with its own nearest training
                            image, seed, label, gamma and classifier
  manifest.json             everything above ("check": the scores of each outside picture; "pairs": the generated
                            images' provenance) and the SHA-256 of every other file
  classifiers/, audit.toml  what it takes to regenerate the generated images (with the model)
  SHA256SUMS                the same hashes in the format of `sha256sum -c`

How the scores are made: docs/CHECK.md. In short, the picture is read and converted as the audit read its training
images, and each pair is scored as the audit scores its own (generated, training) pairs: against a generated image,
that image is the query and keeps the calibration the audit gave it (a training file checked gets back exactly the
scores the audit stored on it); against a training image, the picture is the query. A score in the high band means
"as close as the audit's high band", whichever image it is compared with.

How to verify
  1. Integrity, with nothing but coreutils:   sha256sum -c SHA256SUMS
  2. Integrity with SIDE Inspector:           side verify THIS_FOLDER
  3. Regeneration:                            side verify THIS_FOLDER --model MODEL_FOLDER
     regenerates each generated image from its seed, label, gamma and classifier and compares it pixel by pixel:
     the audited model makes these images.

The SHA-256 values detect change. To make the export tamper-evident, publish or send the SHA-256 of manifest.json
separately:
  sha256sum manifest.json
"""
