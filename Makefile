# quargo: see README.md. `make demo` and `make test` work on a fresh clone.
CARGO ?= cargo
BIN := target/release/quargo
VENV := bench/.venv
PY := $(VENV)/bin/python
THREADS ?= $(shell nproc)

.PHONY: demo test test-deps check-kubectl build check-tools lint fuzz images musl-deps bench bench-sim bench-cut bench-cache bench-plugin clean

demo: check-tools build
	@echo "== quargo simulate examples/bell.qasm"
	$(BIN) simulate examples/bell.qasm
	@echo "== quargo simulate examples/ghz.qasm --shots 1000 --seed 7"
	$(BIN) simulate examples/ghz.qasm --shots 1000 --seed 7
	@echo "== quargo simulate examples/qaoa_ring8.qasm --observable ZZIIIIII (expectation only shown)"
	$(BIN) simulate examples/qaoa_ring8.qasm --observable ZZIIIIII | grep -o '"expectation".*' 
	@echo "== quargo cut examples/two_blocks.qasm --max-qubits 4"
	$(BIN) cut examples/two_blocks.qasm --max-qubits 4
	@echo "== quargo run examples/two_blocks.qasm --max-qubits 4 --shots 4000 --seed 1 --observable ZZZZZZZ"
	$(BIN) run examples/two_blocks.qasm --max-qubits 4 --shots 4000 --seed 1 --observable ZZZZZZZ --no-probabilities
	@echo "== the semantic cache (embedded LMDB): a cold run, then the same run warm, then stats"
	$(BIN) cache clear --cache lmdb://target/demo-cache
	$(BIN) run examples/qaoa_ring8.qasm --max-qubits 5 --cache lmdb://target/demo-cache | grep -o '"circuits_simulated":[0-9]*,"cache_hits":[0-9]*'
	$(BIN) run examples/qaoa_ring8.qasm --max-qubits 5 --cache lmdb://target/demo-cache | grep -o '"circuits_simulated":[0-9]*,"cache_hits":[0-9]*'
	$(BIN) cache stats --cache lmdb://target/demo-cache

check-tools:
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found: install Rust (https://rustup.rs) first"; exit 1; }

build:
	$(CARGO) build --release --locked

# What the tests need beyond Rust: rustfmt and clippy, and redis-server (the Redis and plugin tests
# start their own on a free loopback port). Installed when missing; a clear error when that cannot be.
test-deps: check-tools
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt >/dev/null 2>&1 || true
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy >/dev/null 2>&1 || true
	@command -v redis-server >/dev/null && exit 0; \
	command -v apt-get >/dev/null || { echo "error: make test needs redis-server; install it with your package manager"; exit 1; }; \
	if [ "$$(id -u)" -eq 0 ]; then SUDO=""; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; \
	else echo "error: make test needs redis-server and cannot install it without root: sudo apt-get install redis-server"; exit 1; fi; \
	echo "== installing redis-server (apt-get)"; \
	{ $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; } \
	  || { echo "error: could not install redis-server (is the package index reachable?)"; exit 1; }

# kubectl (with kustomize) renders templates/ for the manifest tests; it is not a Debian package.
check-kubectl:
	@command -v kubectl >/dev/null || { echo "error: make test needs kubectl (https://kubernetes.io/docs/tasks/tools/) to render templates/ with kustomize"; exit 1; }

# The one test command: formatting, lints and every test (unit, property, CLI, Redis, plugin, fuzz,
# and the container images, which it builds first).
test: test-deps check-kubectl images
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings
	$(CARGO) test --locked

lint:
	$(CARGO) clippy --all-targets --locked -- -D warnings

# Container images (images/*/Dockerfile): one static musl binary each, FROM scratch, built with the
# local Docker engine and nothing pulled from a registry. The binary is stripped (images under 20 MB).
MUSL := x86_64-unknown-linux-musl
MUSL_BIN := target/$(MUSL)/release/quargo
IMAGES := plugin worker
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' plugin/Cargo.toml | head -n 1)
REVISION := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
MAX_IMAGE_BYTES := 20000000

musl-deps: check-tools
	@rustup target list --installed 2>/dev/null | grep -q '^$(MUSL)$$' || rustup target add $(MUSL)
	@command -v musl-gcc >/dev/null && exit 0; \
	command -v apt-get >/dev/null || { echo "error: the images need musl-gcc (musl-tools); install it with your package manager"; exit 1; }; \
	if [ "$$(id -u)" -eq 0 ]; then SUDO=""; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; \
	else echo "error: the images need musl-gcc and cannot install it without root: sudo apt-get install musl-tools"; exit 1; fi; \
	echo "== installing musl-tools (apt-get)"; \
	{ $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq musl-tools >/dev/null; } \
	  || { echo "error: could not install musl-tools (is the package index reachable?)"; exit 1; }

images: musl-deps
	@command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "error: make images needs a running Docker engine"; exit 1; }
	CARGO_PROFILE_RELEASE_STRIP=true $(CARGO) build --release --locked --target $(MUSL) --bin quargo
	@for image in $(IMAGES); do \
	  context=target/images/$$image; rm -rf $$context; mkdir -p $$context; \
	  cp $(MUSL_BIN) $$context/quargo; \
	  docker build -q -f images/$$image/Dockerfile -t quargo/$$image:$(VERSION) -t quargo/$$image:latest \
	    --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) $$context >/dev/null || exit 1; \
	  size=$$(docker image inspect -f '{{.Size}}' quargo/$$image:latest); \
	  echo "== quargo/$$image:$(VERSION) ($$size bytes)"; \
	  [ $$size -lt $(MAX_IMAGE_BYTES) ] || { echo "error: quargo/$$image is over $(MAX_IMAGE_BYTES) bytes"; exit 1; }; \
	done

# Long runs of the fuzz targets: the QASM parser (random and mutated programs), then the plugin's
# HTTP body as Argo sends it (hostile fields, truncated and damaged bodies, against a real server).
fuzz:
	PROPTEST_CASES=$${PROPTEST_CASES:-200000} $(CARGO) test --release --locked -p quargo-science --test qasm_fuzz -- --nocapture
	PROPTEST_CASES=$${PLUGIN_FUZZ_CASES:-20000} $(CARGO) test --release --locked -p quargo --test integration plugin_fuzz:: -- --nocapture

$(VENV)/.ready: bench/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r bench/requirements.txt
	touch $@

# quargo vs qiskit-aer, same circuits and threads, in one run (see bench/sim_vs_aer.py).
bench-sim: $(VENV)/.ready
	$(CARGO) bench --locked --no-run --bench sim_peer
	$(PY) bench/sim_vs_aer.py --threads $(THREADS) --reps 3

# quargo's cut -> simulate -> reconstruct vs qiskit-addon-cutting (see bench/cut_vs_addon.py),
# then the cut finder on 64 qubits / 1,000 gates.
bench-cut: $(VENV)/.ready build
	$(CARGO) bench --locked --bench cut_finder
	$(PY) bench/cut_vs_addon.py

# Circuit-ID cost vs the published recipe (pyzx full_reduce + networkx WL), bench/id_vs_pyzx.py,
# then hit rate and speed-up on cutting runs, cold vs warm, LMDB vs Redis, 1/2/8 workers
# (needs redis-server on PATH).
bench-cache: $(VENV)/.ready
	$(CARGO) bench --locked --no-run --bench cache_id
	$(PY) bench/id_vs_pyzx.py
	$(CARGO) bench --locked --bench cache_hits

# Cache-hit simulate calls through quargo serve: calls/s and p50/p99 with 16 connections (wrk),
# on LMDB and on Redis. Needs wrk and redis-server.
bench-plugin: build
	bench/plugin_bench.sh

bench: bench-sim bench-cut bench-cache bench-plugin

clean:
	$(CARGO) clean
	rm -rf bench/out $(VENV)
