# swift-loops — every entry point installs what it needs first.
SWIFT ?= swift

.PHONY: all demo test tsan build bench zone-sweep system-packages clean

all: build

system-packages:
	@bash scripts/install-system-packages.sh

build: system-packages
	$(SWIFT) build

## The main job: runs the disnake.ext.tasks recipes with short intervals (exits in ~8 s).
demo: system-packages
	$(SWIFT) run LoopsDemo

## The whole test suite (virtual-time semantics, real-timer integration, parsers, CLI).
## The stress test measures RSS across cycles of 10,000 loops, so the test run turns off what
## would otherwise hold memory for the whole run: Swift Testing's backtrace of every thrown error,
## and glibc's extra arenas (see Tests/LoopsTests/LoopStressTests.swift).
TEST_ENV = SWT_SWIFT_ERROR_BACKTRACING_ENABLED=0 MALLOC_ARENA_MAX=1
test: system-packages
	$(SWIFT) build --build-tests
	$(TEST_ENV) $(SWIFT) test --skip-build --no-parallel

## Benchmarks against DispatchSourceTimer, Task.sleep and a raw timerfd loop (never part of
## `make test`): builds the separate Benchmarks/ package in release mode, runs every scenario
## (about 6 minutes), writes bench-results/ and prints the tables.
bench: system-packages
	@command -v valgrind >/dev/null 2>&1 || { \
		echo "installing valgrind (for the engine-cost scenario)" >&2; \
		if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind binutils >/dev/null; }
	$(SWIFT) build -c release --package-path Benchmarks
	Benchmarks/.build/release/LoopsBenchmarks --output bench-results

## Every UTC-offset change of every canonical zone of tzdata from 2000 to 2040: times of day,
## cron and calendar schedules against a brute-force scan and systemd-analyze (`make test`
## runs a fixed sample of the same sweep; this walks all of it: 108 minutes on a busy 2-core
## machine, 8.8 million fire times compared).
zone-sweep: system-packages
	$(SWIFT) build --build-tests
	LOOPS_FULL_ZONE_SWEEP=1 $(SWIFT) test --skip-build --no-parallel --filter ZoneSweepTests

## The test suite under ThreadSanitizer (its own build folder; not part of CI: ~2.5 min cold).
## The parser, oracle and CLI suites are skipped: they are single-threaded and slow under TSan.
tsan: system-packages
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	TSAN_OPTIONS="suppressions=$(CURDIR)/scripts/tsan-suppressions.txt" \
		$(SWIFT) test --skip-build --sanitize=thread --scratch-path .build-tsan --no-parallel \
		--skip 'Oracle|Fuzz|fuzz|Cron|Calendar|TimesOfDay|NextCommand|RunCommand'

clean:
	rm -rf .build .build-tsan
