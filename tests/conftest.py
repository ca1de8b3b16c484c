"""Shared fixtures: a tiny random DDPM, a tiny labelled training set, a tiny config and a finished audit.

Everything is built here in seconds; nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from PIL import Image

TINY_SIZE = 8


def make_tiny_unet(channels: int = 1, size: int = TINY_SIZE, seed: int = 0):
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=size, in_channels=channels, out_channels=channels, block_out_channels=(4, 8),
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        layers_per_block=1, norm_num_groups=4,
    ).eval()


def save_tiny_pipeline(path, channels: int = 1, size: int = TINY_SIZE):
    from diffusers import DDPMPipeline, DDPMScheduler

    DDPMPipeline(unet=make_tiny_unet(channels, size), scheduler=DDPMScheduler(num_train_timesteps=100)).save_pretrained(
        path, safe_serialization=True)
    return path


def make_training_folder(path, classes: int = 3, per_class: int = 6, size: int = TINY_SIZE, mode: str = "L",
                         seed: int = 0):
    """Class folders of random blocky images: distinct enough that a classifier can tell them apart."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        d = path / f"class_{c}"
        d.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, (size, size))
        for i in range(per_class):
            arr = np.clip(base + rng.normal(0, 20, (size, size)), 0, 255).astype(np.uint8)
            img = Image.fromarray(arr, "L")
            (img.convert(mode) if mode != "L" else img).save(d / f"img_{i}.png")
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return save_tiny_pipeline(tmp_path_factory.mktemp("model") / "pipe")


@pytest.fixture(scope="session")
def tiny_train(tmp_path_factory):
    return make_training_folder(tmp_path_factory.mktemp("train") / "set")


def tiny_config_for(model, train):
    from side_engine.config import (AuditConfig, ClassifierConfig, DataConfig, ExtractionConfig, MatchingConfig,
                                    ModelConfig, TDKDConfig)

    return AuditConfig(
        name="tiny",
        model=ModelConfig(path=str(model)),
        data=DataConfig(train=str(train)),
        classifier=ClassifierConfig(width=8, blocks=[1, 1], steps=10, batch=8),
        tdkd=TDKDConfig(n_syn=12, sample_steps=3, sample_batch=8, steps=10, batch=8, time_embed_dim=16,
                        health_buckets=4),
        extraction=ExtractionConfig(gammas=[0.0, 5.0], n_per_gamma=6, steps=3, batch=4, ol_ti=True),
        matching=MatchingConfig(k=3),
    )


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
