"""What one export says, gathered from the audit once and handed to every writer (grid, PDF, HTML, manifest).

The writers read these facts, never the store: each takes what it needs from one object, and the grid, the PDF,
the HTML and the manifest cannot disagree about a fact because they were each handed a copy read at another time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..config import AuditConfig
from ..matching.metrics import Bands, GroupResult
from ..store import AuditStore, FileRecord
from ..vocabulary import Direction
from .selection import ChosenImage, Pair

if TYPE_CHECKING:
    from .signing import Signer
    from .tables import Table


@dataclass(frozen=True)
class ExportContext:
    config: AuditConfig
    audit_dir: Path
    created: str | None  # when the audit was made
    audit_engine_version: str | None  # the engine that made the audit
    model_folder: str
    model_files: tuple[FileRecord, ...]
    train_folder: Path
    n_train: int
    training_manifest_sha256: str | None
    n_neighbours: int | None
    descriptor: str
    direction: Direction  # of the descriptor's scores
    bands: Bands
    bands_overridden: bool  # the bands were set at export, not the audit's
    selection: dict  # the filters, image ids sorted
    pairs: tuple[Pair, ...]
    results: tuple[GroupResult, ...]  # every run of the audit, with intervals and the comparison with Random
    chance: float | None  # the share of target labels a guide reaches by chance
    classifiers: dict[str, str]  # file stem in classifiers/ -> SHA-256
    date: str  # of the export
    version: str  # of the engine that exports
    made_by: dict  # what made the audit's images (AuditStore.made_by): regeneration depends on it
    signer: Signer | None = None  # whose key signs manifest.json
    chosen: tuple[ChosenImage, ...] = ()  # the training images asked for (export --image), each a page of its own

    @classmethod
    def of(cls, store: AuditStore, *, bands: Bands, bands_overridden: bool, selection: dict,
           pairs: tuple[Pair, ...], results: tuple[GroupResult, ...], chance: float | None,
           classifiers: dict[str, str], signer: Signer | None = None,
           chosen: tuple[ChosenImage, ...] = ()) -> ExportContext:
        """What the audit says of itself, read from its store now, with what this export chose and wrote."""
        cfg = store.config
        return cls(
            config=cfg, audit_dir=store.root, created=store.meta("created"),
            audit_engine_version=store.meta("engine_version"), model_folder=store.model_path or cfg.model.path,
            model_files=tuple(store.files("model")), train_folder=store.train_path or Path(cfg.data.train),
            n_train=store.n_train,
            training_manifest_sha256=next((r.sha256 for r in store.files("training_manifest")), None),
            n_neighbours=store.n_neighbours, descriptor=store.descriptor, direction=store.direction, bands=bands,
            bands_overridden=bands_overridden, selection=selection, pairs=pairs, results=results, chance=chance,
            classifiers=classifiers, date=time.strftime("%Y-%m-%d %H:%M:%S %z"), version=__version__,
            made_by=store.made_by, signer=signer, chosen=chosen)

    @property
    def title(self) -> str:
        return f"SIDE evidence: audit '{self.config.name or self.audit_dir.name}'"

    @property
    def unit(self) -> str:
        return self.direction.unit

    @property
    def raw_name(self) -> str:
        return self.direction.raw_name

    # Made once, read by the PDF and the HTML alike.
    @cached_property
    def tables(self) -> list[Table]:
        from .tables import metric_tables  # tables.py reads this module's type: imported when first asked

        return metric_tables(self.results, self.direction, self.chance)

    @cached_property
    def gamma_svg(self) -> str:
        from .svg import gamma_plot_svg

        return gamma_plot_svg(self.results)
