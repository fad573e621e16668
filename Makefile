# The two commands of the README: `make demo` (the main job) and `make test` (the whole suite).
# Both run the idempotent set-up first; it compiles mmcv only on a machine that never built it.
PY := .venv/bin/python
PY_OLDEST := .venv-oldest/bin/python
# Detectron2 is not on PyPI and GitHub may be out of reach: build it from the source archive of
# the pinned commit given in HIERA_MM_DETECTRON2_ARCHIVE, or found beside the checkout in
# ../shared/vendor/ (set-up checks its sha256); without one, set-up fetches that commit from GitHub.
HIERA_MM_DETECTRON2_ARCHIVE ?= $(wildcard $(CURDIR)/../shared/vendor/detectron2-02b5c4e2.tar.gz)
export HIERA_MM_DETECTRON2_ARCHIVE
# What runs again in .venv-oldest (torch 2.1.2, mmengine 0.10.0, transformers 4.45.0): the model
# and its parity, checkpoints, layer decay, configs, swap, stock launchers, the torch-only core.
OLDEST_TESTS := tests/test_backbone.py tests/test_checkpoints.py tests/test_layer_decay.py tests/test_archs.py \
	tests/test_configs.py tests/test_swap_backbone.py tests/test_stock_tools.py \
	tests/test_core_standalone.py

.PHONY: setup setup-main setup-oldest setup-mmdeploy demo test test-main test-oldest test-quick
setup: setup-main setup-oldest setup-mmdeploy
setup-main:
	bash tools/setup_env.sh main
setup-oldest:
	bash tools/setup_env.sh oldest
# mmdeploy 1.3.1 (torch <= 2.1, protobuf <= 3.20.2) in .venv-mmdeploy, layered on .venv-oldest.
setup-mmdeploy: setup-oldest
	bash tools/deployment/setup_mmdeploy_env.sh

demo: setup-main
	$(PY) tools/dev/run_demo.py

# The whole suite in the main stack, then the floors' subset in .venv-oldest (which holds the
# requirements only; the checkout comes from PYTHONPATH). One pytest-xdist worker per core, whole
# files per worker (module fixtures run once), the longest files first (tests/conftest.py).
XDIST := -n auto --dist loadfile --no-loadscope-reorder
test: setup
	$(PY) -m pytest tests $(XDIST) -ra --durations=25
	PYTHONPATH=$(CURDIR) $(PY_OLDEST) -m pytest $(OLDEST_TESTS) $(XDIST) -ra --durations=10

test-main: setup-main
	$(PY) -m pytest tests $(XDIST) -ra --durations=25

test-oldest: setup-oldest
	PYTHONPATH=$(CURDIR) $(PY_OLDEST) -m pytest $(OLDEST_TESTS) $(XDIST) -ra --durations=10

# Development subset: everything but the slow end-to-end tests, main stack only.
test-quick: setup-main
	$(PY) -m pytest tests $(XDIST) -ra -m "not slow"
