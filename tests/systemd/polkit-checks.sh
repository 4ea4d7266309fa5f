#!/bin/bash
# Checks of who may change unlinkd's state (spec section 4, "Changing
# state"), run INSIDE the booted nspawn container as root
# (tests/systemd/nspawn-test.sh, after service-checks.sh), with the real
# polkitd of the host's root (Debian's polkitd package) on the container's
# real system bus, the installed package's action file and bus policy.
#
# Two test users and a polkit rule file in /etc/polkit-1/rules.d/ that grants
# both of unlinkd's actions to one and refuses them to the other; uid 65534
# falls to the action file's defaults (auth_admin_keep). Asserts, each with
# the state read back over D-Bus:
#   the action file is valid and polkit knows both actions, auth_admin_keep;
#   the granted user's SetFilters and Reset take effect;
#   the refused user gets AccessDenied and nothing changes;
#   uid 65534 without interaction allowed gets InteractiveAuthorizationRequired;
#   a bad rule is InvalidArgs even for the refused user (checked before polkit);
#   allowing interaction reaches polkit (which then fails with no agent);
#   while polkit decides (a rule holds its answer): root is answered, a
#   caller may leave, the daemon may be restarted, without harm;
#   root works, and keeps working when polkit cannot run at all, while the
#   granted user is then refused (AccessDenied).
# Usage: polkit-checks.sh. Environment: UNLINKD_E2E_TIMEOUT (s, default 60).
# Output: "CHECK OK|FAIL" lines, then "RESULT PASS" or "RESULT FAIL (...)".
set -u
# shellcheck source-path=SCRIPTDIR source=../lib/check.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib/check.sh"

T=${UNLINKD_E2E_TIMEOUT:-60}
UNIT=unlinkd.service
BUS_NAME=org.unlinkd.Unlinkd1
OBJ=/org/unlinkd/Unlinkd1
IFACE=org.unlinkd.Unlinkd1
ACTIONS=/usr/share/polkit-1/actions/org.unlinkd.Unlinkd1.policy
RULES=/etc/polkit-1/rules.d/60-unlinkd-e2e.rules
ADMIN=unlinkd-admin-test
OTHER=unlinkd-other-test
COMM=e2e-pk   # the deletions counted here: rm under this name
HOLD=/run/unlinkd-e2e-pk-hold   # while it exists, polkit's answer for $ADMIN waits
CHECK_WHAT="polkit: "
DENIED=org.freedesktop.DBus.Error.AccessDenied
INTERACTIVE=org.freedesktop.DBus.Error.InteractiveAuthorizationRequired
INVALID=org.freedesktop.DBus.Error.InvalidArgs

WORK=$(mktemp -d /tmp/unlinkd-e2e-pk.XXXXXX) || exit 1
WORK=$(realpath "$WORK")
cleanup() {
  systemctl unmask --runtime polkit.service >/dev/null 2>&1
  rm -f "$RULES" "$HOLD"
  userdel "$ADMIN" 2>/dev/null
  userdel "$OTHER" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# call WHO METHOD ARGS...: the call through dbus-send (which never allows
# interactive authorization, and prints the error's name, unlike busctl) as
# root, a user name or "nobody" (uid 65534); prints "OK" or the error line.
call() {
  local who=$1 method=$2 out; shift 2
  local as=()
  case $who in
    root) ;;
    nobody) as=(setpriv --reuid=65534 --regid=65534 --clear-groups) ;;
    *) as=(runuser -u "$who" --) ;;
  esac
  if out=$("${as[@]}" dbus-send --system --print-reply --dest="$BUS_NAME" "$OBJ" "$IFACE.$method" "$@" 2>&1); then
    echo OK
  else
    echo "$out" | head -1
  fi
}
total_deletes() { busctl --system get-property "$BUS_NAME" "$OBJ" "$IFACE" TotalDeletes | cut -d' ' -f2; }
# delete N files as comm $COMM; the counts are in the maps when rm returns
delete_files() {
  local i
  for i in $(seq "$1"); do touch "$WORK/f$i"; done
  "$WORK/$COMM" "$WORK"/f*
}
polkit_on_bus() { busctl --system status org.freedesktop.PolicyKit1 >/dev/null 2>&1; }
name_owned() { busctl --system status "$BUS_NAME" >/dev/null 2>&1; }
polkit_holding() { pgrep -u polkitd -f "while \\[ -e $HOLD" >/dev/null; }
# the daemon's journal has a line matching the extended REGEX; how many
logged() { journalctl -q -u "$UNIT" --no-pager -o cat | grep -qE "$1"; }
log_count() { journalctl -q -u "$UNIT" --no-pager -o cat | grep -cE "$1"; }
pkaction_defaults() { # ACTION: pkaction shows auth_admin_keep for any, inactive and active
  local out
  out=$(pkaction --action-id "$1" --verbose 2>&1)
  echo "$out" | sed 's/^/    /'
  [ "$(grep -cE '^ *implicit (any|inactive|active): +auth_admin_keep$' <<<"$out")" = 3 ]
}

cp /usr/bin/rm "$WORK/$COMM"
useradd --no-create-home --shell /usr/sbin/nologin "$ADMIN" || exit 1
useradd --no-create-home --shell /usr/sbin/nologin "$OTHER" || exit 1
# As an administrator would grant it: both actions to one user, refused
# outright to another, everyone else left to the action file's defaults.
cat > "$RULES" <<EOF
polkit.addRule(function(action, subject) {
    if (action.id == "org.unlinkd.Unlinkd1.configure" || action.id == "org.unlinkd.Unlinkd1.reset") {
        if (subject.user == "$ADMIN") {
            // holds polkit's answer while the test's hold file exists
            polkit.spawn(["/bin/sh", "-c", "while [ -e $HOLD ]; do sleep 0.05; done"]);
            return polkit.Result.YES;
        }
        if (subject.user == "$OTHER")
            return polkit.Result.NO;
    }
});
EOF
chmod 644 "$RULES"

check "the action file is valid against polkit's DTD" \
  xmllint --noout --dtdvalid /usr/share/polkit-1/policyconfig-1.dtd "$ACTIONS"
# polkitd reads its rules at start: a restart, rather than a wait for its
# inotify reload, which nothing could observe
check "polkit.service (re)starts with the test's rules" systemctl restart polkit.service
check "polkit owns org.freedesktop.PolicyKit1" wait_for "$T" polkit_on_bus
for a in configure reset; do
  check "pkaction knows org.unlinkd.Unlinkd1.$a, auth_admin_keep by default" pkaction_defaults "org.unlinkd.Unlinkd1.$a"
done

check "systemctl start unlinkd succeeds" systemctl start "$UNIT"
check "the bus name $BUS_NAME is owned" wait_for "$T" name_owned
SAVED=$(filters)
echo "INFO filters before: $SAVED"
check "root sets the filter comm=$COMM" eq "$(call root SetFilters array:string:comm=$COMM)" OK
check "Filters reads back [comm=$COMM]" eq "$(filters)" "[\"comm=$COMM\"]"

# SetFilters
check "$ADMIN (granted by the rule) may SetFilters" \
  eq "$(call "$ADMIN" SetFilters array:string:comm=$COMM,uid=0)" OK
check "$ADMIN's filter is in force: Filters reads back" eq "$(filters)" "[\"comm=$COMM\",\"uid=0\"]"
check "the daemon logged $ADMIN's call as authorized by polkit" \
  wait_for "$T" logged "SetFilters from :[0-9.]+ \\(uid $(id -u "$ADMIN")\\) authorized by polkit"
out=$(call "$OTHER" SetFilters array:string:comm=$COMM)
check "$OTHER (refused by the rule) gets AccessDenied from polkit's answer" \
  matches "$out" "^Error $DENIED: polkit did not authorize org.unlinkd.Unlinkd1.configure"
check "$OTHER's SetFilters changed nothing" eq "$(filters)" "[\"comm=$COMM\",\"uid=0\"]"
out=$(call "$OTHER" SetFilters array:string:colour=red)
check "$OTHER's bad rule is InvalidArgs: checked before polkit would refuse it" \
  matches "$out" "^Error $INVALID: .*colour=red"
out=$(call "$ADMIN" SetAttachMode string:turbo)
check "$ADMIN's bad mode is InvalidArgs" matches "$out" "^Error $INVALID: .*unknown attach mode"
out=$(call nobody SetFilters array:string:comm=$COMM)
check "uid 65534 (auth_admin_keep, no interaction allowed) gets InteractiveAuthorizationRequired" \
  matches "$out" "^Error $INTERACTIVE: polkit requires authentication"
check "uid 65534's SetFilters changed nothing" eq "$(filters)" "[\"comm=$COMM\",\"uid=0\"]"
mode=$(busctl --system get-property "$BUS_NAME" "$OBJ" "$IFACE" AttachMode | cut -d' ' -f2 | tr -d '"')
out=$(call "$ADMIN" SetAttachMode string:"$mode")
check "$ADMIN may SetAttachMode (the mode in force, $mode)" matches "$out" '^OK$'
out=$(call "$OTHER" SetAttachMode string:"$mode")
check "$OTHER's SetAttachMode gets AccessDenied" matches "$out" "^Error $DENIED: "

# While polkit decides, the daemon goes on: polkit's answer for $ADMIN is
# held (the rule waits for the hold file to go); root's calls are answered
# meanwhile; then $ADMIN's request applies, as it was validated.
touch "$HOLD"
call "$ADMIN" SetFilters array:string:comm=$COMM,uid=1 > "$WORK/held.out" &
held=$!
check "polkit is holding $ADMIN's check (the rule's wait runs)" wait_for "$T" polkit_holding
check "meanwhile root's SetFilters is answered" eq "$(call root SetFilters array:string:comm=$COMM,uid=2)" OK
check "meanwhile root's filter is in force" eq "$(filters)" "[\"comm=$COMM\",\"uid=2\"]"
check "$ADMIN's call is still waiting for polkit" kill -0 "$held"
rm -f "$HOLD"
wait "$held"
check "once polkit answers, $ADMIN's SetFilters succeeds" eq "$(cat "$WORK/held.out")" OK
check "$ADMIN's filter, as validated, is in force" eq "$(filters)" "[\"comm=$COMM\",\"uid=1\"]"

# The caller leaves while polkit decides: the answer finds no one to reply
# to, and the daemon goes on.
main=$(systemctl show -P MainPID "$UNIT")
before=$(log_count "SetFilters from :[0-9.]+ \\(uid $(id -u "$ADMIN")\\) (authorized|refused)")
touch "$HOLD"
call "$ADMIN" SetFilters array:string:comm=$COMM,uid=3 > "$WORK/left.out" &
left=$!
check "polkit is holding $ADMIN's second check" wait_for "$T" polkit_holding
client=$(pgrep -u "$ADMIN" -x dbus-send)
check "$ADMIN's client (pid $client) is killed while polkit decides" kill -KILL "$client"
rm -f "$HOLD"
wait "$left"
check "the daemon took polkit's late answer" wait_for "$T" bash -c \
  '[ "$(journalctl -q -u "$1" --no-pager -o cat | grep -cE "$2")" -gt "$3" ]' _ "$UNIT" \
  "SetFilters from :[0-9.]+ \\(uid $(id -u "$ADMIN")\\) (authorized|refused)" "$before"
check "the daemon still runs, the same process (MainPID $main)" eq "$(systemctl show -P MainPID "$UNIT")" "$main"
check "and answers root" eq "$(call root SetFilters array:string:comm=$COMM)" OK

# The daemon is stopped (and started again) while polkit decides: the pending check goes with
# it (no reply, no change from a process that is gone), and it stops cleanly.
touch "$HOLD"
call "$ADMIN" SetFilters array:string:comm=$COMM,uid=4 > "$WORK/torn.out" &
torn=$!
check "polkit is holding $ADMIN's third check" wait_for "$T" polkit_holding
check "systemctl stop unlinkd while the check is pending succeeds" systemctl stop "$UNIT"
check "the daemon exited cleanly (Result=success, exit status 0)" \
  eq "$(systemctl show -P Result "$UNIT") $(systemctl show -P ExecMainStatus "$UNIT")" "success 0"
check "systemctl start unlinkd succeeds" systemctl start "$UNIT"
rm -f "$HOLD"
wait "$torn"
check "the caller whose check was pending got no success" bash -c '[ "$(cat "$1")" != OK ]' _ "$WORK/torn.out"
check "the bus name $BUS_NAME is owned again" wait_for "$T" name_owned
check "the pending request did not apply" bash -c '! grep -q uid=4 <<<"$1"' _ "$(filters)"

# Reset
check "root sets the filter comm=$COMM again" eq "$(call root SetFilters array:string:comm=$COMM)" OK
check "root may Reset" eq "$(call root Reset)" OK
check "root's Reset took effect: TotalDeletes is 0" eq "$(total_deletes)" 0
delete_files 3
check "3 deletions by $COMM are counted" eq "$(total_deletes)" 3
out=$(call "$OTHER" Reset)
check "$OTHER's Reset gets AccessDenied" matches "$out" "^Error $DENIED: polkit did not authorize org.unlinkd.Unlinkd1.reset"
check "$OTHER's Reset changed nothing: TotalDeletes is still 3" eq "$(total_deletes)" 3
out=$(call nobody Reset)
check "uid 65534's Reset gets InteractiveAuthorizationRequired" matches "$out" "^Error $INTERACTIVE: "
# Allowing interaction (busctl's --allow-interactive-authorization=yes) is
# passed on to polkit, which then tries to authenticate instead of answering
# with a challenge; with no authentication agent that fails: AccessDenied.
# busctl prints any AccessDenied as "Access denied": the daemon's log says which.
check "uid 65534's Reset allowing interaction is refused" bash -c '! setpriv --reuid=65534 --regid=65534 --clear-groups \
  busctl --system --allow-interactive-authorization=yes call "$1" "$2" "$3" Reset 2>/dev/null' _ "$BUS_NAME" "$OBJ" "$IFACE"
check "the daemon asked polkit allowing interaction: refused by polkit, not a challenge for the caller" \
  wait_for "$T" logged "Reset from :[0-9.]+ \\(uid 65534\\) refused: polkit did not authorize org\\.unlinkd\\.Unlinkd1\\.reset"
check "$ADMIN may Reset" eq "$(call "$ADMIN" Reset)" OK
check "$ADMIN's Reset took effect: TotalDeletes is 0" eq "$(total_deletes)" 0

# polkit cannot run at all (masked, so that D-Bus activation fails too):
# only root changes state.
systemctl mask --runtime polkit.service >/dev/null
systemctl stop polkit.service
check "polkit is off the bus" wait_for "$T" bash -c '! busctl --system status org.freedesktop.PolicyKit1 >/dev/null 2>&1'
out=$(call "$ADMIN" SetFilters array:string:uid=0)
check "without polkit, $ADMIN's SetFilters gets AccessDenied" matches "$out" "^Error $DENIED: only root may do this without polkit"
check "without polkit, $ADMIN's SetFilters changed nothing" eq "$(filters)" "[\"comm=$COMM\"]"
check "without polkit, root still sets filters" eq "$(call root SetFilters array:string:uid=0)" OK
check "root's filter is in force" eq "$(filters)" '["uid=0"]'
systemctl unmask --runtime polkit.service >/dev/null

# Put back what service-checks.sh left (the package's removal checks follow).
put_filters "$SAVED"
check "the filters are put back" eq "$(filters)" "$SAVED"

if [ "$FAILS" = 0 ]; then echo "RESULT PASS ($CHECKS checks)"; exit 0; fi
echo "RESULT FAIL ($FAILS of $CHECKS checks failed)"
exit 1
