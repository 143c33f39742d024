# swift-loops — every entry point installs what it needs first.
SWIFT ?= swift

.PHONY: all demo test check tsan asan ubsan build bench bench-postgres zone-sweep fuzz fuzz-ci docs system-packages clean

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
## A hung test ends the run after this many seconds, with the backtraces of the test process's
## threads (scripts/test-watchdog.sh): the suite takes 3 minutes, 7 under a sanitizer.
TEST_LIMIT ?= 1200
SAN_TEST_LIMIT ?= 2400
## The console gets build errors, test failures and the summary (-q): a CI log has a size
## limit, and the whole build and event log of the suite ran to half a megabyte per pass.
## VERBOSE=1 prints every build step and every test. Each test's result and duration go to
## test-results-swift-testing.xml in the build folder either way.
VERBOSE ?=
QUIET = $(if $(VERBOSE),,-q)
## Swift Testing's event stream goes to test-events.jsonl in the build folder, so that the
## watchdog can name the tests that were running when it ended a hung run.
EVENTS = --event-stream-version 0 --event-stream-output-path
test: system-packages
	$(SWIFT) build --build-tests $(QUIET)
	$(TEST_ENV) TEST_EVENTS=.build/test-events.jsonl bash scripts/test-watchdog.sh $(TEST_LIMIT) \
		$(SWIFT) test --skip-build --no-parallel $(QUIET) --xunit-output .build/test-results.xml \
		$(EVENTS) .build/test-events.jsonl

## Benchmarks against DispatchSourceTimer, Task.sleep and a raw timerfd loop (never part of
## `make test`): builds the separate Benchmarks/ package in release mode, runs every scenario
## (about 10 minutes), writes bench-results/ and prints the tables.
bench: system-packages
	@command -v valgrind >/dev/null 2>&1 || { \
		echo "installing valgrind (for the engine-cost scenario)" >&2; \
		if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind binutils >/dev/null; }
	$(SWIFT) build -c release --package-path Benchmarks --product LoopsBenchmarks
	Benchmarks/.build/release/LoopsBenchmarks --output bench-results

## What a PostgresRunStore costs (claims per second, claim latency, a loop iteration with and
## without the store), against a PostgreSQL server started for the run (scripts/with-postgres.sh).
bench-postgres: system-packages
	$(SWIFT) build -c release --package-path Benchmarks --product PostgresBenchmarks
	bash scripts/with-postgres.sh Benchmarks/.build/release/PostgresBenchmarks

## Every UTC-offset change of every canonical zone of tzdata from 2000 to 2040: times of day,
## cron and calendar schedules against a brute-force scan and systemd-analyze (`make test`
## runs a fixed sample of the same sweep; this walks all of it: 108 minutes on a busy 2-core
## machine, 8.8 million fire times compared).
zone-sweep: system-packages
	$(SWIFT) build --build-tests
	LOOPS_FULL_ZONE_SWEEP=1 $(SWIFT) test --skip-build --no-parallel --filter ZoneSweepTests

## Sanitizers: the whole suite (every suite, the CLI tests spawning the sanitized `loops` that
## sits next to the sanitized test bundle), each in its own build folder, with `make test`'s
## environment. LOOPS_STRESS_CHECK_RSS=0: under a sanitizer RSS measures the sanitizer
## (ASan's quarantine, TSan's shadow memory); the stress test's other checks still run, at
## full size. See Documentation/Reliability.md.
SAN_ENV = $(TEST_ENV) LOOPS_STRESS_CHECK_RSS=0
SAN_TEST = bash scripts/test-watchdog.sh $(SAN_TEST_LIMIT) $(SWIFT) test --skip-build --no-parallel $(QUIET)

check: tsan asan ubsan

## ThreadSanitizer (CI runs it after `make test`), with the one documented runtime suppression.
tsan: system-packages
	$(SWIFT) build --build-tests $(QUIET) --sanitize=thread --scratch-path .build-tsan
	$(SAN_ENV) TEST_EVENTS=.build-tsan/test-events.jsonl TSAN_OPTIONS="suppressions=$(CURDIR)/scripts/tsan-suppressions.txt" \
		$(SAN_TEST) --sanitize=thread --scratch-path .build-tsan --xunit-output .build-tsan/test-results.xml $(EVENTS) .build-tsan/test-events.jsonl

## AddressSanitizer. LeakSanitizer is off (detect_leaks=0): at exit it reports only objects of
## XCTest itself, FoundationEssentials' String(contentsOfFile:) buffers read by the test helpers,
## and objects `loops` still holds when it exits on an error, none of them a leak of ours; leaks
## of ours are what the stress test checks (every loop deallocated once let go, no fd left
## open). Details: Documentation/Reliability.md.
asan: system-packages
	$(SWIFT) build --build-tests $(QUIET) --sanitize=address --scratch-path .build-asan
	$(SAN_ENV) TEST_EVENTS=.build-asan/test-events.jsonl ASAN_OPTIONS=detect_leaks=0 $(SAN_TEST) --sanitize=address --scratch-path .build-asan \
		--xunit-output .build-asan/test-results.xml $(EVENTS) .build-asan/test-events.jsonl

## UndefinedBehaviorSanitizer. Swift 6.3.1 rejects `--sanitize=undefined` on Linux ("unsupported
## option '-sanitize=undefined' for target 'x86_64-unknown-linux-gnu'"), so clang's UBSan goes
## on the C code only (the timer core, CLoopsCore) and the runtime into the link; Swift code
## traps on overflow and bad casts by itself. Any report stops the run (no recovery).
UBSAN_FLAGS = -Xcc -fsanitize=undefined -Xcc -fno-sanitize-recover=undefined \
	-Xswiftc -Xclang-linker -Xswiftc -fsanitize=undefined
ubsan: system-packages
	$(SWIFT) build --build-tests $(QUIET) --scratch-path .build-ubsan $(UBSAN_FLAGS)
	$(SAN_ENV) TEST_EVENTS=.build-ubsan/test-events.jsonl UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		$(SAN_TEST) --scratch-path .build-ubsan $(UBSAN_FLAGS) --xunit-output .build-ubsan/test-results.xml $(EVENTS) .build-ubsan/test-events.jsonl

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

## DocC: one combined archive of the library products Loops, LoopsTestKit, LoopsSystemd and
## LoopsServiceLifecycle (their catalogs are Sources/<Target>/<Target>.docc; the articles are in
## Loops') through swift-docc-plugin, into $(DOCS_OUTPUT) (git-ignored: under .build). Any DocC
## warning fails the build (--warnings-as-errors). LoopsCommandLine is left out: it is the
## parsing of the `loops` tool, a product only so that Fuzz/ can link it, not a stable API.
## Parameter validation is off: the `- Parameters:` list of Loop(seconds:minutes:hours:…) leaves
## out seconds, minutes, hours, body, fileID and line, which it would report. Cross-module links in
## `///` comments are absolute: ``/Loops/Loop``. Browse with any static file server, e.g.
## `python3 -m http.server -d .build/docs` then http://localhost:8000/documentation/loops.
DOCS_OUTPUT ?= .build/docs
DOCS_TARGETS = Loops LoopsTestKit LoopsSystemd LoopsServiceLifecycle LoopsPostgres
docs: system-packages
	$(SWIFT) package --allow-writing-to-directory $(DOCS_OUTPUT) generate-documentation \
		$(foreach target,$(DOCS_TARGETS),--target $(target)) \
		--enable-experimental-combined-documentation --warnings-as-errors \
		--disable-parameters-and-returns-validation --output-path $(DOCS_OUTPUT)

clean:
	rm -rf .build .build-tsan .build-asan .build-ubsan .build-fuzz
