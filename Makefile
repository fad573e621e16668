# The two commands of the README: `make demo` (the main job) and `make test` (the whole suite).
# Both run the idempotent set-up first; it compiles mmcv only on a machine that never built it.
PY := .venv/bin/python
export OMP_NUM_THREADS ?= 2

.PHONY: setup demo test test-quick
setup:
	bash tools/setup_env.sh

demo: setup
	$(PY) tools/run_demo.py

test: setup
	$(PY) -m pytest tests -ra

# Development subset: everything but the slow end-to-end tests.
test-quick: setup
	$(PY) -m pytest tests -ra -m "not slow"
