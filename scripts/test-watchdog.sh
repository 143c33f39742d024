#!/usr/bin/env bash
# Runs a test command and ends it when it runs past a time limit, so that a hung test fails the
# run with a reason instead of using up CI's 90 minutes in silence. Before it ends the test
# process it prints what each of that process's threads is doing (gdb, when installed): first
# the frames in this package's own Sources/ and Tests/, which name what hung, then where the
# full backtraces were written.
#
# usage: [TEST_EVENTS=FILE] scripts/test-watchdog.sh LIMIT_SECONDS COMMAND [ARGUMENT...]
# TEST_EVENTS names the file the command writes Swift Testing's event stream to
# (--event-stream-output-path): the report then starts with the tests that had started and not
# ended — for a hang in async code, where no thread has a frame of ours.
# The exit status is the command's, or 124 when the limit ended it (as timeout(1) reports).
set -uo pipefail

limit=$1
shift

"$@" &
command_pid=$!
# Ctrl-C reaches the whole foreground process group anyway; a TERM sent to this script alone
# (a CI runner ending the job) must reach the test processes too.
trap 'kill -TERM $(descendants "$command_pid") "$command_pid" 2>/dev/null; exit 143' TERM

descendants() {
    local child
    for child in $(pgrep -P "$1"); do
        echo "$child"
        descendants "$child"
    done
}

report_running_tests() {
    local events=${TEST_EVENTS:-}
    [ -n "$events" ] && [ -f "$events" ] || return
    local started ended
    started=$(grep '"kind":"testStarted"' "$events" | sed -E 's/.*"testID":"([^"]*)".*/\1/' | sort)
    ended=$(grep '"kind":"testEnded"' "$events" | sed -E 's/.*"testID":"([^"]*)".*/\1/' | sort)
    echo "test-watchdog: tests started and not ended:"
    comm -23 <(echo "$started") <(echo "$ended") | sed 's#\\/#/#g; s/^/    /'
}

report_backtraces() {
    local pid=$1 full
    full="${TMPDIR:-/tmp}/loops-test-hang-$pid.txt"
    if ! command -v gdb >/dev/null 2>&1; then
        echo "test-watchdog: gdb is not installed: no backtraces of PID $pid"
        return
    fi
    gdb -p "$pid" -batch -ex "thread apply all bt" >"$full" 2>&1
    echo "test-watchdog: threads of PID $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-120)) in this package's code:"
    # A thread header, then the frames of Sources/ and Tests/ (demangled when the toolchain can).
    grep -E '^Thread |/(Sources|Tests)/' "$full" \
        | sed -E 's/ \(.*\) at / at /; s/^#[0-9]+ +0x[0-9a-f]+ in //' \
        | { if command -v swift-demangle >/dev/null 2>&1; then swift-demangle --simplified; else cat; fi; } \
        | awk '/^Thread /{header=$0; next} {if (header != "") {print header; header=""} print "    " $0}'
    echo "test-watchdog: every thread's full backtrace: $full"
}

SECONDS=0
while kill -0 "$command_pid" 2>/dev/null; do
    if ((SECONDS >= limit)); then
        echo "test-watchdog: the test run passed its limit of $limit s: a test hangs; ending it"
        report_running_tests
        pids=$(descendants "$command_pid")
        for pid in "$command_pid" $pids; do
            if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q '\.xctest'; then
                report_backtraces "$pid"
            fi
        done
        kill -KILL $pids "$command_pid" 2>/dev/null
        wait "$command_pid" 2>/dev/null
        exit 124
    fi
    sleep 1
done
wait "$command_pid"
