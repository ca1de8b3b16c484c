# Two entry points for a fresh Linux machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
TORCH := torch==2.13.0
export HF_HUB_OFFLINE := 1

.PHONY: install demo test bench lint dist wheel-test bundle bundle-test clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first: the pinned CPU wheel; installing the project first would pull a multi-GB CUDA build.
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/side demo --out side-demo-audit

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $@

# Speed and scale (not part of test): writes benchmarks/results/*.json and the table in BENCHMARKS.md.
# BENCH=name picks some (sampling matching rescore gui gallery demo); BENCH_ARGS=--quick for a fast check.
bench: $(VENV)/.bench-installed
	QT_QPA_PLATFORM=offscreen $(PY) -m benchmarks $(BENCH) $(BENCH_ARGS)

$(VENV)/.lint-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,lint]'
	touch $@

# ruff over the tree and pyright over side_engine, both configured in pyproject.toml ([tool.ruff], [tool.pyright]).
# Offline: pyright's wheel carries pyright and node; IGNORE_WARNINGS skips its "newer version on PyPI?" query.
lint: $(VENV)/.lint-installed
	$(VENV)/bin/ruff check .
	PYRIGHT_PYTHON_IGNORE_WARNINGS=1 $(VENV)/bin/pyright

test: install
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

# Release artefacts (docs/PACKAGING.md); none of these is part of test.
$(VENV)/.bundle-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,bundle]'
	touch $@

# The sdist and the wheel built from it (in a folder of its own), in dist/. Without the clone's egg-info: setuptools
# adds its old SOURCES.txt to the sdist, which could then ship files the project no longer has.
dist: $(VENV)/.bundle-installed
	rm -rf side_inspector.egg-info dist/side_inspector-*
	$(PY) -m build --no-isolation --outdir dist .

# The wheel installed as a reviewer would, in a fresh venv outside the clone, each command run from there (a minute).
wheel-test: dist
	packaging/test_wheel.sh dist/side_inspector-*.whl /tmp/side-wheel-test

# The Linux bundle of both commands (PyInstaller) as a tarball and a .deb in dist/, frozen from the wheel.
bundle: dist
	packaging/build_bundle.sh

# The bundle as a user gets it: metadata valid, the frozen commands run, the .deb installs (as root: a chroot).
bundle-test:
	packaging/test_bundle.sh

clean:
	rm -rf side-demo-audit side-demo-audit-quick .pytest_cache build dist
