# Thin wrapper around meson/ninja. `make help` lists the targets.
BUILD ?= build
TASKS ?= 1000000
JOBS ?= 1000
INSTANCES ?= 1000
HOSTS ?= 5000
.PHONY: all deps build test test-unit demo demo-storage bench bench-storage bench-scheduler bench-agent bench-client format format-check clean help

all: build

help:
	@echo "make deps           install the Debian packages (as root; apt-get update first)"
	@echo "make                build into ./$(BUILD)"
	@echo "make test           deps, then plain and ASan+UBSan builds, every test in both"
	@echo "make demo           the quick start: a local cluster running an example job"
	@echo "make demo-storage   the durable store on its own: log, snapshot, restart"
	@echo "make bench          all benchmarks (bench-storage, bench-scheduler, bench-agent, bench-client)"
	@echo "make bench-storage [TASKS=N]  storage benchmarks -> bench/results/storage.json"
	@echo "make bench-scheduler [JOBS=J INSTANCES=I HOSTS=H]  placement and API latency"
	@echo "                     -> bench/results/scheduler.json"
	@echo "make bench-agent    launch latency and throughput, agent and executor overhead"
	@echo "                     -> bench/results/agent.json"
	@echo "make bench-client   .aurora evaluation and borealis job status of a 10,000-instance job"
	@echo "                     -> bench/results/client.json"
	@echo "make format         clang-format every C file"

deps:
	@scripts/deps

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

test: deps
	scripts/run-tests

test-unit: build
	meson test -C $(BUILD) --suite unit --print-errorlogs

demo: deps build
	scripts/demo-cluster

demo-storage: deps build
	scripts/demo

bench: bench-storage bench-scheduler bench-agent bench-client

bench-storage: deps
	@[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Db_ndebug=true
	ninja -C build-release
	bench/run-storage $(TASKS)

bench-scheduler: deps
	@[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Db_ndebug=true
	ninja -C build-release bench/bench-scheduler
	bench/run-scheduler $(JOBS) $(INSTANCES) $(HOSTS)

bench-agent: deps
	@[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Db_ndebug=true
	ninja -C build-release
	bench/run-agent

bench-client: deps
	@[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Db_ndebug=true
	ninja -C build-release
	bench/run-client

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-release *.setup.log *.ninja.log *.test.log
