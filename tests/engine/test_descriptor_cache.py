"""Training sets larger than memory: the folder streamed with progress, descriptors computed once in batches into a
memory-mapped cache tied to the training manifest, resumed after an interruption, and searched from the file."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from side_engine.dataset import load_training_set
from side_engine.errors import Cancelled, InputError
from side_engine.matching import cache as cache_mod
from side_engine.matching.cache import DescriptorCache
from side_engine.matching.descriptors import PixelDescriptor
from side_engine.matching.matcher import Matcher
from side_engine.matching.metrics import SSCD_BANDS
from side_engine.vocabulary import Direction

from helpers import make_training_folder


class Counting(PixelDescriptor):
    """The pixel descriptor, counting the images it embeds."""

    def __init__(self):
        self.seen = 0

    def __call__(self, images):
        self.seen += len(images)
        return super().__call__(images)


@pytest.fixture
def folder(tmp_path):
    root = make_training_folder(tmp_path / "train", classes=3, per_class=7, size=10)
    (root / "class_1" / "broken.png").write_bytes(b"not a png")
    (root / "class_2" / "notes.txt").write_text("hello")
    return root


def test_streaming_the_folder_gives_the_kept_pixels_and_reports_progress(folder):
    kept = load_training_set(folder, 1, 8)
    calls, skips = [], []
    streamed = load_training_set(folder, 1, 8, on_skip=lambda p, why: skips.append(p),
                                 progress=lambda done, total: calls.append((done, total)), keep_pixels=False)
    assert not streamed.pixels_in_memory and kept.pixels_in_memory
    assert streamed.paths == kept.paths and streamed.sha256 == kept.sha256 and len(streamed) == 21
    assert streamed.manifest_sha256 == kept.manifest_sha256
    assert sorted(skips) == ["class_1/broken.png", "class_2/notes.txt"]  # survives unreadable files, as before
    assert [d for d, _ in calls] == list(range(1, 24)) and {t for _, t in calls} == {23}
    batches = list(streamed.batches(5))
    assert [s for s, _ in batches] == [0, 5, 10, 15, 20]
    assert torch.equal(torch.cat([b for _, b in batches]), kept.images)
    assert torch.equal(streamed.images, kept.images)  # read from disk on access, the same floats
    assert [s for s, _ in streamed.batches(4, start=17)] == [17]


def test_a_training_image_changed_after_loading_is_refused(folder):
    train = load_training_set(folder, 1, 8, keep_pixels=False)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(folder / train.paths[3])
    with pytest.raises(InputError, match="changed since the folder was loaded"):
        list(train.batches(8))


def test_descriptors_are_computed_once_into_the_cache_and_searched_from_it(folder, tmp_path):
    train = load_training_set(folder, 1, 8, keep_pixels=False)
    reference = Matcher(PixelDescriptor(), train.images, k=4, index="exact")
    queries = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    want = reference.match(queries)

    descriptor = Counting()
    matcher = Matcher(descriptor, train, k=4)
    assert matcher.index is None and descriptor.seen == 0  # nothing computed until asked
    steps = list(matcher.build_steps(tmp_path / "descriptors", batch=8))
    assert steps == [(0, 21), (8, 21), (16, 21), (21, 21)] and descriptor.seen == 21
    meta = json.loads((tmp_path / "descriptors" / "train.json").read_text())
    assert meta["rows"] == meta["done"] == 21 and meta["dim"] == 64
    assert meta["manifest_sha256"] == train.manifest_sha256
    assert meta["descriptor"] == {"name": "pixels", "channels": 1, "size": 8}
    assert (tmp_path / "descriptors" / "train.f32").stat().st_size == 21 * 64 * 4
    got = matcher.match(queries)
    for field in ("nn_idx", "nn_raw", "nn_score", "normalizer", "gu"):
        assert np.array_equal(getattr(got, field), getattr(want, field)), field

    again = Counting()  # a resumed audit finds them: nothing is embedded again
    reopened = Matcher(again, train, k=4)
    assert list(reopened.build_steps(tmp_path / "descriptors")) == [(21, 21)] and again.seen == 0
    assert np.array_equal(reopened.match(queries).nn_score, want.nn_score)


def test_an_interrupted_build_resumes_where_it_stopped(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "COMMIT_SECONDS", 0.0)  # every batch durable at once
    train = load_training_set(folder, 1, 8, keep_pixels=False)
    calls = []

    def cancel_after_two():
        calls.append(1)
        if len(calls) == 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        for _ in Matcher(PixelDescriptor(), train).build_steps(tmp_path / "d", check=cancel_after_two, batch=5):
            pass
    assert json.loads((tmp_path / "d" / "train.json").read_text())["done"] == 10
    descriptor = Counting()
    matcher = Matcher(descriptor, train)
    assert [d for d, _ in matcher.build_steps(tmp_path / "d", batch=5)] == [10, 15, 20, 21]
    assert descriptor.seen == 11
    assert matcher.rows is not None
    assert np.array_equal(matcher.rows.all(), train.images.reshape(21, -1).numpy())


def test_a_cache_of_another_training_set_or_descriptor_is_rebuilt(folder, tmp_path):
    train = load_training_set(folder, 1, 8, keep_pixels=False)
    Matcher(PixelDescriptor(), train).build(tmp_path / "d")
    assert DescriptorCache.open(tmp_path / "d", 21, {"name": "pixels", "channels": 1, "size": 8}, "other") is None
    assert DescriptorCache.open(tmp_path / "d", 21, {"name": "sscd"}, train.manifest_sha256) is None
    descriptor = Counting()
    resized = load_training_set(folder, 1, 6, keep_pixels=False)  # another model size: other descriptors
    Matcher(descriptor, resized).build(tmp_path / "d")
    assert descriptor.seen == 21
    assert json.loads((tmp_path / "d" / "train.json").read_text())["dim"] == 36


def test_a_set_larger_than_memory_is_streamed_from_a_temporary_file_without_a_cache_folder(folder, monkeypatch):
    monkeypatch.setattr(cache_mod, "RESIDENT_BYTES", 1024)
    train = load_training_set(folder, 1, 8, keep_pixels=False)
    matcher = Matcher(PixelDescriptor(), train, k=3)
    queries = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    got = matcher.match(queries)  # built on the first match
    assert matcher.rows is not None and not matcher.rows.resident
    folder_used = matcher.rows.path.parent
    assert folder_used.exists()
    want = Matcher(PixelDescriptor(), train.images, k=3, index="exact").match(queries)
    assert np.array_equal(got.nn_idx, want.nn_idx) and np.array_equal(got.nn_raw, want.nn_raw)
    del matcher
    import gc

    gc.collect()
    assert not folder_used.exists()  # the temporary cache goes with its matcher


class UnitPixels:
    """An embedding descriptor in miniature: unit-length pixel vectors, compared by cosine."""

    name = "unit-pixels"
    direction = Direction.SIMILARITY
    identity = {"name": "unit-pixels"}  # noqa: RUF012

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(images.reshape(len(images), -1).float(), dim=1)


@pytest.mark.parametrize("index", ["exact", "faiss"])
def test_an_exact_copy_under_a_cosine_descriptor_is_in_the_high_band(index):
    """A copy's cosine can round above 1, where the high band [x, 1] would not hold it: the score is the cosine
    clipped to its range."""
    train = torch.rand(40, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    m = Matcher(UnitPixels(), train, k=3, index=index).match(train)
    assert (m.nn_idx[:, 0] == np.arange(40)).all()
    assert m.nn_score.max() <= 1.0
    assert SSCD_BANDS.band("high").contains(m.nn_score[:, 0]).all()
