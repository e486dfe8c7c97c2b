# nasrl: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint format protos clean compose-tool browser-tool lock-images pin-base-images

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,onnx]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/nasrl demo

test: $(STAMP) compose-tool browser-tool
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q
	$(PY) -m mypy

# Debian's docker-compose (1.29) lets tests/integration/test_compose.py validate docker-compose.yml;
# without it that test is skipped. Installed only as root where apt-get exists; never fails.
compose-tool:
	@if command -v docker-compose >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's docker-compose (validates docker-compose.yml in the tests)"; \
		if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; } >/dev/null; then \
			echo "note: could not install docker-compose; the compose config test will be skipped"; \
		fi; \
	else \
		echo "note: docker-compose not found and not installable here (needs root and apt-get);"; \
		echo "      the compose config test will be skipped (sudo apt-get install docker-compose to run it)"; \
	fi

# Debian's chromium lets tests/integration/test_dashboard_browser.py drive the dashboard in a real
# headless browser (through Playwright, from the dev extra; Playwright's own browser download does
# not work offline). Installed only as root where apt-get exists; never fails: without it those
# tests are skipped and say how to install it.
browser-tool:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium (the dashboard's browser tests)"; \
		if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null; then \
			echo "note: could not install chromium; the dashboard's browser tests will be skipped"; \
		fi; \
	else \
		echo "note: chromium not found and not installable here (needs root and apt-get);"; \
		echo "      the dashboard's browser tests will be skipped (sudo apt-get install chromium to run them)"; \
	fi

# Quick versions of every benchmark (about 15-20 minutes on 2 cores); reports land in
# bench/results/ (JSON + PNG). Each script takes flags for the full version (--help).
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,onnx,bench]'
	$(PY) bench/controller_latency.py --rounds 200 --seconds 5
	$(PY) bench/controller_load.py
	$(PY) bench/controller_scaling.py --results 2000 --marks 100,1000,2000
	$(PY) bench/fleet.py --sizes 8,64,256,800 --child-seconds 5 --window 15
	$(PY) bench/trainer_throughput.py --quick
	$(PY) bench/search_efficiency.py --quick

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(PY) -m mypy

# rewrites the tree in the project's format (ruff) and import order
format: $(STAMP)
	$(VENV)/bin/ruff check --fix --select I .
	$(VENV)/bin/ruff format .

protos: $(STAMP)
	$(PY) scripts/gen_protos.py

# The images' hash-locked requirements (deploy/requirements/*.txt) from pyproject.toml, with uv;
# needs PyPI and, for torch-cpu.txt's hashes, the PyTorch CPU index (README "Reproducible images").
lock-images: $(STAMP)
	$(PY) scripts/lock_images.py

# FROM python:3.11-slim -> FROM python:3.11-slim@sha256:... in deploy/Dockerfile.*, the digest
# asked from Docker Hub's registry (or DIGEST=sha256:... given: make pin-base-images DIGEST=...).
pin-base-images: $(STAMP)
	$(PY) scripts/pin_base_images.py $(if $(DIGEST),--digest $(DIGEST))

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .hypothesis
