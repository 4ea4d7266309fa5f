#!/bin/bash
# Where the daemon's memory goes: RSS after start and after a storm of
# deletions, from /proc/PID/smaps_rollup and the largest mappings of
# /proc/PID/smaps (anonymous heap and arenas, libbpf's BTF, the ring buffer,
# the binary). Not part of `meson test`; the target (issue 14) is <= 16 MiB.
#
#   bench/rss.sh [BUILD_DIR] [DELETES]     (as root; default build, 1000000)
#
# Runs the daemon in its default configuration against a private bus (the
# tests' helper), in tracepoint mode unless UNLINKD_RSS_MODE says otherwise,
# with the journal off (no journald needed). Holds no lock of its own: run it
# under `flock /tmp/unlinkd-host-tests.lock` on a shared machine.
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(realpath "${1:-$SRC/build}")
DELETES=${2:-1000000}
MODE=${UNLINKD_RSS_MODE:-tracepoint}
# shellcheck source-path=SCRIPTDIR source=../tests/lib/check.sh
. "$SRC/tests/lib/check.sh"
[ "$(id -u)" = 0 ] || { echo "rss.sh: run as root" >&2; exit 4; }

T=$(mktemp -d /tmp/unlinkd-rss-XXXXXX)
PID=
cleanup() {
  [ -z "$PID" ] || { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }
  stop_private_bus
  umount "$T/files" 2>/dev/null || true
  rm -rf "$T" "${UNLINKD_PIN_DIR:-}"
}
trap cleanup EXIT
export UNLINKD_PIN_DIR=/sys/fs/bpf/unlinkd-rss-$$ STATE_DIRECTORY=$T/state
mkdir -p "$STATE_DIRECTORY"
start_private_bus "$T/bus" "$SRC"
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing

printf '{"mode": "%s", "max_journal_per_sec": 0}\n' "$MODE" > "$T/config.json"
"$BUILD/daemon/unlinkd" --config="$T/config.json" --bus-address="$BUS" 2>"$T/log" &
PID=$!
wait_for 120 grep -q "owning" "$T/log" || { cat "$T/log" >&2; exit 1; }
sleep 1   # the standbys' loads (helper thread) and the first timers

report() { # LABEL
  echo "== $1 (pid $PID)"
  awk '/^(Rss|Pss|Pss_Anon|Pss_File|Anonymous|Private_Dirty|Shared_Clean|Private_Clean):/ {printf "  %-14s %7.1f MiB\n", $1, $2 / 1024}' \
    "/proc/$PID/smaps_rollup"
  awk '/^(VmHWM|VmRSS|RssAnon|RssFile|Threads):/ {printf "  %-14s %s %s\n", $1, $2, $3}' "/proc/$PID/status"
  echo "  largest mappings (RSS KiB, name):"
  # smaps: a header line per mapping (its name is field 6, if any), then
  # its "Rss:" line.
  awk '/^[0-9a-f]+-[0-9a-f]+ / {name = ($6 == "" ? "[anon]" : $6); next}
       /^Rss:/ {rss[name] += $2}
       END {for (n in rss) if (rss[n] >= 256) printf "    %7d  %s\n", rss[n], n}' "/proc/$PID/smaps" | sort -rn | head -12
}
report "after start"
mkdir -p "$T/files"; mount -t tmpfs -o size=2g tmpfs "$T/files"
"$BUILD/bench/storm" "$T/files" --count "$DELETES" --threads 2 --op unlink > "$T/storm.json"
sleep 1
report "after $DELETES deletions"
