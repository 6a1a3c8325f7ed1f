#!/usr/bin/env bash
# teardown.sh — proves that a failed check in a robustness test does not leave its pipeline
# running: robust-states is run in one process (CK_FORK=no, as asan.sh runs it) with a
# failure injected (FASTVLM_ROBUST_INJECT_FAILURE) at the first state change that meets a
# model run in flight — live, inside the worker's 10-minute test delay, and offline. Both
# tests must be reported failed and the program must exit by itself: the checked teardown
# (rb_teardown in robust-util.h) brings each pipeline to NULL, the element ends the delay
# when it stops, and gst_deinit() at exit has no streaming thread left to wait for. Before
# that teardown existed this hung until the test timeout.
# What it is not: a test of the element's state changes (robust-states itself does that).
#
# Usage: teardown.sh ROBUST_STATES_PROGRAM
set -uo pipefail

log=$(mktemp)
trap 'rm -f "$log"' EXIT
CK_FORK=no GST_CHECKS=test_state_pairs_live,test_state_pairs_offline \
    FASTVLM_ROBUST_INJECT_FAILURE=1 timeout 600 "$1" >"$log" 2>&1
status=$?
cat "$log"
if [ $status -eq 124 ]; then
    echo "teardown.sh: robust-states hung after a failed check"; exit 1
fi
[ $status -ne 0 ] || { echo "teardown.sh: the injected failures were not reported"; exit 1; }
grep -q "Checks: 2, Failures: 2, Errors: 0" "$log" \
    || { echo "teardown.sh: expected both tests to fail by the injected check and nothing else"; exit 1; }
[ "$(grep -c 'injected failure' "$log")" -eq 2 ] \
    || { echo "teardown.sh: expected two injected failures"; exit 1; }
echo "teardown.sh: both failures reported, pipelines stopped, program exited ($status)"
