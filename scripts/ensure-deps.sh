#!/usr/bin/env bash
# Makes a fresh checkout runnable: the Debian packages the tests use (installed when running as
# root, otherwise named), and the npm dependencies (npm ci) when node_modules is missing or was
# installed from another package-lock.json. Used by the test, example and bench commands.
set -euo pipefail
cd "$(dirname "$0")/.."

# command the tests run -> the Debian package that has it
declare -A packages=(
  [/usr/sbin/useradd]=passwd [/usr/sbin/chpasswd]=passwd [/usr/bin/gpasswd]=passwd
  [/usr/bin/systemctl]=systemd [/lib/systemd/systemd]=systemd
  [/usr/bin/unshare]=util-linux [/usr/sbin/chroot]=coreutils [/usr/bin/ldd]=libc-bin
  [/usr/bin/genisoimage]=genisoimage [/usr/sbin/mkfs.vfat]=dosfstools [/usr/bin/mcopy]=mtools
  [/usr/bin/etcd]=etcd-server [/usr/bin/dbus-daemon]=dbus-daemon [/usr/bin/openssl]=openssl
  [/usr/sbin/sgdisk]=gdisk [/usr/bin/cgpt]=cgpt [/usr/bin/bzip2]=bzip2 [/usr/sbin/mkfs.ext4]=e2fsprogs
  [/usr/sbin/debugfs]=e2fsprogs [/usr/bin/truncate]=coreutils [/usr/bin/lbzip2]=lbzip2
  [/usr/bin/nc]=netcat-openbsd [/usr/bin/strace]=strace [/usr/bin/python3]=python3
)
# The machine tests (test/machine): building the image and booting it. Installed without their
# recommendations (qemu-system-x86 would bring a GUI, firmware and more that a serial console
# does not need).
declare -A lean=(
  [/usr/bin/mmdebstrap]=mmdebstrap [/usr/bin/qemu-system-x86_64]=qemu-system-x86
)
missing=()
for cmd in "${!packages[@]}"; do
  [ -x "$cmd" ] || missing+=("${packages[$cmd]}")
done
missing_lean=()
for cmd in "${!lean[@]}"; do
  [ -x "$cmd" ] || missing_lean+=("${lean[$cmd]}")
done
if [ $((${#missing[@]} + ${#missing_lean[@]})) -gt 0 ]; then
  if [ ${#missing[@]} -gt 0 ]; then mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u); fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "ensure-deps: installing Debian packages: ${missing[*]} ${missing_lean[*]}" >&2
    apt-get update -qq
    if [ ${#missing[@]} -gt 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; fi
    if [ ${#missing_lean[@]} -gt 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_lean[@]}" >/dev/null; fi
  else
    missing+=("${missing_lean[@]}")
    echo "ensure-deps: missing Debian packages: ${missing[*]} (as root: apt-get install ${missing[*]}); the tests that need them are skipped" >&2
  fi
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "bootsmith needs Node.js ^20.15.0 || >=22.2.0 with npm; install them first (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
stamp=node_modules/.bootsmith-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "ensure-deps: installing npm dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund
  echo "$want" >"$stamp"
fi
