/**
 * The Debian root file system of the machine image, made by mmdebstrap (as root) and cached outside
 * the repository under $XDG_CACHE_HOME/bootsmith/ (default ~/.cache/bootsmith), keyed by everything
 * that goes into it: the suite, the mirrors, the package list, the dracut settings and the hooks.
 * The cached tree holds the kernel and the dracut initrd in /boot; bootsmith itself is added per
 * build (images/machine.ts), so a change to the programs never rebuilds the Debian part.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const suite = 'bookworm';
export const mirrors = [
  'deb http://deb.debian.org/debian bookworm main',
  'deb http://deb.debian.org/debian bookworm-updates main',
  'deb http://deb.debian.org/debian-security bookworm-security main',
];

/**
 * On top of minbase: the init system, the device manager, the bus, module loading, the initrd
 * builder, a kernel; and what bootsmith runs on the machine: shadow's tools (passwd) for users,
 * bzip2 for payloads, libstdc++ for node (apt already pulls it into minbase; named so it stays).
 * iproute2 is for whoever looks at the machine from the serial console.
 */
export const packages = ['systemd', 'systemd-sysv', 'udev', 'dbus', 'kmod', 'dracut', 'linux-image-amd64', 'passwd', 'bzip2', 'libstdc++6', 'e2fsprogs', 'iproute2'];

/**
 * dracut, written before any package is installed so the initrd the kernel's postinst makes is
 * already ours: generic (not host-only: it is built in a chroot), with systemd, and only the
 * drivers a QEMU machine needs to reach ROOT and USR (virtio disks, ext4).
 */
export const dracutConf = `# bootsmith: an initrd for QEMU machines with virtio disks; systemd mounts root= and mount.usr=
hostonly="no"
compress="gzip"
add_dracutmodules+=" systemd "
omit_dracutmodules+=" plymouth i18n network network-legacy network-manager nfs iscsi lvm mdraid crypt dmraid multipath btrfs "
drivers+=" virtio_pci virtio_blk virtio_scsi sd_mod ext4 crc32c_generic "
`;

/** Kernel module trees a virtual machine never loads; dropped to keep USR small. */
const unusedModuleDirs = [
  'drivers/gpu', 'drivers/media', 'drivers/net/wireless', 'drivers/net/ethernet', 'drivers/infiniband', 'drivers/staging',
  'drivers/bluetooth', 'drivers/iio', 'drivers/usb', 'drivers/hid', 'drivers/isdn', 'drivers/mtd', 'drivers/video',
  'drivers/misc', 'drivers/nfc', 'drivers/platform', 'drivers/input/touchscreen', 'drivers/input/joystick', 'drivers/scsi/qla2xxx',
  'drivers/scsi/lpfc', 'drivers/scsi/mpt3sas', 'drivers/scsi/megaraid', 'drivers/scsi/be2iscsi', 'drivers/scsi/bfa', 'drivers/hwmon',
  'drivers/thunderbolt', 'drivers/md', 'drivers/atm', 'drivers/net/can', 'drivers/net/usb', 'drivers/ata', 'drivers/edac',
  'sound', 'net/wireless', 'net/mac80211', 'net/bluetooth', 'net/netfilter', 'net/sunrpc', 'fs/nfs', 'fs/ocfs2', 'fs/btrfs', 'fs/xfs',
  'fs/ceph', 'fs/smb', 'fs/nfsd', 'fs/gfs2', 'fs/f2fs', 'fs/bcachefs', 'fs/jfs', 'fs/reiserfs', 'fs/ubifs',
];

/** Runs in the new root after the packages: trims modules and docs, makes sure the initrd is there. */
const customizeScript = `set -eu
root="$1"
kver=$(ls "$root/usr/lib/modules" | head -n1)
for d in ${unusedModuleDirs.join(' ')}; do rm -rf "$root/usr/lib/modules/$kver/kernel/$d"; done
chroot "$root" depmod "$kver"
rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/locale" "$root/var/cache/apt"/*.bin "$root/var/lib/apt/lists"/*_Packages
[ -f "$root/boot/initrd.img-$kver" ] || chroot "$root" dracut --force --kver "$kver" "/boot/initrd.img-$kver"
ls -l "$root/boot"
`;

const setupScript = `set -eu
mkdir -p "$1/etc/dracut.conf.d"
cat >"$1/etc/dracut.conf.d/10-bootsmith.conf" <<'EOF'
${dracutConf}EOF
`;

/**
 * The cache's own names: a tree per key and its stamp (written once the tree is whole, touched on
 * every use), mmdebstrap's work tree and hooks (`.tmp-PID`), a stamp being pruned (`.tmp-PID.stamp`),
 * images/machine.ts's work directories (mkdtemp's `machine-XXXXXX`), and the pruner's lock.
 * Nothing else in the cache directory is ever removed.
 */
const cacheNames = {
  tree: /^rootfs-([0-9a-f]{16})$/,
  stamp: /^rootfs-([0-9a-f]{16})\.complete$/,
  work: /^(rootfs-[0-9a-f]{16}\.tmp-\d+(\.hooks|\.stamp)?|machine-[A-Za-z0-9]{6})$/,
  lock: 'prune.lock',
};

/** How long an unused entry is kept: a build (or another checkout's) may be using it. */
export const cacheKeepMs = 24 * 60 * 60 * 1000;

export function cacheDir(): string {
  return join(process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'bootsmith');
}

/** What the cached tree depends on; a change to any of it makes a new tree. */
export function rootfsKey(): string {
  const h = createHash('sha256').update(JSON.stringify({ suite, mirrors, packages, setupScript, customizeScript, variant: 'minbase' }));
  return h.digest('hex').slice(0, 16);
}

/**
 * Whether the tree `dir` is cached and whole; marks it used (its stamp's time), so that pruning
 * by another build keeps it. A stamp that vanishes meanwhile (pruned) means not cached.
 */
function useCached(dir: string): boolean {
  const now = new Date();
  try {
    utimesSync(`${dir}.complete`, now, now);
    return true;
  } catch {
    return false;
  }
}

export interface PruneOptions {
  /** The cache directory; default cacheDir(). */
  base: string;
  /** The key in use, never removed; default rootfsKey(). */
  key: string;
  /** Entries used or changed within this many milliseconds are kept; default cacheKeepMs. */
  keepMs: number;
  now: number;
}

/**
 * Removes what the cache no longer needs, after a successful build: trees of other keys (with
 * their stamps) unused for `keepMs`, and leftovers of interrupted builds unchanged for as long.
 * Never the current key's tree, nor anything the cache does not name as its own, nor a symbolic
 * link. One pruner at a time (an exclusive lock file; a build that finds it held skips pruning).
 * A stamp is claimed by renaming it before its time is read, so a build marking that tree used at
 * the same moment either finds no stamp (and builds its own tree) or leaves a fresh time, and the
 * stamp is put back. Returns the names removed.
 */
export function pruneCache(options: Partial<PruneOptions> = {}): string[] {
  const base = options.base ?? cacheDir();
  const key = options.key ?? rootfsKey();
  const keepMs = options.keepMs ?? cacheKeepMs;
  const now = options.now ?? Date.now();
  const removed: string[] = [];
  const lock = join(base, cacheNames.lock);
  try {
    closeSync(openSync(lock, 'wx'));
  } catch (err) {
    // Held by another build, or there is no cache; a lock left by a pruner that died goes after a day.
    const held = lstatSync(lock, { throwIfNoEntry: false });
    if (held?.isFile() && now - held.mtimeMs > keepMs) rmSync(lock, { force: true });
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST' && (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return removed;
  }
  try {
    const unused = (name: string) => {
      const entry = lstatSync(join(base, name), { throwIfNoEntry: false });
      return entry !== undefined && !entry.isSymbolicLink() && now - entry.mtimeMs > keepMs;
    };
    const remove = (name: string) => {
      rmSync(join(base, name), { recursive: true, force: true });
      removed.push(name);
    };
    for (const name of readdirSync(base)) {
      const k = cacheNames.stamp.exec(name)?.[1];
      if (!k || k === key || !lstatSync(join(base, name)).isFile()) continue;
      const claimed = `rootfs-${k}.tmp-${process.pid}.stamp`;
      renameSync(join(base, name), join(base, claimed));
      if (unused(claimed)) {
        rmSync(join(base, claimed));
        removed.push(name);
      } else renameSync(join(base, claimed), join(base, name));
    }
    // Trees left without a stamp (pruned just now, or a build stopped before writing it) and
    // leftovers of builds, by their own time.
    for (const name of readdirSync(base)) {
      const k = cacheNames.tree.exec(name)?.[1];
      const orphan = k !== undefined && k !== key && !existsSync(join(base, `${name}.complete`));
      if ((orphan || cacheNames.work.test(name)) && unused(name)) remove(name);
    }
  } finally {
    rmSync(lock, { force: true });
  }
  return removed;
}

export interface Rootfs {
  /** The tree (owned by root, modes and owners as Debian made them); never change it: copy it. */
  dir: string;
  kernelVersion: string;
  /** Whether this call built it (false: it came from the cache). */
  built: boolean;
}

/** The cached tree for the current key, built with mmdebstrap when missing. Needs root. */
export function ensureRootfs(log: (s: string) => void = () => undefined): Rootfs {
  const base = cacheDir();
  const dir = join(base, `rootfs-${rootfsKey()}`);
  let built = false;
  if (!useCached(dir)) {
    if (process.getuid?.() !== 0) throw new Error('building the machine root file system needs root (mmdebstrap, chroot)');
    mkdirSync(base, { recursive: true });
    const work = `${dir}.tmp-${process.pid}`;
    rmSync(work, { recursive: true, force: true });
    const hooks = `${work}.hooks`;
    mkdirSync(hooks, { recursive: true });
    writeFileSync(join(hooks, 'setup.sh'), setupScript);
    writeFileSync(join(hooks, 'customize.sh'), customizeScript);
    log(`mmdebstrap ${suite} (minbase + ${packages.join(', ')}) into ${work}`);
    const r = spawnSync(
      'mmdebstrap',
      [
        '--variant=minbase',
        `--include=${packages.join(',')}`,
        '--dpkgopt=path-exclude=/usr/share/doc/*',
        '--dpkgopt=path-exclude=/usr/share/man/*',
        '--dpkgopt=path-exclude=/usr/share/locale/*',
        `--setup-hook=sh ${join(hooks, 'setup.sh')} "$1"`,
        `--customize-hook=sh ${join(hooks, 'customize.sh')} "$1"`,
        suite,
        work,
        ...mirrors,
      ],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    rmSync(hooks, { recursive: true, force: true });
    if (r.error) throw new Error(`cannot run mmdebstrap (Debian package mmdebstrap): ${r.error.message}`);
    if (r.status !== 0) {
      rmSync(work, { recursive: true, force: true });
      throw new Error(`mmdebstrap failed with status ${r.status}`);
    }
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
    writeFileSync(`${dir}.complete`, `${new Date().toISOString()}\n`);
    built = true;
  }
  const kernelVersion = readdirSync(join(dir, 'usr/lib/modules'))[0];
  if (!kernelVersion) throw new Error(`${dir} has no kernel modules`);
  return { dir, kernelVersion, built };
}
