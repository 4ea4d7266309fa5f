#!/bin/bash
# Installs what building and testing unlinkd needs, from Debian 12's
# packages. Idempotent: when everything is installed it changes nothing and
# does not touch the network.
set -euo pipefail
packages=(
  # build
  meson ninja-build pkg-config g++ clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev
  libsystemd-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libsdbus-c++-dev libsdbus-c++-bin
  # unlinkd-monitor (GTK 4; gdbus-codegen) and its test: an X server, a font
  libgtkmm-4.0-dev libglib2.0-dev-bin xvfb xauth fonts-dejavu-core
  # man pages
  scdoc
  # the Debian package (packaging/build-deb.sh) and its test: man in the container
  dpkg-dev debhelper lintian man-db
  # tests
  catch2 liburing-dev util-linux procps dbus-daemon python3 jq
  # the fuzzers (libFuzzer and the sanitizer runtimes for clang 14) and valgrind (tests/fuzz, tests/sanitize)
  libclang-rt-14-dev valgrind
  # the metrics test's real engines: Prometheus and promtool, journal-upload
  # and journal-remote, curl as the HTTP client
  prometheus systemd-journal-remote curl
  # systemd's dbus.service for the container's system bus (tests/systemd)
  dbus
  # systemd as PID 1 in a container (tests/systemd); the real polkitd that
  # authorizes non-root callers there; xmllint checks the polkit action file
  systemd-container polkitd libxml2-utils
  # the qemu guest of the vm suite (tests/vm)
  qemu-system-x86 busybox-static cpio debootstrap e2fsprogs kmod xz-utils zstd file
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}"
