"""The documented examples are the real thing."""

from pathlib import Path

from side_engine.config import AuditConfig, load_config

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_commented_example_config_loads_and_states_the_defaults():
    cfg = load_config(DOCS / "examples" / "audit.toml")
    defaults = AuditConfig()
    for section in ("classifier", "tdkd", "clusters", "extraction", "matching", "runtime"):
        assert getattr(cfg, section) == getattr(defaults, section), section
    assert cfg.model.path.endswith("models/my-ddpm")
