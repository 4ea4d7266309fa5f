#!/bin/bash
# unlinkd-monitor against the real daemon (tracepoint mode here, real BPF)
# on a private system-like bus with the project's policy, under Xvfb with
# GTK's cairo renderer.
#   monitor-test.sh UNLINKD_BIN MONITOR_BIN STORM_BIN SOURCE_DIR SCREENSHOT_OUT    (as root)
# The monitors' state is read from their --dump-state file, written on
# SIGUSR1: every wait sends one and polls the file until it holds the
# condition or a deadline passes.
# Checks:
#   root's monitor: 37 unlinks by mon-work are one process row (37 deletes,
#     0 failures, uid 0) and 37 event rows, the header's totals are 37;
#     it also sees nobody's deletions (an admin sees everything);
#   nobody's monitor (not in adm): its own 11 deletions as a row and 11
#     events, no row of root's, and the system-wide totals;
#   the filter editor: nobody's Apply is refused (AccessDenied shown), root's
#     bad rule gets the daemon's InvalidArgs text naming it; the filter in
#     force stays;
#   a 200k-deletion storm (mon-storm) while root's monitor keeps 300 rows:
#     it answers SIGUSR1 during the storm, keeps exactly 300 event rows,
#     and then shows the storm's exact count (200000 unlinks, 2 rmdirs);
#   a screenshot: a PNG of at least 800x500 with hundreds of colours and
#     the "running" banner's green at its top (SCREENSHOT_OUT keeps it;
#     doc/unlinkd-monitor.png is one);
#   the daemon stopped: both monitors say not-running; started again: both
#     are running again and show new deletions live (re-subscribed).
set -euo pipefail
BIN=$(realpath "$1"); MON=$(realpath "$2"); STORM=$(realpath "$3"); SRC=$(realpath "$4"); SHOT_OUT=$5
# shellcheck source-path=SCRIPTDIR source=../lib/check.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib/check.sh"
if [ -z "${UNLINKD_MONITOR_NS:-}" ]; then
  # A mount namespace of its own (the tmpfs), and an X server of its own;
  # -ac: nobody's monitor connects without root's X cookie.
  require_tools xvfb-run
  exec env UNLINKD_MONITOR_NS=1 unshare --mount --propagation private \
    xvfb-run -a -s "-ac -screen 0 1280x1024x24 -nolisten tcp" "$0" "$@"
fi
require_tools jq

T=$(mktemp -d /tmp/unlinkd-monitor-XXXXXX); mount -t tmpfs tmpfs "$T"; chmod 755 "$T"
export STATE_DIRECTORY=$T/state UNLINKD_PIN_DIR=/sys/fs/bpf/unlinkd-monitor-$$
ROOT_MON= NOBODY_MON= STORM_PID=
cleanup() {
  stop_pid "$STORM_PID"; stop_pid "$ROOT_MON"; stop_pid "$NOBODY_MON"
  if [ "$FAILS" != 0 ]; then
    for f in "$T"/*.err; do echo "---- $f"; tail -n 30 "$f"; done
  fi
  daemon_stop || true
  stop_private_bus
  rm -rf "$UNLINKD_PIN_DIR"
  umount "$T"; rmdir "$T"
}
trap cleanup EXIT
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing

# Only the test's own comms count, so every total is known. Signals are
# let through at up to 20000 a second so that the storm really floods the
# monitor.
cat > "$T/unlinkd.json" <<'EOF'
{ "filters": ["comm=mon-work", "comm=mon-nobody", "comm=mon-storm", "comm=mon-again", "comm=mon-nobody2"],
  "max_signals_per_sec": 20000, "summary_interval_sec": 1 }
EOF
start_private_bus "$T/bus" "$SRC"
start_daemon() {
  daemon_start "$T/daemon.err" "$BIN" --config="$T/unlinkd.json" --bus-address="$BUS"
  daemon_wait_log 30 "$T/daemon.err" "attached in"
}
start_daemon

# The programs of the workloads, under the comms the filter names.
mkdir "$T/bin"
for c in mon-work mon-nobody mon-again mon-nobody2; do cp /usr/bin/rm "$T/bin/$c"; done
cp "$STORM" "$T/bin/mon-storm"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

# The monitors. GTK without a session: no session bus (and no autolaunch
# of one), no accessibility bus, settings in memory.
gui_env=(env GSK_RENDERER=cairo GDK_BACKEND=x11 GTK_A11Y=none NO_AT_BRIDGE=1 GSETTINGS_BACKEND=memory
         DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent)
mkdir -m 700 "$T/root-home"; mkdir "$T/nobody-home"; chown 65534:65534 "$T/nobody-home"; chmod 700 "$T/nobody-home"
ROOT_DUMP=$T/root-home/dump.json NOBODY_DUMP=$T/nobody-home/dump.json
"${gui_env[@]}" HOME="$T/root-home" XDG_RUNTIME_DIR="$T/root-home" \
  "$MON" --bus-address="$BUS" --rows=300 --dump-state="$ROOT_DUMP" 2>"$T/root-mon.err" &
ROOT_MON=$!

# dump_now PID FILE: SIGUSR1, then the file's seq grows within 10 s. The
# monitor writes a first dump once its signal handlers are in place (a
# SIGUSR1 before would end it): none is sent before that file is there.
dump_seq() { jq -r '.seq // 0' "$1" 2>/dev/null || echo 0; }
seq_above() { [ "$(dump_seq "$1")" -gt "$2" ]; }
dump_now() {
  local before
  wait_for 30 test -s "$2" || return 1
  before=$(dump_seq "$2"); kill -USR1 "$1" && wait_for 10 seq_above "$2" "$before"
}
dump_holds() { dump_now "$1" "$2" && jq -e "$3" "$2" >/dev/null; }
# until_dump PID FILE JQ_CONDITION [SECONDS]: dumps until the condition holds.
until_dump() {
  process_gone "$1" && { echo "    the monitor (pid $1) is gone"; return 1; }
  wait_for "${4:-30}" dump_holds "$1" "$2" "$3" && return 0
  echo "    the dump never held: $3"; jq -c '{state, message, header, processes, n_events: (.events | length)}' "$2" || true
  return 1
}
q() { jq -r "$2" "$1"; }
# The process row of COMM as "deletes failures uid", the event rows of COMM.
row_of() { q "$1" "[.processes[] | select(.comm == \"$2\")] | if length == 1 then .[0] | \"\(.deletes) \(.failures) \(.uid)\" else \"\(length) rows\" end"; }
events_of() { q "$1" "[.events[] | select(.comm == \"$2\")] | length"; }

check "root's monitor: running, tracepoint mode" until_dump "$ROOT_MON" "$ROOT_DUMP" \
  '.state == "running" and .header.attach_mode == "tracepoint"'

# ---- a known workload: 37 unlinks by mon-work, as root
W=$T/work; mkdir "$W"; touch "$W"/f{1..37}
"$T/bin/mon-work" "$W"/f{1..37}
check "root's monitor: the mon-work row and its 37 events" until_dump "$ROOT_MON" "$ROOT_DUMP" \
  '([.processes[] | select(.comm == "mon-work")] | length == 1 and .[0].deletes == 37)
   and ([.events[] | select(.comm == "mon-work")] | length == 37) and .header.total_deletes == 37'
check "mon-work: 37 deletes, 0 failures, uid 0" eq "$(row_of "$ROOT_DUMP" mon-work)" "37 0 0"
check "mon-work: 37 event rows, all unlink, ok, under $W" eq \
  "$(q "$ROOT_DUMP" "[.events[] | select(.comm == \"mon-work\" and .op == \"unlink\" and .result == 0 and .result_text == \"ok\" and (.path | startswith(\"$W/f\")))] | length")" 37
check "header: 37 deletions, 0 failures, 0 lost" eq \
  "$(q "$ROOT_DUMP" '"\(.header.total_deletes) \(.header.total_failures) \(.header.lost_events)"')" "37 0 0"

# ---- an ordinary user's monitor, and that user's own deletions
NW=$T/nobody-work; mkdir "$NW"; touch "$NW"/g{1..11}; chown -R 65534:65534 "$NW"
# (setpriv itself, not the function as_nobody: a function in the
# background is a subshell, and $! would be that shell's pid.)
setpriv --reuid=65534 --regid=65534 --clear-groups "${gui_env[@]}" HOME="$T/nobody-home" XDG_RUNTIME_DIR="$T/nobody-home" \
  "$MON" --bus-address="$BUS" --dump-state="$NOBODY_DUMP" --apply-filter=comm=mon-nobody 2>"$T/nobody-mon.err" &
NOBODY_MON=$!
check "nobody's monitor: running" until_dump "$NOBODY_MON" "$NOBODY_DUMP" '.state == "running" and .header.total_deletes == 37'
as_nobody "$T/bin/mon-nobody" "$NW"/g{1..11}
check "nobody's monitor: its own mon-nobody row and 11 events" until_dump "$NOBODY_MON" "$NOBODY_DUMP" \
  '([.processes[] | select(.comm == "mon-nobody")] | length == 1 and .[0].deletes == 11)
   and ([.events[] | select(.comm == "mon-nobody")] | length == 11)'
check "nobody's monitor: mon-nobody 11 deletes, 0 failures, uid 65534" eq "$(row_of "$NOBODY_DUMP" mon-nobody)" "11 0 65534"
check "nobody's monitor: no row of another uid (root's mon-work absent)" eq \
  "$(q "$NOBODY_DUMP" '[.processes[], .events[] | select(.uid != 65534 or .comm == "mon-work")] | length')" 0
check "nobody's monitor: the system-wide totals, 48" until_dump "$NOBODY_MON" "$NOBODY_DUMP" '.header.total_deletes == 48'
check "nobody's Apply: the daemon's AccessDenied is shown" until_dump "$NOBODY_MON" "$NOBODY_DUMP" \
  '.filter_status | test("AccessDenied")'
echo "    nobody's filter status: $(q "$NOBODY_DUMP" .filter_status)"
check "root's monitor: nobody's mon-nobody row and events too" until_dump "$ROOT_MON" "$ROOT_DUMP" \
  '([.processes[] | select(.comm == "mon-nobody")] | length == 1 and .[0].deletes == 11 and .[0].uid == 65534)
   and ([.events[] | select(.comm == "mon-nobody")] | length == 11) and .header.total_deletes == 48'

# ---- the filter editor as root: a bad rule, the daemon's words for it
"${gui_env[@]}" HOME="$T/root-home" XDG_RUNTIME_DIR="$T/root-home" \
  "$MON" --bus-address="$BUS" --dump-state="$T/root-home/apply.json" --apply-filter=colour=blue 2>"$T/apply-mon.err" &
APPLY_MON=$!
check "root's bad rule: InvalidArgs naming it" until_dump "$APPLY_MON" "$T/root-home/apply.json" \
  '.filter_status | test("InvalidArgs") and test("colour")'
echo "    root's filter status: $(q "$T/root-home/apply.json" .filter_status)"
stop_pid "$APPLY_MON"
check "the filter in force stays (5 rules, mon-work first)" until_dump "$ROOT_MON" "$ROOT_DUMP" \
  '.header.filters | length == 5 and .[0] == "comm=mon-work"'

# ---- a storm of 200k deletions while root's monitor runs
mkdir "$T/storm"
"$T/bin/mon-storm" "$T/storm" --count 200000 --threads 2 --ready-file "$T/storm.ready" > "$T/storm.json" &
STORM_PID=$!
wait_for 60 test -e "$T/storm.ready"
# The monitor's CPU time (utime + stime, clock ticks) over the storm.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
cpu0=$(cpu_ticks "$ROOT_MON")
answered=0 unanswered=0 slowest=0
while ! process_gone "$STORM_PID"; do
  t0=$EPOCHREALTIME
  if dump_now "$ROOT_MON" "$ROOT_DUMP"; then answered=$((answered + 1)); else unanswered=$((unanswered + 1)); fi
  slowest=$(awk -v a="$t0" -v b="$EPOCHREALTIME" -v s="$slowest" 'BEGIN { d = b - a; print (d > s ? d : s) }')
done
wait "$STORM_PID"; STORM_PID=
echo "    dumps during the storm: $answered answered, $unanswered not within 10 s; the slowest took ${slowest}s (storm: $(jq -c '{wall_s, deletes}' "$T/storm.json"))"
echo "    root's monitor used $(( ($(cpu_ticks "$ROOT_MON") - cpu0) * 1000 / $(getconf CLK_TCK) )) ms of CPU over the storm"
check "root's monitor answered every SIGUSR1 during the storm within 10 s" eq "$answered $unanswered" "$answered 0"
check "root's monitor answered during the storm at all" test "$answered" -gt 0
check "after the storm: the mon-storm row, 200002 deletes (200000 unlinks, 2 rmdirs)" until_dump "$ROOT_MON" "$ROOT_DUMP" \
  '[.processes[] | select(.comm == "mon-storm")] | length == 1 and .[0].deletes == 200002' 60
check "root's monitor keeps exactly its 300 event rows" eq "$(q "$ROOT_DUMP" '.events | length')" 300
received=$(q "$ROOT_DUMP" .events_received)
echo "    events received by root's monitor: $received (suppressed by the daemon: $(q "$ROOT_DUMP" .header.suppressed_signals))"
check "it received more events than it keeps" test "$received" -gt 300
check "root's monitor still answers after the storm" dump_now "$ROOT_MON" "$ROOT_DUMP"
check "nobody's monitor saw none of the storm" eq "$(row_of "$NOBODY_DUMP" mon-storm) $(events_of "$NOBODY_DUMP" mon-storm)" "0 rows 0"

# ---- a screenshot of a running monitor with rows in it
rm -f "$T/shot.png"
"${gui_env[@]}" HOME="$T/root-home" XDG_RUNTIME_DIR="$T/root-home" \
  "$MON" --bus-address="$BUS" --rows=300 --screenshot="$T/shot.png" --after=3 --dump-state="$T/root-home/shot.json" \
  2>"$T/shot-mon.err"
check "screenshot: its dump was running with the mon-storm row" eq \
  "$(q "$T/root-home/shot.json" '.state + " " + ([.processes[] | select(.comm == "mon-storm")] | length | tostring)')" "running 1"
shot_facts=$(/usr/bin/python3 - "$T/shot.png" <<'EOF'
# Decodes the PNG (8-bit RGB or RGBA, not interlaced), prints
# "WIDTH HEIGHT COLOURS TOP_SHARE R,G,B": distinct colours, the share of
# the commonest colour, and the pixel at (40, 12), inside the banner.
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, w = 8, b"", None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8]); body = data[pos + 8:pos + 8 + n]; pos += 12 + n
    if kind == b"IHDR":
        w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
    elif kind == b"IDAT":
        idat += body
bpp = 4 if ctype == 6 else 3; stride = w * bpp
raw = zlib.decompress(idat); rows = []; prev = bytearray(stride)
for y in range(h):
    f = raw[y * (stride + 1)]; line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0; b = prev[i]; c = prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(bytes(line)); prev = line
counts = {}
for line in rows:
    for x in range(0, stride, bpp):
        px = line[x:x + 3]; counts[px] = counts.get(px, 0) + 1
top = max(counts.values()) / (w * h)
px = rows[12][40 * bpp:40 * bpp + 3]
print(w, h, len(counts), "%.3f" % top, "%d,%d,%d" % tuple(px))
EOF
) || shot_facts="undecodable"
echo "    screenshot: $shot_facts (width height colours top-share banner-pixel)"
read -r shot_w shot_h shot_colours shot_top shot_banner <<<"$shot_facts" || true
check "screenshot: a PNG of at least 800x500" test "${shot_w:-0}" -ge 800 -a "${shot_h:-0}" -ge 500 2>/dev/null
check "screenshot: not flat (100+ colours, the commonest under 90%)" \
  awk -v c="${shot_colours:-0}" -v t="${shot_top:-1}" 'BEGIN { exit !(c >= 100 && t < 0.90) }'
check "screenshot: the banner is the running green (46,125,50)" eq "${shot_banner:-}" "46,125,50"
cp "$T/shot.png" "$SHOT_OUT"

# ---- the daemon goes away, and comes back
daemon_stop
check "daemon stopped: root's monitor says not running" until_dump "$ROOT_MON" "$ROOT_DUMP" \
  '.state == "not-running" and (.message | test("not running")) and (.processes | length == 0)'
check "daemon stopped: nobody's monitor says not running" until_dump "$NOBODY_MON" "$NOBODY_DUMP" '.state == "not-running"'
start_daemon
check "daemon back: root's monitor is running again" until_dump "$ROOT_MON" "$ROOT_DUMP" '.state == "running" and .header.attach_mode == "tracepoint"'
check "daemon back: nobody's monitor is running again" until_dump "$NOBODY_MON" "$NOBODY_DUMP" '.state == "running"'
mkdir "$T/again"; touch "$T/again"/h{1..5}; "$T/bin/mon-again" "$T/again"/h{1..5}
mkdir "$NW/again"; touch "$NW/again"/k{1..3}; chown -R 65534:65534 "$NW/again"; as_nobody "$T/bin/mon-nobody2" "$NW/again"/k{1..3}
check "daemon back: root sees mon-again's 5 deletions live" until_dump "$ROOT_MON" "$ROOT_DUMP" \
  '([.processes[] | select(.comm == "mon-again")] | length == 1 and .[0].deletes == 5)
   and ([.events[] | select(.comm == "mon-again")] | length == 5)'
check "daemon back: nobody sees its mon-nobody2's 3 deletions live (re-subscribed)" until_dump "$NOBODY_MON" "$NOBODY_DUMP" \
  '([.processes[] | select(.comm == "mon-nobody2")] | length == 1 and .[0].deletes == 3)
   and ([.events[] | select(.comm == "mon-nobody2")] | length == 3)'
check "daemon back: nobody still sees no row of another uid" eq \
  "$(q "$NOBODY_DUMP" '[.processes[], .events[] | select(.uid != 65534)] | length')" 0

# GTK's complaints would mean a broken layout or a misuse of the toolkit.
check "no GTK criticals or warnings from the monitors" eq \
  "$(cat "$T"/*-mon.err | grep -E 'CRITICAL|WARNING' | sort | uniq -c)" ""

echo "monitor: $CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
