"""ExactIndex against brute force in float64: blocks of queries and database rows, the merge of each block's top k,
and the l2 refinement, which takes chunk * chunk // (k * dim) queries a step: the sizes below make several steps,
the last one short."""

import pytest
import torch

from side_engine.matching.neighbours import ExactIndex


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


def test_near_copies_keep_their_tiny_distances_in_every_step():
    """Norms near 1000 per pixel: the expanded form ||q||^2 + ||d||^2 - 2 q.d loses everything below ~0.1 here,
    so only the recomputation from the differences can find these distances."""
    g = torch.Generator().manual_seed(1)
    db = torch.rand(300, 64, generator=g) * 100 + 1000
    pick = torch.randperm(300, generator=g)[:40]
    offset = torch.zeros(40, 64)
    offset[torch.arange(40), torch.arange(40) % 64] = torch.linspace(0.0, 0.5, 40)
    q = db[pick] + offset
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
