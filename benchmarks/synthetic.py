"""Synthetic audit score columns at any size, shaped like a real sweep (Random, SIDE and OL-TI at four gammas),
for the benchmarks that need more generated images than this machine could sample."""

from __future__ import annotations

import numpy as np

from side_engine.matching.metrics import ScoreArrays
from side_engine.vocabulary import Guide

RUNS = [(Guide.NONE, 0.0)] + [(g, y) for g in (Guide.TD, Guide.TI) for y in (2.0, 5.0, 10.0, 20.0)]


def score_arrays(n: int, k: int = 10, n_train: int = 50_000, seed: int = 0) -> ScoreArrays:
    """score_columns as the scoring functions take them."""
    c = score_columns(n, k, n_train, seed)
    return ScoreArrays.of(c["guide"], c["gamma"], c["nn_idx"], c["nn_score"], gu=c["gu"])


def score_columns(n: int, k: int = 10, n_train: int = 50_000, seed: int = 0) -> dict[str, np.ndarray]:
    """Cosine scores best first; most of them inside the paper's SSCD bands (>= 0.4), the costly case for UMS,
    and neighbour ids skewed (Zipf) as when a few training images are copied often."""
    rng = np.random.default_rng(seed)
    r = rng.integers(0, len(RUNS), n)
    guide = np.array([str(g) for g, _ in RUNS], object)[r]
    gamma = np.array([y for _, y in RUNS])[r]
    nn_score = -np.sort(-rng.beta(5, 4, (n, k)).astype(np.float32), axis=1)
    nn_idx = (rng.zipf(1.3, (n, k)) % n_train).astype(np.int32)
    gu = rng.random(n)
    return dict(guide=guide, gamma=gamma, nn_idx=nn_idx, nn_score=nn_score, gu=gu, n_train=n_train)


def make_audit(root, n: int, n_train: int = 50_000, k: int = 10, n_files: int = 64, seed: int = 0):
    """An audit folder holding n generated images with scores, as the GUI opens it, without sampling them:
    the rows point at n_files small PNGs (the gallery loads thumbnails only for rows on screen)."""
    import time
    from pathlib import Path

    from side_engine.config import BandsConfig, MatchingConfig
    from side_engine.demo import demo_config
    from side_engine.store import AuditStore, write_png_atomic
    from side_engine.vocabulary import Direction

    root = Path(root)
    cfg = demo_config(quick=True)
    cfg.name = f"synthetic: {n:,} images"
    # a learned descriptor: cosine similarities, the SSCD bands (the file is never loaded here)
    cfg.matching = MatchingConfig(descriptor="torchscript", path=str(root / "sscd.pt"), k=k)
    cfg.bands = BandsConfig(low=[0.40, 0.50], mid=[0.50, 0.60], high=[0.60, 1.00])
    store = AuditStore.create(root / "audit", cfg)
    rng = np.random.default_rng(seed)
    pics = []
    for i in range(n_files):
        rel = f"images/pic{i:03d}.png"
        write_png_atomic(store.path(rel), rng.integers(0, 256, (16, 16), dtype=np.uint8))
        pics.append(rel)
    train_dir = root / "train"
    train_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        write_png_atomic(train_dir / f"t{i:03d}.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
    store.record_inputs(model_path=cfg.model.path, train_path=str(train_dir), class_names=[str(d) for d in range(10)],
                        n_train=n_train, n_neighbours=0, descriptor="synthetic", direction=Direction.SIMILARITY,
                        skipped=[])
    store.mark_complete()
    store.record_training_set([f"t{i % n_files:03d}.png" for i in range(n_train)], rng.integers(0, 10, n_train),
                              ["0" * 64] * n_train)
    cols = score_columns(n, k=k, n_train=n_train, seed=seed)
    now = time.time()
    label = rng.integers(0, 10, n)
    with store.db:
        for s in range(0, n, 50_000):
            rows = []
            for i in range(s, min(n, s + 50_000)):
                sc = cols["nn_score"][i]
                rows.append((cols["guide"][i], float(cols["gamma"][i]), int(label[i]), i, i, pics[i % n_files],
                             "0" * 64, now + i, float(sc[0]), int(cols["nn_idx"][i][0]), float(cols["gu"][i]), 1.0,
                             cols["nn_idx"][i].tobytes(), sc.tobytes(), sc.tobytes()))
            store.db.executemany(
                "INSERT INTO images(guide, gamma, label, idx, seed, path, sha256, created, best, best_train, gu,"
                " normalizer, nn_idx, nn_raw, nn_score) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    store.close()
    return root / "audit"
