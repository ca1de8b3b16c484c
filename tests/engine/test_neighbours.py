"""ExactIndex against brute force in float64: blocks of queries and database rows, the merge of each block's top k,
and the l2 refinement (refine_l2), whose steps take as many queries as fill its buffer. FaissIndex against
ExactIndex, its reference: the same neighbours and, for l2, the same bits (both recompute with refine_l2), with
the database in memory or streamed from a descriptor cache a block at a time."""

import importlib.util

import numpy as np
import pytest
import torch

from side_engine.errors import InputError
from side_engine.matching import neighbours
from side_engine.matching.cache import ArrayRows, DescriptorCache
from side_engine.matching.neighbours import ExactIndex, index_backend, refine_l2, rms_l2

faiss_missing = pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="faiss not installed")


def _brute(db: torch.Tensor, q: torch.Tensor, k: int, metric: str):
    if metric == "l2":
        full = (q.double()[:, None] - db.double()[None]).pow(2).mean(-1).sqrt()
        return full.topk(k, largest=False)
    return (q.double() @ db.double().T).topk(k)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("chunk,k", [(16, 3), (40, 7), (7, 20), (300, 40), (64, 1)])
def test_topk_equals_brute_force(metric, chunk, k):
    g = torch.Generator().manual_seed(chunk * 100 + k)
    db = torch.randn(120, 24, generator=g)
    q = torch.randn(20, 24, generator=g)
    if metric == "cosine":
        db, q = torch.nn.functional.normalize(db, dim=1), torch.nn.functional.normalize(q, dim=1)
    idx, score = ExactIndex(db, metric, chunk=chunk).topk(q, k)
    ref_s, ref_i = _brute(db, q, k, metric)
    assert idx.shape == score.shape == (20, k) and idx.dtype == torch.long and score.dtype == torch.float32
    assert torch.equal(idx, ref_i)
    torch.testing.assert_close(score.double(), ref_s, atol=1e-6, rtol=1e-5)


def near_copies() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(database, the rows copied, queries): 40 queries, each a database row moved by 0 to 0.5 in one pixel, at
    norms near 1000 per pixel."""
    g = torch.Generator().manual_seed(1)
    db = torch.rand(300, 64, generator=g) * 100 + 1000
    pick = torch.randperm(300, generator=g)[:40]
    offset = torch.zeros(40, 64)
    offset[torch.arange(40), torch.arange(40) % 64] = torch.linspace(0.0, 0.5, 40)
    q = db[pick] + offset
    return db, pick, q


def test_near_copies_keep_their_tiny_distances_in_every_step():
    """Norms near 1000 per pixel: the expanded form ||q||^2 + ||d||^2 - 2 q.d loses everything below ~0.1 here,
    so only the recomputation from the differences can find these distances."""
    db, pick, q = near_copies()
    idx, score = ExactIndex(db, "l2", chunk=32).topk(q, 3)
    assert torch.equal(idx[:, 0], pick)
    expected = (q.double() - db[pick].double()).pow(2).mean(1).sqrt()
    torch.testing.assert_close(score[:, 0].double(), expected, atol=1e-4, rtol=1e-3)
    assert score[0, 0].item() == 0.0
    assert (score[:, 1:] > 1).all()


def test_k_above_the_database_size_returns_all_of_it_sorted():
    db = torch.tensor([[3.0], [1.0], [2.0]])
    idx, score = ExactIndex(db, "l2", chunk=2).topk(torch.tensor([[0.0]]), 10)
    assert idx.tolist() == [[1, 2, 0]]
    assert score.tolist() == [[1.0, 2.0, 3.0]]


def test_no_queries_or_no_database():
    idx, score = ExactIndex(torch.randn(5, 4)).topk(torch.zeros(0, 4), 3)
    assert idx.shape == score.shape == (0, 3)
    idx, score = ExactIndex(torch.zeros(0, 4)).topk(torch.randn(2, 4), 3)
    assert idx.shape == score.shape == (2, 0)


@pytest.fixture(params=["faiss", "torch"])
def kernel(request, monkeypatch):
    """rms_l2 on faiss's kernel (wherever faiss imports) or on torch's (on a GPU, or without faiss)."""
    if request.param == "torch":
        monkeypatch.setattr(neighbours, "_faiss_kernel", lambda: None)
    elif neighbours._faiss_kernel() is None:
        pytest.skip("faiss not installed")
    return request.param


def test_the_refinement_gives_the_same_bits_whatever_its_steps(kernel):
    """Several steps with the last one short, one query a step, or all at once: one definition of the score."""
    g = torch.Generator().manual_seed(3)
    db, q = torch.rand(500, 48, generator=g), torch.rand(37, 48, generator=g)
    idx = torch.randint(0, 500, (37, 9), generator=g)
    ref_s, ref_i = refine_l2(db, q, idx, buffer_bytes=1 << 30)
    for buffer_bytes in (1, 9 * 48 * 4 * 5, 9 * 48 * 4 * 36):
        s, i = refine_l2(db, q, idx, buffer_bytes)
        assert torch.equal(s, ref_s) and torch.equal(i, ref_i)
    expected = (q.double()[:, None] - db.double()[ref_i]).pow(2).mean(-1).sqrt()
    torch.testing.assert_close(ref_s.double(), expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("dim", [17, 768, 3072])
@pytest.mark.parametrize("tile_rows", [0, 7])
def test_a_pairs_score_does_not_depend_on_the_pairs_asked_with_it(kernel, dim, tile_rows):
    """ExactIndex and FaissIndex may hand the recomputation other candidates beyond the k-th (their expanded forms
    round apart), and `side check` asks for every row: a pair's bits must be its own, or the backends would store
    different scores for the same neighbour. tile_rows 7: the pairs are taken a tile of 7 database rows at a time,
    as for a database too large for the cache."""
    g = torch.Generator().manual_seed(dim)
    db, q = torch.randn(300, dim, generator=g), torch.randn(20, dim, generator=g)
    idx = torch.randint(0, 300, (20, 11), generator=g)
    buffer_bytes = tile_rows * dim * 4 or neighbours.CPU_REFINE_BYTES
    together = rms_l2(db, q, idx, buffer_bytes)
    alone = torch.cat([rms_l2(db, q, idx[:, j:j + 1], buffer_bytes) for j in range(idx.shape[1])], 1)
    perm = torch.randperm(idx.shape[1], generator=g)
    shuffled = rms_l2(db, q, idx[:, perm], buffer_bytes)
    assert torch.equal(together, alone)
    assert torch.equal(together[:, perm], shuffled)
    assert torch.equal(rms_l2(db, q[3:4], idx[3:4], buffer_bytes), together[3:4])
    assert torch.equal(together, rms_l2(db, q, idx))


def _rows(db: torch.Tensor, how: str, tmp_path):
    """The database as FaissIndex gets it: in memory, or a cache file mapped whole or streamed in small blocks."""
    if how == "memory":
        return ArrayRows(db.numpy())
    cache = DescriptorCache.create(tmp_path / how, len(db), db.shape[1], {"name": "test"}, "manifest")
    for s in range(0, len(db), 50):
        cache.write(s, db[s:s + 50].numpy())
    cache.commit(len(db), force=True)
    cache.close()
    opened = DescriptorCache.open(tmp_path / how, len(db), {"name": "test"}, "manifest")
    assert opened is not None and opened.complete
    resident = how == "mapped"
    return opened.mapped(resident_bytes=1 << 30 if resident else 0, block_bytes=db.shape[1] * 4 * 70)


@faiss_missing
@pytest.mark.parametrize("how", ["memory", "mapped", "streamed"])
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_faiss_index_gives_exact_index_neighbours_and_scores(metric, how, tmp_path):
    from side_engine.matching.faiss_index import FaissIndex

    g = torch.Generator().manual_seed(7)
    db, q = torch.randn(333, 40, generator=g), torch.randn(41, 40, generator=g)
    if metric == "cosine":
        db, q = torch.nn.functional.normalize(db, dim=1), torch.nn.functional.normalize(q, dim=1)
    import faiss

    index = FaissIndex(_rows(db, how, tmp_path), metric)
    assert index.rows.resident == (how != "streamed")
    collector = faiss.cvar.distance_compute_min_k_reservoir
    for k in (1, 12, 50, 400):  # 50: faiss's reservoir (RESERVOIR_K) instead of its heap
        e_idx, e_score = ExactIndex(db, metric, chunk=64).topk(q, k)
        f_idx, f_score = index.topk(q, k)
        assert f_idx.shape == f_score.shape == (41, min(k, 333))
        assert f_idx.dtype == torch.long and f_score.dtype == torch.float32
        assert torch.equal(f_idx, e_idx)
        if metric == "l2":
            assert torch.equal(f_score, e_score)  # the same recomputation: the same bits
        else:
            torch.testing.assert_close(f_score, e_score, atol=1e-6, rtol=1e-6)
    assert faiss.cvar.distance_compute_min_k_reservoir == collector  # faiss's setting for the process, put back


@faiss_missing
@pytest.mark.parametrize("how", ["memory", "streamed"])
def test_faiss_index_keeps_near_copies_tiny_distances(how, tmp_path):
    """As ExactIndex's test: norms near 1000 per pixel, where faiss's own distances cannot see below ~0.1."""
    from side_engine.matching.faiss_index import FaissIndex

    db, pick, q = near_copies()
    idx, score = FaissIndex(_rows(db, how, tmp_path), "l2").topk(q, 3)
    e_idx, e_score = ExactIndex(db, "l2", chunk=32).topk(q, 3)
    assert torch.equal(idx[:, 0], pick) and torch.equal(idx, e_idx) and torch.equal(score, e_score)
    expected = (q.double() - db[pick].double()).pow(2).mean(1).sqrt()
    torch.testing.assert_close(score[:, 0].double(), expected, atol=1e-4, rtol=1e-3)
    assert score[0, 0].item() == 0.0


@faiss_missing
def test_faiss_index_without_queries_or_database():
    from side_engine.matching.faiss_index import FaissIndex

    idx, score = FaissIndex(ArrayRows(np.random.default_rng(0).random((5, 4), dtype=np.float32))).topk(
        torch.zeros(0, 4), 3)
    assert idx.shape == score.shape == (0, 3)
    idx, score = FaissIndex(ArrayRows(np.zeros((0, 4), dtype=np.float32))).topk(torch.randn(2, 4), 3)
    assert idx.shape == score.shape == (2, 0)


def test_the_backend_is_faiss_where_it_imports_and_can_run(monkeypatch):
    import side_engine.matching.neighbours as nb

    assert index_backend("exact", "cpu") == "exact"
    with pytest.raises(ValueError):
        index_backend("annoy", "cpu")
    if importlib.util.find_spec("faiss") is not None:
        assert index_backend("auto", "cpu") == index_backend("faiss", "cpu") == "faiss"
        import faiss

        # faiss-cpu on a CUDA audit: the exact search on the GPU, unless faiss was asked for by name
        assert index_backend("auto", "cuda") == ("faiss" if hasattr(faiss, "StandardGpuResources") else "exact")
        assert index_backend("faiss", "cuda") == "faiss"
    real = importlib.util.find_spec
    monkeypatch.setattr(nb.importlib.util, "find_spec", lambda name, *a: None if name == "faiss" else real(name, *a))
    assert index_backend("auto", "cpu") == "exact"
    with pytest.raises(InputError, match=r"matching\.index"):
        index_backend("faiss", "cpu")


@faiss_missing
@pytest.mark.parametrize("k", [20, 50])
def test_faiss_index_does_not_depend_on_faiss_threads(k):
    """faiss's BLAS rounds its expanded form differently on 1 and 2 threads; the margin of candidates and the
    recomputation (equal scores ordered by index) make the k returned the same, by faiss's heap (20) or its
    reservoir (50)."""
    import faiss

    from side_engine.matching.faiss_index import FaissIndex

    g = torch.Generator().manual_seed(5)
    db, q = torch.rand(4000, 96, generator=g), torch.rand(300, 96, generator=g)
    before = faiss.omp_get_max_threads()
    try:
        results = []
        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            results.append(FaissIndex(ArrayRows(db.numpy()), "l2").topk(q, k))
    finally:
        faiss.omp_set_num_threads(before)
    (i1, s1), (i2, s2) = results
    assert torch.equal(i1, i2) and torch.equal(s1, s2)
    e_idx, e_score = ExactIndex(db, "l2", chunk=512).topk(q, k)
    assert torch.equal(i1, e_idx) and torch.equal(s1, e_score)
