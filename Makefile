# Two entry points for a newcomer: `make quickstart` and `make test`.
# Each creates the virtual environment .venv from nothing when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test quickstart benchmark-data clean

$(STAMP): pyproject.toml requirements/machine.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements/machine.txt -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

quickstart: $(STAMP)
	$(PY) -m sslzoo.quickstart

benchmark-data: $(STAMP)
	$(PY) experiments/benchmarks/data_pipeline.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
