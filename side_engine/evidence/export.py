"""export_evidence: checks and copies the selected pairs, reads the audit's facts into one ExportContext, and has
each writer add its files. The folder is built next to its destination and renamed into place at the end, so an
export is either complete or absent."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .. import __version__
from ..dataset import sha256_file
from ..errors import InputError, disk_full_is_input
from ..events import Check, no_check
from ..matching.metrics import Bands, chance_level
from ..store import CONFIG_NAME, DB_NAME, AuditStore, TrainImage
from ..vocabulary import BandName
from .context import ExportContext
from .grid import Tiles, write_grids
from .html import write_html
from .manifest import README, write_csv, write_manifest, write_readme
from .pdf import write_pdf
from .selection import Columns, Pair, classifier_name, select, selection_text
from .signing import SIGNATURE, public_of, sign

Progress = Callable[[int, int], None]
CLASSIFIER_FILES = ("ti", "td", "clusters")


class _Steps:
    """Progress over the whole export: each pair's files checked and copied, then each pair drawn in each of the
    three views, so 4 x pairs steps. After each, check() may stop the export."""

    def __init__(self, pairs: int, progress: Progress | None, check: Check):
        self.total, self.progress, self.check, self.done = 4 * pairs, progress, check, 0

    def __call__(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)
        self.check()


def export_evidence(audit_dir: str | Path, out_dir: str | Path, *, band: str | None = None,
                    verdict: str | None = None, guide: str | None = None, gamma: float | None = None,
                    top: int | None = None, image_ids: Iterable[int] | None = None, bands: Bands | None = None,
                    progress: Progress | None = None, check: Check | None = None, sign_key=None) -> Path:
    """Write the evidence folder for the selected pairs of an audit (select() says which); returns its path.

    bands overrides the audit's bands (band filter, badges, AMS/UMS table). progress(done, total) is told as each
    pair is checked and copied and as it is drawn in each view (4 x pairs steps); check() is called after each step
    and stops the export by raising (Cancelled), which leaves nothing behind. sign_key (signing.load_private_key)
    signs manifest.json into manifest.json.sig and names its public half in README.txt and the reports.
    Raises InputError for a non-empty or unwritable out_dir, an empty selection, or an audit or training file
    that no longer matches its recorded SHA-256."""
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(out, "already exists and is not empty: choose a new folder for the export")
    if top is not None and top < 1:
        raise InputError(out, "--top must be at least 1")
    store = AuditStore.open(audit_dir)
    try:
        filters = {"band": band, "verdict": verdict, "guide": guide, "gamma": gamma, "top": top,
                   "image_ids": image_ids}
        # The export is built in a hidden folder beside `out`, removed if anything fails: nothing is left half-written.
        with disk_full_is_input(out, "export again; nothing was written there"):
            return _export(store, out, filters, bands, progress, check or no_check, sign_key)
    finally:
        store.close()


def _export(store: AuditStore, out: Path, filters: dict, bands: Bands | None, progress: Progress | None,
            check: Check, sign_key) -> Path:
    cfg = store.config
    overridden = bands is not None and bands != cfg.band_set()
    bands = bands or cfg.band_set()
    ids = filters["image_ids"]
    selection = {**filters, "image_ids": None if ids is None else sorted(int(i) for i in ids)}
    a = store.score_arrays()
    cols = Columns.of(store, a)
    unknown = sorted(set(selection["image_ids"] or ()) - set(cols.ids.tolist()))
    if unknown:
        raise InputError(store.root / DB_NAME, f"no generated image with id {unknown[0]}")
    pos = select(cols, bands, **filters)
    if not len(pos):
        raise InputError(store.root, f"no generated image matches the selection ({selection_text(selection)})")

    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as e:
        raise InputError(out.parent, f"cannot write the export here ({e.strerror})") from e
    try:
        classifiers = _copy_fixed_files(store, tmp)
        step = _Steps(len(pos), progress, check)
        pairs = _copy_pairs(store, tmp, [int(i) for i in cols.ids[pos]], bands.classify(cols.best[pos]), step)
        results = store.score(bands, uncertainty=True, arrays=a)
        ctx = ExportContext(
            config=cfg, audit_dir=store.root, created=store.meta("created"),
            audit_engine_version=store.meta("engine_version"), model_folder=store.model_path or cfg.model.path,
            model_files=tuple(store.files("model")), train_folder=store.train_path or Path(cfg.data.train),
            n_train=store.n_train,
            training_manifest_sha256=next((r.sha256 for r in store.files("training_manifest")), None),
            n_neighbours=store.n_neighbours, descriptor=store.descriptor, direction=store.direction, bands=bands,
            bands_overridden=overridden, selection=selection, pairs=tuple(pairs), results=tuple(results),
            chance=chance_level(store.stage_info("labels").get("counts")), classifiers=classifiers,
            date=time.strftime("%Y-%m-%d %H:%M:%S %z"), version=__version__, made_by=store.made_by,
            signer=None if sign_key is None else public_of(sign_key))

        tiles = Tiles(tmp, ctx.pairs, step)
        grids = write_grids(tmp, ctx, tiles)
        write_pdf(tmp / "report.pdf", ctx, tiles)
        write_html(tmp / "report.html", ctx, tiles)
        write_csv(tmp / "pairs.csv", ctx)
        write_readme(tmp / README, ctx, grids)
        manifest = write_manifest(tmp, ctx)
        if sign_key is not None:
            (tmp / SIGNATURE).write_text(sign(manifest, sign_key), encoding="utf-8")
        if out.exists():
            out.rmdir()  # checked empty above; rename cannot replace a directory on every platform
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _copy_fixed_files(store: AuditStore, tmp: Path) -> dict[str, str]:
    """audit.toml and every classifier file; returns {classifier file stem: SHA-256}."""
    shutil.copyfile(store.root / CONFIG_NAME, tmp / CONFIG_NAME)
    hashes = {}
    (tmp / "classifiers").mkdir()
    for name in CLASSIFIER_FILES:
        src = store.classifier_path(name)
        if src.is_file():
            shutil.copyfile(src, tmp / "classifiers" / src.name)
            hashes[name] = sha256_file(src)
    if "td" not in hashes:
        raise InputError(store.root / "classifiers", "has no td.safetensors: the audit is not finished")
    return hashes


def _copy_pairs(store: AuditStore, tmp: Path, image_ids: list[int], band_names, step: _Steps) -> list[Pair]:
    """Each pair's generated and training file, checked against the SHA-256 the audit recorded, into tmp."""
    cfg = store.config
    verdicts = store.verdicts()
    class_names = store.class_names
    named = cfg.labels.source == "classifier" and not cfg.labels.classifier
    train_root = store.train_path or Path(cfg.data.train)
    train_rows: dict[int, TrainImage] = {t.idx: t for t in store.training_images()}
    pairs = []
    for n, (image_id, band) in enumerate(zip(image_ids, band_names, strict=True), start=1):
        r = store.image(image_id)
        assert r is not None  # the id was read from this store
        src = store.path(r.path)
        if not src.is_file():
            raise InputError(src, "generated image is missing from the audit")
        if sha256_file(src) != r.sha256:
            raise InputError(src, "generated image changed since the audit stored it (SHA-256 differs)")
        t = train_rows[r.best_train]
        tsrc = train_root / t.path
        if not tsrc.is_file():
            raise InputError(tsrc, "training image is missing (the training folder moved or changed)")
        if sha256_file(tsrc) != t.sha256:
            raise InputError(tsrc, "training image changed since the audit (SHA-256 differs)")
        gen_file = f"generated/{r.id:06d}.png"
        train_file = f"training/{r.best_train:06d}{tsrc.suffix.lower()}"
        for s, d in ((src, gen_file), (tsrc, train_file)):
            (tmp / d).parent.mkdir(exist_ok=True)
            shutil.copyfile(s, tmp / d)
        given = verdicts.get(r.id)
        pairs.append(Pair(rank=n, row=r, band=BandName(band) if band else None,
                          verdict=given.verdict if given else None, note=given.note if given else "",
                          label_name=class_names[r.label] if named and r.label < len(class_names) else "",
                          train_index=r.best_train, train_source=t.path, train_sha256=t.sha256,
                          train_file=train_file, gen_file=gen_file,
                          classifier=classifier_name(r.guide, cfg.labels.source)))
        step()
    return pairs
