"""The training set: an image folder, converted to the model's channels and size as the model saw it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass
class TrainingSet:
    root: Path
    images: torch.Tensor  # (N, C, H, W) float32 in [0, 1]
    paths: list[str]  # relative to root, POSIX
    sha256: list[str]
    labels: np.ndarray | None  # (N,) int64 when the folder has one subfolder per class
    class_names: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def manifest_sha256(self) -> str:
        """One hash for the whole set: SHA-256 of the sorted 'sha256  path' lines."""
        lines = sorted(f"{h}  {p}\n" for h, p in zip(self.sha256, self.paths))
        return hashlib.sha256("".join(lines).encode()).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def to_model_space(img: Image.Image, channels: int, size: int) -> np.ndarray:
    """(C, size, size) uint8: the conversion diffusers' unconditional training script applies
    (resize the short side, centre crop), with the model's channel count."""
    img = img.convert("L" if channels == 1 else "RGB")
    w, h = img.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR)
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        img = img.crop((left, top, left + size, top + size))
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def load_training_set(root: str | Path, channels: int, size: int, on_skip=None) -> TrainingSet:
    """Load every image under root. One subfolder per class gives labels (ImageFolder convention);
    a flat folder has none. Unreadable files are skipped, reported through on_skip(relpath, reason)
    and counted; an empty or missing folder is an InputError."""
    root = Path(root).expanduser().resolve()
    if not root.exists():
        raise InputError(root, "training folder does not exist")
    if not root.is_dir():
        raise InputError(root, "training set must be a folder of images")

    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    class_dirs = [d for d in class_dirs if any(_is_image(p) for p in d.rglob("*"))]
    skipped: list[tuple[str, str]] = []

    def skip(rel: str, reason: str) -> None:
        skipped.append((rel, reason))
        if on_skip is not None:
            on_skip(rel, reason)

    entries: list[tuple[Path, int]] = []
    if class_dirs:
        for label, d in enumerate(class_dirs):
            entries += [(p, label) for p in sorted(d.rglob("*")) if p.is_file()]
        for p in sorted(root.iterdir()):
            if p.is_file():
                skip(p.relative_to(root).as_posix(), "not inside a class folder")
    else:
        entries = [(p, -1) for p in sorted(root.rglob("*")) if p.is_file()]

    arrays, paths, hashes, labels = [], [], [], []
    for p, label in entries:
        rel = p.relative_to(root).as_posix()
        if p.name.startswith("."):
            continue
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            skip(rel, f"not an image file ({p.suffix or 'no suffix'})")
            continue
        try:
            with Image.open(p) as img:
                img.load()
                arrays.append(to_model_space(img, channels, size))
        except (UnidentifiedImageError, OSError, ValueError) as e:
            skip(rel, f"unreadable image ({type(e).__name__})")
            continue
        paths.append(rel)
        hashes.append(sha256_file(p))
        labels.append(label)

    if not arrays:
        raise InputError(root, "no readable images in the training folder")
    images = torch.from_numpy(np.stack(arrays)).float().div_(255.0)
    return TrainingSet(
        root=root,
        images=images,
        paths=paths,
        sha256=hashes,
        labels=np.asarray(labels, dtype=np.int64) if class_dirs else None,
        class_names=[d.name for d in class_dirs],
        skipped=skipped,
    )
