# The two commands a new user needs: `make demo` and `make test`. Both install first when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.medrival-installed

.PHONY: install demo test bench clean browser

install: $(STAMP)

# torch and torchvision go in first, pinned by constraints.txt, so no later requirement can pull another build.
# TORCH=cpu (small, no CUDA libraries) or TORCH=cu124 / cu126 / cu128 ... takes the same pinned versions from that
# PyTorch index (https://download.pytorch.org/whl/$(TORCH)); without TORCH, pip's default build.
TORCH ?=
TORCH_INDEX := $(if $(TORCH),--index-url https://download.pytorch.org/whl/$(TORCH),)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt $(TORCH_INDEX) torch torchvision
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/medrival demo

test: install browser
	$(PY) -m pytest -q

# The browser tests (tests/test_report_browser.py) drive the HTML report in headless Chromium through selenium and
# Debian's chromium-driver. Both are installed here when the machine allows it (Debian, root); otherwise those
# tests are skipped with the reason, and nothing else depends on a browser.
browser:
	@{ command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } && \
	  command -v chromedriver >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    { apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; }; }; } || \
	  echo "chromium and chromium-driver could not be installed: the headless-browser report tests will be skipped"

bench: install
	$(PY) benchmarks/demo.py
	$(PY) benchmarks/encode.py
	$(PY) benchmarks/linear_probe.py
	$(PY) benchmarks/shared_encoding.py
	$(PY) benchmarks/loading.py
	$(PY) benchmarks/stats.py
	$(PY) benchmarks/generate.py
	$(PY) benchmarks/vqa_extraction.py

clean:
	rm -rf $(VENV) medrival-demo .pytest_cache
