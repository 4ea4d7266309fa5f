#!/bin/bash
# Checks of the Debian package, run INSIDE a booted systemd system as root
# (the nspawn container of nspawn-test.sh, whose root is an overlay of the
# host's, so apt and dpkg work and nothing reaches the host):
#
#   package-checks.sh install DEB   apt installs the package as a new user
#                                   would; the service runs, enabled; the
#                                   files are at Debian's paths; the bus
#                                   policy and the journal catalog are in
#                                   use; man and the bash completion work;
#                                   unlinkctl answers
#   package-checks.sh remove        with the service running, apt remove
#                                   stops it and leaves no program, link,
#                                   map, pin or process of ours; purge
#                                   removes /var/lib/unlinkd and /etc/unlinkd
#
# Output: "CHECK OK|FAIL" lines and last "RESULT PASS|FAIL"; exit 0 on PASS.
set -u
# shellcheck source-path=SCRIPTDIR source=../lib/check.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib/check.sh"
export DEBIAN_FRONTEND=noninteractive
UNIT=unlinkd.service
T=${UNLINKD_E2E_TIMEOUT:-60}
BUS_NAME=org.unlinkd.Unlinkd1

active() { [ "$(systemctl is-active "$UNIT")" = active ]; }
inactive() { [ "$(systemctl is-active "$UNIT")" != active ]; }
no_process() { ! pgrep -x unlinkd >/dev/null; }
gone() { [ ! -e "$1" ]; }

do_install() {
  local deb=$1 f
  # A machine image may carry a policy-rc.d that forbids starting services
  # (this CI's does); Debian installs none, and a new user's system has
  # none. Removed in the container only (its root is an overlay).
  if [ -e /usr/sbin/policy-rc.d ]; then
    echo "INFO removing this image's /usr/sbin/policy-rc.d in the container (it forbids service starts)"
    rm -f /usr/sbin/policy-rc.d
  fi
  check "apt-get install $deb succeeds" apt-get install -y -q --no-install-recommends "$deb"
  check "the package is installed" eq "$(dpkg-query -W -f='${Status}' unlinkd 2>&1)" "install ok installed"
  for f in /usr/sbin/unlinkd /usr/bin/unlinkctl /lib/systemd/system/unlinkd.service \
           /usr/share/dbus-1/system.d/org.unlinkd.Unlinkd1.conf \
           /usr/share/dbus-1/system-services/org.unlinkd.Unlinkd1.service \
           /usr/share/dbus-1/interfaces/org.unlinkd.Unlinkd1.xml \
           /usr/share/polkit-1/actions/org.unlinkd.Unlinkd1.policy \
           /usr/lib/systemd/catalog/unlinkd.catalog /etc/unlinkd/unlinkd.json \
           /usr/share/man/man8/unlinkd.8.gz /usr/share/man/man1/unlinkctl.1.gz \
           /usr/share/man/man5/unlinkd.json.5.gz /usr/share/bash-completion/completions/unlinkctl; do
    check "the package ships $f" bash -c 'dpkg -L unlinkd | grep -qx "$1"' _ "$f"
  done
  check "/etc/unlinkd/unlinkd.json is a conffile" bash -c 'dpkg-query -W -f="\${Conffiles}" unlinkd | grep -q " /etc/unlinkd/unlinkd.json "'
  # dh_installsystemd: enabled and started by the postinst
  check "installing enabled $UNIT" eq "$(systemctl is-enabled "$UNIT" 2>&1)" enabled
  check "installing started $UNIT" wait_for "$T" active
  check "the bus name $BUS_NAME is owned" wait_for "$T" busctl --system status "$BUS_NAME"
  check "unlinkctl status answers with the attach mode" \
    matches "$(unlinkctl status 2>&1)" '(fentry|kprobe|tracepoint)'
  check "unlinkctl top answers" unlinkctl top
  # the bus picked up the installed policy: a non-root caller may read...
  check "uid 65534 may read over the installed bus policy" \
    setpriv --reuid=65534 --regid=65534 --clear-groups unlinkctl status
  # ...and not reset (refused: by the policy, or by the daemon)
  check "uid 65534 may not reset" bash -c '! setpriv --reuid=65534 --regid=65534 --clear-groups unlinkctl reset'
  # Debian's systemd trigger ran journalctl --update-catalog
  check "the journal catalog knows the deletion entry's MESSAGE_ID" \
    bash -c 'journalctl --list-catalog 1e7a225fb4ed478abe629f4b6b6823ec | grep -qi unlinkd'
  check "man unlinkctl works" bash -c 'MANPAGER=cat MANWIDTH=80 man unlinkctl 2>/dev/null | grep -q "unlinkctl - query and control unlinkd"'
  check "man 8 unlinkd and man 5 unlinkd.json work" \
    bash -c 'MANPAGER=cat man 8 unlinkd 2>/dev/null | grep -q UNLINKD_PATH && MANPAGER=cat man 5 unlinkd.json 2>/dev/null | grep -q max_processes'
  check "the bash completion completes unlinkctl's subcommands and modes" bash -c '
    . /usr/share/bash-completion/completions/unlinkctl
    COMP_WORDS=(unlinkctl mo); COMP_CWORD=1; _unlinkctl; [ "${COMPREPLY[*]}" = mode ] || exit 1
    COMP_WORDS=(unlinkctl mode f); COMP_CWORD=2; _unlinkctl; [ "${COMPREPLY[*]}" = fentry ]'
}

do_remove() {
  local main ids kind id progid left
  systemctl start "$UNIT"
  check "$UNIT runs before the removal" wait_for "$T" active
  main=$(systemctl show -P MainPID "$UNIT")
  ids=$(bpf_fds_of "$main")
  check "the daemon holds BPF programs, links and maps ($(grep -c . <<<"$ids") objects)" \
    bash -c '[[ $1 == *prog* || $1 == *link* ]] && [[ $1 == *map* ]]' _ "$ids"
  check "apt-get remove unlinkd succeeds" apt-get remove -y -q unlinkd
  check "removing stopped $UNIT" inactive
  check "no unlinkd process is left" no_process
  check "/usr/sbin/unlinkd is gone" gone /usr/sbin/unlinkd
  check "/usr/bin/unlinkctl is gone" gone /usr/bin/unlinkctl
  check "no pin is left under /sys/fs/bpf/unlinkd" bash -c '[ ! -e /sys/fs/bpf/unlinkd ] || [ -z "$(ls -A /sys/fs/bpf/unlinkd)" ]'
  left=$(while read -r kind id progid; do
    bpftool "$kind" show id "$id" >/dev/null 2>&1 && echo "$kind $id"
    [ "$kind" = link ] && bpftool prog show id "$progid" >/dev/null 2>&1 && echo "prog $progid"
  done <<<"$ids")
  check "none of the daemon's BPF objects is left (attached or loaded)" eq "$left" ""
  check "/etc/unlinkd stays after remove (conffiles)" test -f /etc/unlinkd/unlinkd.json
  check "apt-get purge unlinkd succeeds" apt-get purge -y -q unlinkd
  check "purging removed /var/lib/unlinkd" gone /var/lib/unlinkd
  check "purging removed /etc/unlinkd" gone /etc/unlinkd
  check "the package is gone" bash -c '! dpkg-query -W -f="\${Status}" unlinkd 2>/dev/null | grep -q installed'
}

case ${1:-} in
  install) [ $# = 2 ] || { echo "usage: $0 install DEB" >&2; exit 2; }; do_install "$2" ;;
  remove) do_remove ;;
  *) echo "usage: $0 install DEB | remove" >&2; exit 2 ;;
esac
if [ "$FAILS" = 0 ]; then echo "RESULT PASS ($CHECKS checks)"; exit 0; fi
echo "RESULT FAIL ($FAILS of $CHECKS checks failed)"
exit 1
