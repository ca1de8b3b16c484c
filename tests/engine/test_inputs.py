"""Other shapes of input a user brings: a bare UNet + scheduler folder, RGB models, a TorchScript descriptor."""

import shutil

import numpy as np
import torch

from side_engine.pipeline import AuditPipeline
from side_engine.store import AuditStore
from side_engine.target import load_target
from side_engine.vocabulary import Direction

from helpers import make_training_folder, save_tiny_pipeline


def test_a_bare_unet_folder_plus_a_scheduler_folder_loads(tiny_model, tmp_path):
    shutil.copytree(tiny_model / "unet", tmp_path / "my_unet")
    shutil.copytree(tiny_model / "scheduler", tmp_path / "elsewhere" / "sched")
    target = load_target(tmp_path / "my_unet", scheduler=str(tmp_path / "elsewhere" / "sched"))
    assert target.channels == 1 and target.size == 8 and target.num_train_timesteps == 100
    assert any(p.endswith(".safetensors") for p, _ in target.files)


def test_an_rgb_model_is_audited_with_rgb_training_images(tiny_config, tmp_path):
    model = save_tiny_pipeline(tmp_path / "rgb_model", channels=3, size=12)
    train = make_training_folder(tmp_path / "rgb_train", classes=2, per_class=4, size=20, mode="RGB")
    tiny_config.model.path = str(model)
    tiny_config.data.train = str(train)
    tiny_config.extraction.gammas = [0.0, 3.0]
    tiny_config.extraction.ol_ti = False
    pipeline = AuditPipeline.prepare(tiny_config, tmp_path / "audit")
    assert pipeline.train.images.shape[1:] == (3, 12, 12)  # resized as the model saw them
    for _ in pipeline.run():
        pass
    rows = AuditStore.open(tmp_path / "audit").images()
    assert len(rows) == 12
    from PIL import Image

    assert np.asarray(Image.open(tmp_path / "audit" / rows[0].path)).shape == (12, 12, 3)


class UnitEmbed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 16)

    def forward(self, x):
        return torch.nn.functional.normalize(self.proj(x.mean(dim=(2, 3))), dim=1)


def test_any_torchscript_embedding_is_a_descriptor_scored_by_cosine(tiny_config, tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "embed.torchscript.pt"
    torch.jit.script(UnitEmbed()).save(str(path))
    tiny_config.matching.descriptor = "torchscript"
    tiny_config.matching.path = str(path)
    tiny_config.matching.resize = 16
    tiny_config.extraction.gammas = [0.0]
    for _ in AuditPipeline.prepare(tiny_config, tmp_path / "audit").run():
        pass
    store = AuditStore.open(tmp_path / "audit")
    assert store.direction == Direction.SIMILARITY
    assert store.config.band_set().high == (0.6, 1.0)
    for r in store.images():
        assert np.all(np.diff(r.nn_score) <= 1e-6) and r.nn_score[0] <= 1 + 1e-5  # cosine, best first


def test_a_file_that_is_not_torchscript_is_refused_in_one_line(tiny_config, tmp_path, capsys):
    import tomli_w

    from side_engine.cli import main

    bad = tmp_path / "sscd.pt"
    bad.write_bytes(b"\x80\x04 pickle, not torchscript")
    tiny_config.matching.descriptor = "sscd"
    tiny_config.matching.path = str(bad)
    (tmp_path / "c.toml").write_text(tomli_w.dumps(tiny_config.to_dict()))
    assert main(["run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sscd.pt: not a TorchScript model" in err[0]
    assert not (tmp_path / "a").exists()
