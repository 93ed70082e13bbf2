# `make run`  : install into .venv and start the chat app on the embedded default model
# `make test` : install into .venv and run the whole test suite (what CI runs)
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install run test bench clean-venv

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	touch $@

run: install
	$(VENV)/bin/streamlit run ui/app.py

test: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAGAS_DO_NOT_TRACK=true $(VENV)/bin/pytest

bench: install
	$(PY) bench/retrieval.py

clean-venv:
	rm -rf $(VENV)
