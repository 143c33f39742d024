# swift-loops — every entry point installs what it needs first.
SWIFT ?= swift

.PHONY: all demo test tsan build bench zone-sweep fuzz fuzz-ci system-packages clean

all: build

system-packages:
	@bash scripts/install-system-packages.sh

build: system-packages
	$(SWIFT) build

## The main job: runs the disnake.ext.tasks recipes with short intervals (exits in ~8 s).
demo: system-packages
	$(SWIFT) run LoopsDemo

## The whole test suite (virtual-time semantics, real-timer integration, parsers, CLI).
test: system-packages
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel

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

## libFuzzer with AddressSanitizer on the calendar, cron and --times parsers, the tool's --every
## and --from parsers and the whole `loops next` argument vector: builds the separate Fuzz/
## package into .build-fuzz and runs each of the 6 targets for FUZZ_SECONDS from its committed
## seed corpus (Fuzz/Corpus/<target>); new inputs go to .build-fuzz/corpus/<target>, crashes to
## .build-fuzz/artifacts/<target>/. Prints executions per target; fails on any crash, hang
## (an input over 2 s) or leak. About 6 × FUZZ_SECONDS plus the build (~4 min cold).
FUZZ_SECONDS ?= 60
fuzz: system-packages
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

## The CI length: 10 s per target (about 1 minute plus the build).
fuzz-ci:
	$(MAKE) fuzz FUZZ_SECONDS=10

clean:
	rm -rf .build .build-tsan .build-fuzz
