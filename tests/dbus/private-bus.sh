# Sourced by shell tests and benchmarks: a private dbus-daemon of the system
# type with the project's bus policy, from tests/dbus/system-bus.conf.in (the
# C++ tests use the same file). The machine's own bus, if any, is untouched.
#   start_private_bus DIR SOURCE_DIR   -> exports DBUS_SYSTEM_BUS_ADDRESS, sets BUS and BUS_PID
#   stop_private_bus
start_private_bus() {
  local dir=$1 src=$2 i
  mkdir -p "$dir/system.d"; chmod 755 "$dir"
  cp "$src/dbus/org.unlinkd.Unlinkd1.conf" "$dir/system.d/"
  sed "s|@DIR@|$dir|g" "$src/tests/dbus/system-bus.conf.in" > "$dir/system-bus.conf"
  dbus-daemon --config-file="$dir/system-bus.conf" --nofork --nopidfile 2>"$dir/bus.log" &
  BUS_PID=$!
  for i in $(seq 200); do [ -S "$dir/system_bus_socket" ] && break; sleep 0.05; done
  [ -S "$dir/system_bus_socket" ] || { echo "dbus-daemon did not start: $(cat "$dir/bus.log")" >&2; return 1; }
  BUS=unix:path=$dir/system_bus_socket
  export DBUS_SYSTEM_BUS_ADDRESS=$BUS
}
stop_private_bus() { [ -z "${BUS_PID:-}" ] || { kill "$BUS_PID" 2>/dev/null; wait "$BUS_PID" 2>/dev/null; BUS_PID=; }; }
