# The README's commands. Each one does its own set-up through scripts/with-engine.sh (Debian packages, a Docker
# engine, toolchain images) and is quick the second time.
WITH_ENGINE := scripts/with-engine.sh
SCENARIO ?= scenarios/flask.toml
# run-kind's cluster: one control plane and NODES-1 workers (a running cluster of another size is recreated)
NODES ?= 1

.PHONY: run run-kind test images cluster-down clean bench

## run: the sample scenario end to end; prints where the results are
run:
	$(WITH_ENGINE) cargo run --release -- run $(SCENARIO)

## test: the whole test suite; integration tests need the toolchain images and the kind cluster (kube backend),
## so they are prepared first (both are built once and reused). The cluster has two nodes, so the kube tests
## spread lanes over nodes and probe the NetworkPolicy across them.
test:
	$(WITH_ENGINE) cargo run -- images
	$(WITH_ENGINE) cargo run -- cluster up --nodes 2
	$(WITH_ENGINE) cargo test

## run-kind: the sample scenario on the local kind cluster (kube backend), created or reused first;
## NODES=2 for a control plane and a worker
run-kind:
	$(WITH_ENGINE) cargo run --release -- cluster up --nodes $(NODES)
	$(WITH_ENGINE) cargo run --release -- run $(SCENARIO) --backend kube --context kind-layerbench

## images: pull the toolchain images, or build local stand-ins from Debian packages and Go modules
images:
	$(WITH_ENGINE) cargo run --release -- images

## cluster-down: delete the kind cluster (its images stay cached)
cluster-down:
	$(WITH_ENGINE) cargo run --release -- cluster down

## clean: remove containers, networks and volumes left by crashed runs (results and images stay)
clean:
	$(WITH_ENGINE) cargo run --release -- clean

## bench: criterion benchmarks
bench:
	$(WITH_ENGINE) cargo bench
