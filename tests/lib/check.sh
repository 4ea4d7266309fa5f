# The helpers every shell test and benchmark script shares (bash), each
# defined here once. Sourced, never run:
#   tests/*/X.sh:  . "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib/check.sh"
#   bench/X.sh:    . "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../tests/lib/check.sh"
# Copies of the scripts that run elsewhere keep that layout, this file
# included: the nspawn container's harness dir (tests/systemd/nspawn-test.sh),
# /usr/local/lib/unlinkd-vm in the full qemu guest (tests/vm/run-vm-suite.sh),
# /opt/unlinkd-bench/src in the benchmark guest (bench/stage-guest.sh).
#
#   check DESCRIPTION COMMAND...    one "CHECK OK|FAIL" line, counted
#   eq GOT EXPECTED, matches TEXT REGEX   conditions that say what differed
#   wait_for SECONDS COMMAND...     poll until COMMAND succeeds
#   process_gone PID                PID (a child of this shell) has exited
#   start_private_bus / stop_private_bus         a system-like dbus-daemon
#   start_private_journald / stop_private_journald   a journald of this mount namespace
#   daemon_start / daemon_wait_log / daemon_stop     one daemon in the background
#   bpf_fds_of PID                  the BPF programs, links and maps PID holds
# No helper evals a string: conditions are commands with their arguments,
# so quoting is the caller's ordinary quoting. Every helper works under
# set -euo pipefail (a failed kill of a process that is already gone is no
# error).

# ---------------------------------------------------------------- checks ---
# check DESCRIPTION COMMAND...: runs COMMAND; prints
#   <CHECK_TAG>CHECK OK <CHECK_WHAT><DESCRIPTION>     (or CHECK FAIL)
# and counts CHECKS and FAILS. CHECK_TAG marks the lines on a shared console
# ("VMFULL "), CHECK_WHAT says which run a check belongs to ("mode=fentry: ").
# COMMAND's own output (eq's, say) comes before the line.
CHECKS=0 FAILS=0
CHECK_TAG=${CHECK_TAG:-} CHECK_WHAT=${CHECK_WHAT:-}
check() {
  local what="$CHECK_WHAT$1"; shift
  CHECKS=$((CHECKS + 1))
  if "$@"; then
    echo "${CHECK_TAG}CHECK OK $what"
  else
    echo "${CHECK_TAG}CHECK FAIL $what"
    FAILS=$((FAILS + 1))
  fi
}

# eq GOT EXPECTED: the two are equal; otherwise both are printed.
eq() { [ "$1" = "$2" ] || { echo "    expected: $2"; echo "    got:      $1"; return 1; }; }
# matches TEXT REGEX: TEXT matches the extended REGEX ([[ =~ ]]).
matches() { [[ $1 =~ $2 ]] || { echo "    expected to match: $2"; echo "    got: $1"; return 1; }; }

# ------------------------------------------------------------------ waits ---
# wait_for SECONDS COMMAND...: runs COMMAND until it succeeds (return 0) or
# SECONDS have passed (return 1); at least once. Between tries it sleeps
# WAIT_FOR_INTERVAL seconds (default 0.1; a script sets it once: finer where
# a figure is timed, coarser under TCG, where every fork costs).
# EPOCHSECONDS (bash 5) keeps the clock reading free of forks.
wait_for() {
  local deadline=$((EPOCHSECONDS + $1)); shift
  until "$@"; do
    [ "$EPOCHSECONDS" -lt "$deadline" ] || return 1
    sleep "${WAIT_FOR_INTERVAL:-0.1}"
  done
}

# process_gone PID: PID has exited. For this shell's own children: bash reaps
# them as they exit, so kill -0 fails from then on.
process_gone() { ! kill -0 "$1" 2>/dev/null; }

# stop_pid PID: kill PID (a child of this shell, or empty: nothing) and reap it.
stop_pid() { [ -z "$1" ] || { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }; }

# require_tools TOOL...: exit 1 naming the first one missing (not a skip:
# CI installs them all with packaging/install-build-deps.sh).
require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run packaging/install-build-deps.sh" >&2; exit 1; }
  done
}

# The daemon's filters on the system bus (the checks inside a booted
# system): filters prints them as a JSON array; put_filters JSON sets them.
filters() { busctl --system --json=short get-property org.unlinkd.Unlinkd1 /org/unlinkd/Unlinkd1 org.unlinkd.Unlinkd1 Filters | jq -c .data; }
put_filters() {
  local rules=()
  mapfile -t rules < <(jq -r '.[]' <<<"$1")
  busctl --system call org.unlinkd.Unlinkd1 /org/unlinkd/Unlinkd1 org.unlinkd.Unlinkd1 SetFilters as "${#rules[@]}" "${rules[@]}" >/dev/null
}

# ------------------------------------------------------ a private bus ---
# A dbus-daemon of the system type with the project's bus policy, from
# tests/dbus/system-bus.conf.in (the C++ tests use the same file). The
# machine's own bus, if any, is untouched.
#   start_private_bus DIR SOURCE_DIR   exports DBUS_SYSTEM_BUS_ADDRESS, sets BUS and BUS_PID
#   stop_private_bus
start_private_bus() {
  local dir=$1 src=$2
  mkdir -p "$dir/system.d"; chmod 755 "$dir"   # non-root clients connect too
  cp "$src/dbus/org.unlinkd.Unlinkd1.conf" "$dir/system.d/"
  sed "s|@DIR@|$dir|g" "$src/tests/dbus/system-bus.conf.in" > "$dir/system-bus.conf"
  dbus-daemon --config-file="$dir/system-bus.conf" --nofork --nopidfile 2>"$dir/bus.log" &
  BUS_PID=$!
  wait_for 10 test -S "$dir/system_bus_socket" \
    || { echo "dbus-daemon did not start: $(cat "$dir/bus.log")" >&2; return 1; }
  BUS=unix:path=$dir/system_bus_socket
  export DBUS_SYSTEM_BUS_ADDRESS=$BUS
}
stop_private_bus() {
  [ -z "${BUS_PID:-}" ] || { kill "$BUS_PID" 2>/dev/null || true; wait "$BUS_PID" 2>/dev/null || true; BUS_PID=; }
}

# -------------------------------------------------- a private journald ---
# start_private_journald [JOURNAL_SETTING...]: a systemd-journald that only
# this mount namespace sees; call it in a namespace of its own (unshare
# --mount --propagation private), the machine's journal stays untouched.
# /run/systemd and /run/log under tmpfs, volatile storage, no kernel
# messages, plus the given [Journal] settings (e.g. RateLimitBurst=0).
# Sets JOURNALD_PID; fails if its socket is not there within 5 s.
start_private_journald() {
  mountpoint -q /run || mount --bind /run /run
  mount -t tmpfs -o mode=755 tmpfs /run/systemd
  mount -t tmpfs -o mode=755 tmpfs /run/log
  mkdir -p /run/systemd/journald.conf.d
  { printf '[Journal]\nStorage=volatile\nReadKMsg=no\n'; [ $# = 0 ] || printf '%s\n' "$@"; } \
    > /run/systemd/journald.conf.d/50-private.conf
  /lib/systemd/systemd-journald & JOURNALD_PID=$!
  wait_for 5 test -S /run/systemd/journal/socket || { echo "the private journald did not start" >&2; return 1; }
}
stop_private_journald() {
  [ -z "${JOURNALD_PID:-}" ] || { kill "$JOURNALD_PID" 2>/dev/null || true; wait "$JOURNALD_PID" 2>/dev/null || true; JOURNALD_PID=; }
}

# ------------------------------------------------------------ a daemon ---
# One daemon (or anything long-running) in the background at a time:
#   daemon_start ERR_LOG COMMAND...   COMMAND in the background, stderr
#       appended to ERR_LOG, stdout where the caller redirects this call;
#       sets DAEMON_PID. COMMAND may be a wrapper that execs the daemon.
#   daemon_wait_log SECONDS ERR_LOG TEXT   until ERR_LOG holds TEXT (a fixed
#       string); fails at once when the daemon exited, or after SECONDS;
#       on failure the log is printed.
#   daemon_stop [SIGNAL]   SIGNAL (default TERM), then waits; SIGKILL after
#       20 s. Returns the daemon's exit status; nothing if none runs. For
#       cleanup traps as well.
daemon_start() {
  local log=$1; shift
  "$@" 2>>"$log" &
  DAEMON_PID=$!
}
daemon_log_has() { grep -qF -- "$2" "$1" 2>/dev/null; }
daemon_exited_or_logged() { process_gone "$DAEMON_PID" || daemon_log_has "$1" "$2"; }
daemon_wait_log() {
  local seconds=$1 log=$2 text=$3
  wait_for "$seconds" daemon_exited_or_logged "$log" "$text" || true
  daemon_log_has "$log" "$text" && return 0
  echo "the daemon (pid $DAEMON_PID) $(process_gone "$DAEMON_PID" && echo exited || echo "went on for ${seconds}s") without logging '$text':" >&2
  cat "$log" >&2
  return 1
}
daemon_stop() {
  local rc=0
  [ -n "${DAEMON_PID:-}" ] || return 0
  kill -s "${1:-TERM}" "$DAEMON_PID" 2>/dev/null || true
  if ! wait_for 20 process_gone "$DAEMON_PID"; then
    echo "the daemon (pid $DAEMON_PID) did not stop on SIG${1:-TERM} within 20 s; killing it" >&2
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
  fi
  wait "$DAEMON_PID" 2>/dev/null || rc=$?
  DAEMON_PID=
  return $rc
}

# ------------------------------------------------------- BPF objects ---
# bpf_fds_of PID: the BPF objects held by one process, read from /proc/PID/fdinfo alone (a link
# has link_id and prog_id, a program prog_id, a map map_id; no other fd has
# these): "prog ID", "link ID PROG_ID", "map ID" lines. No awk or readlink:
# an nspawn container booted with --volatile has no /etc/alternatives.
bpf_fds_of() {
  local f k v id progid kind
  for f in /proc/"$1"/fdinfo/*; do
    kind='' id='' progid=''
    { while read -r k v; do
        case $k in
          link_id:) kind=link id=$v ;;
          map_id:) kind=map id=$v ;;
          prog_id:) progid=$v ;;
        esac
      done < "$f"; } 2>/dev/null
    if [ "$kind" = link ]; then echo "link $id $progid"
    elif [ "$kind" = map ]; then echo "map $id"
    elif [ -n "$progid" ]; then echo "prog $progid"
    fi
  done
}
