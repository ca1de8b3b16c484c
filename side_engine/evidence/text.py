"""The words every view shares: a pair's lines under its grid row, its heading and fields in the PDF and the HTML,
and the export's facts on their first page. One wording, so that the views of one export read the same."""

from __future__ import annotations

import math

from ..vocabulary import BANDS_HIGH_FIRST, NO_TARGET, OUTSIDE, Guide
from .context import ExportContext
from .selection import ChosenImage, Pair, selection_text

INTRO = ("Generated images of a diffusion model next to their nearest training images, with the provenance needed "
         "to regenerate and check each one. manifest.json is the authoritative record; README.txt says how to "
         "verify.")
LABEL_SOURCES = {"classifier": "from f_TI, a classifier of the training folder's labels",
                 "clusters": "from k-means clusters of the model's own samples (no labels)"}
CLASSIFIERS = {"td": "f_TD", "ti": "f_TI", "clusters": "centres"}  # file stem in classifiers/ -> what it is
# Characters that change how the text around them reads without being seen: the bidirectional controls (a
# right-to-left override turns "photo\u202egnp.exe" into what looks like "photoexe.png") and C0 controls. The
# views print each as its code point, "[U+202E]", so a note or file name reads as what it is; manifest.json and
# pairs.csv keep the exact characters. Right-to-left letters themselves (Arabic, Hebrew) are left alone.
HIDDEN = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
                   + "".join(map(chr, range(32))) + "\x7f") - {"\n", "\t"}


def show_controls(s: str) -> str:
    """s with carriage returns as line breaks and every HIDDEN character as its visible code point."""
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    if not HIDDEN.intersection(s):
        return s
    return "".join(f"[U+{ord(c):04X}]" if c in HIDDEN else c for c in s)


def fmt(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def band_text(ctx: ExportContext) -> str:
    return ", ".join(f"{b.name.label} {b.interval}" for b in (ctx.bands.band(n) for n in BANDS_HIGH_FIRST))


def is_hash(s: str) -> bool:
    """A line that is SHA-256 hex: the views set it in a monospace font."""
    return len(s) == 64 and all(c in "0123456789abcdef" for c in s)


def pairs_word(n: int) -> str:
    return f"{n} pair" + ("" if n == 1 else "s")


def label_text(p: Pair) -> str:
    # Beside a nearest training image of another class, a random image's label would read as the class it was
    # asked for; it guided nothing and only went into the seed (which the seed field shows).
    if p.row.guide is Guide.NONE:
        return NO_TARGET
    named = p.label_name and p.label_name != str(p.row.label)
    return f"{p.row.label} ({p.label_name})" if named else str(p.row.label)


def verdict_word(p: Pair) -> str:
    return p.verdict.label if p.verdict else "none"


def band_word(p: Pair) -> str:
    return f"band {p.band.label}" if p.band else OUTSIDE


def neighbour_word(p: Pair) -> str:
    """Which of the generated image's stored neighbours the pair's training image is."""
    return "nearest" if p.neighbour == 0 else f"neighbour {p.neighbour + 1} of {len(p.row.nn_idx)}"


def grid_lines(p: Pair, ctx: ExportContext) -> list[str]:
    r = p.row
    gu = "" if r.gu is None else f"   Gu ratio {fmt(r.gu, 3)}"
    place = f" ({neighbour_word(p)})" if ctx.chosen else ""
    return [
        f"#{p.rank}  image {r.id}   {r.guide.label}   gamma {r.gamma:g}   label {label_text(p)}",
        f"{ctx.unit} {fmt(p.score)}   {band_word(p)}{gu}   verdict {verdict_word(p)}",
        f"seed {r.seed}   training #{p.train_index}{place} {p.train_source}",
        f"note: {' / '.join(p.note.splitlines())}" if p.note else "",
    ]


def pair_heading(p: Pair, ctx: ExportContext) -> str:
    verdict = f", marked {p.verdict.label}" if p.verdict else ""
    training = f" and training image #{p.train_index}" if ctx.chosen else ""
    return (f"Pair {p.rank} of {len(ctx.pairs)}: image {p.row.id}{training}, {ctx.unit} {fmt(p.score)}, "
            f"{band_word(p)}{verdict}")


def pair_fields(p: Pair, ctx: ExportContext) -> list[tuple[str, str]]:
    r = p.row
    fields = [
        ("image id", str(r.id)), ("guidance", r.guide.label), ("gamma", f"{r.gamma:g}"),
        ("target label", label_text(p)), ("index in sweep", str(r.idx)), ("noise seed", str(r.seed)),
    ]
    if p.neighbour:
        fields += [(f"{ctx.unit} on this training image", fmt(p.score)),
                   (f"best {ctx.unit}", f"{fmt(r.best)}, on training image #{r.best_train}")]
    else:
        fields.append((f"best {ctx.unit}", fmt(r.best)))
    fields += [("band", p.band.label if p.band else OUTSIDE), (ctx.raw_name, fmt(p.raw))]
    if r.gu is not None:
        fields.append(("Gu ratio (nearest / 2nd)", fmt(r.gu, 3)))
    fields += [
        ("verdict", verdict_word(p)), ("note", p.note or "-"),
        ("training image" if ctx.chosen else "nearest training image",
         f"#{p.train_index} {p.train_source} in the training folder"
         + (f"; the generated image's {neighbour_word(p)}" if ctx.chosen else "")),
        ("generated file", f"{p.gen_file}\n{r.sha256}"), ("training file", f"{p.train_file}\n{p.train_sha256}"),
    ]
    if p.classifier:
        fields.append(("guiding classifier",
                       f"classifiers/{p.classifier}.safetensors\n{ctx.classifiers[p.classifier]}"))
    others = ", ".join(f"#{int(i)} {s:.3f}" for k, (i, s) in enumerate(zip(r.nn_idx, r.nn_score, strict=True))
                       if k != p.neighbour)
    if others:
        fields.append((f"{'next' if p.neighbour == 0 else 'other'} neighbours ({ctx.unit})", others))
    return fields


def made_with(made_by: dict) -> str:
    """What made the audit's images, in words: regeneration needs the same sampler revision."""
    versions = ", ".join(f"{k} {made_by[k]}" for k in ("torch", "diffusers") if made_by.get(k))
    return (f"sampler revision {made_by['sampler_revision']}, SIDE Inspector {made_by['engine_version'] or '-'}"
            + (f", {versions}" if versions else ""))


def info_fields(ctx: ExportContext) -> list[tuple[str, str]]:
    """The export's facts, for the report's first page."""
    cfg = ctx.config
    e, m = cfg.extraction, cfg.matching
    f = [("audit", f"{cfg.name or '-'}  ({ctx.audit_dir})"), ("audit created", ctx.created or "-"),
         ("exported", f"{ctx.date}, SIDE Inspector {ctx.version} (audit made by {ctx.audit_engine_version})"),
         ("signed by", f"{ctx.signer.fingerprint}\n{ctx.signer.public_key}" if ctx.signer
          else "not signed (the hashes show that nothing changed since export, not who exported it)"),
         ("made with", made_with(ctx.made_by)),
         ("selection", f"{selection_text(ctx.selection)}: {pairs_word(len(ctx.pairs))}, closest first"),
         ("model folder", ctx.model_folder)]
    model = sorted(ctx.model_files, key=lambda r: not r.path.endswith(".safetensors"))
    f += [("model weights" if r.path.endswith(".safetensors") else "model config", f"{r.path}\n{r.sha256}")
          for r in model]
    f += [("training folder", f"{ctx.train_folder}  ({ctx.n_train} images)"),
          ("training manifest SHA-256", ctx.training_manifest_sha256 or "-"),
          ("descriptor", (f"{ctx.descriptor}, score {ctx.unit} ({ctx.bands.direction.closer}); k {m.k}, "
                          f"n {ctx.n_neighbours or m.n_neighbours}, alpha {m.alpha:g}")),
          ("bands", band_text(ctx) + ("  (set at export, not the audit's)" if ctx.bands_overridden else "")),
          ("sampler", (f"DDIM, {e.steps} steps, eta {e.eta:g}, {cfg.runtime.dtype} on {cfg.runtime.device}, "
                       f"audit seed {e.seed}, labels {e.labels}")),
          ("gamma sweep", ", ".join(f"{g:g}" for g in sorted(e.gammas)) + f"; {e.n_per_gamma} images each"
                          + ("; OL-TI baseline too" if e.ol_ti else "")),
          ("target labels", LABEL_SOURCES[cfg.labels.source])]
    f += [(f"classifier {CLASSIFIERS[k]}", f"classifiers/{k}.safetensors\n{h}") for k, h in ctx.classifiers.items()]
    return f


def chosen_heading(c: ChosenImage) -> str:
    return f"Training image #{c.index}: {c.source}"


def chosen_fields(c: ChosenImage, ctx: ExportContext) -> list[tuple[str, str]]:
    held, nearest = sum(c.matched.values()), sum(c.nearest.values())
    shown = (f"{pairs_word(len(c.pairs))}, numbers {_ranges(c.pairs)}, closest first below" if c.pairs
             else "none: the export's filters keep no pair of it")
    return [("index", f"#{c.index}"), ("file", f"{c.source} in the training folder"), ("label", c.label),
            ("exported as", f"{c.file}\n{c.sha256}"),
            ("in the audit", (f"{held} generated image(s) hold it among their {ctx.config.matching.k} stored "
                              f"neighbours; {nearest} as their nearest")),
            ("this export", shown)]


def match_caption(p: Pair, ctx: ExportContext) -> list[str]:
    """The lines under a generated image in a training image's grid of matches."""
    band = p.band.label if p.band else "outside"
    return [f"pair {p.rank}", f"image {p.row.id}", f"{ctx.unit} {fmt(p.score, 3)} {band}"]


def _ranges(ranks: tuple[int, ...]) -> str:
    """1, 2, 3, 5 -> "1–3, 5": the pair numbers of one training image, which are often runs."""
    parts, start = [], ranks[0]
    for a, b in zip(ranks, (*ranks[1:], None), strict=True):
        if b != a + 1:
            parts.append(str(a) if a == start else f"{start}–{a}")
            start = b
    return ", ".join(parts)
