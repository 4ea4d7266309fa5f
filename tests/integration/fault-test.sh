#!/bin/bash
# Fault injection (issue 16, part 4): the daemon under faults of its
# surroundings, with real components, each run asserting totals equal to the
# deletes issued. In a mount namespace of its own (unshare -m), so bpffs,
# journald's socket and the state directory can be taken away or made
# read-only without touching the machine.
#   fault-test.sh UNLINKD_BIN STORM_BIN SOURCE_DIR     (as root)
# Checks:
#   a 4 KiB ring buffer under a 100k storm: events printed + LostEvents ==
#     deletes == issued, and some were lost;
#   max_processes 16 under 300 deleting processes: deletes exact, evictions
#     counted (tracked + evicted == processes);
#   journald absent at start, and journald stopped mid-run then started
#     again: counting goes on, the log says so once, and again when it is back;
#   the bus daemon restarted: the daemon reconnects, claims its name again,
#     counts the gap, and serves calls;
#   garbage (random bytes) as the configuration, then SIGHUP: the old
#     configuration stays, counts exact;
#   the state directory read-only, then full: SetFilters still applies, the
#     failure to save is logged;
#   bpffs not mounted: the daemon mounts it, and a SIGKILL then restart keeps
#     the counts through the pins there.
# Covered elsewhere, not repeated here: tracefs unmounted at start
# (test_cli.cpp), a SIGKILL in the middle of a 200k storm and an unknown key
# on reload (lifecycle-test.sh).
set -uo pipefail
BIN=$(realpath "$1"); STORM=$(realpath "$2"); SRC=$(realpath "$3")
if [ -z "${UNLINKD_FAULT_NS:-}" ]; then
  exec env UNLINKD_FAULT_NS=1 unshare --mount --propagation private "$0" "$@"
fi
# shellcheck source-path=SCRIPTDIR source=../lib/check.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib/check.sh"
WAIT_FOR_INTERVAL=0.05
T=$(mktemp -d /tmp/unlinkd-fault-XXXXXX); chmod 755 "$T"
mount -t tmpfs tmpfs "$T"; chmod 755 "$T"
export STATE_DIRECTORY=$T/state UNLINKD_PIN_DIR=/sys/fs/bpf/unlinkd-fault-$$
cleanup() {
  daemon_stop KILL
  stop_private_journald
  stop_private_bus
  rm -rf "$UNLINKD_PIN_DIR"
  umount -R "$T" 2>/dev/null; rmdir "$T" 2>/dev/null
}
trap cleanup EXIT
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
cp "$STORM" "$T/ulk-fstorm"; cp /usr/bin/rm "$T/ulk-frm"
mkdir "$T/work"
config() { echo "$1" > "$T/unlinkd.json"; }
# summary_of FILE KEY: the KEY of the last --json summary line in FILE
summary_of() { grep '^{"processes"\|^{"totals"' "$1" | tail -1 | jq -r ".totals.$2"; }
prop() { busctl --system get-property org.unlinkd.Unlinkd1 /org/unlinkd/Unlinkd1 org.unlinkd.Unlinkd1 "$1" 2>&1; }
prop_is() { [ "$(prop "$1")" = "$2" ]; }
name_owned() { busctl --system status org.unlinkd.Unlinkd1 >/dev/null 2>&1; }
deletes_are() { prop_is TotalDeletes "t $1"; }
# remove N PREFIX: N files deleted by ulk-frm, one process
remove() { local i; for i in $(seq "$1"); do touch "$T/work/$2$i"; done; (cd "$T/work" && ../ulk-frm -- "$2"*); }

# ---- a tiny ring buffer under a storm
config '{ "ring_buffer_kib": 4, "filters": ["comm=ulk-fstorm", "op=unlink"] }'   # the storm also removes its per-thread directories
daemon_start "$T/ring.err" "$BIN" --foreground --json --config="$T/unlinkd.json" >"$T/ring.json"
daemon_wait_log 60 "$T/ring.err" "attached in"
mkdir "$T/storm"
"$T/ulk-fstorm" "$T/storm" --count 100000 --threads 2 > "$T/storm.json"
issued=$(jq -r .deletes "$T/storm.json")
sleep 0.5; daemon_stop
printed=$(grep -v '^{"processes"' "$T/ring.json" | grep -c '"comm":"ulk-fstorm"')
lost=$(summary_of "$T/ring.json" lost_events); deletes=$(summary_of "$T/ring.json" deletes)
echo "4 KiB ring: issued $issued, counted $deletes, printed $printed, lost $lost"
check "tiny ring: deletes == issued" eq "$deletes" "$issued"
check "tiny ring: printed + lost == issued" eq "$((printed + lost))" "$issued"
check "tiny ring: the storm overflowed it (lost > 0)" test "$lost" -gt 0

# ---- max_processes far below the number of deleting processes
config '{ "max_processes": 16, "filters": ["comm=ulk-frm"] }'
daemon_start "$T/evict.err" "$BIN" --foreground --json --config="$T/unlinkd.json" >"$T/evict.json"
daemon_wait_log 60 "$T/evict.err" "attached in"
for i in $(seq 300); do touch "$T/work/e$i"; "$T/ulk-frm" "$T/work/e$i"; done
sleep 0.3; daemon_stop
deletes=$(summary_of "$T/evict.json" deletes); tracked=$(summary_of "$T/evict.json" tracked_processes)
evicted=$(summary_of "$T/evict.json" evicted_processes)
echo "max_processes 16: 300 processes, deletes $deletes, tracked $tracked, evicted $evicted"
check "evictions: deletes == 300" eq "$deletes" 300
check "evictions: at most 16 tracked" test "$tracked" -le 16
check "evictions: tracked + evicted == 300 processes" eq "$((tracked + evicted))" 300

# ---- journald absent, then stopped mid-run, then back (a private bus reads the counts)
start_private_bus "$T/bus" "$SRC" || exit 1
mkdir -p /run/systemd; mount -t tmpfs -o mode=755 tmpfs /run/systemd   # no journald socket here
config '{ "filters": ["comm=ulk-frm"] }'
daemon_start "$T/nojournal.err" "$BIN" --config="$T/unlinkd.json"
wait_for 60 name_owned
remove 20 a
check "no journald: counting goes on" wait_for 5 deletes_are 20
check "no journald: the log says so once" eq "$(grep -c "journald does not take entries" "$T/nojournal.err")" 1
daemon_stop
umount /run/systemd
start_private_journald RateLimitBurst=0 || exit 1
daemon_start "$T/journal.err" "$BIN" --config="$T/unlinkd.json"
wait_for 60 name_owned
remove 10 b
entries() { journalctl -q -o cat UNLINKD_COMM=ulk-frm | wc -l; }
entries_are() { [ "$(entries)" = "$1" ]; }
check "journald running: 10 entries" wait_for 5 entries_are 10
stop_private_journald
remove 10 c
check "journald stopped: counting goes on" wait_for 5 deletes_are 20
check "journald stopped: the log says so once" eq "$(grep -c "journald does not take entries" "$T/journal.err")" 1
/lib/systemd/systemd-journald & JOURNALD_PID=$!
wait_for 5 test -S /run/systemd/journal/socket
remove 5 d
check "journald back: counted" wait_for 5 deletes_are 25
check "journald back: its entries again (10 + 5)" wait_for 5 entries_are 15
check "journald back: the log says so" grep -q "journald takes entries again; 10 were lost" "$T/journal.err"
daemon_stop
stop_private_journald
umount /run/systemd /run/log 2>/dev/null

# ---- the bus daemon restarted
daemon_start "$T/busrestart.err" "$BIN" --foreground --config="$T/unlinkd.json" >/dev/null
check "bus: the name is owned" wait_for 60 name_owned
remove 5 f
check "bus: 5 counted" wait_for 5 deletes_are 5
stop_private_bus
remove 7 g
start_private_bus "$T/bus" "$SRC" || exit 1
check "bus restarted: the daemon claims its name again" wait_for 10 name_owned
check "bus restarted: the gap is counted (5 + 7)" wait_for 5 deletes_are 12
busctl --system call org.unlinkd.Unlinkd1 /org/unlinkd/Unlinkd1 org.unlinkd.Unlinkd1 SetFilters as 1 comm=ulk-fstorm
check "bus restarted: calls are served" prop_is Filters 'as 1 "comm=ulk-fstorm"'
check "bus restarted: the loss is logged once" eq "$(grep -c "lost the D-Bus connection" "$T/busrestart.err")" 1
check "bus restarted: ... and the name claimed twice" eq "$(grep -c "owning org.unlinkd.Unlinkd1" "$T/busrestart.err")" 2
daemon_stop

# ---- garbage as the configuration, then SIGHUP
config '{ "filters": ["comm=ulk-frm"], "max_journal_per_sec": 0 }'
daemon_start "$T/garbage.err" "$BIN" --foreground --config="$T/unlinkd.json" >/dev/null
wait_for 60 name_owned
remove 3 h
head -c 4096 /dev/urandom > "$T/unlinkd.json"
kill -HUP "$DAEMON_PID"
check "garbage config: the reload fails, logged" wait_for 5 grep -q "reload failed, keeping the previous configuration" "$T/garbage.err"
remove 4 i
check "garbage config: the old filter stays" prop_is Filters 'as 1 "comm=ulk-frm"'
check "garbage config: counts exact (3 + 4)" wait_for 5 deletes_are 7
check "garbage config: still running" kill -0 "$DAEMON_PID"
daemon_stop

# ---- the state directory read-only, then full
for how in read-only full; do
  export STATE_DIRECTORY=$T/state-$how
  mkdir -p "$STATE_DIRECTORY"
  if [ "$how" = read-only ]; then
    mount -t tmpfs -o ro,size=64k tmpfs "$STATE_DIRECTORY"
  else
    mount -t tmpfs -o size=16k tmpfs "$STATE_DIRECTORY"
    dd if=/dev/zero of="$STATE_DIRECTORY/filler" bs=4k count=64 2>/dev/null
  fi
  config '{ "filters": ["comm=ulk-frm"] }'
  daemon_start "$T/state-$how.err" "$BIN" --foreground --config="$T/unlinkd.json" >/dev/null
  wait_for 60 name_owned
  busctl --system call org.unlinkd.Unlinkd1 /org/unlinkd/Unlinkd1 org.unlinkd.Unlinkd1 SetFilters as 2 comm=ulk-frm uid=0 >"$T/set.out" 2>&1
  check "state $how: SetFilters answers" eq "$(cat "$T/set.out")" ""
  check "state $how: the new filter is in force" prop_is Filters 'as 2 "comm=ulk-frm" "uid=0"'
  remove 6 "s$how"
  check "state $how: counting goes on" wait_for 5 deletes_are 6
  check "state $how: the failure to save is logged" grep -q "cannot .*$STATE_DIRECTORY.*; the change holds until the daemon stops" "$T/state-$how.err"
  daemon_stop
  umount "$STATE_DIRECTORY"
done
export STATE_DIRECTORY=$T/state
stop_private_bus

# ---- bpffs not mounted (outside systemd): the daemon mounts it, pins work
umount -l /sys/fs/bpf 2>/dev/null
check "bpffs: not mounted in this namespace" bash -c '! mountpoint -q /sys/fs/bpf'
config '{ "filters": ["comm=ulk-frm"], "max_journal_per_sec": 0 }'
daemon_start "$T/bpffs1.err" "$BIN" --foreground --json --config="$T/unlinkd.json" >/dev/null
daemon_wait_log 60 "$T/bpffs1.err" "attached in"
check "bpffs: the daemon mounted it" grep -q "mounted the bpf filesystem on /sys/fs/bpf" "$T/bpffs1.err"
check "bpffs: the objects are pinned there" wait_for 5 test -e "$UNLINKD_PIN_DIR/map-processes"
remove 9 p
sleep 0.3; daemon_stop KILL
daemon_start "$T/bpffs2.err" "$BIN" --foreground --json --config="$T/unlinkd.json" >"$T/bpffs2.json"
daemon_wait_log 60 "$T/bpffs2.err" "attached in"
remove 4 q
sleep 0.3; daemon_stop
check "bpffs: SIGKILL then restart keeps the counts (9 + 4)" eq "$(summary_of "$T/bpffs2.json" deletes)" 13
check "bpffs: it said it carried on" grep -q "carrying on with the counts of the previous run" "$T/bpffs2.err"

echo "fault: $([ "$FAILS" = 0 ] && echo PASS || echo FAIL) ($CHECKS checks, $FAILS failed)"
exit $((FAILS > 0))
