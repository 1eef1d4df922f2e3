# The two set-up commands of the README: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install peers clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Installs Orthanc, DCMTK and dicom3tools (needs root) when they are missing.
peers:
	@bash .ci/install-peers

demo: $(STAMP)
	$(BIN)/bianque demo

test: $(STAMP) peers
	TCP_NODELAY=1 $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
