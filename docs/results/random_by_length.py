"""Random's band rates (plain DDIM sampling, as an audit's gamma = 0 run draws it) for each training-length
snapshot of a demo model: how the regime model's training length was chosen (docs/RESULTS.md).

    python docs/results/random_by_length.py SNAPSHOT_DIR... --per-class 170 --n 1024 [--json OUT]

Each image i uses the audit's own seed (audit seed 0, label i mod 10), so these are the images a demo audit's
Random run of the same model would hold.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import numpy as np
import torch

from side_engine.dataset import load_training_set
from side_engine.demo import DemoSpec, demo_training_folder
from side_engine.matching.descriptors import make_descriptor
from side_engine.matching.matcher import Matcher
from side_engine.matching.metrics import NL2_BANDS, ams, percentile_of_best, ums
from side_engine.method.guidance import from_uint8, image_seed, sample, to_uint8
from side_engine.target import load_target


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("snapshots", nargs="+")
    p.add_argument("--per-class", type=int, default=170)
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--clipped-eps", action="store_true",
                   help="step with the eps re-derived from the clipped x0 (guided-diffusion's DDIM; diffusers' "
                        "use_clipped_model_output): how much the sampler alone changes the band rates")
    p.add_argument("--json")
    a = p.parse_args(argv)
    train = load_training_set(demo_training_folder(DemoSpec(per_class=a.per_class)), 1, 16)
    matcher = Matcher(make_descriptor("pixels"), train.images, k=10)
    out = []
    for snap in a.snapshots:
        target = load_target(snap)
        sched = target.ddim()
        if a.clipped_eps:
            sched.step = functools.partial(sched.step, use_clipped_model_output=True)
        rows = []
        for b in range(0, a.n, a.batch):
            idx = range(b, min(a.n, b + a.batch))
            x = sample(target.unet, sched, [image_seed(0, i % 10, i) for i in idx], steps=50)
            m = matcher.match(from_uint8(to_uint8(x)))
            rows.append(m)
        nn_idx = np.concatenate([m.nn_idx for m in rows])
        nn_score = np.concatenate([m.nn_score for m in rows])
        res = {"snapshot": str(snap), "n": a.n, "clipped_eps": a.clipped_eps,
               "ams": {bd.name: ams(nn_score[:, 0], bd) for bd in NL2_BANDS.all()},
               "ums": {bd.name: ums(nn_idx, nn_score, bd, len(train)) for bd in NL2_BANDS.all()},
               "p5_best_nl2": percentile_of_best(nn_score[:, 0], "distance")}
        out.append(res)
        print(f"{Path(snap).name:>12}  AMS % " + "  ".join(f"{k} {100 * v:.2f}" for k, v in res["ams"].items())
              + f"   p5 best nL2 {res['p5_best_nl2']:.3f}", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
