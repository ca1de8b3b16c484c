"""Did it change? Several audits side by side: what each one is, what differs between them, and for every run that
the baseline (the first) and another audit both hold, per band, AMS and UMS of both with the difference (other minus
baseline) and its 95% interval. `side report A B ...` and the GUI's Compare audits both print this; docs/COMPARE.md.

Audits whose descriptors, bands or k differ measure different things: they are compared only when the caller accepts
the differences (DifferentAudits says which). Every other difference (the model, the training set, the gammas, N)
is a fact the comparison states, not a reason to refuse it.
"""

from __future__ import annotations

import hashlib
import sqlite3
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..matching.metrics import (
    N_RESAMPLES,
    Bands,
    GroupResult,
    ScoreArrays,
    newcombe_interval,
    runs_of,
    score_groups,
)
from ..matching.uncertainty import RunScores, ums_difference_intervals, with_uncertainty
from ..store import AuditStore, FileRecord
from ..vocabulary import BANDS_HIGH_FIRST, BandName, Guide

Run = tuple[Guide, float]
ACCEPT_HINT = "--accept-differences"
WIDTH = 110  # the text's columns, as side report's
UNSEEN_NOTE = "~ one run has no match in the band: resampling cannot vary it, so its side of the UMS interval"


@dataclass(frozen=True)
class AuditFacts:
    """What one audit is: the model and training set it audited, how it measured, and the runs it holds."""

    path: str
    name: str
    model_path: str | None
    model_files: tuple[FileRecord, ...]
    training_manifest: str | None  # SHA-256 of the training set's manifest (dataset.py)
    n_train: int
    descriptor: str
    bands: Bands
    k: int  # neighbours stored per generated image
    sampler_revision: int | None
    runs: dict[Run, int]  # images per (guide, gamma) run, in the report's order

    @property
    def model_sha256(self) -> str:
        """One hash for the model's files: SHA-256 of their sorted "path sha256" lines ('' where none recorded)."""
        if not self.model_files:
            return ""
        lines = "".join(f"{f.path} {f.sha256}\n" for f in sorted(self.model_files))
        return hashlib.sha256(lines.encode()).hexdigest()

    @property
    def gammas(self) -> tuple[float, ...]:
        return tuple(sorted({y for _, y in self.runs}))

    @property
    def label(self) -> str:
        """How screens and figures name the audit: its configured name, or its folder's."""
        return self.name or Path(self.path).name

    def as_json(self) -> dict:
        return {"path": self.path, "name": self.name, "model_path": self.model_path,
                "model_sha256": self.model_sha256,
                "model_files": [{"path": f.path, "sha256": f.sha256} for f in self.model_files],
                "training_manifest": self.training_manifest, "n_train": self.n_train,
                "descriptor": self.descriptor, "bands": bands_json(self.bands), "k": self.k,
                "sampler_revision": self.sampler_revision, "gammas": list(self.gammas),
                "runs": [{"guide": g, "gamma": y, "n": n} for (g, y), n in self.runs.items()]}


@dataclass(frozen=True)
class FactDifference:
    """A fact in which the audits differ, as people read it, one value per audit. refusing: the audits measure
    differently (descriptor, bands, k), so their numbers are compared only once the difference is accepted."""

    what: str
    values: tuple[str, ...]
    refusing: bool

    @property
    def line(self) -> str:
        """One line: 'bands: 1 low [1.6, 1.8) ...; 2 low [1.5, 1.8) ...', audits numbered from 1 (the baseline)."""
        return f"{self.what}: " + "; ".join(f"{i} {v}" for i, v in enumerate(self.values, start=1))

    def as_json(self) -> dict:
        return {"what": self.what, "values": list(self.values), "refusing": self.refusing}


class DifferentAudits(Exception):
    """The audits' descriptors, bands or k differ and the caller has not accepted it."""

    def __init__(self, differences: Sequence[FactDifference]):
        self.differences = tuple(differences)
        super().__init__(refusal_text(self.differences))


@dataclass(frozen=True)
class Change:
    """One statistic of a run in the baseline and in another audit, and the 95% interval of other minus baseline."""

    baseline: float
    other: float
    interval: tuple[float, float]
    # a bootstrap's: one run has no stored match in the band, so resampling could not vary it and that side of the
    # interval is its resolution at its N instead (uncertainty.ums_difference_intervals)
    unseen: bool = False

    @property
    def difference(self) -> float:
        return self.other - self.baseline

    @property
    def excludes_zero(self) -> bool:
        """The interval lies wholly on one side of 0: the audits differ beyond what sampling explains."""
        lo, hi = self.interval
        return lo > 0 or hi < 0

    def as_json(self) -> dict:
        return {"baseline": self.baseline, "other": self.other, "difference": self.difference,
                "ci": list(self.interval), "excludes_zero": self.excludes_zero, "unseen": self.unseen}


@dataclass(frozen=True)
class RunChange:
    """One band of one run that the baseline and audit number `audit` (an index into the audits, >= 1) both hold."""

    audit: int
    guide: Guide
    gamma: float
    band: BandName
    n_baseline: int
    n_other: int
    ams: Change
    ums: Change

    def as_json(self) -> dict:
        return {"audit": self.audit, "guide": self.guide, "gamma": self.gamma, "band": self.band,
                "n_baseline": self.n_baseline, "n_other": self.n_other, "ams": self.ams.as_json(),
                "ums": self.ums.as_json()}


@dataclass(frozen=True)
class LoneRun:
    """A run that only one of a compared pair holds: audit `audit` has it and `missing_in` does not."""

    audit: int
    missing_in: int
    guide: Guide
    gamma: float
    n: int

    def as_json(self) -> dict:
        return {"audit": self.audit, "missing_in": self.missing_in, "guide": self.guide, "gamma": self.gamma,
                "n": self.n}


@dataclass(frozen=True)
class ReadAudit:
    """An audit's facts and score columns, read once; the store is closed again."""

    facts: AuditFacts
    arrays: ScoreArrays


@dataclass(frozen=True)
class AuditComparison:
    audits: tuple[AuditFacts, ...]  # the first is the baseline
    differences: tuple[FactDifference, ...]
    results: tuple[tuple[GroupResult, ...], ...]  # each audit's report (with intervals), under its own bands
    changes: tuple[RunChange, ...]
    lone: tuple[LoneRun, ...]
    accepted: bool  # refusing differences were there and accepted

    def as_json(self) -> dict:
        return {"baseline": 0, "audits": [a.as_json() for a in self.audits],
                "differences": [d.as_json() for d in self.differences], "accepted_differences": self.accepted,
                "results": [[r.as_json() for r in rs] for rs in self.results],
                "changes": [c.as_json() for c in self.changes], "only_in": [r.as_json() for r in self.lone]}


def bands_json(bands: Bands) -> dict[str, list[float]]:
    return {b.name: [b.lo, b.hi] for b in bands.all()}


def bands_text(bands: Bands) -> str:
    return " ".join(f"{b.name} {b.interval}" for b in bands.all())


def read_audit(path: str | Path) -> ReadAudit:
    """One audit's facts and scores. Raises InputError for a folder that is not a readable audit."""
    store = AuditStore.open(path)
    try:
        arrays = store.score_arrays()
        revision = store.made_by["sampler_revision"]
        facts = AuditFacts(
            path=str(store.root), name=store.config.name, model_path=store.model_path,
            model_files=tuple(store.files("model")),
            training_manifest=next((f.sha256 for f in store.files("training_manifest")), None),
            n_train=store.n_train, descriptor=store.descriptor, bands=store.config.band_set(),
            k=int(arrays.nn_idx.shape[1]) if len(arrays) else store.config.matching.k,
            sampler_revision=revision if isinstance(revision, int) else None,
            runs={key: len(sel) for key, sel in runs_of(arrays.guide, arrays.gamma).items()})
    except (ValueError, TypeError, sqlite3.Error) as e:
        raise InputError(store.root, f"audit is damaged, cannot compare it ({type(e).__name__}: "
                         f"{(str(e).splitlines() or [''])[0][:200]})") from None
    finally:
        store.close()
    return ReadAudit(facts, arrays)


def _n_text(runs: dict[Run, int]) -> str:
    ns = sorted(set(runs.values()))
    return "no images" if not ns else str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"


def _model_text(a: AuditFacts) -> str:
    name = Path(a.model_path).name if a.model_path else "unknown"
    return f"{name} (sha256 {a.model_sha256[:12]}…)" if a.model_sha256 else name


# Each fact: its name, whether a difference refuses the comparison, what is compared, and what people read.
FACTS: tuple[tuple[str, bool, Callable[[AuditFacts], object], Callable[[AuditFacts], str]], ...] = (
    ("descriptor", True, lambda a: a.descriptor, lambda a: a.descriptor),
    ("bands", True, lambda a: a.bands, lambda a: bands_text(a.bands)),
    # UMS counts every stored neighbour inside a band: more neighbours stored, more training images counted.
    ("neighbours stored (k)", True, lambda a: a.k, lambda a: str(a.k)),
    ("model", False, lambda a: a.model_sha256, _model_text),
    ("training set", False, lambda a: a.training_manifest,
     lambda a: f"manifest sha256 {a.training_manifest[:12]}…" if a.training_manifest else "unknown"),
    ("training images", False, lambda a: a.n_train, lambda a: str(a.n_train)),
    ("sampler revision", False, lambda a: a.sampler_revision, lambda a: str(a.sampler_revision)),
    ("guides", False, lambda a: sorted({g for g, _ in a.runs}),
     lambda a: ", ".join(sorted({str(g) for g, _ in a.runs})) or "none"),
    ("gammas", False, lambda a: a.gammas, lambda a: ", ".join(f"{y:g}" for y in a.gammas) or "none"),
    ("images per run (N)", False, lambda a: sorted(set(a.runs.values())), lambda a: _n_text(a.runs)),
)


def fact_differences(audits: Sequence[AuditFacts]) -> list[FactDifference]:
    """The facts in which the audits differ, the refusing ones (descriptor, bands, k) first."""
    out = []
    for what, refusing, key, text in FACTS:
        keys = [key(a) for a in audits]
        if any(k != keys[0] for k in keys[1:]):
            out.append(FactDifference(what, tuple(text(a) for a in audits), refusing))
    return out


def refusal_text(differences: Sequence[FactDifference]) -> str:
    """Why the audits are not compared: the refusing differences, one line each, and how to compare anyway."""
    refusing = [d for d in differences if d.refusing]
    return "\n".join(["these audits measure differently, so their AMS / UMS do not compare as they stand:"]
                     + [f"  {d.line}" for d in refusing]
                     + [f"compare them anyway with {ACCEPT_HINT}"])


def compare(read: Sequence[ReadAudit], *, accept_differences: bool = False,
            check: Callable[[], None] = lambda: None) -> AuditComparison:
    """Scores each audit (under its own bands, with intervals) and every run it shares with the baseline, the first.
    Raises DifferentAudits where descriptors, bands or k differ and accept_differences is False. check is called
    between runs and may raise (the GUI's cancel)."""
    if len(read) < 2:
        raise ValueError("a comparison needs two audits or more")
    facts = tuple(r.facts for r in read)
    differences = fact_differences(facts)
    refusing = any(d.refusing for d in differences)
    if refusing and not accept_differences:
        raise DifferentAudits(differences)
    results = []
    for r in read:
        check()
        bands = r.facts.bands
        results.append(tuple(with_uncertainty(score_groups(r.arrays, bands, r.facts.n_train), r.arrays, bands)))
    by_run = [{(g.guide, g.gamma): g for g in rs} for rs in results]
    base = read[0]
    base_runs = runs_of(base.arrays.guide, base.arrays.gamma)
    changes, lone = [], []
    for j in range(1, len(read)):
        other = read[j]
        other_runs = runs_of(other.arrays.guide, other.arrays.gamma)
        for key, sel in base_runs.items():
            if key not in other_runs:
                lone.append(LoneRun(0, j, key[0], key[1], len(sel)))
                continue
            check()
            changes += _run_changes(j, key, base, sel, other, other_runs[key], by_run[0][key], by_run[j][key])
        lone += [LoneRun(j, 0, key[0], key[1], len(sel)) for key, sel in other_runs.items() if key not in base_runs]
    return AuditComparison(facts, tuple(differences), tuple(results), tuple(changes), tuple(lone), refusing)


def _run_changes(j: int, key: Run, base: ReadAudit, base_sel: np.ndarray, other: ReadAudit, other_sel: np.ndarray,
                 base_result: GroupResult, other_result: GroupResult) -> list[RunChange]:
    """One run of the baseline against the same run of audit j, band by band (highest first). AMS: a proportion of
    each run's independent images, so Newcombe's hybrid score interval; UMS: a bootstrap of the difference, each
    audit's images resampled on their own (uncertainty.ums_difference_intervals)."""
    b_bands, o_bands = base.facts.bands, other.facts.bands
    take = lambda r, sel: RunScores(r.arrays.idx[sel], r.arrays.nn_idx[sel], r.arrays.nn_score[sel])  # noqa: E731
    ums_ci = ums_difference_intervals(take(base, base_sel), take(other, other_sel), b_bands.all(), o_bands.all())
    nb, no = len(base_sel), len(other_sel)
    out = []
    for name in BANDS_HIGH_FIRST:
        kb = int(np.count_nonzero(b_bands.band(name).contains(base.arrays.best[base_sel])))
        ko = int(np.count_nonzero(o_bands.band(name).contains(other.arrays.best[other_sel])))
        ub, uo = base_result.ums[name], other_result.ums[name]
        out.append(RunChange(
            j, key[0], key[1], name, nb, no,
            ams=Change(base_result.ams[name], other_result.ams[name], newcombe_interval(ko, no, kb, nb)),
            ums=Change(ub, uo, ums_ci[name], unseen=ub == 0 or uo == 0)))
    return out


def compare_audits(paths: Sequence[str | Path], *, accept_differences: bool = False,
                   check: Callable[[], None] = lambda: None) -> AuditComparison:
    """read_audit each folder, then compare them (the first is the baseline)."""
    read = []
    for p in paths:
        check()
        read.append(read_audit(p))
    return compare(read, accept_differences=accept_differences, check=check)


# ----- as text ----------------------------------------------------------------------------------------------------
def _run_text(guide: Guide, gamma: float) -> str:
    return guide.tag if guide is Guide.NONE else f"{guide.tag} γ={gamma:g}"


def _short(label: str, most: int = 32) -> str:
    return label if len(label) <= most else label[:most - 1] + "…"


def _pp(v: float) -> str:
    return f"{100 * v:+.2f}"


def _change_cells(c: Change) -> str:
    lo, hi = c.interval
    mark = ("*" if c.excludes_zero else "") + ("~" if c.unseen else "")
    interval = f"[{_pp(lo)}, {_pp(hi)}]"
    return f"{100 * c.baseline:>7.2f}{100 * c.other:>7.2f}{_pp(c.difference):>8} {interval:<16} {mark:<2}"


def format_comparison(c: AuditComparison) -> str:
    """The comparison as `side report A B ...` prints it, at most 110 columns wide: the audits, the facts that
    differ, then per other audit a table of each shared run and band with the differences and their intervals."""
    lines = ["audits (1 is the baseline; each difference is the other audit minus it):"]
    lines += [f"  {i:>2}  {a.label}   {a.path}" for i, a in enumerate(c.audits, start=1)]
    if c.differences:
        lines += ["", "they differ in:"]
        for d in c.differences:
            lines += textwrap.wrap(d.line + ("  (accepted)" if d.refusing else ""), WIDTH, initial_indent="  ",
                                   subsequent_indent="      ", break_on_hyphens=False)
    else:
        lines += [""] + textwrap.wrap("they differ in none of: " + ", ".join(what for what, *_ in FACTS), WIDTH)
    lines += ["", "%; differences in percentage points, with 95% intervals: AMS Newcombe's hybrid score interval,",
              f"UMS a bootstrap ({N_RESAMPLES} resamples of each audit's images); * the interval excludes 0"]
    for j in range(1, len(c.audits)):
        rows = [r for r in c.changes if r.audit == j]
        lines += ["", f"audit {j + 1} ({_short(c.audits[j].label)}) against audit 1 ({_short(c.audits[0].label)})"]
        if rows:
            head = f"{'run':<10}{'band':<5}{'N':>9}"
            metric = f"{'1':>7}{j + 1:>7}{'diff':>8} {'95% interval':<19}"
            lines += [f"{'':<24}" + "".join(f"{m + ' %':^42}" for m in ("AMS", "UMS")),
                      head + metric + "  " + metric]
        for r in rows:
            n = str(r.n_baseline) if r.n_baseline == r.n_other else f"{r.n_baseline}/{r.n_other}"
            lines.append(f"{_run_text(r.guide, r.gamma):<10}{r.band:<5}{n:>9}{_change_cells(r.ams)}  "
                         f"{_change_cells(r.ums)}")
        for r in c.lone:
            if j in (r.audit, r.missing_in):
                lines.append(f"{_run_text(r.guide, r.gamma):<10}only in audit {r.audit + 1} (N {r.n})")
    if any(r.ums.unseen for r in c.changes):
        lines += ["", UNSEEN_NOTE, "  is its resolution at its N, 3.84 / (N + 3.84) (the Wilson bound of 0 images)"]
    if any(r.n_baseline != r.n_other for r in c.changes):
        lines += ["N base/other: the runs hold different numbers of images; UMS compares fairly only at equal N"]
    return "\n".join(line.rstrip() for line in lines)
