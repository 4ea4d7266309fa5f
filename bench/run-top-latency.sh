#!/bin/bash
# GetTopProcesses(10) latency with 10k tracked processes, on a private
# system-type bus with the project's policy and the daemon from BUILD_DIR.
#   bench/run-top-latency.sh BUILD_DIR   (as root)
set -euo pipefail
BUILD=$(realpath "${1:-build}")
SRC=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/lib/check.sh
. "$SRC/tests/lib/check.sh"
T=$(mktemp -d /tmp/unlinkd-bench-XXXXXX)
# Waits for the daemon to be gone (detached) before the caller goes on.
cleanup() {
  daemon_stop || true
  stop_private_bus
  umount "$T/files" 2>/dev/null || true; rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/files"
mount -t tmpfs tmpfs "$T/files"
start_private_bus "$T/bus" "$SRC"
daemon_start "$T/daemon.log" "$BUILD/daemon/unlinkd" --foreground --bus-address="$BUS" --filter=comm=top_latency >/dev/null
# At most 10 s, then on regardless: top_latency itself waits until the daemon
# tracks its processes.
daemon_wait_log 10 "$T/daemon.log" "owning" || true
"$BUILD/bench/top_latency" "$BUS" "$T/files" --processes 10000 --calls 200
