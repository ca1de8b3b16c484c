"""Shared fixtures: a tiny random DDPM, a tiny labelled training set, a tiny config and a finished audit.

Everything is built here in seconds; nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from helpers import make_training_folder, save_tiny_pipeline, tiny_config_for


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return save_tiny_pipeline(tmp_path_factory.mktemp("model") / "pipe")


@pytest.fixture(scope="session")
def tiny_train(tmp_path_factory):
    return make_training_folder(tmp_path_factory.mktemp("train") / "set")


@pytest.fixture
def tiny_config(tiny_model, tiny_train):
    return tiny_config_for(tiny_model, tiny_train)


@pytest.fixture(scope="session")
def finished_audit(tmp_path_factory, tiny_model, tiny_train):
    """A complete tiny audit, built once; tests that change it take a copy (audit_copy)."""
    from side_engine.pipeline import AuditPipeline

    out = tmp_path_factory.mktemp("audit") / "a"
    pipeline = AuditPipeline.prepare(tiny_config_for(tiny_model, tiny_train), out)
    for _ in pipeline.run():
        pass
    pipeline.store.close()
    return out


@pytest.fixture
def audit_copy(finished_audit, tmp_path):
    dst = tmp_path / "audit"
    shutil.copytree(finished_audit, dst)
    return dst
