#!/usr/bin/env bash
# Boots one machine from the image (npm run machine -- [USER_DATA]): builds the image when it is
# missing (images/out/machine, as root), gives the machine its own disk in $BOOTSMITH_MACHINE_DIR
# (default /tmp/bootsmith-machine; kept between runs, so a second run is the machine's second
# boot; a rebuilt image gives a fresh one), puts USER_DATA (default examples/machine.yaml, which
# logs root in on the console) on a config drive, runs gptprio on the disk as a boot loader would,
# and starts QEMU with the serial console on this terminal (poweroff in the guest, or Ctrl-A X,
# quits). A reboot in the guest ends QEMU: run again to boot it again.
set -euo pipefail
cd "$(dirname "$0")/.."
image=images/out/machine
user_data=${1:-examples/machine.yaml}
dir=${BOOTSMITH_MACHINE_DIR:-/tmp/bootsmith-machine}
[ -f "$image/disk.raw" ] || npm run --silent images -- machine
mkdir -p "$dir/drive/openstack/latest"
if [ ! -f "$dir/disk.raw" ] || [ "$image/disk.raw" -nt "$dir/disk.raw" ]; then
  echo "a fresh machine in $dir (its first boot)" >&2
  cp --sparse=always "$image/disk.raw" "$dir/disk.raw"
fi
cp "$user_data" "$dir/drive/openstack/latest/user_data"
echo '{"uuid": "bootsmith-demo", "hostname": "bootsmith-demo"}' >"$dir/drive/openstack/latest/meta_data.json"
# QEMU's user network gives the guest 10.0.2.15: the config drive says so, for $private_ipv4.
echo '{"networks": [{"id": "net0", "type": "ipv4", "ip_address": "10.0.2.15", "netmask": "255.255.255.0"}]}' >"$dir/drive/openstack/latest/network_data.json"
genisoimage -quiet -R -J -V config-2 -o "$dir/config-drive.iso" "$dir/drive"
partuuid=$(node bin/update_engine_client.js --boot-next "$dir/disk.raw" | sed -n 's/^PARTUUID=//p' | tr 'A-F' 'a-f')
cmdline=$(node -e 'const b = require(process.argv[1]); console.log(`${b.cmdline} ${b.usr.replace("{partuuid}", process.argv[2])}`)' "$PWD/$image/boot.json" "$partuuid")
echo "booting USR partition $partuuid with $user_data; the serial console follows (poweroff in the guest, or Ctrl-A X, quits)" >&2
exec qemu-system-x86_64 -accel tcg,thread=multi -cpu max -machine pc -nodefaults -vga none -smp 2 -m 1024 \
  -display none -no-reboot -serial mon:stdio \
  -kernel "$image/vmlinuz" -initrd "$image/initrd.img" -append "$cmdline" \
  -drive "file=$dir/disk.raw,format=raw,if=virtio" \
  -drive "file=$dir/config-drive.iso,format=raw,if=virtio,readonly=on" \
  -netdev user,id=net0,restrict=on -device virtio-net-pci,netdev=net0,romfile=
