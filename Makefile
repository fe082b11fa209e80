# The two commands of the README:
#   make demo   set everything up in .venv, then run the whole chain on the embedded default
#   make test   set everything up in .venv, then run the test suite (CI runs exactly this)
#
# CUDA users:        make setup TORCH='torch --index-url https://download.pytorch.org/whl/cu126'
#                    (or install their torch into .venv first; an installed torch is kept)
# LCG / conda ROOT:  make setup SYSTEM_ROOT=1   (the venv sees your ROOT; the PyPI wheel is not installed)

COMMA       := ,
VENV        ?= .venv
PYTHON      ?= python3
TORCH       ?= torch==2.13.0
SYSTEM_ROOT ?=
EXTRAS      := $(if $(SYSTEM_ROOT),onnx$(COMMA)sofie$(COMMA)sim$(COMMA)plot$(COMMA)dask$(COMMA)test,root$(COMMA)onnx$(COMMA)sofie$(COMMA)sim$(COMMA)plot$(COMMA)dask$(COMMA)test)
VENV_FLAGS  := $(if $(SYSTEM_ROOT),--system-site-packages,)
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.dyroot-setup

.PHONY: setup demo test clean-build

$(STAMP): setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	@touch $@

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dyroot demo

test: $(STAMP)
	$(PY) -m pytest -c tests/pytest.ini

clean-build:
	rm -rf build
