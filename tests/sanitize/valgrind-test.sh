#!/bin/bash
# The daemon under valgrind's memcheck through a short known workload:
#   valgrind-test.sh UNLINKD_BIN SOURCE_DIR     (as root)
# Checks: the daemon attaches and reports every deletion and failure of the
# workload exactly (events and the totals at exit), exits 0 on SIGTERM, and
# memcheck finds no error and no definite or indirect leak (--error-exitcode).
set -euo pipefail
BIN=$(realpath "$1"); SRC=$(realpath "$2")
# shellcheck source-path=SCRIPTDIR source=../lib/check.sh
. "$SRC/tests/lib/check.sh"
MODE=${UNLINKD_TEST_MODES:-tracepoint}; MODE=${MODE%%,*}

T=$(mktemp -d /tmp/unlinkd-valgrind-XXXXXX)
export STATE_DIRECTORY=$T/state UNLINKD_PIN_DIR=/sys/fs/bpf/unlinkd-valgrind-$$
cleanup() { daemon_stop || true; rm -rf "$UNLINKD_PIN_DIR" "$T"; }
trap cleanup EXIT
: > "$T/unlinkd.json"   # every default, whatever /etc holds

# Errors and definite/indirect leaks fail the run (exit 99); "possibly lost"
# and "still reachable" are libraries' caches kept until exit, not bugs.
# --trace-children=no: the daemon forks nothing we need to check.
daemon_start "$T/daemon.err" valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
  --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
  --suppressions="$SRC/tests/sanitize/valgrind.supp" --log-file="$T/valgrind.log" \
  "$BIN" --foreground --json --mode="$MODE" --config="$T/unlinkd.json" --filter="path=$T/w" \
  --bus-address=unix:path=/nonexistent > "$T/out.json"
# valgrind makes the verifier's and the loader's work 20-50 times slower.
daemon_wait_log 300 "$T/daemon.err" "attached in"

# Workload: 20 deletions and 3 failures by a copy of rm named ulk-vg.
mkdir "$T/w"; cp /usr/bin/rm "$T/ulk-vg"
for i in $(seq 1 20); do : > "$T/w/f$i"; done
"$T/ulk-vg" "$T"/w/f*
for i in 1 2 3; do "$T/ulk-vg" "$T/w/missing$i" 2>/dev/null || true; done
events() { jq -c 'select(.path != null)' "$T/out.json" 2>/dev/null | wc -l; }
all_events() { [ "$(events)" -ge 23 ]; }
wait_for 120 all_events || true

check "the daemon exits 0 under valgrind and memcheck found nothing" daemon_stop
check "23 events" eq "$(events)" 23
check "20 deletions by ulk-vg" eq "$(jq -c 'select(.comm == "ulk-vg" and .result == 0)' "$T/out.json" | wc -l)" 20
check "3 failures, ENOENT" eq "$(jq -c 'select(.comm == "ulk-vg" and .result == -2)' "$T/out.json" | wc -l)" 3
check "totals at exit: 20 deletes, 3 failures" \
  eq "$(jq -c 'select(.totals != null) | [.totals.deletes, .totals.failures]' "$T/out.json" | tail -n 1)" "[20,3]"
check "memcheck: no errors" grep -q "ERROR SUMMARY: 0 errors" "$T/valgrind.log"
if [ "$FAILS" != 0 ]; then
  echo "--- daemon stderr"; cat "$T/daemon.err"
  echo "--- valgrind log"; cat "$T/valgrind.log"
fi
echo "$CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
