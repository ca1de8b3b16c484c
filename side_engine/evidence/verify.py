"""Checking an evidence export (export.py): every file against manifest.json, and optionally every generated
image against a fresh regeneration from its seed, label, gamma and classifier with the audited model.

A failed check is a finding, not an error: verify_export() returns the problems, one line each naming the file.
Only an unusable input (no export here, a model folder that cannot be loaded) raises InputError.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from .. import __version__, provenance
from ..config import AuditConfig, config_from_dict
from ..errors import InputError
from ..events import Check, no_check
from ..provenance import SAMPLER_REVISION
from ..store import CONFIG_NAME, AuditStore
from ..vocabulary import GUIDES, Guide
from .manifest import MANIFEST, READABLE_FORMATS, SUMS, manifest_bytes, sha256_bytes, sums_bytes
from .selection import classifier_name
from .signing import MAX_KEY_BYTES, SIGNATURE, Signer, check

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
    signer: Signer | None = None  # whose valid signature manifest.json carries
    trusted: bool = False  # the signer is the key verify was told to trust

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


# An export is read as a stranger's folder: nothing outside it is read, no link is followed, and no file is read
# past these limits.
# The largest file export writes is report.html (or report.pdf): three tiles per pair, up to ~2 MB a pair for
# 512 px photographs, so ~2 GB for a thousand such pairs. 4 GiB leaves room for that and still refuses the
# terabyte sparse file that would keep the hashing busy for hours.
MAX_FILE_BYTES = 4 << 30
# manifest.json and SHA256SUMS are read whole and parsed: a pair is ~2 KB of manifest, so 256 MiB is >100,000
# pairs, far past any export whose report could be read, and small enough to parse in memory.
MAX_MANIFEST_BYTES = 256 << 20
# A safetensors file starts with an 8-byte little-endian header length, then that much JSON; safetensors itself
# refuses headers over 100 MB, and so does this check, before any parsing.
MAX_SAFETENSORS_HEADER = 100_000_000
_CHUNK = 1 << 20


def shown(s: str) -> str:
    r"""s as one printable line: bytes of a name that is not UTF-8 (Python's surrogate escapes) as \xNN and other
    non-printable characters (newline, bidi overrides) as \n, \u202e; an ordinary name is unchanged."""
    if s.isprintable():
        return s
    out = []
    for c in s:
        if 0xDC80 <= ord(c) <= 0xDCFF:
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif c.isprintable():
            out.append(c)
        else:
            out.append(c.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def _entry(root: Path, rel: str) -> str:
    """How a finding names an entry of the export: the folder, then the entry as it was written, escaped."""
    if rel.startswith("/"):
        return shown(rel)
    return f"{root}/{shown(rel)}" if rel else str(root)


def bad_name(rel: object) -> str | None:
    """Why an entry of manifest.json cannot name a file of the export, or None: only relative POSIX paths inside
    it, with no empty, '.' or '..' component, valid UTF-8 and no control characters."""
    if not isinstance(rel, str) or not rel:
        return "not a file name"
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8"
    if rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        return "an absolute path, not a path inside the export"
    if "\\" in rel or any(part in ("", ".", "..") for part in rel.split("/")):
        return "not a plain path inside the export ('..', '.', '//' or '\\')"
    if not rel.isprintable():
        return "has control characters in its name"
    return None


def _open_member(root: Path, rel: str, limit: int):
    """A binary file object for root/rel, refusing links (the last component by O_NOFOLLOW, the folders above by
    lstat), anything but a regular file, and files over `limit` bytes. Raises ValueError(why)."""
    here = root
    for part in rel.split("/")[:-1]:
        here = here / part
        st = os.lstat(here)
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise ValueError(f"{shown(part)} on its path is a link or no folder (not followed)")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(root / rel, flags)
    except OSError as e:
        if os.path.islink(root / rel):
            raise ValueError("a symbolic link (an export holds none; not followed)") from None
        raise ValueError(f"cannot be read ({e.strerror})") from None
    f = os.fdopen(fd, "rb")
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        f.close()
        raise ValueError("not a regular file")
    if st.st_size > limit:
        f.close()
        raise ValueError(f"{st.st_size} bytes, more than any file an export holds (limit {limit}): not read")
    return f


def _hash_member(root: Path, rel: str) -> str:
    h = hashlib.sha256()
    with _open_member(root, rel, MAX_FILE_BYTES) as f:
        read = 0
        while chunk := f.read(_CHUNK):
            read += len(chunk)
            if read > MAX_FILE_BYTES:  # grew while being read
                raise ValueError(f"more than {MAX_FILE_BYTES} bytes: not read further")
            h.update(chunk)
    return h.hexdigest()


def _read_member(root: Path, rel: str, limit: int = MAX_MANIFEST_BYTES) -> bytes:
    with _open_member(root, rel, limit) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"more than {limit} bytes: not read")
    return data


def _walk(root: Path, report: Report) -> dict[str, int]:
    """{relative path: size} of the export's regular files; links, special files and names that are not UTF-8 are
    findings, and no link is followed."""
    files: dict[str, int] = {}
    stack = [""]
    while stack:
        top = stack.pop()
        try:
            entries = sorted(os.scandir(root / top if top else root), key=lambda e: e.name)
        except OSError as e:
            report.problems.append(f"{_entry(root, top)}: cannot be listed ({e.strerror})")
            continue
        for e in entries:
            rel = f"{top}/{e.name}" if top else e.name
            try:
                e.name.encode("utf-8")
            except UnicodeEncodeError:
                report.problems.append(f"{_entry(root, rel)}: name is not valid UTF-8, not part of an export")
                continue
            if e.is_symlink():
                report.problems.append(f"{_entry(root, rel)}: a symbolic link (an export holds none; not followed)")
            elif e.is_dir(follow_symlinks=False):
                stack.append(rel)
            elif e.is_file(follow_symlinks=False):
                files[rel] = e.stat(follow_symlinks=False).st_size
            else:
                report.problems.append(f"{_entry(root, rel)}: not a regular file, not part of an export")
    return files


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    seen: dict = {}
    for k, v in pairs:
        if k in seen:
            raise _Duplicate(k)
        seen[k] = v
    return seen


class _Duplicate(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _load_manifest(root: Path, report: Report) -> dict | None:
    path = root / MANIFEST
    try:
        data = _read_member(root, MANIFEST)
    except ValueError as e:
        report.problems.append(f"{path}: {e}")
        return None
    try:
        body = json.loads(data, object_pairs_hook=_no_duplicates)
        claimed = body.pop("manifest_sha256")
        canonical = manifest_bytes(body)
    except _Duplicate as e:
        report.problems.append(f"{path}: names {shown(e.key)!r} twice (changed or forged)")
        return None
    except (json.JSONDecodeError, UnicodeDecodeError, UnicodeEncodeError, KeyError, AttributeError, TypeError,
            ValueError, RecursionError):
        report.problems.append(f"{path}: not a valid evidence manifest (changed or damaged)")
        return None
    if canonical != data or not isinstance(claimed, str):
        report.problems.append(f"{path}: changed since export (its own SHA-256 does not match)")
        return None
    if body.get("format") not in READABLE_FORMATS:
        report.problems.append(f"{path}: format {shown(str(body.get('format')))!r}, this engine reads "
                               f"{' and '.join(READABLE_FORMATS)}")
        return None
    files = body.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        report.problems.append(f"{path}: 'files' is not a table of file: SHA-256")
        return None
    bad = [(rel, why) for rel in files if (why := bad_name(rel)) or rel in (MANIFEST, SUMS, SIGNATURE)]
    for rel, why in bad:
        report.problems.append(f"{_entry(root, rel)}: listed in manifest.json but {why or 'hashed elsewhere'}")
    return None if bad else body


def check_files(root: Path, body: dict, manifest_sha: str, report: Report) -> None:
    listed: dict[str, str] = body["files"]
    present = _walk(root, report)
    for rel in sorted(set(present) - set(listed) - {MANIFEST, SUMS, SIGNATURE}):
        report.problems.append(f"{_entry(root, rel)}: extra file, not part of the export")
    reported = {line.split(": ", 1)[0] for line in report.problems}
    for rel, sha in sorted(listed.items()):
        report.checked_files += 1
        if _entry(root, rel) in reported:
            continue
        if rel not in present:
            report.problems.append(f"{_entry(root, rel)}: missing")
            continue
        try:
            changed = _hash_member(root, rel) != sha
        except (ValueError, OSError) as e:
            report.problems.append(f"{_entry(root, rel)}: {e}")
            continue
        if changed:
            report.problems.append(f"{_entry(root, rel)}: changed since export (SHA-256 differs from manifest.json)")
    if str(root / SUMS) not in reported:
        _check_sums(root, sums_bytes(listed, manifest_sha), report)


def _check_sums(root: Path, expected: bytes, report: Report) -> None:
    sums = root / SUMS
    if not os.path.lexists(sums):
        report.problems.append(f"{sums}: missing")
        return
    try:
        data = _read_member(root, SUMS, max(len(expected), 1 << 20))
    except (ValueError, OSError) as e:
        report.problems.append(f"{sums}: {e}")
        return
    if data == expected:
        return
    want = expected.decode().splitlines()
    lines = data.decode("utf-8", "surrogateescape").splitlines()
    seen: set[str] = set()
    why = ""
    for n, line in enumerate(lines, 1):
        entry = shown(line.partition("  ")[2] or line)
        if line in seen:
            why = f"line {n} repeats {entry!r}"
        elif line not in want:
            why = f"line {n} ({entry!r}) is not what manifest.json lists"
        seen.add(line)
        if why:
            break
    else:
        gone = [x for x in want if x not in seen]
        if gone:
            why = f"{shown(gone[0].partition('  ')[2])!r} is not listed"
    report.problems.append(f"{sums}: changed since export (does not match manifest.json{': ' + why if why else ''})")


def check_safetensors(path: Path) -> str | None:
    """Why a safetensors file is refused before any parser sees it, or None: its 8-byte header length must fit
    the file and MAX_SAFETENSORS_HEADER, the header must be a JSON object, and every tensor's data must lie in
    the file."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                return "too short for a safetensors file"
            n = int.from_bytes(head, "little")
            if n > MAX_SAFETENSORS_HEADER:
                return f"safetensors header of {n} bytes, over the limit of {MAX_SAFETENSORS_HEADER}: refused"
            if n > size - 8:
                return f"safetensors header of {n} bytes in a file of {size}: refused"
            header = json.loads(f.read(n))
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "safetensors header is not valid JSON: refused"
    if not isinstance(header, dict):
        return "safetensors header is not a JSON object: refused"
    for name, t in header.items():
        if name == "__metadata__":
            continue
        offsets = t.get("data_offsets") if isinstance(t, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= size - 8 - n):
            return f"safetensors entry {shown(str(name))!r} lies outside the file: refused"
    return None


def _model_weights(model_dir: Path) -> list[Path]:
    """The safetensors files load_target may read: in the model folder and its direct sub-folders (unet/)."""
    return sorted(p for pattern in ("*.safetensors", "*/*.safetensors") for p in model_dir.glob(pattern))


def verify_export(export_dir: str | Path, model_dir: str | Path | None = None, device: str = "cpu",
                  progress: Callable[[int, int], None] | None = None, check: Check | None = None,
                  trust: Signer | None = None) -> Report:
    """Re-hash every file and check manifest.json's signature, if it has one (against `trust`, if given); given the
    model folder, also regenerate every generated image and compare.

    Nothing outside export_dir is read for the check of its files; with model_dir, that folder's safetensors
    are read too, and nothing else is loaded (no pickle, no TorchScript).

    progress(done, total) is told as each batch of regenerated images is compared; check() is called between
    sampler steps and stops the regeneration by raising (Cancelled)."""
    root = Path(export_dir).expanduser().resolve()
    if not root.is_dir() or not os.path.lexists(root / MANIFEST):
        raise InputError(root, f"not an evidence export (no {MANIFEST})")
    report = Report()
    body = _load_manifest(root, report)
    if body is None:
        # A manifest.json changed since export is named above; whether its signature still holds is said too.
        check_signature(root, {}, trust, report)
        return report
    # The manifest as read: _load_manifest found it equal to its canonical form, so its bytes are not read again.
    data = manifest_bytes(body)
    check_files(root, body, sha256_bytes(data), report)
    check_signature(root, body, trust, report, data)
    if model_dir is None or not report.ok:
        return report
    _check_model(root, body, model_dir, device, report, progress, check or no_check)
    return report


def check_signature(root: Path, body: dict, trust: Signer | None, report: Report, data: bytes | None = None) -> None:
    """manifest.json.sig against manifest.json's bytes (data, where the caller has them; read otherwise); the signer
    named in the manifest and the trusted key."""
    path = root / SIGNATURE
    named = body.get("signed_by")
    if not os.path.lexists(path):
        if named:
            report.problems.append(f"{path}: missing, though manifest.json says the export was signed")
        elif trust is not None:
            report.problems.append(f"{path}: missing: the export is not signed, and --trust asks for a signature by "
                                   f"{trust.fingerprint}")
        return
    try:
        signed = data if data is not None else _read_member(root, MANIFEST)
        signer = check(signed, _read_member(root, SIGNATURE, MAX_KEY_BYTES).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        report.problems.append(f"{path}: {shown(str(e))}")
        return
    if body and (not isinstance(named, dict) or named.get("fingerprint") != signer.fingerprint):
        report.problems.append(f"{path}: signed by {signer.fingerprint}, not the signer manifest.json names")
        return
    report.signer = signer
    if trust is not None:
        if signer.fingerprint != trust.fingerprint:
            report.problems.append(f"{path}: signed by {signer.fingerprint}, not by the trusted key "
                                   f"{trust.fingerprint}")
        else:
            report.trusted = True


def _check_model(root: Path, body: dict, model_dir: str | Path, device: str, report: Report,
                 progress: Callable[[int, int], None] | None, check: Check) -> None:
    """Runs only after check_files passed: every file read here is one of the export's own, checked files."""
    listed: dict[str, str] = body["files"]
    cfg_path = root / CONFIG_NAME
    if CONFIG_NAME not in listed:
        report.problems.append(f"{cfg_path}: not among the export's files; regeneration needs it")
        return
    try:
        cfg = config_from_dict(tomllib.loads(_read_member(root, CONFIG_NAME).decode("utf-8")), cfg_path)
    except (ValueError, UnicodeDecodeError) as e:  # TOMLDecodeError is a ValueError
        report.problems.append(f"{cfg_path}: not a readable audit configuration ({shown(str(e))})")
        return
    made_by = body.get("made_by") or {}
    revision = made_by.get("sampler_revision")
    if revision is not None and revision != SAMPLER_REVISION:
        report.problems.append(
            f"{root / MANIFEST}: images made with sampler revision {revision} (SIDE Inspector "
            f"{made_by.get('engine_version')}); this engine ({__version__}) samples with revision {SAMPLER_REVISION},"
            " whose pixels differ by design, so nothing was regenerated. Not a sign of tampering: the files' hashes "
            f"are checked above. To regenerate, install side-inspector=={made_by.get('engine_version')}")
        return
    model = Path(model_dir).expanduser()
    for weights in _model_weights(model):
        if why := check_safetensors(weights):
            raise InputError(weights, why)
    try:
        pairs = [_pair_entry(p) for p in body["pairs"]]
    except (KeyError, TypeError, ValueError) as e:
        report.problems.append(f"{root / MANIFEST}: a pair is not what an export writes ({shown(str(e))})")
        return
    needed = {"td"} | {name for p in pairs if p["guide"] in GUIDES
                       and (name := classifier_name(Guide(p["guide"]), cfg.labels.source))}
    found = len(report.problems)
    for name in sorted(needed):
        rel = f"classifiers/{name}.safetensors"
        if rel not in listed:
            report.problems.append(f"{root / rel}: not among the export's files; regeneration needs it")
        elif why := check_safetensors(root / rel):
            report.problems.append(f"{root / rel}: {why}")
    if len(report.problems) > found:
        return
    if "clusters" in needed and cfg.matching.descriptor != "pixels":
        report.problems.append(
            f"{cfg_path}: the cluster centres need the {shown(cfg.matching.descriptor)} descriptor, a TorchScript "
            "file outside the export and the model folder, which verify does not load: OL-TI images not regenerated")
        pairs = [p for p in pairs if p["guide"] != Guide.TI]
    regen = Regenerator(model, cfg, root / "classifiers", device)
    recorded = sorted((f["path"], f["sha256"]) for f in body["model"]["files"])
    if sorted(regen.target.files) != recorded:
        changed = sorted(set(regen.target.files) ^ set(recorded))
        report.problems.append(f"{Path(model_dir) / changed[0][0]}: model files differ from the ones the export "
                               "records (SHA-256 or file list): not the audited model")
        return
    groups: dict[tuple[Guide, float, int], list[dict]] = {}
    for p in pairs:
        path = _entry(root, p["generated_file"])
        if p["generated_file"] not in listed or p["generated_file"] in (MANIFEST, SUMS):
            report.problems.append(f"{path}: pair {p['rank']}'s generated image is not among the export's files")
            continue
        if (p["label"], p["seed"]) != regen.label_and_seed(p["index"]):
            report.problems.append(f"{path}: its label and seed in manifest.json do not follow from audit.toml")
            continue
        if p["guide"] not in GUIDES:
            report.problems.append(f"{path}: its guide {shown(str(p['guide']))!r} in manifest.json is none of "
                                   f"{', '.join(GUIDES)}")
            continue
        groups.setdefault((Guide(p["guide"]), p["gamma"], regen.batch_of(p["index"])[0]), []).append(p)
    done = 0
    for (guide, gamma, _), group in groups.items():
        made = regen.regenerate(guide, gamma, [p["index"] for p in group], check)
        for p in group:
            path = root / p["generated_file"]
            want = made[p["index"]]
            try:
                with Image.open(path) as f:
                    # The size from the PNG header first: a forged header must not make PIL decode a huge image.
                    diff = 255 if f.size != (want.shape[1], want.shape[0]) else max_difference(want, np.asarray(f))
            except (OSError, ValueError, Image.DecompressionBombError) as e:
                report.problems.append(f"{path}: not a readable image ({shown(str(e))})")
                continue
            report.regenerated.append((p["image_id"], diff))
            if diff > REGEN_TOLERANCE:
                report.problems.append(
                    f"{path}: regenerated image differs by up to {diff} grey levels (tolerance {REGEN_TOLERANCE};"
                    f" audit ran {cfg.runtime.dtype} on {cfg.runtime.device}, this check on {device}"
                    f"{_versions_differ(made_by, revision is None)})")
        done += len(group)
        if progress is not None:
            progress(done, len(pairs))


def _pair_entry(p: object) -> dict:
    """A pair of manifest.json with the fields regeneration reads, each of the type export writes."""
    if not isinstance(p, dict):
        raise TypeError("not a table")
    for key, kind in (("rank", int), ("image_id", int), ("index", int), ("label", int), ("seed", int),
                      ("gamma", (int, float)), ("guide", str), ("generated_file", str)):
        if not isinstance(p.get(key), kind) or isinstance(p.get(key), bool):
            raise TypeError(f"{key} is {shown(repr(p.get(key)))[:60]}")
    if p["index"] < 0:
        raise ValueError("index is negative")
    return p


def _versions_differ(made_by: dict, unrecorded: bool) -> str:
    """Why regenerated pixels may differ besides tampering, from what the export records of its engine."""
    if unrecorded:
        return ("; this export does not record its sampler revision (format side-evidence/1): one made before the "
                "guidance fix (engine 0.1.0, audits of schema 1) cannot be regenerated by this engine")
    here = provenance.engine()
    other = [f"{k} {made_by.get(k)} there, {here[k]} here" for k in ("torch", "diffusers")
             if made_by.get(k) and made_by.get(k) != here[k]]
    return f"; made with {', '.join(other)}" if other else ""
