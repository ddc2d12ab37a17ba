#!/usr/bin/env bash
# Runs a shell command beside a real systemd user manager, in a private mount namespace so nothing
# leaks to the host: run as `unshare -m bash systemd-user.sh 'COMMAND'`. /run, /etc/systemd/user
# and ~/.config/systemd/user are fresh tmpfs mounts; the manager's bus is at
# unix:path=/run/user/0/bus (also in $SYSTEMD_BUS for the command).
set -euo pipefail
mount --make-rprivate /
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/system /run/systemd/user /run/user/0 /etc/systemd/user "$HOME/.config/systemd/user"
mount -t tmpfs tmpfs /etc/systemd/user
mount -t tmpfs tmpfs "$HOME/.config/systemd/user"
export XDG_RUNTIME_DIR=/run/user/0
export SYSTEMD_BUS=unix:path=/run/user/0/bus
export DBUS_SESSION_BUS_ADDRESS=$SYSTEMD_BUS
/lib/systemd/systemd --user >/run/systemd-user.log 2>&1 &
manager=$!
trap 'kill $manager 2>/dev/null; wait $manager 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  state=$(systemctl --user is-system-running 2>/dev/null || true)
  case "$state" in running|degraded) break ;; esac
  sleep 0.1
done
bash -c "$1"
