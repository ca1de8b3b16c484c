"""The training set: an image folder, converted to the model's channels and size as the model saw it.

Odd files are converted as the model saw them or skipped with their reason, never a crash (docs/RELIABILITY.md):
16-bit greyscale is scaled to 8 bits (not clipped), palette and CMYK images go through PIL's convert, an EXIF
orientation is applied, an animated image gives its first frame; a file over MAX_PIXELS (a decompression bomb) is
skipped before it is decoded, as are empty, truncated or unreadable files, broken symlinks and symlink loops.
Symlinked folders inside the training folder are not followed (a loop could not end); a class folder may be one,
unless it links to the training folder itself or above it.

Loading scans the folder once: every file is read, hashed and decoded (so that an unreadable one is skipped and
reported before the audit records the set), in order, with a progress callback. The pixels are kept only when
asked (`keep_pixels`, the default, for small sets and the demo's training); the audit does not keep them:
`TrainingSet.batches` streams them from disk again, checking each file against its recorded SHA-256, and
`TrainingSet.images` reads them all only where every pixel is needed at once (f_TI training).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
# Files read and decoded at a time: PIL's decoders and hashlib release the GIL, so a few threads overlap the
# reads and decodes of one step; the step bounds what is held (its files' bytes and pixels).
READ_STEP = 256
READ_THREADS = min(4, os.cpu_count() or 1)
# Larger images are skipped unread: PIL's own warning threshold (~89.5 M pixels, 268 MB as RGB), far beyond any
# model's training resolution; a decompression bomb claims billions in a file of kilobytes.
MAX_PIXELS = 89_478_485
_EXIF_ORIENTATION = 0x0112

ProgressFn = Callable[[int, int], None]  # progress(done, total): reports only


class TrainingSet:
    """The training images in a fixed order (the order the store numbers them in).

    images: the (N, C, H, W) float32 pixels in [0, 1] when they were kept (or given); otherwise they are read from
    disk on each access. channels / size: the model space the files are converted to (0 when the pixels were given).
    """

    def __init__(self, root: Path, paths: list[str], sha256: list[str], labels: np.ndarray | None,
                 class_names: list[str] | None = None, skipped: list[tuple[str, str]] | None = None,
                 images: torch.Tensor | None = None, channels: int = 0, size: int = 0):
        self.root = Path(root)
        self.paths = paths  # relative to root, POSIX
        self.sha256 = sha256
        self.labels = labels  # (N,) int64 when the folder has one subfolder per class
        self.class_names = list(class_names or [])
        self.skipped = list(skipped or [])  # (relative path, reason)
        self._pixels = images
        self.channels = channels
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def manifest_sha256(self) -> str:
        """One hash for the whole set: SHA-256 of the sorted 'sha256  path' lines."""
        lines = sorted(f"{h}  {p}\n" for h, p in zip(self.sha256, self.paths))
        return hashlib.sha256("".join(lines).encode()).hexdigest()

    @property
    def pixels_in_memory(self) -> bool:
        return self._pixels is not None

    @property
    def images(self) -> torch.Tensor:
        """All pixels, (N, C, H, W) float32 in [0, 1]. Unless they were kept, read from disk on every access:
        N * C * H * W * 4 bytes at once (f_TI training needs them; matching streams with `batches`)."""
        if self._pixels is not None:
            return self._pixels
        if not self.paths:
            return torch.zeros(0, self.channels, self.size, self.size)
        out = torch.empty(len(self), self.channels, self.size, self.size)
        for start, batch in self.batches(READ_STEP):
            out[start:start + len(batch)] = batch
        return out

    def batches(self, batch: int, start: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
        """(first index, (B, C, H, W) float32 in [0, 1]) for images start.. in order, B <= batch, streamed from
        disk unless the pixels are in memory. A file that is now unreadable or whose SHA-256 differs from the one
        recorded is an InputError: the descriptors must be those of the images the audit recorded."""
        if self._pixels is not None:
            for s in range(start, len(self), batch):
                yield s, self._pixels[s:s + batch]
            return
        if not self.channels or not self.size:
            raise ValueError("a TrainingSet without pixels needs its model space (channels, size)")

        def read(i: int) -> np.ndarray:
            rel = self.paths[i]
            try:
                data = (self.root / rel).read_bytes()
            except OSError as e:
                raise InputError(self.root / rel, f"training image no longer readable ({type(e).__name__})") from None
            if self.sha256[i] and hashlib.sha256(data).hexdigest() != self.sha256[i]:
                raise InputError(self.root / rel, "training image changed since the folder was loaded (SHA-256)")
            arr = decode_image(data, self.channels, self.size)
            if isinstance(arr, str):
                raise InputError(self.root / rel, f"training image no longer readable: {arr}")
            return arr

        with ThreadPoolExecutor(READ_THREADS) as pool:
            for s in range(start, len(self), batch):
                arrays = list(pool.map(read, range(s, min(s + batch, len(self)))))
                yield s, torch.from_numpy(np.stack(arrays)).float().div_(255.0)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def as_seen(img: Image.Image) -> Image.Image:
    """The decoded image as a training pipeline shows it: upright (the EXIF orientation applied), 8 bits per
    channel (16-bit greyscale scaled by 255/65535, not clipped at 255 as PIL's convert would), RGB or L. Ordinary
    8-bit L / RGB / RGBA / LA / P files without an orientation tag pass through untouched (their pixels, and so
    every audit recorded so far, are unchanged). An animated image is its current, i.e. first, frame."""
    if img.getexif().get(_EXIF_ORIENTATION, 1) != 1:
        img = ImageOps.exif_transpose(img)
    if img.mode.startswith("I;16") or img.mode == "I":
        # "I;16*": a 16-bit PNG / TIFF; "I": 32-bit signed, which PIL also gives 16-bit PNGs: both read as 16 bits.
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        peak = 1.0 if np.nanmax(arr, initial=0.0) <= 1.0 else 255.0  # floats in [0, 1] or in [0, 255]
        img = Image.fromarray(np.clip(np.rint(np.nan_to_num(arr) * 255.0 / peak), 0, 255).astype(np.uint8), "L")
    elif img.mode not in ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "La", "RGBa"):
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV: through RGB, the way a training pipeline opens them
    return img


def to_model_space(img: Image.Image, channels: int, size: int) -> np.ndarray:
    """(C, size, size) uint8: the conversion diffusers' unconditional training script applies
    (resize the short side, centre crop), with the model's channel count, of the image as_seen gives."""
    img = as_seen(img).convert("L" if channels == 1 else "RGB")
    w, h = img.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR)
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        img = img.crop((left, top, left + size, top + size))
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def decode_image(data: bytes, channels: int, size: int) -> np.ndarray | str:
    """The image in model space, or why it cannot be read: 'too large (...)' or 'unreadable image (exception)'."""
    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the header only
            if img.width * img.height > MAX_PIXELS:
                return _too_large(f"{img.width}x{img.height}")
            img.load()
            return to_model_space(img, channels, size)
    except Image.DecompressionBombError as e:  # PIL's own check, at open, of what the header claims
        claimed = re.search(r"\((\d+) pixels\)", str(e))
        return _too_large(claimed.group(1) if claimed else "over PIL's limit of")
    except Exception as e:  # noqa: BLE001 - PIL's decoders raise more than OSError on hostile files (SyntaxError,
        # EOFError, struct.error, IndexError, ...); a file that cannot be decoded is skipped, whatever the cause.
        return f"unreadable image ({type(e).__name__})"


def _too_large(pixels: str) -> str:
    return f"too large ({pixels} pixels, limit {MAX_PIXELS}: a decompression bomb?)"


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def _files_under(d: Path, skip: Callable[[Path, str], None] | None = None) -> list[Path]:
    """Every non-folder entry under d (files, and symlinks that lead nowhere or to themselves), sorted as
    sorted(d.rglob("*")) sorts them; symlinked folders below d are not entered. skip(folder, reason) hears of a
    folder that cannot be listed."""
    found: list[Path] = []

    def unreadable(e: OSError) -> None:
        if skip is not None and e.filename is not None:
            skip(Path(e.filename), f"unreadable folder ({type(e).__name__})")

    for top, dirs, files in os.walk(d, onerror=unreadable):
        base = Path(top)
        found += [base / f for f in files]
        # os.walk lists a symlink to a folder among dirs and does not enter it; rglob("*") listed it too (and
        # is_file() then dropped it). A broken or looping link is among files.
        found += [base / x for x in dirs if (base / x).is_symlink()]
    return sorted(found)


def _links_back(d: Path, root: Path) -> bool:
    """Whether the symlinked folder d leads to root or to a folder above it: a loop."""
    if not d.is_symlink():
        return False
    target = d.resolve()
    return target == root or target in root.parents


def load_training_set(root: str | Path, channels: int, size: int, on_skip=None, progress: ProgressFn | None = None,
                      keep_pixels: bool = True) -> TrainingSet:
    """Load every image under root. One subfolder per class gives labels (ImageFolder convention);
    a flat folder has none. Unreadable files are skipped, reported through on_skip(relpath, reason)
    and counted; an empty or missing folder is an InputError. progress(done, total) counts the files read.
    keep_pixels=False reads, hashes and decodes every file but keeps only its path, hash and label."""
    root = Path(root).expanduser().resolve()
    if not root.exists():
        raise InputError(root, "training folder does not exist")
    if not root.is_dir():
        raise InputError(root, "training set must be a folder of images")

    skipped: list[tuple[str, str]] = []

    def skip(rel: str, reason: str) -> None:
        skipped.append((rel, reason))
        if on_skip is not None:
            on_skip(rel, reason)

    def skip_folder(p: Path, reason: str) -> None:
        skip(p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p), reason)

    try:
        top = sorted(root.iterdir())
    except OSError as e:
        raise InputError(root, f"training folder is not readable ({type(e).__name__})") from None
    candidates = [d for d in top if d.is_dir() and not d.name.startswith(".")]
    loops = [d for d in candidates if _links_back(d, root)]
    class_dirs = [d for d in candidates if d not in loops and any(_is_image(p) for p in _files_under(d))]
    for d in loops:
        skip_folder(d, "symlink loop (a link to the training folder or above it)")

    entries: list[tuple[Path, int]] = []
    if class_dirs:
        for label, d in enumerate(class_dirs):
            entries += [(p, label) for p in _files_under(d, skip_folder) if not p.is_dir()]
        for p in top:
            if not p.is_dir():
                skip(p.relative_to(root).as_posix(), "not inside a class folder")
    else:
        entries = [(p, -1) for p in _files_under(root, skip_folder)
                   if not p.is_dir() and not any(p.is_relative_to(d) for d in loops)]

    arrays: list[np.ndarray] = []
    paths: list[str] = []
    hashes: list[str] = []
    labels: list[int] = []
    for done, (p, label, got) in enumerate(_read_all(entries, channels, size), 1):
        rel = p.relative_to(root).as_posix()
        if isinstance(got, tuple):
            sha, arr = got
            if keep_pixels:
                arrays.append(arr)
            paths.append(rel)
            hashes.append(sha)
            labels.append(label)
        elif got:
            skip(rel, got)
        if progress is not None:
            progress(done, len(entries))

    if not paths:
        raise InputError(root, "no readable images in the training folder")
    images = torch.from_numpy(np.stack(arrays)).float().div_(255.0) if keep_pixels else None
    return TrainingSet(
        root=root,
        images=images,
        paths=paths,
        sha256=hashes,
        labels=np.asarray(labels, dtype=np.int64) if class_dirs else None,
        class_names=[d.name for d in class_dirs],
        skipped=skipped,
        channels=channels,
        size=size,
    )


def _read_one(p: Path, channels: int, size: int) -> tuple[str, np.ndarray] | str:
    """(SHA-256, pixels in model space) of one file, or why it is skipped ('' for a hidden file: silently)."""
    if p.name.startswith("."):
        return ""
    if p.suffix.lower() not in IMAGE_SUFFIXES:
        return f"not an image file ({p.suffix or 'no suffix'})"
    try:
        data = p.read_bytes()
    except OSError as e:
        if p.is_symlink() and e.errno in (errno.ELOOP, errno.ENOENT):
            return "symlink loop" if e.errno == errno.ELOOP else "broken symlink"
        return f"unreadable image ({type(e).__name__})"
    arr = decode_image(data, channels, size)
    if isinstance(arr, str):
        return arr
    return hashlib.sha256(data).hexdigest(), arr


def _read_all(entries: Sequence[tuple[Path, int]], channels: int, size: int,
              ) -> Iterator[tuple[Path, int, tuple[str, np.ndarray] | str]]:
    """Each entry read, in order, READ_STEP files at a time on a few threads."""
    with ThreadPoolExecutor(READ_THREADS) as pool:
        for s in range(0, len(entries), READ_STEP):
            step = entries[s:s + READ_STEP]
            results = pool.map(lambda e: _read_one(e[0], channels, size), step)
            for (p, label), got in zip(step, results):
                yield p, label, got
