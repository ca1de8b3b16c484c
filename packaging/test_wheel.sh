#!/usr/bin/env bash
# The wheel as a reviewer installs it: a fresh venv outside the clone, then each installed command run from a folder
# that holds nothing of the clone. Minutes (the venv installs from PyPI); not part of `make test`.
#   packaging/test_wheel.sh WHEEL [WORK_DIR]     (make wheel-test builds the wheel first)
set -euo pipefail

wheel=$(realpath "${1:?usage: packaging/test_wheel.sh WHEEL [WORK_DIR]}")
work=$(realpath -m "${2:-$(mktemp -d /tmp/side-wheel-test.XXXXXX)}")
python=${PYTHON:-python3.11}
mkdir -p "$work"
cd "$work"
# Caches, settings and data of this run only: the demo's digits are rebuilt from the installed scikit-learn.
export XDG_CACHE_HOME=$work/cache XDG_CONFIG_HOME=$work/config XDG_DATA_HOME=$work/data
export HF_HUB_OFFLINE=1 QT_QPA_PLATFORM=offscreen
step() { printf '\n== %s\n' "$*"; }

step "fresh venv in $work/venv"
rm -rf venv A E gui-audit gui.png
"$python" -m venv venv
# torch first: the pinned CPU wheel; the wheel's own requirement alone would pull a multi-GB CUDA build.
venv/bin/pip install -q torch==2.13.0
venv/bin/pip install -q "$wheel"
bin=$work/venv/bin

step "the package and its resources come from the venv, not the clone"
"$bin/python" - <<'PY'
import sys
from pathlib import Path

from side_engine.demo import DEMO_MODELS
from side_engine.evidence.grid import font_path

site = Path(sys.prefix)
for path in [*DEMO_MODELS.values(), font_path(), font_path("B")]:
    print(path)
    assert path.is_relative_to(site) and path.exists(), f"{path} is not in the venv {site}"
PY

step "side --version"
"$bin/side" --version
step "side demo --quick --out A"
"$bin/side" demo --quick --out A
step "side report A"
"$bin/side" report A
step "side export A --out E --top 3"
"$bin/side" export A --out E --top 3
step "side verify E, then with the installed demo model: each image regenerated"
"$bin/side" verify E
"$bin/side" verify E --model "$("$bin/python" -c 'from side_engine.demo import DEMO_MODEL; print(DEMO_MODEL)')"
step "side-gui --demo --quick (offscreen) --screenshot gui.png"
"$bin/side-gui" --demo --quick --out gui-audit --screenshot gui.png --exit-when-done
test -s gui.png
printf '\nok: every command ran from the installed wheel; look at %s\n' "$work/gui.png"
