#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets of Fuzz/ (address sanitizer on) and runs each for
# FUZZ_SECONDS from its committed seed corpus, Fuzz/Corpus/<target>. New inputs go to
# .build-fuzz/corpus/<target> (kept between runs, never committed), crashes, timeouts and leaks
# to .build-fuzz/artifacts/<target>/. Prints the executions per target from libFuzzer's final
# stats and fails if any target found something.
#
#   FUZZ_SECONDS   seconds per target (default 60; CI: 10)
#   FUZZ_TARGETS   which targets (default: all six)
#   FUZZ_TIMEOUT   seconds one input may take before it counts as a hang (default 2)
#   FUZZ_CONFIG    release (default) or debug
set -uo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
timeout="${FUZZ_TIMEOUT:-2}"
config="${FUZZ_CONFIG:-release}"
targets="${FUZZ_TARGETS:-calendar cron times duration from next-arguments}"
scratch=.build-fuzz

declare -A executables=(
    [calendar]=FuzzCalendar [cron]=FuzzCron [times]=FuzzTimes
    [duration]=FuzzDuration [from]=FuzzFrom [next-arguments]=FuzzNextArguments
)

# swiftc keeps only the last -sanitize= flag, and SwiftPM passes one per --sanitize: on their own
# they build Swift code with AddressSanitizer but without libFuzzer's coverage (only the C code
# would be instrumented). The combined flag, given last, turns both on; the --sanitize flags stay
# for the C target and for SwiftPM's linking of executables without a main.
build=(swift build -c "$config" --package-path Fuzz --scratch-path "$scratch/build"
    --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address)
"${build[@]}" 2>&1 | grep -v "Cannot export local symbol" || true
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "fuzz: the build failed" >&2; exit 1; }
bin="$("${build[@]}" --show-bin-path)"

# Set after the build, which need not see it. Allocation stacks of 5 frames and a 16 MB
# quarantine (defaults: 30 and 256 MB) double the speed of the argument-vector target, whose
# time goes into argument-parser's allocations.
export ASAN_OPTIONS="${ASAN_OPTIONS:-malloc_context_size=5:quarantine_size_mb=16}"

failed=()
summary=()
for target in $targets; do
    executable="${executables[$target]:-}"
    [ -n "$executable" ] || { echo "fuzz: unknown target '$target'" >&2; exit 2; }
    corpus="$scratch/corpus/$target"
    artifacts="$scratch/artifacts/$target"
    log="$scratch/logs/$target.log"
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    echo "fuzz: $target for ${seconds}s (log: $log)"
    # The first corpus directory receives new inputs; the committed one is only read.
    "$bin/$executable" "$corpus" "Fuzz/Corpus/$target" \
        -dict="Fuzz/Dictionaries/$target.dict" \
        -max_total_time="$seconds" -timeout="$timeout" -max_len=1024 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1
    status=$?
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    perSecond=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    units=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
    result=ok
    if [ "$status" -ne 0 ]; then
        result="FAILED (status $status; $(grep -m1 -o 'Test unit written to .*' "$log" || echo 'see log'))"
        failed+=("$target")
        grep -m3 -E "ERROR: |Fatal error|ALARM|leak" "$log" >&2 || true
    fi
    summary+=("$(printf '%-16s %12s %10s %8s  %s' "$target" "${executions:-?}" "${perSecond:-?}" "${units:-?}" "$result")")
done

echo
printf '%-16s %12s %10s %8s  %s\n' target execs "execs/s" "new" result
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: failures in ${failed[*]}; reproduce with $bin/<FuzzTarget> <artifact>" >&2
    exit 1
fi
