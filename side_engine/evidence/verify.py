"""Checking an evidence export (export.py): every file against manifest.json, and optionally every generated
image against a fresh regeneration from its seed, label, gamma and classifier with the audited model.

A failed check is a finding, not an error: verify_export() returns the problems, one line each naming the file.
Only an unusable input (no export here, a model folder that cannot be loaded) raises InputError.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from ..config import AuditConfig, config_from_dict
from ..dataset import sha256_file
from ..errors import InputError
from ..events import Check, no_check
from ..store import CONFIG_NAME, AuditStore
from ..vocabulary import GUIDES, Guide
from .manifest import FORMAT, MANIFEST, SUMS, manifest_bytes, sums_bytes
from .selection import classifier_name

if TYPE_CHECKING:
    from ..method.classifier import ResNetClassifier
    from ..method.surrogate import CentroidClassifier

# Largest |regenerated - exported| in grey levels that still counts as the same image (docs/EVIDENCE.md): on the
# same machine and dtype the only difference left is float rounding across batch sizes, which can move a pixel
# across a rounding boundary by one level.
REGEN_TOLERANCE = 1


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)  # "path: what is wrong", one per finding
    regenerated: list[tuple[int, int]] = field(default_factory=list)  # (image id, max pixel difference)
    checked_files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def max_difference(self) -> int | None:
        return max((d for _, d in self.regenerated), default=None)


class Regenerator:
    """Regenerates generated images of one audit: the model plus the classifiers and settings that guided them."""

    def __init__(self, model_dir: str | Path, cfg: AuditConfig, classifier_dir: Path, device: str = "cpu"):
        from ..target import load_target

        self.target = load_target(model_dir, cfg.model.scheduler, device=device)
        self.cfg = cfg
        self.device = device
        self.dtype = torch.bfloat16 if cfg.runtime.dtype == "bfloat16" else torch.float32
        self._dir = classifier_dir
        self._loaded: dict[str, ResNetClassifier | CentroidClassifier] = {}

    @classmethod
    def for_audit(cls, audit_dir: str | Path, device: str = "cpu") -> Regenerator:
        store = AuditStore.open(audit_dir)
        try:
            return cls(store.config.model.path, store.config, store.root / "classifiers", device)
        finally:
            store.close()

    def classifier(self, guide: Guide) -> ResNetClassifier | CentroidClassifier | None:
        """f_TD for SIDE, f_TI for OL-TI (the nearest-centre classifier when labels come from clusters), None for
        Random."""
        name = classifier_name(guide, self.cfg.labels.source)
        if name is None:
            return None
        if name not in self._loaded:
            self._loaded[name] = self._load(name).to(self.device)
        return self._loaded[name]

    def _load(self, name: str) -> ResNetClassifier | CentroidClassifier:
        from ..method.classifier import load_classifier

        path = self._dir / f"{name}.safetensors"
        if name == "clusters":
            from safetensors.torch import load_file

            from ..matching.descriptors import make_descriptor
            from ..method.surrogate import CentroidClassifier

            if not path.is_file():
                raise InputError(path, "missing: the OL-TI images of a clusters audit need the cluster centres")
            m = self.cfg.matching
            return CentroidClassifier(make_descriptor(m.descriptor, m.path, m.resize, self.device),
                                      load_file(path)["centres"], self.cfg.clusters.temperature).eval()
        return load_classifier(path)[0]

    def images(self, guide: Guide, gamma: float, labels: list[int], seeds: list[int],
               check: Check | None = None) -> np.ndarray:
        """uint8 images (N, H, W) or (N, H, W, 3) from these labels and seeds with the audit's sampler."""
        from ..method.guidance import classifier_cond_fn, sample, to_uint8

        e = self.cfg.extraction
        classifier = self.classifier(guide)
        cond_fn = None if classifier is None else classifier_cond_fn(classifier, labels, guide.time_dependent)
        x = sample(self.target.unet, self.target.ddim(), seeds, steps=e.steps, eta=e.eta, gamma=gamma,
                   cond_fn=cond_fn, dtype=self.dtype, check=check)
        return to_uint8(x)

    def batch_of(self, index: int) -> list[int]:
        """The sweep indices the extraction sampled together with `index`. Batches are cut at multiples of
        extraction.batch (a resumed leg restarts at such a multiple, because batches are stored whole)."""
        e = self.cfg.extraction
        start = index - index % e.batch
        return list(range(start, min(start + e.batch, e.n_per_gamma)))

    def label_and_seed(self, index: int) -> tuple[int, int]:
        from ..method.classifier import ResNetClassifier
        from ..method.guidance import image_seed
        from ..pipeline import target_label

        f_td = self.classifier(Guide.TD)
        assert isinstance(f_td, ResNetClassifier)  # f_TD is a ResNet whatever the label source
        label = target_label(self.cfg.extraction, f_td.arch["num_classes"], index)
        return label, image_seed(self.cfg.extraction.seed, label, index)

    def regenerate(self, guide: Guide | str, gamma: float, indices: list[int],
                   check: Check | None = None) -> dict[int, np.ndarray]:
        """{index: image} for sweep indices of one (guide, gamma) leg, each made inside the very batch the
        extraction made it in: float rounding depends on the batch size (a batch of one takes other kernels on
        CPU), and strong guidance can grow a last-bit difference into a visibly different image."""
        guide = Guide(guide)
        out: dict[int, np.ndarray] = {}
        for index in indices:
            if index in out:
                continue
            batch = self.batch_of(index)
            labels, seeds = zip(*(self.label_and_seed(j) for j in batch), strict=True)
            out.update(zip(batch, self.images(guide, gamma, list(labels), list(seeds), check), strict=True))
        return {i: out[i] for i in indices}


def max_difference(a: np.ndarray, b: np.ndarray) -> int:
    if a.shape != b.shape:
        return 255
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def _load_manifest(root: Path, report: Report) -> dict | None:
    path = root / MANIFEST
    data = path.read_bytes()
    try:
        body = json.loads(data)
        claimed = body.pop("manifest_sha256")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, AttributeError):
        report.problems.append(f"{path}: not a valid evidence manifest (changed or damaged)")
        return None
    if manifest_bytes(body) != data or not isinstance(claimed, str):
        report.problems.append(f"{path}: changed since export (its own SHA-256 does not match)")
        return None
    if body.get("format") != FORMAT:
        report.problems.append(f"{path}: format {body.get('format')!r}, this engine reads {FORMAT}")
        return None
    return body


def check_files(root: Path, body: dict, manifest_sha: str, report: Report) -> None:
    listed: dict[str, str] = body["files"]
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    for rel in sorted(present - set(listed) - {MANIFEST, SUMS}):
        report.problems.append(f"{root / rel}: extra file, not part of the export")
    for rel, sha in sorted(listed.items()):
        if rel not in present:
            report.problems.append(f"{root / rel}: missing")
        elif sha256_file(root / rel) != sha:
            report.problems.append(f"{root / rel}: changed since export (SHA-256 differs from manifest.json)")
        report.checked_files += 1
    sums = root / SUMS
    if not sums.is_file():
        report.problems.append(f"{sums}: missing")
    elif sums.read_bytes() != sums_bytes(listed, manifest_sha):
        report.problems.append(f"{sums}: changed since export (does not match manifest.json)")


def verify_export(export_dir: str | Path, model_dir: str | Path | None = None, device: str = "cpu",
                  progress: Callable[[int, int], None] | None = None, check: Check | None = None) -> Report:
    """Re-hash every file; given the model folder, also regenerate every generated image and compare.

    progress(done, total) is told as each batch of regenerated images is compared; check() is called between
    sampler steps and stops the regeneration by raising (Cancelled)."""
    root = Path(export_dir).expanduser().resolve()
    if not (root / MANIFEST).is_file():
        raise InputError(root, f"not an evidence export (no {MANIFEST})")
    report = Report()
    body = _load_manifest(root, report)
    if body is None:
        return report
    check_files(root, body, sha256_file(root / MANIFEST), report)
    if model_dir is None or not report.ok:
        return report
    _check_model(root, body, model_dir, device, report, progress, check or no_check)
    return report


def _check_model(root: Path, body: dict, model_dir: str | Path, device: str, report: Report,
                 progress: Callable[[int, int], None] | None, check: Check) -> None:
    cfg_path = root / CONFIG_NAME
    cfg = config_from_dict(tomllib.loads(cfg_path.read_text(encoding="utf-8")), cfg_path)
    regen = Regenerator(model_dir, cfg, root / "classifiers", device)
    recorded = sorted((f["path"], f["sha256"]) for f in body["model"]["files"])
    if sorted(regen.target.files) != recorded:
        changed = sorted(set(regen.target.files) ^ set(recorded))
        report.problems.append(f"{Path(model_dir) / changed[0][0]}: model files differ from the ones the export "
                               "records (SHA-256 or file list): not the audited model")
        return
    pairs = body["pairs"]
    groups: dict[tuple[Guide, float, int], list[dict]] = {}
    for p in pairs:
        path = root / p["generated_file"]
        if (p["label"], p["seed"]) != regen.label_and_seed(p["index"]):
            report.problems.append(f"{path}: its label and seed in manifest.json do not follow from audit.toml")
            continue
        if p["guide"] not in GUIDES:
            report.problems.append(f"{path}: its guide {p['guide']!r} in manifest.json is none of "
                                   f"{', '.join(GUIDES)}")
            continue
        groups.setdefault((Guide(p["guide"]), p["gamma"], regen.batch_of(p["index"])[0]), []).append(p)
    done = 0
    for (guide, gamma, _), group in groups.items():
        made = regen.regenerate(guide, gamma, [p["index"] for p in group], check)
        for p in group:
            path = root / p["generated_file"]
            with Image.open(path) as f:
                diff = max_difference(made[p["index"]], np.asarray(f))
            report.regenerated.append((p["image_id"], diff))
            if diff > REGEN_TOLERANCE:
                report.problems.append(
                    f"{path}: regenerated image differs by up to {diff} grey levels (tolerance {REGEN_TOLERANCE};"
                    f" audit ran {cfg.runtime.dtype} on {cfg.runtime.device}, this check on {device})")
        done += len(group)
        if progress is not None:
            progress(done, len(pairs))
