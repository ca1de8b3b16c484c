"""The "clusters" label source (method doc 1.2b): k-means on descriptors of the model's own samples D_syn, the
cohesion filter, label = nearest kept centre, and samples of failed clusters dropped from TDKD.

D_syn is replaced, right after the sample stage, by images whose clusters are known: two tight groups and a few
scattered samples that k-means has to put together in a loose cluster."""

import numpy as np
import pytest
import torch
from PIL import Image

from side_engine import events as ev
from side_engine import pipeline as pipeline_module
from side_engine.config import ClustersConfig
from side_engine.errors import InputError
from side_engine.matching.descriptors import TorchScriptDescriptor
from side_engine.method.guidance import classifier_cond_fn
from side_engine.method.surrogate import CentroidClassifier, ClusterResult, cluster
from side_engine.pipeline import AuditPipeline
from side_engine.store import AuditStore

N_A, N_B, N_SCATTERED = 5, 5, 4  # D_syn = group A, group B, then the scattered samples


def designed_syn(size: int = 8) -> np.ndarray:
    """uint8 (N, size, size): A lights columns 0-2, B columns 3-5 (tight: only their brightness varies a little);
    each scattered sample lights its own 4 pixels of columns 6-7 over a faint background there, which k-means
    groups into one loose cluster (mean cosine to its centre about 0.71)."""
    rng = np.random.default_rng(0)
    imgs = np.zeros((N_A + N_B + N_SCATTERED, size, size), np.uint8)
    for i in range(N_A):
        imgs[i, :, 0:3] = rng.integers(190, 231, (size, 3))
    for i in range(N_B):
        imgs[N_A + i, :, 3:6] = rng.integers(190, 231, (size, 3))
    free = [(r, c) for r in range(size) for c in (6, 7)]
    for j in range(N_SCATTERED):
        imgs[N_A + N_B + j, :, 6:8] = 40
        for r, c in free[4 * j:4 * j + 4]:
            imgs[N_A + N_B + j, r, c] = 255
    return imgs


GROUP = np.array([0] * N_A + [1] * N_B + [-1] * N_SCATTERED)


def clusters_config(cfg, **clusters):
    cfg.labels.source = "clusters"
    cfg.clusters = ClustersConfig(**{"k": 3, "cohesion": 0.8, **clusters})
    cfg.tdkd.n_syn = len(GROUP)
    cfg.extraction.gammas = [0.0, 5.0]
    cfg.extraction.ol_ti = False
    return cfg


def run_with_designed_syn(pipeline, until=None):
    """Run the audit, swapping D_syn for designed_syn() once it is sampled; stop after stage `until`."""
    events = []
    for e in pipeline.run():
        events.append(e)
        if isinstance(e, ev.StageFinished) and e.stage == "sample" and not e.skipped:
            for i, img in enumerate(designed_syn()):
                Image.fromarray(img, "L").save(pipeline.store.path(AuditStore.syn_relpath(i)))
        if isinstance(e, ev.StageFinished) and e.stage == until:
            break
    pipeline.store.close()
    return events


@pytest.fixture
def distilled_on(monkeypatch):
    """The x0 that f_TD is trained on and checked on (the held-out health), in [-1, 1]."""
    seen = {}
    distill, health = pipeline_module.distill, pipeline_module.health

    def spy_distill(f_td, x0, targets, *args, **kwargs):
        seen["train"], seen["train_labels"] = x0.clone(), targets.argmax(1).clone()
        return distill(f_td, x0, targets, *args, **kwargs)

    def spy_health(f_td, x0, labels, *args, **kwargs):
        seen["held_out"], seen["held_out_labels"] = x0.clone(), labels.clone()
        return health(f_td, x0, labels, *args, **kwargs)

    monkeypatch.setattr(pipeline_module, "distill", spy_distill)
    monkeypatch.setattr(pipeline_module, "health", spy_health)
    return seen


def group_of(x0: torch.Tensor) -> np.ndarray:
    """Which designed group each image (in [-1, 1]) is: 0 = A, 1 = B, -1 = scattered."""
    lit = (x0[:, 0] > -0.5).float().mean(1)  # (N, W) fraction of lit pixels per column
    return np.where(lit[:, 0] > 0.5, 0, np.where(lit[:, 3] > 0.5, 1, -1))


def test_the_cohesion_filter_keeps_the_tight_groups_and_not_the_scattered_samples():
    feats = designed_syn().reshape(len(GROUP), -1).astype(np.float32) / 255
    res = cluster(feats, ClustersConfig(k=3, cohesion=0.8))
    assert len(res.kept) == 2
    np.testing.assert_array_equal(res.in_kept, GROUP >= 0)
    loose = np.setdiff1d(np.arange(3), res.kept)
    assert 0.6 < res.cohesion[loose][0] < 0.8 and res.sizes[loose][0] == N_SCATTERED
    assert np.all(res.cohesion[res.kept] > 0.95)


def test_a_one_sample_cluster_is_not_kept_below_min_size():
    feats = designed_syn()[:N_A + N_B + 1].reshape(N_A + N_B + 1, -1).astype(np.float32) / 255
    res = cluster(feats, ClustersConfig(k=3, cohesion=0.8))  # the lone scattered sample: cohesion 1, size 1
    assert len(res.kept) == 2 and not res.in_kept[-1]
    res = cluster(feats, ClustersConfig(k=3, cohesion=0.8, min_size=1))
    assert len(res.kept) == 3 and res.in_kept.all()


def test_samples_of_failed_clusters_are_dropped_from_tdkd_and_its_health_check(tiny_config, tmp_path,
                                                                                distilled_on):
    out = tmp_path / "audit"
    pipeline = AuditPipeline.prepare(clusters_config(tiny_config), out)
    events = run_with_designed_syn(pipeline)
    labels_done = next(e for e in events if isinstance(e, ev.StageFinished) and e.stage == "labels")
    assert f"{N_SCATTERED} of {len(GROUP)} samples dropped" in labels_done.summary
    store = AuditStore.open(out)
    info = store.stage_info("labels")
    assert info["dropped"] == N_SCATTERED and sum(info["counts"]) == N_A + N_B
    assert store.complete

    # f_TD learns and is checked on kept samples only, each labelled by its own group's centre
    x0 = torch.cat([distilled_on["train"], distilled_on["held_out"]])
    labels = torch.cat([distilled_on["train_labels"], distilled_on["held_out_labels"]]).numpy()
    groups = group_of(x0)
    assert len(x0) == N_A + N_B and np.all(groups >= 0)
    assert len(set(labels[groups == 0])) == 1 and len(set(labels[groups == 1])) == 1
    assert labels[groups == 0][0] != labels[groups == 1][0]
    np.testing.assert_array_equal(pipeline.syn_kept, np.flatnonzero(GROUP >= 0))

    from safetensors.torch import load_file

    stored = load_file(out / "classifiers" / "clusters.safetensors")
    np.testing.assert_array_equal(stored["keep"].numpy().astype(bool), GROUP >= 0)
    assert stored["centres"].shape[0] == 2


def test_relabel_dropped_keeps_the_scattered_samples_with_the_nearest_kept_centre(tiny_config, tmp_path,
                                                                                  distilled_on):
    pipeline = AuditPipeline.prepare(clusters_config(tiny_config, relabel_dropped=True), tmp_path / "audit")
    run_with_designed_syn(pipeline, until="tdkd")
    info = AuditStore.open(tmp_path / "audit").stage_info("labels")
    assert info["dropped"] == 0 and sum(info["counts"]) == len(GROUP)
    assert "re-labelled" in info["summary"]
    x0 = torch.cat([distilled_on["train"], distilled_on["held_out"]])
    labels = torch.cat([distilled_on["train_labels"], distilled_on["held_out_labels"]]).numpy()
    groups = group_of(x0)
    assert len(x0) == len(GROUP) and (groups == -1).sum() == N_SCATTERED
    assert len(set(labels[groups == 0])) == 1 and len(set(labels[groups == 1])) == 1
    assert set(labels[groups == -1]) <= {0, 1}  # a label of a kept centre, not a class of their own


def test_a_resumed_audit_rebuilds_the_same_kept_set(tiny_config, tmp_path, distilled_on):
    out = tmp_path / "audit"
    run_with_designed_syn(AuditPipeline.prepare(clusters_config(tiny_config), out), until="labels")
    assert not distilled_on  # stopped before TDKD
    resumed = AuditPipeline.reopen(out)
    events = list(resumed.run())
    labels_done = next(e for e in events if isinstance(e, ev.StageFinished) and e.stage == "labels")
    assert labels_done.skipped and f"{N_SCATTERED} of {len(GROUP)} samples dropped" in labels_done.summary
    np.testing.assert_array_equal(resumed.syn_kept, np.flatnonzero(GROUP >= 0))
    x0 = torch.cat([distilled_on["train"], distilled_on["held_out"]])
    assert len(x0) == N_A + N_B and np.all(group_of(x0) >= 0)


def test_fewer_than_two_surviving_clusters_stop_the_run_in_one_line(tiny_config, tmp_path):
    out = tmp_path / "audit"
    pipeline = AuditPipeline.prepare(clusters_config(tiny_config, min_size=N_A + 1), out)
    with pytest.raises(InputError) as err:
        run_with_designed_syn(pipeline)
    pipeline.store.close()
    assert err.value.path == str(out / "audit.toml") and "\n" not in str(err.value)
    assert "0 of 3 clusters" in err.value.problem
    assert AuditStore.open(out).stage_status("labels") != "done"
    assert not (out / "classifiers" / "clusters.safetensors").exists()


def test_kept_samples_of_a_single_label_for_tdkd_stop_the_run_in_one_line(tiny_config, tmp_path, monkeypatch):
    # Two clusters pass the filter, but the second has its one member at the end of D_syn, which is held out:
    # f_TD would be trained on one label.
    def one_sided(descriptors, cfg):
        x = descriptors / np.linalg.norm(descriptors, axis=1, keepdims=True)
        assignment = np.full(len(x), 2)
        assignment[:N_A], assignment[-1] = 0, 1
        centres = np.stack([x[:N_A].mean(0), x[-1]])
        return ClusterResult(centres=(centres / np.linalg.norm(centres, axis=1, keepdims=True)).astype(np.float32),
                             kept=np.array([0, 1]), cohesion=np.array([1.0, 1.0, 0.1]),
                             sizes=np.bincount(assignment), assignment=assignment)

    monkeypatch.setattr(pipeline_module, "cluster", one_sided)
    out = tmp_path / "audit"
    pipeline = AuditPipeline.prepare(clusters_config(tiny_config), out)
    with pytest.raises(InputError) as err:
        run_with_designed_syn(pipeline)
    pipeline.store.close()
    assert err.value.path == str(out / "audit.toml") and "\n" not in str(err.value)
    assert "covering 1 label(s)" in err.value.problem


class TinyEmbed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.proj = torch.nn.Linear(8, 16)

    def forward(self, x):
        return torch.nn.functional.normalize(self.proj(torch.relu(self.conv(x)).mean(dim=(2, 3))), dim=1)


@pytest.fixture
def torchscript_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "embed.torchscript.pt"
    torch.jit.trace(TinyEmbed().eval(), torch.rand(2, 3, 16, 16)).save(str(path))
    return path


def test_guidance_through_a_torchscript_descriptor_moves_a_sample_toward_its_centre(torchscript_file):
    desc = TorchScriptDescriptor(torchscript_file, resize=16)
    images = torch.from_numpy(designed_syn()[[0, N_A]]).float()[:, None] / 255  # one of A, one of B, in [0, 1]
    matched = desc(images)  # matching: no autograd, whatever the caller's grad mode
    assert not matched.requires_grad
    f_ti = CentroidClassifier(desc, matched, temperature=0.05).eval()
    x = (images[:1] * 2 - 1) * 0.5  # A, faded towards grey
    target = torch.tensor([1])
    with torch.no_grad():  # as in the sampler
        g = classifier_cond_fn(f_ti, target, time_dependent=False)(x, torch.tensor(50))
    assert g.abs().sum() > 0

    def log_p(z):
        with torch.no_grad():
            return torch.log_softmax(f_ti(z), 1)[0, 1].item()

    assert log_p(x + 0.05 * g / g.norm()) > log_p(x)


def test_clusters_with_a_torchscript_descriptor_run_the_ol_ti_baseline(tiny_config, tmp_path, torchscript_file):
    tiny_config.labels.source = "clusters"
    tiny_config.clusters = ClustersConfig(k=2, cohesion=-1.0, min_size=1)
    tiny_config.matching.descriptor = "torchscript"
    tiny_config.matching.path = str(torchscript_file)
    tiny_config.matching.resize = 16
    tiny_config.extraction.ol_ti = True
    out = tmp_path / "audit"
    list(AuditPipeline.prepare(tiny_config, out).run())
    store = AuditStore.open(out)
    assert store.complete
    rows = store.images()
    assert {r.guide for r in rows} == {"none", "td", "ti"} and len(rows) == 3 * tiny_config.extraction.n_per_gamma


@pytest.mark.parametrize("clusters, problem", [
    ({"relabel_dropped": "yes"}, "clusters.relabel_dropped"),
    ({"min_size": 0}, "clusters.min_size must be at least 1"),
    ({"cohesion": 1.5}, "clusters.cohesion must lie in [-1, 1]"),
])
def test_clusters_keys_are_checked_when_the_config_is_read(clusters, problem):
    from side_engine.config import config_from_dict

    with pytest.raises(InputError) as err:
        config_from_dict({"model": {"path": "m"}, "data": {"train": "t"}, "clusters": clusters}, "audit.toml")
    assert problem in str(err.value) and "\n" not in str(err.value)
    assert config_from_dict({"model": {"path": "m"}, "data": {"train": "t"}}).clusters.relabel_dropped is False
