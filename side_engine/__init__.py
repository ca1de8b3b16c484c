"""SIDE Inspector engine: audits unconditional diffusion models for memorized training images.

Headless and Qt-free: stages report through plain dataclass events (events.py) and honour a cancel flag.
"""

from importlib.metadata import PackageNotFoundError, version

# One place for the version: pyproject.toml, read back from the installed distribution's metadata.
try:
    __version__ = version("side-inspector")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
