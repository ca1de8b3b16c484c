"""The training set as an audit holds it (store.training_images()): columns, each image made when asked for, as
recorded; a numbering with a gap is a one-line error naming the database."""

from __future__ import annotations

import numpy as np
import pytest

from side_engine.errors import InputError
from side_engine.store import TRAINING_PART, AuditStore, TrainImage


def test_every_training_image_comes_back_as_recorded(tiny_config, tmp_path):
    store = AuditStore.create(tmp_path / "audit", tiny_config)
    n = TRAINING_PART + 5  # read in two parts
    paths = [f"c{i % 3}/img {i}.png" for i in range(n)]
    hashes = [f"{i:064x}" for i in range(n)]
    store.record_training_set(paths, np.arange(n) % 3, hashes)
    t = store.training_images()
    expected = [TrainImage(i, paths[i], i % 3, hashes[i]) for i in range(n)]
    assert len(t) == n and list(t) == expected
    assert t[TRAINING_PART] == expected[TRAINING_PART] and t[3:5] == expected[3:5]
    assert type(t[np.int32(7)].idx) is int  # as an index read from a neighbour column comes
    for outside in (-1, n):  # a training index, never a position from the end
        with pytest.raises(IndexError):
            t[outside]

    store.record_training_set(paths[:4], None, hashes[:4])  # a flat folder: no class
    assert list(store.training_images()) == [TrainImage(i, paths[i], None, hashes[i]) for i in range(4)]

    with store.db:
        store.db.execute("DELETE FROM train_images WHERE idx = 2")
    with pytest.raises(InputError) as e:
        store.training_images()
    assert "audit.sqlite" in str(e.value) and "not numbered from 0 without a gap" in str(e.value)
    store.close()
