# The two commands a new user needs: `make demo` and `make test`. Both install first when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.medrival-installed

.PHONY: install demo test bench clean

install: $(STAMP)

# torch and torchvision go in first, pinned by constraints.txt, so no later requirement can pull another build.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt torch torchvision
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/medrival demo

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/demo.py
	$(PY) benchmarks/encode.py
	$(PY) benchmarks/linear_probe.py
	$(PY) benchmarks/shared_encoding.py
	$(PY) benchmarks/loading.py
	$(PY) benchmarks/stats.py

clean:
	rm -rf $(VENV) medrival-demo .pytest_cache
