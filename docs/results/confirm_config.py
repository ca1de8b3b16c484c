"""Turn a copy of a sweep's audit folder into its confirmation audit: Random and one gamma, with more images each.

    cp -r SWEEP CONFIRM && python docs/results/confirm_config.py CONFIRM --gamma 3 --n 4096 && side run --resume CONFIRM
"""

import argparse
import sys
import tomllib
from pathlib import Path

import tomli_w

p = argparse.ArgumentParser()
p.add_argument("audit")
p.add_argument("--gamma", type=float, required=True)
p.add_argument("--n", type=int, required=True)
a = p.parse_args()
path = Path(a.audit) / "audit.toml"
cfg = tomllib.loads(path.read_text())
first = cfg["extraction"]["n_per_gamma"]
cfg["name"] = (f"confirmation of {cfg['name']}: gamma {a.gamma:g} chosen on images 0-{first - 1}, "
               f"tested on {first}-{a.n - 1}")
cfg["extraction"].update(gammas=[0.0, a.gamma], n_per_gamma=a.n, ol_ti=False)
path.write_text(tomli_w.dumps(cfg))
sys.exit(0)
