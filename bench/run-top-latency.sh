#!/bin/bash
# GetTopProcesses(10) latency with 10k tracked processes, on a private
# system-type bus with the project's policy and the daemon from BUILD_DIR.
#   bench/run-top-latency.sh BUILD_DIR   (as root)
set -euo pipefail
BUILD=$(realpath "${1:-build}")
SRC=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d /tmp/unlinkd-bench-XXXXXX)
trap 'kill $DAEMON $BUS 2>/dev/null || true; umount "$T/files" 2>/dev/null || true; rm -rf "$T"' EXIT
mkdir -p "$T/system.d" "$T/files"
mount -t tmpfs tmpfs "$T/files"
cp "$SRC/dbus/org.unlinkd.Unlinkd1.conf" "$T/system.d/"
cat > "$T/bus.conf" <<EOC
<busconfig><type>system</type><auth>EXTERNAL</auth><listen>unix:path=$T/socket</listen>
<policy context="default"><allow user="*"/><deny own="*"/><deny send_type="method_call"/>
<allow send_type="signal"/><allow send_requested_reply="true" send_type="method_return"/>
<allow send_requested_reply="true" send_type="error"/><allow receive_type="method_call"/>
<allow receive_type="method_return"/><allow receive_type="error"/><allow receive_type="signal"/>
<allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
<allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/></policy>
<includedir>system.d</includedir></busconfig>
EOC
dbus-daemon --config-file="$T/bus.conf" --nofork --nopidfile 2>"$T/bus.log" & BUS=$!
for _ in $(seq 100); do [ -S "$T/socket" ] && break; sleep 0.05; done
"$BUILD/daemon/unlinkd" --foreground --bus-address="unix:path=$T/socket" --filter=comm=top_latency >/dev/null 2>"$T/daemon.log" & DAEMON=$!
for _ in $(seq 200); do grep -q "owning" "$T/daemon.log" && break; sleep 0.05; done
"$BUILD/bench/top_latency" "unix:path=$T/socket" "$T/files" --processes 10000 --calls 200
