#!/bin/bash
# The daemon's life as a service, with real components: a private
# system-like dbus-daemon that loads the project's own policy, a test
# NOTIFY_SOCKET read like systemd reads it, real BPF on this kernel.
#   lifecycle-test.sh UNLINKD_BIN STORM_BIN SOURCE_DIR UNIT_FILE     (as root)
# Checks:
#   the unit file: systemd-analyze verify says nothing, the capability
#     bounding set is CAP_BPF CAP_PERFMON, the exposure score is 2.5 or less;
#   sd_notify: READY=1 only once the bus name answers, STATUS= with the mode
#     and exact totals, WATCHDOG=1 from the loop, FDSTORE=1 of every map and
#     link, RELOADING=1/READY=1 on SIGHUP, STOPPING=1 on SIGTERM;
#   configuration: broken files at start exit 6 naming the key; a broken file
#     on reload is logged and changes nothing; a good one applies;
#   runtime state: filters set over D-Bus survive a restart, until the file
#     is edited;
#   one change path: the same change over D-Bus and by a reload leaves the
#     same properties, PropertiesChanged and state after a restart;
#   crash without systemd: SIGKILL mid-storm, restart, exact count (pins),
#     a clean stop leaves no pin and no link.
set -uo pipefail
BIN=$(realpath "$1"); STORM=$(realpath "$2"); SRC=$(realpath "$3"); UNIT=$(realpath "$4")
T=$(mktemp -d /tmp/unlinkd-life-XXXXXX); chmod 755 "$T"
export STATE_DIRECTORY=$T/state UNLINKD_PIN_DIR=/sys/fs/bpf/unlinkd-life-$$
# shellcheck source-path=SCRIPTDIR source=../lib/check.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib/check.sh"
WAIT_FOR_INTERVAL=0.05
LPID=
cleanup() {
  daemon_stop KILL
  [ -z "$LPID" ] || kill "$LPID" 2>/dev/null
  stop_private_bus
  rm -rf "$UNLINKD_PIN_DIR" "$T"
}
trap cleanup EXIT
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

# ---- the unit, offline (unknown settings and capability names only warn,
# or vanish, so the output must be empty and the set read back)
check "systemd-analyze verify: no complaint" eq "$(systemd-analyze verify --man=no "$UNIT" 2>&1 | grep -v "is not executable")" ""
check "capability bounding set: CAP_BPF CAP_PERFMON" eq "$(sed -n "s/^CapabilityBoundingSet=//p" "$UNIT")" "CAP_BPF CAP_PERFMON"
exposure=$(systemd-analyze security --offline=yes "$UNIT" 2>/dev/null | sed -n "s/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p")
echo "exposure: $exposure"
check "exposure 2.5 or less" awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.5) }'

# ---- a private system bus with the project's policy
start_private_bus "$T/bus" "$SRC" || exit 1
prop() { busctl --system get-property org.unlinkd.Unlinkd1 /org/unlinkd/Unlinkd1 org.unlinkd.Unlinkd1 "$1" 2>&1; }
# filters_are RULE: the daemon's filter is RULE alone
filters_are() { [ "$(prop Filters)" = "as 1 \"$1\"" ]; }

# ---- a NOTIFY_SOCKET like systemd's: one line per datagram, fds counted and
# closed at once (a kept fd would keep the daemon's probes attached).
/usr/bin/python3 -u - "$T/notify.sock" > "$T/notify.log" <<'PY' & LPID=$!
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
while True:
    data, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(64 * 4) + socket.CMSG_SPACE(12))
    fds = array.array("i")
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    for fd in fds:
        os.close(fd)
    print(data.decode().replace("\n", "|"), "FDS=%d" % len(fds))
PY
wait_for 5 test -S "$T/notify.sock" || { echo "notify listener did not start"; exit 1; }

# The daemon as systemd starts it: NOTIFY_SOCKET, WATCHDOG_USEC/PID, stderr.
start_daemon() {
  : > "$T/daemon.err"
  daemon_start "$T/daemon.err" env NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=400000 \
    sh -c 'export WATCHDOG_PID=$$; exec "$@"' sh "$BIN" --config="$T/unlinkd.json" "$@"
}
notes() { grep -c -- "$1" "$T/notify.log"; }
# more_notes PATTERN N: more than N notifications match PATTERN
more_notes() { [ "$(notes "$1")" -gt "$2" ]; }

cp /usr/bin/rm "$T/ulk-life"
cat > "$T/unlinkd.json" <<'JSON'
// filters keep the counts to this test's own deletions
{ "filters": ["comm=ulk-life"], "max_journal_per_sec": 0 }
JSON
touch -d '1 hour ago' "$T/unlinkd.json"

start_daemon
check "READY=1 is sent" wait_for 60 grep -q "^READY=1" "$T/notify.log"
check "the bus name answers when READY=1 has been sent" eq "$(prop AttachMode)" 's "tracepoint"'
attached_and_owned() { grep -q "attached in tracepoint mode" "$T/daemon.err" && grep -q "owning org.unlinkd.Unlinkd1" "$T/daemon.err"; }
check "READY=1 came after the probes attached and the name was owned" attached_and_owned
fd_store_complete() {
  [ "$(grep -c "^FDSTORE=1|FDPOLL=0|FDNAME=map-.* FDS=1" "$T/notify.log")" -ge 10 ] &&
    [ "$(grep -c "^FDSTORE=1|FDPOLL=0|FDNAME=link-tracepoint-.* FDS=1" "$T/notify.log")" = 6 ]
}
check "every map and link went to the fd store, unpolled" fd_store_complete
check "WATCHDOG=1 comes from the loop" wait_for 3 grep -q "^WATCHDOG=1" "$T/notify.log"
touch "$T/a" "$T/b"; (cd "$T" && ./ulk-life a "$T/b" && ./ulk-life missing 2>/dev/null)
check "STATUS= gives the mode and exact totals" \
  wait_for 5 grep -q "^STATUS=tracepoint mode: 2 deletions, 1 failure, 2 processes FDS=0" "$T/notify.log"
grep "^STATUS" "$T/notify.log" | tail -1

# ---- reload
reloads=$(notes "^RELOADING=1"); readies=$(notes "^READY=1")
cp "$T/unlinkd.json" "$T/good.json"
echo '{ "filters": ["comm=ulk-life"], "bogus": 1 }' > "$T/unlinkd.json"
kill -HUP "$DAEMON_PID"
reloaded() { wait_for 5 more_notes "^READY=1" "$readies" && more_notes "^RELOADING=1" "$reloads"; }
check "SIGHUP: RELOADING=1 then READY=1" reloaded
check "a broken file on reload is logged by key" grep -q 'reload failed, keeping the previous configuration.*"bogus": unknown key' "$T/daemon.err"
unchanged_and_running() { filters_are comm=ulk-life && kill -0 "$DAEMON_PID"; }
check "... and changes nothing" unchanged_and_running
echo '{ "filters": ["comm=ulk-life2"] }' > "$T/unlinkd.json"
kill -HUP "$DAEMON_PID"
check "a good file on reload applies" wait_for 5 filters_are comm=ulk-life2

# ---- runtime state: D-Bus changes survive a restart until the file changes
busctl --system call org.unlinkd.Unlinkd1 /org/unlinkd/Unlinkd1 org.unlinkd.Unlinkd1 SetFilters as 1 comm=ulk-state
check "SetFilters is saved under STATE_DIRECTORY" grep -q "comm=ulk-state" "$STATE_DIRECTORY/state.json"
daemon_stop; rc=$?
check "SIGTERM: STOPPING=1 and exit 0" test "$rc" = 0 -a "$(notes "^STOPPING=1")" -ge 1
start_daemon
ready_with_filters() { more_notes "^READY=1" 0 && prop Filters | grep -q "^as"; }
wait_for 60 ready_with_filters
check "after a restart the saved filters are in force" wait_for 60 filters_are comm=ulk-state
touch "$T/unlinkd.json"
kill -HUP "$DAEMON_PID"
check "an edited file wins over the saved state" wait_for 5 filters_are comm=ulk-life2
daemon_stop

# ---- one change path: the same change asked over D-Bus and by a reload
# leaves the same observable state: properties, what clients are told, the
# attached mode, and the filters after a restart.
snapshot() { echo "$(prop AttachMode) $(prop RequestedAttachMode) $(prop Filters)"; }
# told LOG: the properties PropertiesChanged named, in order, one per line
told() { grep -o '"\(AttachMode\|RequestedAttachMode\|Filters\)"' "$1" | tr -d '"' | sort | tr '\n' ' '; }
same_change() { # same_change bus|reload: prints "SNAPSHOT | TOLD | SNAPSHOT AFTER RESTART"
  local how=$1 mon
  export STATE_DIRECTORY=$T/state-$how
  echo '{ "filters": ["comm=ulk-life2"], "max_journal_per_sec": 0 }' > "$T/unlinkd.json"
  touch -d '1 hour ago' "$T/unlinkd.json"
  start_daemon
  wait_for 60 filters_are comm=ulk-life2 || { daemon_stop; return 1; }
  busctl --system monitor --match "type='signal',interface='org.freedesktop.DBus.Properties'" > "$T/mon-$how.log" 2>&1 & mon=$!
  sleep 0.5
  if [ "$how" = bus ]; then
    busctl --system call org.unlinkd.Unlinkd1 /org/unlinkd/Unlinkd1 org.unlinkd.Unlinkd1 SetFilters as 1 comm=ulk-same >/dev/null
    busctl --system call org.unlinkd.Unlinkd1 /org/unlinkd/Unlinkd1 org.unlinkd.Unlinkd1 SetAttachMode s tracepoint >/dev/null
  else
    echo '{ "filters": ["comm=ulk-same"], "mode": "tracepoint", "max_journal_per_sec": 0 }' > "$T/unlinkd.json"
    kill -HUP "$DAEMON_PID"
  fi
  wait_for 5 filters_are comm=ulk-same
  sleep 0.5; kill "$mon" 2>/dev/null; wait "$mon" 2>/dev/null
  local now; now=$(snapshot)
  daemon_stop
  start_daemon
  wait_for 60 filters_are comm=ulk-same
  echo "$now | $(told "$T/mon-$how.log") | $(snapshot)"
  daemon_stop
}
by_bus=$(same_change bus); by_reload=$(same_change reload)
echo "over D-Bus: $by_bus"
echo "by reload:  $by_reload"
check "D-Bus and reload: the same properties, told the same, the same after a restart" eq "$by_reload" "$by_bus"
check "... and that state is the change" eq "$by_bus" \
  's "tracepoint" s "tracepoint" as 1 "comm=ulk-same" | Filters RequestedAttachMode  | s "tracepoint" s "tracepoint" as 1 "comm=ulk-same"'
export STATE_DIRECTORY=$T/state

# ---- broken configuration at start: exit 6, the message names the key
bad_start() { # bad_start JSON EXPECTED_TEXT
  echo "$1" > "$T/bad.json"
  "$BIN" --foreground --config="$T/bad.json" 2>"$T/bad.err"; local rc=$?
  [ $rc = 6 ] && grep -qF -- "$2" "$T/bad.err" || { echo "  rc=$rc: $(cat "$T/bad.err")"; return 1; }
}
check "unknown key" bad_start '{"max_journal": 5}' '"max_journal": unknown key'
check "wrong type" bad_start '{"recent_events": "many"}' '"recent_events": must be a whole number'
check "bad filter rule" bad_start '{"filters": ["uid=nobody"]}' 'uid=nobody'
check "unknown reader group" bad_start '{"reader_group": "no-such-group-xyz"}' 'no group named "no-such-group-xyz"'
check "not JSON" bad_start '{ mode: auto }' 'not valid JSON'
missing_config_file() {
  "$BIN" --foreground --config=/nonexistent/unlinkd.json 2>"$T/bad.err"
  [ $? = 6 ] && grep -q "/nonexistent/unlinkd.json" "$T/bad.err"
}
check "a missing --config file" missing_config_file

# ---- a crash without systemd: the pins keep the probes and counts
# The storm runs under a name of its own: other storms (bench/) may run.
# op=unlink: it removes its per-thread directories at the end, and counts
# only the files it deleted.
cp "$STORM" "$T/ulk-lstorm"
echo '{ "filters": ["comm=ulk-lstorm", "op=unlink"] }' > "$T/unlinkd.json"
mkdir "$T/storm"; mount -t tmpfs tmpfs "$T/storm"
# The ids of the links of syscall tracepoints ("perf_event" links to
# Debian 12's bpftool); the daemon's are those that were not there before it.
tp_link_ids() { bpftool link show | sed -n 's/^\([0-9]*\): \(tracepoint\|perf_event\) .*/\1/p' | sort -n | tr '\n' ' '; }
new_tp_link_ids() { comm -13 <(tr ' ' '\n' <<<"$ids_before" | sort) <(tp_link_ids | tr ' ' '\n' | sort) | sort -n | tr '\n' ' '; }
ids_before=$(tp_link_ids)
daemon_start "$T/d1.err" "$BIN" --foreground --json --config="$T/unlinkd.json" >/dev/null
daemon_wait_log 60 "$T/d1.err" "attached in"
ids_d1=$(new_tp_link_ids)
"$T/ulk-lstorm" "$T/storm" --count 200000 --threads 2 > "$T/storm.json" & SPID=$!
sleep 0.3; daemon_stop KILL
check "a killed daemon leaves its objects pinned" test -e "$UNLINKD_PIN_DIR/map-processes"
daemon_start "$T/d2.err" "$BIN" --foreground --json --config="$T/unlinkd.json" >"$T/d2.json"
daemon_wait_log 60 "$T/d2.err" "attached in"
ids_d2=$(new_tp_link_ids)
# The same build: its programs are the previous run's, so no hand-over (which
# for fentry would lose the results of calls in flight; tests/vm checks that).
echo "tracepoint links of the first run: $ids_d1; after the restart: $ids_d2"
check "the restarted daemon kept the killed one's links (6 of them), and made none" eq "$ids_d2" "$ids_d1"
check "... they are the 6 of one tracepoint attachment" eq "$(wc -w <<<"$ids_d1")" 6
check "... and it said so" grep -q "its tracepoint attachment kept, the same programs as this build's; 0 of its attachments to hand over" "$T/d2.err"
wait "$SPID"
storm_ok=$(jq -r '.deletes' "$T/storm.json")
sleep 0.3; daemon_stop
umount "$T/storm"
deletes=$(tail -1 "$T/d2.json" | jq -r '.totals.deletes')
echo "storm: issued $storm_ok, counted $deletes across a SIGKILL"
check "the restarted daemon carried on: deletes == issued" eq "$deletes $storm_ok" "200000 200000"
check "it said so" grep -q "carrying on with the counts of the previous run" "$T/d2.err"
check "a clean stop leaves no pin" test ! -e "$UNLINKD_PIN_DIR"
check "... and no link of either run" eq "$(new_tp_link_ids)" ""

echo "lifecycle: $([ "$FAILS" = 0 ] && echo PASS || echo FAIL) ($CHECKS checks, $FAILS failed)"
exit $((FAILS > 0))
