# The two quickstart commands of README.md: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# The CPU wheel first: a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0

.PHONY: install demo test bench schema

install:
	$(PIP) install -q $(TORCH_PIN)
	$(PIP) install -q -e ".[torch,dev,obp]"

demo: install
	genco demo --out demo_out

test: install
	$(PYTHON) -m pytest -q

bench: install
	$(PYTHON) benchmarks/synth.py && $(PYTHON) benchmarks/build.py && $(PYTHON) benchmarks/loader.py && $(PYTHON) benchmarks/evaluate.py && $(PYTHON) benchmarks/train.py

schema:
	$(PYTHON) -m genco_data.format.arrow .
