"""f_TD's health (agreement with f_TI's pseudo labels on held-out D_syn, per t-bucket) under different TDKD settings,
on an audit's own D_syn and f_TI: how the TDKD defaults were chosen (docs/RESULTS.md).

    python docs/results/tdkd_settings.py AUDIT_DIR "lr=1e-3,steps=1500" "lr=1e-4,steps=3000" ... [--json OUT]

Each variant overrides fields of the audit's [tdkd] table (docs/CONFIG.md); n_syn=N uses the first N samples.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from side_engine.method.classifier import ResNetClassifier, load_classifier
from side_engine.method.tdkd import distill, health, pseudo_labels, split_holdout
from side_engine.store import AuditStore
from side_engine.target import load_target
from side_engine.vocabulary import Guide


def parse_variant(text: str, base):
    changes = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=")
        kind = type(getattr(base, key))
        changes[key] = value.lower() == "true" if kind is bool else kind(float(value)) if kind is int else kind(value)
    return dataclasses.replace(base, **changes)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("audit")
    p.add_argument("variants", nargs="+")
    p.add_argument("--json")
    a = p.parse_args(argv)
    store = AuditStore.open(a.audit)
    base = store.config.tdkd
    target = load_target(store.model_path)
    schedule = target.noise_schedule()
    x_all = torch.from_numpy(np.stack([np.asarray(Image.open(store.path(s.path))) for s in store.syn_images()]))
    x_all = (x_all.float() / 255)[:, None] * 2 - 1
    f_ti, _ = load_classifier(store.classifier_path(Guide.TI))
    out = []
    for text in a.variants:
        cfg = parse_variant(text, base)
        x0 = x_all[:cfg.n_syn]
        targets = pseudo_labels(f_ti, x0)
        if not cfg.soft:
            targets = torch.nn.functional.one_hot(targets.argmax(1), targets.shape[1]).float()
        train_idx, hold_idx = split_holdout(len(x0))
        f_td = ResNetClassifier.from_time_independent(f_ti, cfg.time_embed_dim)
        t0 = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            gen = distill(f_td, x0[train_idx], targets[train_idx], schedule, cfg, Path(tmp) / "ckpt.safetensors",
                          lambda: None)
            for _ in gen:
                pass
        rows = health(f_td, x0[hold_idx], targets[hold_idx].argmax(1), schedule, cfg.health_buckets, cfg.seed)
        res = {"variant": text, "seconds": round(time.time() - t0, 1), "n_syn": len(x0),
               "health": [[lo, hi, round(acc, 3), n] for lo, hi, acc, n in rows]}
        out.append(res)
        print(f"{text:<40} {res['seconds']:>6.0f}s  " + " ".join(f"{acc:.2f}" for _, _, acc, _ in rows), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
