#!/bin/bash
# Checks run inside the full VM guest (Debian 12 + systemd as PID 1 + the
# Debian package of the build, installed with dpkg). Started after boot as the transient unit
# unlinkd-vm-checks (unlinkd-vm.service hands it to systemd-run --no-block:
# waiting for the boot to finish from inside the boot transaction deadlocks).
# run-vm-suite.sh installs it with what it uses in the layout of tests/:
# /usr/local/lib/unlinkd-vm/{vm/guest-full-checks.sh,systemd/service-checks.sh,lib/check.sh}.
#
# Reports on the serial console, which the host greps:
#   VMFULL CHECK OK|FAIL <what>     one line per check
#   VMFULL SKIP <what>              checks not applicable to this build
#   VMFULL RESULT PASS|FAIL         always last, then the guest powers off
#
# Configuration written by run-vm-suite.sh: /etc/unlinkd-vm.env
#   UNLINKD_DAEMON    installed daemon path (/usr/sbin/unlinkd)
#   UNLINKD_VM_MODES  attach modes that must work on this kernel
#   UNLINKD_VM_SERVICE_MODES  the modes service-checks.sh runs in (fentry
#                     kprobe: the CI host runs it in tracepoint mode, in nspawn)
set -u
exec >/dev/console 2>&1
echo   # the console line may still hold firmware output
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib/check.sh
. "$HERE/../lib/check.sh"
CHECK_TAG="VMFULL "   # the host greps the console for these
WAIT_FOR_INTERVAL=0.2 # every poll forks, and forks are slow under TCG

UNLINKD_DAEMON=/usr/sbin/unlinkd
UNLINKD_VM_MODES="fentry kprobe tracepoint"
UNLINKD_VM_SERVICE_MODES="fentry kprobe"
# shellcheck disable=SC1091
[ -f /etc/unlinkd-vm.env ] && . /etc/unlinkd-vm.env

WORKLOAD_COMM=vmrm          # distinctive comm for the workload's deletions
WORKLOAD_BIN=/usr/local/bin/$WORKLOAD_COMM
ATTACH_TIMEOUT=180          # s; BPF verification is slow under TCG

up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "VMFULL $*"; }

# JSON objects a unit printed on stdout (non-JSON lines, e.g. log text, are skipped)
unit_json() { journalctl -b -q --no-pager -o cat -u "$1" | jq -c -R 'fromjson? | select(type == "object")'; }
unit_has() { journalctl -b -q --no-pager -o cat -u "$1" | grep -qw -- "$2"; }

# The workload: one process named vmrm deletes three files, by absolute and
# by relative path (the daemon must report absolute paths, resolved against
# the caller's cwd). It is coreutils rm under another name: comm comes from
# the executable's name, rm ignores argv[0]; it uses unlinkat(2).
workload() {
  touch /tmp/vm-1 /tmp/vm-2 /tmp/vm-3
  (cd /tmp && "$WORKLOAD_BIN" /tmp/vm-1 vm-2 ./vm-3)
}
WORKLOAD_GIVEN=(/tmp/vm-1 vm-2 ./vm-3)   # path_as_given of /tmp/vm-1..3

boot_info() {
  say "INFO kernel $(uname -r), checks start at uptime $(up)s"
  local st
  st=$(timeout 120 systemctl is-system-running --wait 2>&1)
  say "INFO is-system-running: $st"
  systemd-analyze time 2>/dev/null | head -1
  systemctl --failed --no-legend --no-pager
  check "pid 1 is systemd" eq "$(cat /proc/1/comm)" systemd
  check "daemon installed at $UNLINKD_DAEMON" test -x "$UNLINKD_DAEMON"
  cp /usr/bin/rm "$WORKLOAD_BIN"
  # The Debian package's postinst enabled the service: it started at boot,
  # in auto mode (fentry here: Debian's perf_event_paranoid=3 refuses the
  # other two to the unit). Stopped before the checks that run their own.
  check "the package's unlinkd.service is enabled" eq "$(systemctl is-enabled unlinkd.service 2>&1)" enabled
  check "unlinkd.service started at boot and runs" \
    wait_for "$ATTACH_TIMEOUT" bash -c '[ "$(systemctl is-active unlinkd.service)" = active ]'
  say "INFO at boot: $(systemctl show -P StatusText unlinkd.service)"
  systemctl stop unlinkd.service
  check "unlinkd.service stops" bash -c '[ "$(systemctl is-active unlinkd.service)" != active ]'
}

# unlinkd --list-modes --json: every mode this kernel must support says so
check_list_modes() {
  local out m
  out=$("$UNLINKD_DAEMON" --list-modes --json 2>/dev/null)
  echo "  list-modes: $out"
  for m in $UNLINKD_VM_MODES; do
    check "list-modes reports $m supported" \
      eq "$(jq -r --arg m "$m" '.[] | select(.mode == $m) | .supported' <<<"$out" 2>/dev/null)" true
  done
}

# The same counts over the guest's real system bus (its dbus-daemon loaded
# the installed policy at boot), as busctl and unlinkctl users see them.
check_bus() {
  local mode=$1 bus="busctl --system --json=short"
  if ! wait_for 30 busctl --system status org.unlinkd.Unlinkd1 >/dev/null 2>&1; then
    check "mode=$mode daemon owns org.unlinkd.Unlinkd1 on the system bus" false; return
  fi
  check "mode=$mode D-Bus AttachMode is $mode" \
    eq "$($bus get-property org.unlinkd.Unlinkd1 /org/unlinkd/Unlinkd1 org.unlinkd.Unlinkd1 AttachMode | jq -r .data)" "$mode"
  check "mode=$mode D-Bus GetProcesses: one $WORKLOAD_COMM process with deletes == 3" \
    eq "$($bus call org.unlinkd.Unlinkd1 /org/unlinkd/Unlinkd1 org.unlinkd.Unlinkd1 GetProcesses \
          | jq -c --arg c "$WORKLOAD_COMM" '[.data[0][] | select(.[3] == $c) | .[4]]')" "[3]"
  check "mode=$mode unlinkctl top lists $WORKLOAD_COMM" bash -c "unlinkctl top 50 | grep -qw $WORKLOAD_COMM"
}

# The daemon in one mode as a transient unit, its JSON lines in the journal.
check_transient_mode() {
  local mode=$1 unit=unlinkd-$1 ev sum i
  say "INFO mode=$mode start at uptime $(up)s"
  systemctl reset-failed "$unit" 2>/dev/null
  if ! systemd-run -q --unit="$unit" --property=Type=exec \
       "$UNLINKD_DAEMON" --foreground --json --mode="$mode"; then
    check "mode=$mode transient unit starts" false; return
  fi
  if ! wait_for "$ATTACH_TIMEOUT" unit_has "$unit" 'attached'; then
    check "mode=$mode daemon reports attached" false
    journalctl -b -q --no-pager -o cat -u "$unit" | tail -20
    systemctl stop "$unit"; return
  fi
  say "INFO mode=$mode attached at uptime $(up)s"

  workload
  # let the events reach the journal before stopping (the counts are checked
  # exactly afterwards; this only avoids racing the daemon's output)
  wait_for 30 bash -c "[ \$(journalctl -b -q -o cat -u $unit | grep -c '\"comm\": *\"$WORKLOAD_COMM\"') -ge 3 ]"
  check_bus "$mode"
  systemctl stop "$unit"   # SIGTERM: the daemon prints its summary and exits 0
  check "mode=$mode daemon exited cleanly on SIGTERM" bash -c "! systemctl -q is-failed $unit"
  wait_for 10 unit_has "$unit" '"totals"'

  ev=$(unit_json "$unit" | jq -c --arg c "$WORKLOAD_COMM" 'select(.comm == $c)')
  echo "$ev" | sed 's/^/  event: /'
  check "mode=$mode exactly 3 deletions by $WORKLOAD_COMM" eq "$(grep -c . <<<"$ev")" 3
  for i in 1 2 3; do
    check "mode=$mode /tmp/vm-$i (given as ${WORKLOAD_GIVEN[i-1]}) reported once with result 0" \
      eq "$(jq -c --arg p "/tmp/vm-$i" 'select(.path == $p) | [.path_as_given, .result, .mode]' <<<"$ev")" \
         "[\"${WORKLOAD_GIVEN[i-1]}\",0,\"$mode\"]"
  done
  sum=$(unit_json "$unit" | jq -c 'select(has("totals"))' | tail -1)
  echo "  summary: $sum" | cut -c1-400
  check "mode=$mode summary: one $WORKLOAD_COMM process with deletes == 3" \
    eq "$(jq -c --arg c "$WORKLOAD_COMM" '[.processes[] | select(.comm == $c) | .deletes]' <<<"$sum" 2>/dev/null)" "[3]"
  systemctl reset-failed "$unit" 2>/dev/null
}

# The installed service, as a user drives it: tests/systemd/service-checks.sh
# (the same checks the CI host runs in an nspawn container, in tracepoint
# mode) in each of UNLINKD_VM_SERVICE_MODES (fentry, kprobe): start/READY,
# status text, a workload exact over D-Bus and in the journal,
# reload/restart/SIGKILL in the middle of storms with exact counts,
# D-Bus activation, and a stop that leaves no BPF program, link or pin.
# Its CHECK lines are echoed with the VMFULL prefix (the host counts the
# FAILs); its own RESULT line becomes one more check here.
SERVICE_CHECKS=$HERE/../systemd/service-checks.sh
check_service() {
  local mode rc modes_out
  # Debian's kernels set kernel.perf_event_paranoid=3: opening a perf event
  # (kprobe and tracepoint modes attach through one) then needs
  # CAP_SYS_ADMIN, which unlinkd.service does not have. fentry needs
  # neither. With the unit's capabilities, the refusal must say what to do.
  sysctl -q kernel.perf_event_paranoid=3
  modes_out=$(systemd-run -q --wait --pipe -p CapabilityBoundingSet="CAP_BPF CAP_PERFMON" \
    "$UNLINKD_DAEMON" --list-modes 2>&1)
  echo "$modes_out" | sed 's/^/  /'
  check "with the unit's capabilities and perf_event_paranoid=3, fentry loads" \
    bash -c "grep -q '^fentry *loads and attaches' <<<\"\$1\"" _ "$modes_out"
  check "... and kprobe is refused with the sysctl to run" \
    bash -c "grep -q '^kprobe .*sysctl kernel.perf_event_paranoid=2' <<<\"\$1\"" _ "$modes_out"
  for mode in $UNLINKD_VM_SERVICE_MODES; do
    case $mode in
      fentry) sysctl -q kernel.perf_event_paranoid=3 ;;  # Debian's default
      *) sysctl -q kernel.perf_event_paranoid=2 ;;       # what the README says to run
    esac
    say "INFO service-checks.sh mode=$mode at uptime $(up)s (perf_event_paranoid=$(sysctl -n kernel.perf_event_paranoid))"
    # --exclusive: nothing else on this kernel loads programs named like ours.
    # The timeout base covers BPF verification under TCG (ATTACH_TIMEOUT);
    # storms go on for 1000 deletions after each restart, not 5000: TCG
    # deletes ~100 a second.
    UNLINKD_E2E_TIMEOUT=$ATTACH_TIMEOUT UNLINKD_E2E_STORM_AFTER=1000 timeout $((ATTACH_TIMEOUT * 10)) \
      "$SERVICE_CHECKS" --mode "$mode" --exclusive 2>&1 | sed -u -e 's/^RESULT /service-checks.sh RESULT /' -e 's/^/VMFULL /'
    rc=${PIPESTATUS[0]}
    check "service-checks.sh mode=$mode passed (exit $rc)" [ "$rc" = 0 ]
  done
  say "INFO service checks done at uptime $(up)s"
}

boot_info
check_list_modes
for mode in $UNLINKD_VM_MODES; do check_transient_mode "$mode"; done
check_service

say "INFO checks done at uptime $(up)s"
if [ "$FAILS" = 0 ]; then say "RESULT PASS"; else say "RESULT FAIL ($FAILS checks failed)"; fi
sync
systemctl --no-block poweroff
