#!/bin/bash
# The journal sink against a real systemd-journald that only this mount
# namespace sees (the machine's own journal, if any, is untouched).
#   journal-test.sh UNLINKD_BIN SOURCE_DIR     (as root)
# Checks: one entry per deletion with every UNLINKD_* field, exact for a known
# workload; the "N not logged" entry past 200 a second, with logged + not
# logged == deletions; the catalog text through journalctl -x; the summary
# entry written at stop.
set -euo pipefail
BIN=$(realpath "$1"); SRC=$(realpath "$2")
if [ -z "${UNLINKD_JOURNAL_NS:-}" ]; then
  exec env UNLINKD_JOURNAL_NS=1 unshare --mount --propagation private "$0" "$@"
fi
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }

# A private journald: /run/systemd and /run/log hidden under tmpfs, volatile
# storage, no rate limit (this test counts entries).
mountpoint -q /run || mount --bind /run /run
mount -t tmpfs -o mode=755 tmpfs /run/systemd
mount -t tmpfs -o mode=755 tmpfs /run/log
mkdir -p /run/systemd/journald.conf.d
printf '[Journal]\nStorage=volatile\nReadKMsg=no\nRateLimitBurst=0\n' > /run/systemd/journald.conf.d/50-test.conf
# The catalog: the system's plus ours, in a private database.
CAT=$(mktemp -d); cp -a /usr/lib/systemd/catalog/. "$CAT/" 2>/dev/null || true
cp "$SRC/systemd/unlinkd.catalog" "$CAT/"
mkdir -p /usr/lib/systemd/catalog /var/lib/systemd/catalog
mount --bind "$CAT" /usr/lib/systemd/catalog
mount -t tmpfs tmpfs /var/lib/systemd/catalog
journalctl --update-catalog

/lib/systemd/systemd-journald & JPID=$!
T=$(mktemp -d /tmp/unlinkd-journal-XXXXXX); mount -t tmpfs tmpfs "$T"
DPID=
cleanup() { [ -z "$DPID" ] || { kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null || true; }
            kill "$JPID"; wait "$JPID" 2>/dev/null || true; umount "$T"; rmdir "$T"; rm -rf "$CAT"; }
trap cleanup EXIT
for _ in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
[ -S /run/systemd/journal/socket ] || { echo "journald did not start"; exit 1; }

# The daemon without --foreground writes to the journal.
"$BIN" --filter=comm=ulk-jrnl --bus-address=unix:path=/nonexistent 2>"$T/daemon.err" & DPID=$!
for _ in $(seq 600); do grep -q "attached in" "$T/daemon.err" && break; sleep 0.05; done
grep -q "attached in" "$T/daemon.err" || { cat "$T/daemon.err"; exit 1; }

# Workload: coreutils rm named ulk-jrnl (comm comes from the file name).
cp /usr/bin/rm "$T/ulk-jrnl"
touch "$T/a" "$T/b" "$T/c"
(cd "$T" && ./ulk-jrnl "$T/a" b ./c)
"$T/ulk-jrnl" "$T/missing" 2>/dev/null || true
for _ in $(seq 100); do [ "$(journalctl -q -o cat UNLINKD_COMM=ulk-jrnl | wc -l)" -ge 4 ] && break; sleep 0.05; done
journalctl -q -o json UNLINKD_COMM=ulk-jrnl > "$T/entries.json"
check "4 entries for the workload" '[ "$(wc -l < "$T/entries.json")" = 4 ]'
/usr/bin/python3 - "$T" <<'PY' || fail=1
import json, sys, errno
t = sys.argv[1]
rows = [json.loads(l) for l in open(t + "/entries.json")]
want = [(t + "/a", t + "/a", "0"), (t + "/b", "b", "0"), (t + "/c", "./c", "0"),
        (t + "/missing", t + "/missing", str(-errno.ENOENT))]
ok = True
for r, (path, given, result) in zip(rows, want):
    checks = {
        "MESSAGE_ID": r.get("MESSAGE_ID") == "1e7a225fb4ed478abe629f4b6b6823ec",
        "PRIORITY": r.get("PRIORITY") == "6",
        "UNLINKD_PATH": r.get("UNLINKD_PATH") == path,
        "UNLINKD_PATH_AS_GIVEN": r.get("UNLINKD_PATH_AS_GIVEN") == given,
        "UNLINKD_RESULT": r.get("UNLINKD_RESULT") == result,
        "UNLINKD_UID": r.get("UNLINKD_UID") == "0",
        "UNLINKD_GID": r.get("UNLINKD_GID") == "0",
        "UNLINKD_COMM": r.get("UNLINKD_COMM") == "ulk-jrnl",
        "UNLINKD_MODE": r.get("UNLINKD_MODE") in ("fentry", "kprobe", "tracepoint"),
        "fields": all(k in r for k in ("UNLINKD_PID", "UNLINKD_TID", "UNLINKD_PPID", "UNLINKD_UNIT")),
        "MESSAGE": r.get("MESSAGE", "").startswith("ulk-jrnl[" + r.get("UNLINKD_PID", "?") + "] uid=0 ")
                   and r.get("MESSAGE", "").endswith(path if result == "0" else path + ": ENOENT"),
    }
    for name, good in checks.items():
        print(("ok   " if good else "FAIL ") + path + " " + name + ("" if good else ": " + json.dumps(r)[:300]))
        ok &= good
sys.exit(0 if ok else 1)
PY

# Past 200 a second: one "not logged" entry per second, nothing lost in the sum.
mkdir "$T/many"; (cd "$T/many" && touch $(seq 1 600))
(cd "$T/many" && ../ulk-jrnl -- *)
sleep 2.5
logged=$(journalctl -q -o cat UNLINKD_COMM=ulk-jrnl | grep -c "/many/" || true)
not_logged=$(journalctl -q -o export MESSAGE_ID=56dd6baa98ba4f23bfa30e9b04725d50 | sed -n 's/^UNLINKD_NOT_LOGGED=//p' | paste -sd+ | bc)
echo "storm of 600: logged=$logged not_logged=$not_logged"
check "at most 200 logged per one-second window (the storm spans at most two)" '[ "$logged" -le 400 ] && [ "$logged" -gt 0 ]'
check "logged + not logged == 600" '[ $((logged + not_logged)) = 600 ]'
check "the not-logged entry says so" 'journalctl -q -o cat MESSAGE_ID=56dd6baa98ba4f23bfa30e9b04725d50 | grep -q "deletions not logged"'
journalctl -q -x -n 3 UNLINKD_COMM=ulk-jrnl > "$T/x.txt" 2>&1 || true; head -c 1500 "$T/x.txt"
check "journalctl -x explains a deletion entry" 'grep -q "asked the" "$T/x.txt"'

# At stop, the summary entry: this run's exact counts (the filter keeps them
# to the workload: 3 + 600 deleted, 1 failed).
kill "$DPID"; wait "$DPID" || true; DPID=
summary=$(journalctl -q -o export MESSAGE_ID=56dd6baa98ba4f23bfa30e9b04725d50 UNLINKD_TOTAL_DELETES=603 | sed -n 's/^\(UNLINKD_DELETES\|UNLINKD_FAILURES\|UNLINKD_TOTAL_FAILURES\)=/\1 /p' | sort | paste -sd' ')
echo "summary entry: $summary"
check "the summary entry at stop has the exact counts" '[ "$summary" = "UNLINKD_DELETES 603 UNLINKD_FAILURES 1 UNLINKD_TOTAL_FAILURES 1" ]'
echo "journal: $([ $fail = 0 ] && echo PASS || echo FAIL)"
exit $fail
