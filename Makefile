# The README's commands. Each one does its own set-up through scripts/with-engine.sh (Debian packages, a Docker
# engine, toolchain images) and is quick the second time.
WITH_ENGINE := scripts/with-engine.sh
SCENARIO ?= scenarios/flask.toml

.PHONY: run test images clean bench

## run: the sample scenario end to end; prints where the results are
run:
	$(WITH_ENGINE) cargo run --release -- run $(SCENARIO)

## test: the whole test suite; integration tests need the toolchain images, so they are prepared first
test:
	$(WITH_ENGINE) cargo run -- images
	$(WITH_ENGINE) cargo test

## images: pull the toolchain images, or build local stand-ins from Debian packages and Go modules
images:
	$(WITH_ENGINE) cargo run --release -- images

## clean: remove containers, networks and volumes left by crashed runs (results and images stay)
clean:
	$(WITH_ENGINE) cargo run --release -- clean

## bench: criterion benchmarks
bench:
	$(WITH_ENGINE) cargo bench
