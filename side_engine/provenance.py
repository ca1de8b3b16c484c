"""What regenerating an audit's images depends on, recorded by the audit when it is made and by each export:
the sampler's revision and the versions of the engine, torch and diffusers. Read without importing torch."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import __version__

# Changes whenever any generated pixel can change for the same audit.toml, seed and model, and the project's version
# (pyproject.toml) is bumped with it; CHANGELOG.md says what changed. 1: the guidance added to eps before a clipping
# DDIM step, which reversed it at high t (audits of schema 1, engine 0.1.0); 2: the guidance added after the clip
# (method/guidance.py).
SAMPLER_REVISION = 2


def _installed(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def engine() -> dict[str, str | int | None]:
    """This engine's side of the record."""
    return {"engine_version": __version__, "sampler_revision": SAMPLER_REVISION, "torch": _installed("torch"),
            "diffusers": _installed("diffusers")}
