#!/bin/bash
# The desktop user's path, run INSIDE the booted nspawn container as root
# (tests/systemd/nspawn-test.sh, after polkit-checks.sh), with the real
# systemd, dbus-daemon, polkitd and the installed unlinkd package:
#
#   apt installs the unlinkd-monitor package as a new user would;
#   an administrator (a user in group sudo with a password: the admin
#   identity of Debian's polkit rules, no rules file of ours) starts
#   unlinkd-monitor under Xvfb and applies a filter from its editor; polkit
#   asks for the password through the authentication agent of the user's
#   session (pkttyagent on a terminal, tty-agent.py types the password);
#     - with a wrong password the filter is refused and nothing changes;
#     - with the right one it is applied, reads back over D-Bus, and the
#       same window then shows the deletions the filter selects, live, with
#       their paths and who made them, and the top process row's count;
#   apt removes the package and its files are gone.
#
# Usage: desktop-checks.sh DIR_WITH_THE_MONITOR_DEB. Environment:
# UNLINKD_E2E_TIMEOUT (s, default 60).
# Output: "CHECK OK|FAIL" lines, then "RESULT PASS" or "RESULT FAIL (...)".
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib/check.sh
. "$HERE/../lib/check.sh"
export DEBIAN_FRONTEND=noninteractive

T=${UNLINKD_E2E_TIMEOUT:-60}
UNIT=unlinkd.service
BUS_NAME=org.unlinkd.Unlinkd1
OBJ=/org/unlinkd/Unlinkd1
IFACE=org.unlinkd.Unlinkd1
ADMIN=unlinkd-desk-test
PASSWORD=correct-horse-7
COMM=desk-rm   # the deletions the admin's filter selects
CHECK_WHAT="desktop: "
DEB=$(ls "${1:?usage: $0 DIR_WITH_THE_MONITOR_DEB}"/unlinkd-monitor_*.deb 2>/dev/null | head -1)

WORK=$(mktemp -d /tmp/unlinkd-e2e-desk.XXXXXX) || exit 1
chmod 755 "$WORK"
cleanup() {
  pkill -KILL -u "$ADMIN" 2>/dev/null
  userdel -r "$ADMIN" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

logged() { journalctl -q -u "$UNIT" --no-pager -o cat | grep -qE "$1"; }
polkit_on_bus() { busctl --system status org.freedesktop.PolicyKit1 >/dev/null 2>&1; }

check "the unlinkd-monitor package is there to install" test -n "$DEB"
check "apt-get install $(basename "$DEB") succeeds" apt-get install -y -q --no-install-recommends "$DEB"
for f in /usr/bin/unlinkd-monitor /usr/share/applications/unlinkd-monitor.desktop \
         /usr/share/icons/hicolor/scalable/apps/unlinkd-monitor.svg /usr/share/man/man1/unlinkd-monitor.1.gz; do
  check "the package installed $f" test -f "$f"
done
check "the desktop entry starts /usr/bin's unlinkd-monitor" grep -qx 'Exec=unlinkd-monitor' /usr/share/applications/unlinkd-monitor.desktop

# An administrator as Debian defines one for polkit: a member of group sudo
# (polkitd's 50-default.rules: addAdminRule unix-group:sudo), with a password.
check "the administrator $ADMIN is created in group sudo" useradd -m -G sudo -s /bin/bash "$ADMIN"
check "and given a password" bash -c 'echo "$1:$2" | chpasswd' _ "$ADMIN" "$PASSWORD"
check "the sudo group has only $ADMIN, so polkit offers one identity" eq "$(getent group sudo | cut -d: -f4)" "$ADMIN"
HOMEDIR=$(getent passwd "$ADMIN" | cut -d: -f6)
check "polkit.service (re)starts (polkit-checks.sh's rules file is gone)" systemctl restart polkit.service
check "polkit owns org.freedesktop.PolicyKit1" wait_for "$T" polkit_on_bus
check "unlinkd runs" systemctl is-active --quiet "$UNIT"
SAVED=$(filters)
echo "INFO filters before: $SAVED"

# The desktop session: Xvfb, GTK without a session bus or accessibility bus.
gui=(env HOME="$HOMEDIR" XDG_RUNTIME_DIR="$HOMEDIR/.rt" GSK_RENDERER=cairo GDK_BACKEND=x11 GTK_A11Y=none
     NO_AT_BRIDGE=1 GSETTINGS_BACKEND=memory DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent)
runuser -u "$ADMIN" -- install -d -m 700 "$HOMEDIR/.rt"
cp "$HERE/tty-agent.py" "$WORK/"

# session NAME PASSWORD TRIES RULE: as $ADMIN, unlinkd-monitor applying RULE
# from its filter editor, with tty-agent.py as the session's agent; its
# output in $WORK/NAME.log, the window's dump in $HOMEDIR/NAME.json.
SESSION_PID=
session() {
  runuser -u "$ADMIN" -- "${gui[@]}" xvfb-run -a -s "-ac -screen 0 1280x1024x24 -nolisten tcp" \
    /usr/bin/python3 "$WORK/tty-agent.py" --timeout $((T * 3)) --tries "$3" "$2" \
    unlinkd-monitor --rows=50 --apply-filter="$4" --dump-state="$HOMEDIR/$1.json" > "$WORK/$1.log" 2>&1 &
  SESSION_PID=$!
}
monitor_pid() { sed -n 's/^AGENT REGISTERED pid=//p' "$WORK/$1.log"; }
registered() { [ -n "$(monitor_pid "$1")" ]; }
dump_seq() { jq -r '.seq // 0' "$1" 2>/dev/null || echo 0; }
seq_above() { [ "$(dump_seq "$1")" -gt "$2" ]; }
# dump_holds NAME JQ: a fresh dump (SIGUSR1) of the window satisfies JQ
dump_holds() {
  local f=$HOMEDIR/$1.json pid before
  pid=$(monitor_pid "$1")
  [ -s "$f" ] || return 1
  before=$(dump_seq "$f")
  kill -USR1 "$pid" 2>/dev/null && wait_for 10 seq_above "$f" "$before" && jq -e "$2" "$f" >/dev/null
}
status_settled='.filter_status != "" and (.filter_status | startswith("applying") | not)'
# end_session NAME: the window is closed (SIGTERM), the driver reports
end_session() {
  kill -TERM "$(monitor_pid "$1")" 2>/dev/null
  wait "$SESSION_PID"
  sed 's/^/    /' "$WORK/$1.log"
  grep -q '^COMMAND EXIT 0$' "$WORK/$1.log"
}
uid=$(id -u "$ADMIN")

# 1. The wrong password: polkit refuses, the filter stays as it was.
session wrong not-the-password 1 "comm=$COMM"
check "wrong password: the agent is registered for the monitor's process" wait_for "$T" registered wrong
check "wrong password: polkit asks for the password (the agent prompts)" \
  wait_for "$T" grep -q '^AGENT PROMPT 1$' "$WORK/wrong.log"
check "wrong password: the agent reports the authentication failed" \
  wait_for "$T" grep -q '^AGENT FAILED$' "$WORK/wrong.log"
check "wrong password: the window says the filter was not applied (AccessDenied)" \
  wait_for "$T" dump_holds wrong "$status_settled and (.filter_status | test(\"AccessDenied\"))"
check "wrong password: the filters are unchanged" eq "$(filters)" "$SAVED"
check "wrong password: the daemon logged the refusal for uid $uid" \
  wait_for "$T" logged "SetFilters from :[0-9.]+ \\(uid $uid\\) refused: polkit did not authorize"
check "wrong password: the window closes cleanly" end_session wrong

# 2. The right password: applied, in force, and the window shows what it selects.
session right "$PASSWORD" 1 "comm=$COMM"
check "right password: the agent is registered for the monitor's process" wait_for "$T" registered right
check "right password: polkit asks for the password" \
  wait_for "$T" grep -q '^AGENT PROMPT 1$' "$WORK/right.log"
check "right password: the agent authenticated $ADMIN" \
  grep -q "Authenticating as: .*($ADMIN)\\|Authenticating as: $ADMIN" "$WORK/right.log"
check "right password: the agent reports the authentication complete" \
  wait_for "$T" grep -q '^AGENT COMPLETE$' "$WORK/right.log"
check "right password: the window says the filter is applied" \
  wait_for "$T" dump_holds right '.filter_status == "applied"'
check "right password: Filters reads back [comm=$COMM] over D-Bus" eq "$(filters)" "[\"comm=$COMM\"]"
check "right password: the daemon logged it as authorized by polkit for uid $uid" \
  wait_for "$T" logged "SetFilters from :[0-9.]+ \\(uid $uid\\) authorized by polkit"
check "right password: the window's header shows the new filter" \
  wait_for "$T" dump_holds right ".header.filters == [\"comm=$COMM\"]"
# The administrator deletes 4 files and fails on a fifth, as $COMM.
D=$HOMEDIR/work
runuser -u "$ADMIN" -- mkdir "$D"
runuser -u "$ADMIN" -- cp /usr/bin/rm "$D/$COMM"
runuser -u "$ADMIN" -- touch "$D/a" "$D/b" "$D/c" "$D/d"
runuser -u "$ADMIN" -- "$D/$COMM" "$D/a" "$D/b" "$D/c" "$D/d"
runuser -u "$ADMIN" -- "$D/$COMM" "$D/missing" 2>/dev/null
q_events="[.events[] | select(.comm == \"$COMM\" and .uid == $uid)]"
check "right password: the window shows the 5 deletions live, with their paths" \
  wait_for "$T" dump_holds right "$q_events | map(.path) | sort == [\"$D/a\",\"$D/b\",\"$D/c\",\"$D/d\",\"$D/missing\"]"
check "right password: 4 succeeded and 1 failed with ENOENT, op unlink" \
  dump_holds right "$q_events | (map(select(.result == 0 and .op == \"unlink\")) | length) == 4 and
                    (map(select(.result_text == \"ENOENT\")) | map(.path)) == [\"$D/missing\"]"
check "right password: the top processes show $COMM's runs by uid $uid: 4 deletes, 1 failure" \
  wait_for "$T" dump_holds right "[.processes[] | select(.comm == \"$COMM\" and .uid == $uid)] |
                                  (map(.deletes) | add) == 4 and (map(.failures) | add) == 1"
jq -c '{state, filter_status, header, processes, events: [.events[] | {comm, uid, path, result_text, op}]}' \
  "$HOMEDIR/right.json" | sed 's/^/    /'
check "right password: the window closes cleanly" end_session right

# Put back the filters polkit-checks.sh left.
put_filters "$SAVED"
check "the filters are put back" eq "$(filters)" "$SAVED"

check "apt-get purge unlinkd-monitor succeeds" apt-get purge -y -q unlinkd-monitor
check "the monitor's files are gone" bash -c '! ls /usr/bin/unlinkd-monitor /usr/share/applications/unlinkd-monitor.desktop 2>/dev/null'
check "unlinkd still runs" systemctl is-active --quiet "$UNIT"

if [ "$FAILS" = 0 ]; then echo "RESULT PASS ($CHECKS checks)"; exit 0; fi
echo "RESULT FAIL ($FAILS of $CHECKS checks failed)"
exit 1
