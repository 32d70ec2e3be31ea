# alexlab: `make train` and `make test` work on a fresh clone (they create .venv first).
# Extra Hydra overrides go in ARGS, e.g.  make train ARGS="optimizer=adamw trainer.max_epochs=3"

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help install train eval test test-all lint format clean bench bench-data fake-imagenet \
	sweep report train-ddp gpu-check

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Reinstalls only when pyproject.toml changes, so `make install` is a no-op otherwise.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

install: $(VENV)/.installed ## create .venv and install alexlab with its dev tools (idempotent)

train: install ## train the embedded default (AlexNet-BN on digits, CPU, ~3 min); ARGS= for overrides
	$(PY) train.py $(ARGS)

train-ddp: install ## DDP on all local GPUs, or 2 gloo processes on the CPU without one; ARGS= for overrides
	$(PY) train.py strategy=ddp $$($(PY) -c "import torch; n = torch.cuda.device_count(); \
	print(f'trainer=gpu trainer.devices={n}' if n else 'trainer.accelerator=cpu trainer.devices=2')") $(ARGS)

sweep: install ## a small example sweep (optimizer x lr, 2 epochs each on digits); then `make report`
	$(PY) train.py -m optimizer=sgd,adamw optimizer.lr=0.001,0.01 trainer.max_epochs=2 $(ARGS)

report: install ## table + plot of a sweep: make report [RUNS=runs/multirun/<date>] (default: the latest)
	$(PY) -m alexlab.report $(or $(RUNS),$(lastword $(sort $(wildcard runs/multirun/*/))))

eval: install ## evaluate a checkpoint: make eval ARGS="ckpt_path=runs/<date>/checkpoints/last.ckpt"
	$(PY) eval.py $(ARGS)

test: install ## run the fast test suite (every feature at a tiny size)
	$(PY) -m pytest -m "not slow" $(ARGS)

test-all: install ## run every test, slow ones included
	$(PY) -m pytest $(ARGS)

lint: install ## ruff lint + format check
	$(VENV)/bin/ruff check src tests benchmarks train.py eval.py
	$(VENV)/bin/ruff format --check src tests benchmarks train.py eval.py

format: install ## ruff autofix + format
	$(VENV)/bin/ruff check --fix src tests benchmarks train.py eval.py
	$(VENV)/bin/ruff format src tests benchmarks train.py eval.py

bench: install ## loaders (full-size, prepared, against their peers), training throughput, framework overhead -> BENCHMARKS.md
	$(PY) -m benchmarks.bench $(ARGS)

bench-data: install ## loaders vs the previous code (ARGS="--baseline-src OLD/src"), DALI decode-only, 100k-file set-up, full-size vs a prepared copy -> BENCHMARKS.md
	$(PY) -m benchmarks.bench --what data prepared $(ARGS)

# No install step: on the GPU machine there is no .venv (docs/gpu.md stages Hydra and DALI).
gpu-check: ## on a GPU: env, real fits, no-host-sync rule, bench, eval/predict/export -> BENCHMARKS.md (<= 8 min); a dry run on a CPU
	$(if $(wildcard $(PY)),$(PY),python3) benchmarks/gpu_check.py $(ARGS)

fake-imagenet: install ## write an ImageNet-shaped JPEG tree: make fake-imagenet ARGS="DIR --classes 10 --per-class 100"
	$(PY) -m alexlab.data fake-imagenet $(or $(ARGS),.cache/fake-imagenet)

clean: ## remove run outputs and caches (keeps .venv)
	rm -rf runs outputs multirun .cache .pytest_cache .ruff_cache
