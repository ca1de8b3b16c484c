"""What the package ships besides code: resources/fonts and resources/demo, installed as the data packages
side_engine.fonts and side_engine.demo_models (pyproject.toml's package-dir)."""

from importlib.resources import files
from pathlib import Path


def folder(package: str) -> Path:
    """A data package's folder, found through importlib.resources as installed: a wheel, an editable install of a
    clone, a PyInstaller bundle. A folder on disk, since diffusers, Pillow and fpdf2 open files by path."""
    found = files(package)
    # A package whose __init__.py was left out (a bundle that did not collect it) comes back as a namespace
    # package's MultiplexedPath, whose str() is no path.
    if not isinstance(found, Path):
        raise FileNotFoundError(f"{package} is not installed as a folder ({found!r}): the installation of SIDE "
                                "Inspector is incomplete")
    return found
