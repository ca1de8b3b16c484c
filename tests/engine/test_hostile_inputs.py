"""Hostile and odd inputs (issue #13): every odd training file is converted as the model saw it or skipped with its
reason, never a crash; a planted pickle checkpoint is never unpickled. docs/RELIABILITY.md says what happens to each."""

from __future__ import annotations

import io
import os
import pickle
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from side_engine.dataset import load_training_set, to_model_space
from side_engine.errors import InputError

SIZE = 8


def _png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _bomb_png(side: int = 30000) -> bytes:
    """A 1-bit PNG whose header claims side x side pixels: ~100 KB on disk, 900 M pixels decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))

    ihdr = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])  # bit depth 1, greyscale
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)
    idat = b"".join(comp.compress(row * 1000) for _ in range(side // 1000)) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _good(path, value: int = 100) -> None:
    Image.fromarray(np.full((SIZE, SIZE), value, np.uint8), "L").save(path)


def _load(root, channels: int = 1, keep_pixels: bool = True):
    return load_training_set(root, channels, SIZE, keep_pixels=keep_pixels)


def _pixels(ts, rel: str) -> np.ndarray:
    """The uint8 model-space pixels of one loaded file, streamed from disk as the audit reads them."""
    i = ts.paths.index(rel)
    _, batch = next(iter(ts.batches(len(ts))))
    return (batch[i] * 255).round().byte().numpy()


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "train"
    root.mkdir()
    _good(root / "ok.png")
    return root


def test_decompression_bomb_is_skipped_with_its_reason(folder):
    (folder / "bomb.png").write_bytes(_bomb_png())
    ts = _load(folder)
    assert ts.paths == ["ok.png"]
    (reason,) = [r for p, r in ts.skipped if p == "bomb.png"]
    assert reason.startswith("too large (900000000 pixels, limit 89478485")


def test_a_large_image_below_pils_hard_limit_is_skipped_too(folder, monkeypatch):
    import side_engine.dataset as dataset

    monkeypatch.setattr(dataset, "MAX_PIXELS", 63)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / "small.png")
    ts = _load(folder)  # ok.png has 64 pixels
    assert ts.paths == ["small.png"]
    assert dict(ts.skipped)["ok.png"].startswith("too large (8x8 pixels")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_skipped(folder, fmt):
    data = _png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)), fmt)
    (folder / f"cut.{fmt.lower()}").write_bytes(data[: len(data) // 2])
    (folder / f"header_only.{fmt.lower()}").write_bytes(data[:40])
    ts = _load(folder)
    assert ts.paths == ["ok.png"]
    reasons = dict(ts.skipped)
    assert reasons[f"cut.{fmt.lower()}"].startswith("unreadable image (")
    assert reasons[f"header_only.{fmt.lower()}"].startswith("unreadable image (")


def test_zero_byte_file_is_skipped(folder):
    (folder / "empty.png").write_bytes(b"")
    ts = _load(folder)
    assert ts.paths == ["ok.png"]
    assert dict(ts.skipped)["empty.png"] == "unreadable image (UnidentifiedImageError)"


def test_16_bit_png_is_scaled_to_8_bits_not_clipped(folder):
    levels = np.array([0, 257, 128 * 257, 65535], np.uint16)  # 0, 1, 128, 255 in 8 bits
    arr = np.tile(np.repeat(levels, SIZE // 4), (SIZE, 1))
    Image.fromarray(arr).save(folder / "deep.png")
    with Image.open(folder / "deep.png") as img:
        assert img.mode.startswith("I")  # the file really is 16-bit
    expected = np.tile(np.repeat(np.array([0, 1, 128, 255], np.uint8), SIZE // 4), (SIZE, 1))
    for keep in (True, False):
        ts = _load(folder, keep_pixels=keep)
        assert np.array_equal(_pixels(ts, "deep.png")[0], expected)
    ts = _load(folder, channels=3)
    assert all(np.array_equal(c, expected) for c in _pixels(ts, "deep.png"))


def test_palette_and_cmyk_images_are_converted_like_pil(folder):
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), np.uint8))
    rgb.quantize(16).save(folder / "palette.png")
    rgb.quantize(16).save(folder / "palette.gif")
    Image.new("CMYK", (SIZE, SIZE), (0, 255, 255, 0)).save(folder / "cmyk.jpg", quality=100)
    Image.new("CMYK", (SIZE, SIZE), (0, 255, 255, 0)).save(folder / "cmyk.tif")
    for channels in (1, 3):
        ts = _load(folder, channels=channels)
        assert not ts.skipped
        for rel in ("palette.png", "palette.gif", "cmyk.jpg", "cmyk.tif"):
            with Image.open(folder / rel) as img:
                want = np.asarray(img.convert("RGB").convert("L" if channels == 1 else "RGB"))
            want = want[None] if want.ndim == 2 else want.transpose(2, 0, 1)
            assert np.abs(_pixels(ts, rel).astype(int) - want).max() <= 1, rel
    ts = _load(folder, channels=3)
    red = _pixels(ts, "cmyk.tif")
    assert red[0].min() > 240 and red[1].max() < 15 and red[2].max() < 15


def test_exif_orientation_is_applied(folder):
    arr = np.zeros((SIZE, 2 * SIZE, 3), np.uint8)
    arr[:, :SIZE] = 255  # left half white: rotated by a quarter turn it becomes the top or bottom half
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    Image.fromarray(arr).save(folder / "rotated.jpg", exif=exif, quality=100)
    with Image.open(folder / "rotated.jpg") as img:
        upright = to_model_space(ImageOps.exif_transpose(img), 3, SIZE)
        raw = np.asarray(img.convert("RGB").resize((2 * SIZE, SIZE)))
    for keep in (True, False):
        got = _pixels(_load(folder, channels=3, keep_pixels=keep), "rotated.jpg")
        assert np.array_equal(got, upright)
    # the upright image is a top/bottom split; the stored one, left/right
    assert got[0, 0].mean() > 200 and got[0, -1].mean() < 50  # white on top (column 0 of the stored image)
    assert raw[0, 0].mean() > 200 and raw[0, -1].mean() < 50


def test_animated_gif_gives_its_first_frame(folder):
    frames = [Image.fromarray(np.full((SIZE, SIZE), v, np.uint8), "L") for v in (0, 255, 128)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    with Image.open(folder / "anim.gif") as img:
        assert getattr(img, "n_frames", 1) == 3
    for keep in (True, False):
        assert _pixels(_load(folder, keep_pixels=keep), "anim.gif").max() == 0


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_and_folder_are_skipped(folder):
    _good(folder / "locked.png")
    (folder / "locked.png").chmod(0)
    sub = folder / "sub"
    sub.mkdir()
    _good(sub / "inside.png")
    sub.chmod(0)
    try:
        ts = _load(folder)
    finally:
        (folder / "locked.png").chmod(0o644)
        sub.chmod(0o755)
    assert ts.paths == ["ok.png"]
    reasons = dict(ts.skipped)
    assert reasons["locked.png"] == "unreadable image (PermissionError)"
    assert reasons["sub"] == "unreadable folder (PermissionError)"


def test_symlink_loops_are_skipped_with_their_reason(folder):
    (folder / "self.png").symlink_to("self.png")
    (folder / "a.png").symlink_to("b.png")
    (folder / "b.png").symlink_to("a.png")
    (folder / "gone.png").symlink_to("nowhere.png")
    (folder / "up").symlink_to(folder, target_is_directory=True)  # a folder loop: not followed
    ts = _load(folder)
    assert ts.paths == ["ok.png"]
    reasons = dict(ts.skipped)
    assert reasons["self.png"] == reasons["a.png"] == reasons["b.png"] == "symlink loop"
    assert reasons["gone.png"] == "broken symlink"


def test_symlink_loop_as_a_class_folder_is_not_followed(tmp_path):
    root = tmp_path / "train"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        _good(root / c / "x.png")
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "cat" / "back").symlink_to(root, target_is_directory=True)
    ts = _load(root)
    assert ts.class_names == ["cat", "dog"]
    assert ts.paths == ["cat/x.png", "dog/x.png"]
    assert dict(ts.skipped)["loop"] == "symlink loop (a link to the training folder or above it)"


def test_every_odd_input_at_once_never_crashes(tmp_path):
    root = tmp_path / "train"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    _good(root / "a" / "ok.png")
    _good(root / "b" / "ok.png", 7)
    (root / "a" / "bomb.png").write_bytes(_bomb_png())
    (root / "a" / "empty.jpg").write_bytes(b"")
    (root / "b" / "loop.png").symlink_to("loop.png")
    Image.fromarray(np.full((SIZE, SIZE), 65535, np.uint16)).save(root / "b" / "deep.png")
    ts = _load(root, keep_pixels=False)
    assert ts.paths == ["a/ok.png", "b/deep.png", "b/ok.png"]
    assert {p for p, _ in ts.skipped} == {"a/bomb.png", "a/empty.jpg", "b/loop.png"}
    assert _pixels(ts, "b/deep.png").min() == 255


def test_ordinary_8_bit_images_are_converted_as_before(tmp_path):
    """The conversion every audit so far recorded: plain PIL convert + resize + crop, unchanged."""
    root = tmp_path / "train"
    root.mkdir()
    rng = np.random.default_rng(3)
    for i, mode in enumerate(("L", "RGB", "RGBA", "LA")):
        Image.fromarray(rng.integers(0, 256, (12, 20, 3), np.uint8)).convert(mode).save(root / f"{i}.png")
    for channels in (1, 3):
        ts = _load(root, channels=channels)
        for rel in ts.paths:
            with Image.open(root / rel) as img:
                img = img.convert("L" if channels == 1 else "RGB")
                w, h = img.size
                s = SIZE / min(w, h)
                img = img.resize((max(SIZE, round(w * s)), max(SIZE, round(h * s))), Image.Resampling.BILINEAR)
                left, top = (img.width - SIZE) // 2, (img.height - SIZE) // 2
                want = np.asarray(img.crop((left, top, left + SIZE, top + SIZE)))
            want = want[None] if want.ndim == 2 else want.transpose(2, 0, 1)
            assert np.array_equal(_pixels(ts, rel), want)


# ----- the model: a planted pickle is never unpickled ---------------------------------------------------------


class _Payload:
    """Unpickling this creates the marker file: proof that a pickle ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(path, marker) -> None:
    path.write_bytes(pickle.dumps({"conv_in.weight": _Payload(marker)}))


def test_the_payload_is_real(tmp_path):
    """The check below means something: unpickling the planted file does create its marker."""
    marker = tmp_path / "ran"
    _plant(tmp_path / "x.bin", marker)
    pickle.loads((tmp_path / "x.bin").read_bytes())
    assert marker.exists()


def test_pickle_next_to_safetensors_is_never_loaded(tiny_model, tmp_path):
    import shutil

    from side_engine.target import load_target

    model = tmp_path / "pipe"
    shutil.copytree(tiny_model, model)
    marker = tmp_path / "pickle-ran"
    _plant(model / "unet" / "diffusion_pytorch_model.bin", marker)
    target = load_target(model)
    assert not marker.exists()
    assert all(not f.endswith(".bin") for f, _ in target.files)  # not read, so not recorded either


def test_pickle_instead_of_safetensors_is_refused_unopened(tiny_model, tmp_path):
    import shutil

    from side_engine.target import load_target

    model = tmp_path / "pipe"
    shutil.copytree(tiny_model, model)
    (model / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    marker = tmp_path / "pickle-ran"
    _plant(model / "unet" / "diffusion_pytorch_model.bin", marker)
    with pytest.raises(InputError, match="pickle checkpoint; SIDE loads safetensors only"):
        load_target(model)
    with pytest.raises(InputError, match="pickle checkpoint"):
        load_target(model / "unet" / "diffusion_pytorch_model.bin")
    assert not marker.exists()


def test_pickle_renamed_to_safetensors_is_refused_unopened(tiny_model, tmp_path):
    import shutil

    from side_engine.target import load_target

    model = tmp_path / "pipe"
    shutil.copytree(tiny_model, model)
    marker = tmp_path / "pickle-ran"
    _plant(model / "unet" / "diffusion_pytorch_model.safetensors", marker)
    with pytest.raises(InputError, match="could not load the UNet"):
        load_target(model)
    assert not marker.exists()


def test_other_safetensors_beside_a_pickle_do_not_let_it_through(tiny_model, tmp_path):
    """A folder whose only diffusers weights are the pickle, plus some unrelated .safetensors file."""
    import shutil

    from side_engine.target import load_target

    model = tmp_path / "pipe"
    shutil.copytree(tiny_model, model)
    unet = model / "unet"
    (unet / "diffusion_pytorch_model.safetensors").rename(unet / "other.safetensors")
    marker = tmp_path / "pickle-ran"
    _plant(unet / "diffusion_pytorch_model.bin", marker)
    with pytest.raises(InputError, match="pickle checkpoint"):
        load_target(model)
    assert not marker.exists()
