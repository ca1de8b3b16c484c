"""The wheel carries what the installed commands read besides code, and they find it there, not in a clone.

The wheel is built the way `python -m build` does, from the sdist, so a file the sdist leaves out fails here too.
packaging/test_wheel.sh is the slow end-to-end check: the wheel installed in a fresh venv, each command run.
"""

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from side_engine import __version__
from side_engine.demo import DEMO_MODELS
from side_engine.evidence.grid import FONT_DIR, FONT_FILES
from side_engine.shipped import folder

ROOT = Path(__file__).resolve().parents[2]
# What diffusers reads of a demo model folder, and what demo_spec_of reads.
MODEL_FILES = ("model_index.json", "demo_spec.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
               "scheduler/scheduler_config.json")


def build(backend_call: str, out: Path, cwd: Path) -> Path:
    """Runs one PEP 517 hook of setuptools (the project's backend) in a process of its own: no network, and no
    build isolation, which would fetch setuptools."""
    code = f"import sys; from setuptools import build_meta; print(build_meta.{backend_call}(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=cwd, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / done.stdout.strip().splitlines()[-1]


def clean_copy(dest: Path) -> Path:
    """The files a commit would hold: a clone's egg-info keeps an old SOURCES.txt, which setuptools adds to the
    sdist, so a build in the clone can ship what the configuration no longer names."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def shipped() -> dict[str, bytes]:
    """Each file the wheel must hold, at its path in the wheel, with the clone's bytes."""
    files = {f"side_engine/fonts/{name}": (FONT_DIR / name).read_bytes() for name in (*FONT_FILES.values(), "LICENSE")}
    for name, model in DEMO_MODELS.items():
        files.update({f"side_engine/demo_models/{name}/{f}": (model / f).read_bytes() for f in MODEL_FILES})
    return files


def test_the_wheel_built_from_the_sdist_carries_the_models_fonts_icon_and_both_commands(tmp_path):
    sdist = build("build_sdist", tmp_path, clean_copy(tmp_path / "clone"))
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "src", filter="data")
    wheel = build("build_wheel", tmp_path, tmp_path / "src" / f"side_inspector-{__version__}")

    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for path, data in shipped().items():
            assert path in names, f"{path} is not in {wheel.name}"
            assert z.read(path) == data, path
        # The icon is drawn by code (side_gui/icon.py); the resource folders are packages, which importlib needs.
        assert {"side_gui/icon.py", "side_engine/fonts/__init__.py", "side_engine/demo_models/__init__.py"} <= names
        # Nothing a `side train-demo --out resources/demo/NAME` leaves behind.
        assert not [n for n in names if "/checkpoint/" in n or "/snapshots/" in n]
        entry_points = z.read(f"side_inspector-{__version__}.dist-info/entry_points.txt").decode()
    assert "side = side_engine.cli:main" in entry_points
    assert "side-gui = side_gui.app:main" in entry_points

    # Unpacked first on sys.path, the wheel's own packages are imported: their resources must be found beside
    # them, not through the clone's editable install.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from side_engine.demo import DEMO_MODELS; "
            "from side_engine.evidence.grid import font_path; "
            "print(*[DEMO_MODELS[n] / 'unet' for n in sorted(DEMO_MODELS)], font_path(), font_path('B'), sep='\\n')")
    done = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, check=False,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    found = [Path(line) for line in done.stdout.split()]
    assert len(found) == len(DEMO_MODELS) + 2
    for path in found:
        assert path.is_relative_to(site) and path.exists(), path


def test_a_data_package_installed_without_its_init_is_an_incomplete_installation(tmp_path, monkeypatch):
    """A bundle that collects a data package's files but not its __init__.py makes it a namespace package."""
    (tmp_path / "side_data_probe").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="incomplete"):
        folder("side_data_probe")
