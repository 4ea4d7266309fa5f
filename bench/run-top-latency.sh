#!/bin/bash
# GetTopProcesses(10) latency with 10k tracked processes, on a private
# system-type bus with the project's policy and the daemon from BUILD_DIR.
#   bench/run-top-latency.sh BUILD_DIR   (as root)
set -euo pipefail
BUILD=$(realpath "${1:-build}")
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/tests/dbus/private-bus.sh"
T=$(mktemp -d /tmp/unlinkd-bench-XXXXXX)
DAEMON=''
# shellcheck disable=SC2034  # set by start_private_bus, read by stop_private_bus
BUS_PID=''
# Waits for the daemon to be gone (detached) before the caller goes on.
cleanup() {
  [ -z "$DAEMON" ] || { kill "$DAEMON" 2>/dev/null; wait "$DAEMON" 2>/dev/null || true; }
  stop_private_bus || true
  umount "$T/files" 2>/dev/null || true; rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/files"
mount -t tmpfs tmpfs "$T/files"
start_private_bus "$T/bus" "$SRC"
"$BUILD/daemon/unlinkd" --foreground --bus-address="$BUS" --filter=comm=top_latency >/dev/null 2>"$T/daemon.log" & DAEMON=$!
for _ in $(seq 200); do grep -q "owning" "$T/daemon.log" && break; sleep 0.05; done
"$BUILD/bench/top_latency" "$BUS" "$T/files" --processes 10000 --calls 200
