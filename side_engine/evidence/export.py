"""export_evidence: checks and copies the selected pairs, reads the audit's facts into one ExportContext, and has
each writer add its files. The folder is built next to its destination and renamed into place at the end, so an
export is either complete or absent."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

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
from .selection import ChosenImage, Columns, Pair, band_counts, classifier_name, select_pairs, selection_text
from .signing import SIGNATURE, public_of, sign

Progress = Callable[[int, int], None]
CLASSIFIER_FILES = ("ti", "td", "clusters")
NO_LABEL = "none (the training folder has no class folders)"


class Steps:
    """Progress over the whole export: each pair's files checked and copied, then each pair drawn in each of the
    three views, so 4 x pairs steps. After each, check() may stop the export."""

    def __init__(self, pairs: int, progress: Progress | None, check: Check):
        self.total, self.progress, self.check, self.done = 4 * pairs, progress, check, 0

    def __call__(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)
        self.check()


@contextmanager
def whole_or_nothing(out: Path) -> Iterator[Path]:
    """A hidden folder beside out (an empty or missing folder) to write an export into, renamed to out when the body
    ends; removed when it fails or is cancelled, so that out holds a whole export or nothing."""
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as e:
        raise InputError(out.parent, f"cannot write the export here ({e.strerror})") from e
    try:
        yield tmp
        if out.exists():
            out.rmdir()  # checked empty before; rename cannot replace a directory on every platform
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def export_evidence(audit_dir: str | Path, out_dir: str | Path, *, band: str | None = None,
                    verdict: str | None = None, guide: str | None = None, gamma: float | None = None,
                    top: int | None = None, image_ids: Iterable[int] | None = None,
                    training_images: Iterable[int] | None = None, bands: Bands | None = None,
                    progress: Progress | None = None, check: Check | None = None, sign_key=None) -> Path:
    """Write the evidence folder for the selected pairs of an audit (select_pairs() says which); returns its path.

    training_images: export the pairs of these training images instead (every generated image that holds one among
    its stored neighbours; `band` then applies to the score on it), and give each a page of its own in the reports.

    bands overrides the audit's bands (band filter, badges, AMS/UMS table). progress(done, total) is told as each
    pair is checked and copied and as it is drawn in each view (4 x pairs steps); check() is called after each step
    and stops the export by raising (Cancelled), which leaves nothing behind. sign_key (signing.load_private_key)
    signs manifest.json into manifest.json.sig and names its public half in README.txt and the reports.
    Raises InputError for a non-empty or unwritable out_dir, an empty selection, or an audit or training file
    that no longer matches its recorded SHA-256, or a training index the audit does not have."""
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(out, "already exists and is not empty: choose a new folder for the export")
    if top is not None and top < 1:
        raise InputError(out, "--top must be at least 1")
    store = AuditStore.open(audit_dir)
    try:
        filters = {"band": band, "verdict": verdict, "guide": guide, "gamma": gamma, "top": top,
                   "image_ids": image_ids, "training_images": training_images}
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
    ids, chosen = filters["image_ids"], filters["training_images"]
    selection = {**filters, "image_ids": None if ids is None else sorted(int(i) for i in ids),
                 "training_images": None if chosen is None else sorted({int(j) for j in chosen})}
    a = store.score_arrays()
    cols = Columns.of(store, a)
    unknown = sorted(set(selection["image_ids"] or ()) - set(cols.ids.tolist()))
    if unknown:
        raise InputError(store.root / DB_NAME, f"no generated image with id {unknown[0]}")
    n_train = store.n_train
    outside = [j for j in selection["training_images"] or () if not 0 <= j < n_train]
    if outside:
        raise InputError(store.root / DB_NAME, f"no training image with index {outside[0]} (the audit has "
                         f"{n_train}: 0 to {n_train - 1})")
    sel = select_pairs(cols, bands, **{**filters, "training_images": selection["training_images"]})
    if not len(sel):
        raise InputError(store.root, f"no generated image matches the selection ({selection_text(selection)})")

    with whole_or_nothing(out) as tmp:
        classifiers = copy_fixed_files(store, tmp)
        step = Steps(len(sel), progress, check)
        scores = cols.nn_score[sel.pos, sel.slot]
        pairs = copy_pairs(store, tmp, [int(i) for i in cols.ids[sel.pos]], bands.classify(scores), step,
                            neighbours=[int(s) for s in sel.slot])
        training = store.training_images() if selection["training_images"] else []
        pages = tuple(_chosen(store, tmp, training[j], pairs, cols, bands) for j in selection["training_images"] or ())
        results = store.score(bands, uncertainty=True, arrays=a)
        ctx = ExportContext.of(
            store, bands=bands, bands_overridden=overridden, selection=selection, pairs=tuple(pairs),
            results=tuple(results), chance=chance_level(store.stage_info("labels").get("counts")),
            classifiers=classifiers, signer=None if sign_key is None else public_of(sign_key), chosen=pages)

        tiles = Tiles(tmp, ctx.pairs, step)
        grids = write_grids(tmp, ctx, tiles)
        write_pdf(tmp / "report.pdf", ctx, tiles)
        write_html(tmp / "report.html", ctx, tiles)
        write_csv(tmp / "pairs.csv", ctx)
        write_readme(tmp / README, ctx, grids)
        manifest = write_manifest(tmp, ctx)
        if sign_key is not None:
            (tmp / SIGNATURE).write_text(sign(manifest, sign_key), encoding="utf-8")
    return out


def copy_fixed_files(store: AuditStore, tmp: Path) -> dict[str, str]:
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


def copy_pairs(store: AuditStore, tmp: Path, image_ids: list[int], band_names, step: Steps,
                neighbours: list[int] | None = None) -> list[Pair]:
    """Each pair's generated and training file, checked against the SHA-256 the audit recorded, into tmp.
    neighbours: which stored neighbour of each image is its pair's training image (default: the nearest)."""
    cfg = store.config
    verdicts = store.verdicts()
    class_names = store.class_names
    named = cfg.labels.source == "classifier" and not cfg.labels.classifier
    train_rows = store.training_images()
    copied: dict[int, str] = {}
    pairs = []
    slots = neighbours or [0] * len(image_ids)
    for n, (image_id, band, slot) in enumerate(zip(image_ids, band_names, slots, strict=True), start=1):
        r = store.image(image_id)
        assert r is not None  # the id was read from this store
        src = store.path(r.path)
        if not src.is_file():
            raise InputError(src, "generated image is missing from the audit")
        if sha256_file(src) != r.sha256:
            raise InputError(src, "generated image changed since the audit stored it (SHA-256 differs)")
        t = train_rows[int(r.nn_idx[slot])]
        train_file = copy_training_image(store, tmp, t, copied)
        gen_file = f"generated/{r.id:06d}.png"
        (tmp / gen_file).parent.mkdir(exist_ok=True)
        shutil.copyfile(src, tmp / gen_file)
        given = verdicts.get(r.id)
        pairs.append(Pair(rank=n, row=r, band=BandName(band) if band else None,
                          verdict=given.verdict if given else None, note=given.note if given else "",
                          label_name=class_names[r.label] if named and r.label < len(class_names) else "",
                          train_index=t.idx, train_source=t.path, train_sha256=t.sha256,
                          train_file=train_file, gen_file=gen_file,
                          classifier=classifier_name(r.guide, cfg.labels.source), neighbour=slot))
        step()
    return pairs


def copy_training_image(store: AuditStore, tmp: Path, t: TrainImage, copied: dict[int, str]) -> str:
    """A training image into tmp/training/, checked against the SHA-256 the audit recorded, once however many
    pairs show it; returns its path in the export."""
    if t.idx in copied:
        return copied[t.idx]
    tsrc = (store.train_path or Path(store.config.data.train)) / t.path
    if not tsrc.is_file():
        raise InputError(tsrc, "training image is missing (the training folder moved or changed)")
    if sha256_file(tsrc) != t.sha256:
        raise InputError(tsrc, "training image changed since the audit (SHA-256 differs)")
    copied[t.idx] = f"training/{t.idx:06d}{tsrc.suffix.lower()}"
    (tmp / "training").mkdir(exist_ok=True)
    shutil.copyfile(tsrc, tmp / copied[t.idx])
    return copied[t.idx]


def _chosen(store: AuditStore, tmp: Path, t: TrainImage, pairs: list[Pair], cols: Columns, bands: Bands) -> ChosenImage:
    """The page of training image t: its file (copied, also where no pair of this export shows it), its class, how
    many generated images of the whole audit match it in each band, and its pairs in this export."""
    names = store.class_names
    name = names[t.label] if t.label is not None and 0 <= t.label < len(names) else ""
    label = NO_LABEL if t.label is None else f"{t.label} ({name})" if name and name != str(t.label) else str(t.label)
    matched, nearest = band_counts(cols.nn_idx, cols.nn_score, bands, t.idx)
    return ChosenImage(index=t.idx, source=t.path, label=label, sha256=t.sha256,
                       file=copy_training_image(store, tmp, t, {p.train_index: p.train_file for p in pairs}),
                       matched=matched, nearest=nearest, pairs=tuple(p.rank for p in pairs if p.train_index == t.idx))
