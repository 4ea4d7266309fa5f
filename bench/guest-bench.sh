#!/bin/bash
# Runs inside the qemu guest of `tests/vm/run-vm-suite.sh` (step "guest",
# started by `bench/run.sh --guest`): Debian 12's stock kernel, systemd as
# PID 1 with its own journald, where fentry and kprobe load. Runs
# bench/driver.sh on the binaries copied to /opt/unlinkd-bench and reports
# on the serial console, which the host greps:
#   VMBENCH RAW <json>        one line of the driver's raw.jsonl
#   VMBENCH RESULT PASS|FAIL  last line; then the guest powers off
set -uo pipefail
B=/opt/unlinkd-bench
exec > /dev/console 2>&1
# The knobs the host chose (BENCH_PAIRS, BENCH_COUNT, ...), as `export -p`
# lines.
. "$B/bench.env"
echo "VMBENCH KERNEL $(uname -r) cpus=$(nproc)"
rc=0
bash "$B/src/bench/driver.sh" "$B/build" "$B/src" /var/tmp/unlinkd-bench || rc=$?
# Lines are printed one by one with a prefix so the host can pick them out of
# the console log (systemd's own console messages may come in between).
if [ -f /var/tmp/unlinkd-bench/raw.jsonl ]; then
  while IFS= read -r line; do echo "VMBENCH RAW $line"; done < /var/tmp/unlinkd-bench/raw.jsonl
fi
if [ "$rc" = 0 ]; then echo "VMBENCH RESULT PASS"; else echo "VMBENCH RESULT FAIL (driver exit $rc)"; fi
sync
systemctl poweroff -f
