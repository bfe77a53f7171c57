# ctip-assistant. `make run` and `make test` set up whatever is missing (DESIGN.md §2).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON311 ?= $(shell command -v python3.11 || ls -d $${PYENV_ROOT:-$${HOME:-/root}/.pyenv}/versions/3.11*/bin/python3.11 2>/dev/null | tail -1 || command -v python3)
VENV := .venv
RASA_VENV := .venv-rasa
PY := $(VENV)/bin/python
RASA := $(RASA_VENV)/bin/rasa
MODEL := models/ctip.tar.gz
TRAIN_INPUTS := config.yml domain.yml $(shell find nlu_data -name '*.yml' 2>/dev/null) \
	$(wildcard nlu_ext/*.py) bot/textnorm.py
export PYTHONPATH := $(CURDIR)
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 2
export SQLALCHEMY_SILENCE_UBER_WARNING := 1

.PHONY: help setup run shell test train eval bench lint validate compare clean

help:
	@echo "make run      start the engine and the bot service (sets up what is missing)"
	@echo "make shell    chat with the assistant in this terminal"
	@echo "make test     run the whole test suite (sets up what is missing)"
	@echo "make train    retrain the model when the data changed"
	@echo "make eval     NLU report per language on the held-out split"
	@echo "make bench    benchmarks: train time, model size, engine RSS, latency; Telegram adapter;"
	@echo "              console; 10-minute soak with 100 people (SOAK_SECONDS, SOAK_USERS)"
	@echo "make lint     ruff"

$(VENV)/.stamp: pyproject.toml
	@test -n "$(PYTHON311)" || { echo "error: python3.11 not found (the bot service needs Python 3.11)"; exit 1; }
	$(PYTHON311) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(RASA_VENV)/.stamp: requirements/rasa.lock
	@PY310=$$(scripts/find-python310.sh) || exit 1; \
	  echo "engine venv with $$PY310"; \
	  $$PY310 -m venv $(RASA_VENV)
	$(RASA_VENV)/bin/python -m pip install --quiet --upgrade pip wheel
	$(RASA_VENV)/bin/python -m pip install --quiet -r requirements/rasa.lock
	touch $@

setup: $(VENV)/.stamp $(RASA_VENV)/.stamp

$(MODEL): $(TRAIN_INPUTS) | $(RASA_VENV)/.stamp
	@mkdir -p models var
	@start=$$(date +%s); \
	$(RASA) train --data nlu_data --config config.yml --domain domain.yml \
	  --out models --fixed-model-name ctip --num-threads 2 2>&1 | grep -vE "^\s*$$|Epochs:" ; \
	  status=$${PIPESTATUS[0]}; \
	  echo "$$(( $$(date +%s) - start ))" > var/train_seconds; \
	  test -f $(MODEL) && touch $(MODEL); exit $$status

train: $(MODEL)

run: setup $(MODEL)
	$(VENV)/bin/ctip run

shell: setup $(MODEL)
	$(VENV)/bin/ctip shell

validate: $(RASA_VENV)/.stamp
	$(RASA) data validate --data nlu_data --config config.yml --domain domain.yml

test: setup $(MODEL)
	$(VENV)/bin/pytest

eval: setup $(MODEL)
	$(PY) scripts/eval_nlu.py

compare: setup
	$(PY) scripts/compare_pipelines.py

bench: setup $(MODEL)
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/bench_telegram.py
	$(PY) benchmarks/bench_console.py
	$(PY) benchmarks/bench_history.py
	$(PY) benchmarks/bench_soak.py

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check bot actions nlu_ext engine_ext scripts benchmarks tests
	$(VENV)/bin/ruff format --check bot actions nlu_ext engine_ext scripts benchmarks tests

clean:
	rm -rf models var/engine .pytest_cache
