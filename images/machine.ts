/**
 * The bootable machine image (`npm run images -- machine`): Debian's systemd, D-Bus and kernel
 * (images/rootfs.ts, cached), the build machine's node, and bootsmith's programs and units in /usr,
 * laid out as CoreOS lays a disk out: a GPT with EFI-SYSTEM (1), USR-A (3), USR-B (4), OEM (6) and
 * ROOT (9), /usr on USR-A (read-only, version N), everything else on ROOT. The file systems are
 * made by `mkfs.ext4 -d` from directories and copied into the disk with dd: no loop devices, no
 * mounts. Beside the disk: the kernel, the dracut initrd (systemd mounts `root=PARTLABEL=ROOT` and
 * `mount.usr=PARTUUID=...`), boot.json with the kernel command line, and the development key pair
 * whose public half the image trusts for payloads.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { chmodSync, closeSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { attr, createGpt, sectorSize } from '../src/update/gpt';
import { Bzip2Pool } from '../src/update/bzip2';
import { fillUnit } from '../src/apply/install-units';
import { layout, makeKeyPair, publishRelease } from './make';
import { cacheDir, ensureRootfs, pruneCache } from './rootfs';

const mib = 1 << 20;

/** Version N, the one USR-A holds. */
export const machineVersion = '2000.0.0';

/**
 * The releases built beside N, as signed payloads in channels/: N+1, a good one, in stable; N+2 in
 * beta, broken on purpose: its /usr enables a unit that fails, so systemd reports the system
 * `degraded` and update_engine's health gate does not pass on it (a rollback follows).
 */
export const releaseVersions = [
  { version: '2001.0.0', channel: 'stable', broken: false },
  { version: '2002.0.0', channel: 'beta', broken: true },
] as const;

/** The unit that makes N+2 broken. */
export const brokenUnit = 'bootsmith-broken.service';

export interface MachineRelease {
  version: string;
  channel: string;
  broken: boolean;
  /** channels/<channel>/amd64-usr/<version>: the payload, its .sha256, version.txt. */
  dir: string;
  payload: string;
  /** The payload's SHA-256 (hex) and size. */
  sha256: string;
  size: number;
}

/** The programs /usr/bin links to (bin/ of the package, run by the copied node). */
export const programs = ['coreos-cloudinit', 'locksmithctl', 'locksmithd', 'update_engine', 'update_engine_client'];

/** Partition sizes in MiB. USR as Flatcar's (1 GiB); ROOT grows on a real disk, here it is fixed. */
export const sizes = { efi: 64, usr: 1024, oem: 64, root: 1024 };

/**
 * The kernel command line without /usr: the serial console, ROOT by label (read-write), and how
 * /usr is mounted; `usr` is the /usr part with the slot's partition UUID left as `{partuuid}`.
 */
export const bootConfig = {
  cmdline: 'console=ttyS0,115200 root=PARTLABEL=ROOT rootfstype=ext4 rw mount.usrfstype=ext4 mount.usrflags=ro',
  usr: 'mount.usr=PARTUUID={partuuid}',
};

export interface MachineImage {
  dir: string;
  disk: string;
  vmlinuz: string;
  initrd: string;
  bootJson: string;
  privateKey: string;
  publicKey: string;
  channels: string;
  version: string;
  releases: MachineRelease[];
  /** Partition unique GUIDs (upper case, as in the table). */
  partitions: Record<'efi' | 'usrA' | 'usrB' | 'oem' | 'root', string>;
  timings: Record<string, number>;
}

function run(cmd: string, args: string[], what: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * mib });
  if (r.error) throw new Error(`cannot run ${cmd} (${what}): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${what}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** The package's root: where bin/, dist/, schemas/, units/ and services/ are. */
export function packageRoot(from = __dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'units/user-config.target')) && existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`bootsmith's package root is not above ${from}`);
  }
}

/** bootsmith into /usr/lib/bootsmith, its programs linked from /usr/bin, node in /usr/bin. */
function installBootsmith(tree: string, pkg: string, nodeBinary: string): void {
  if (!existsSync(join(pkg, 'dist/coreos-cloudinit.js'))) throw new Error(`${pkg}/dist is not built: run "node scripts/build.mjs" first`);
  const lib = join(tree, 'usr/lib/bootsmith');
  mkdirSync(lib, { recursive: true });
  for (const d of ['bin', 'dist', 'schemas', 'units', 'services']) cpSync(join(pkg, d), join(lib, d), { recursive: true, dereference: true });
  copyFileSync(join(pkg, 'package.json'), join(lib, 'package.json'));
  copyFileSync(nodeBinary, join(tree, 'usr/bin/node'));
  chmodSync(join(tree, 'usr/bin/node'), 0o755);
  for (const p of programs) {
    chmodSync(join(lib, 'bin', `${p}.js`), 0o755);
    rmSync(join(tree, 'usr/bin', p), { force: true });
    symlinkSync(`../lib/bootsmith/bin/${p}.js`, join(tree, 'usr/bin', p));
  }
}

/**
 * Units as a CoreOS image has them: in /usr/lib/systemd/system, enabled by links in /usr (so user
 * data can mask them in /etc): user-config.target (coreos-cloudinit's boot units), update-engine
 * and locksmithd; the bus policy; networkd with DHCP.
 */
function installUnits(tree: string, pkg: string): void {
  const system = join(tree, 'usr/lib/systemd/system');
  const units = join(pkg, 'units');
  const usrBin = (program: string) => `/usr/bin/${program}`;
  for (const name of readdirSync(units)) writeFileSync(join(system, name), fillUnit(readFileSync(join(units, name), 'utf8'), usrBin));
  for (const name of ['update-engine.service', 'locksmithd.service']) writeFileSync(join(system, name), fillUnit(readFileSync(join(pkg, 'services', name), 'utf8'), usrBin));
  mkdirSync(join(tree, 'usr/share/dbus-1/system.d'), { recursive: true });
  copyFileSync(join(pkg, 'services/com.coreos.update1.conf'), join(tree, 'usr/share/dbus-1/system.d/com.coreos.update1.conf'));
  const here = join(pkg, 'images/machine');
  mkdirSync(join(tree, 'usr/lib/systemd/network'), { recursive: true });
  copyFileSync(join(here, 'zz-default.network'), join(tree, 'usr/lib/systemd/network/zz-default.network'));
  const want = (target: string, unit: string) => {
    const dir = join(system, `${target}.wants`);
    mkdirSync(dir, { recursive: true });
    rmSync(join(dir, unit), { force: true });
    symlinkSync(`../${unit}`, join(dir, unit));
  };
  want('multi-user.target', 'user-config.target');
  want('media-configdrive.mount', 'user-configdrive.service');
  want('multi-user.target', 'update-engine.service');
  want('multi-user.target', 'locksmithd.service');
  want('multi-user.target', 'systemd-networkd.service');
  want('sockets.target', 'systemd-networkd.socket');
  want('network-online.target', 'systemd-networkd-wait-online.service');
}

/** Version N's identity in /usr, the update settings' defaults, and the payload key. */
function installRelease(tree: string, version: string, publicKey: string): void {
  writeVersion(tree, version);
  // No update server until user data names one; the channel is stable.
  writeFileSync(join(tree, 'usr/share/coreos/update.conf'), 'GROUP=stable\nSERVER=disabled\nREBOOT_STRATEGY=off\n');
  mkdirSync(join(tree, 'usr/share/update_engine'), { recursive: true });
  writeFileSync(join(tree, 'usr/share/update_engine/update-payload-key.pub.pem'), publicKey);
}

/** The version in /usr: share/coreos/release (what update_engine reports) and lib/os-release. */
function writeVersion(tree: string, version: string): void {
  mkdirSync(join(tree, 'usr/share/coreos'), { recursive: true });
  writeFileSync(join(tree, 'usr/share/coreos/release'), `COREOS_RELEASE_VERSION=${version}\nCOREOS_RELEASE_BOARD=amd64-usr\nCOREOS_RELEASE_APPID={e96281a6-d1af-4bde-9a0a-97b76e56dc57}\n`);
  rmSync(join(tree, 'usr/lib/os-release'), { force: true });
  writeFileSync(
    join(tree, 'usr/lib/os-release'),
    `NAME="Bootsmith Machine"\nID=bootsmith\nID_LIKE=debian\nVERSION=${version}\nVERSION_ID=${version}\nBUILD_ID=${version}\nPRETTY_NAME="Bootsmith Machine ${version}"\n`,
  );
}

/** Breaks a /usr on purpose: a unit that fails, enabled, so the system comes up degraded. */
function installBrokenUnit(usrTree: string): void {
  const system = join(usrTree, 'lib/systemd/system');
  writeFileSync(
    join(system, brokenUnit),
    '# This release is broken on purpose (a test release): the unit fails, systemd reports the system degraded,\n# and update_engine\'s health gate does not pass.\n[Unit]\nDescription=A unit that fails (a broken release)\n\n[Service]\nType=oneshot\nExecStart=/bin/false\n',
  );
  rmSync(join(system, 'multi-user.target.wants', brokenUnit), { force: true });
  symlinkSync(`../${brokenUnit}`, join(system, 'multi-user.target.wants', brokenUnit));
}

/**
 * bzip2 that compresses each distinct chunk once: the USR images of N+1 and N+2 hold the same
 * files as N's, so most of their chunks (and every empty one) are already done.
 */
class RememberingBzip2Pool extends Bzip2Pool {
  private readonly seen = new Map<string, Promise<Buffer>>();

  override compress(data: Buffer): Promise<Buffer> {
    const key = createHash('sha256').update(data).digest('hex');
    let done = this.seen.get(key);
    if (!done) {
      done = super.compress(data);
      this.seen.set(key, done);
    }
    return done;
  }
}

/**
 * What ROOT starts with: an empty machine id (systemd makes one on first boot, and treats the boot
 * as the first), no host name (user data or DHCP gives one), the core user as CoreOS has it.
 */
function prepareRoot(tree: string): void {
  writeFileSync(join(tree, 'etc/machine-id'), '');
  chmodSync(join(tree, 'etc/machine-id'), 0o444);
  rmSync(join(tree, 'var/lib/dbus/machine-id'), { force: true });
  // Debian's housekeeping a CoreOS machine does not do (ext4 scrubs, apt's timers): boots and
  // tests do not wait on them.
  for (const f of ['multi-user.target.wants/e2scrub_reap.service', 'timers.target.wants/e2scrub_all.timer', 'timers.target.wants/apt-daily.timer', 'timers.target.wants/apt-daily-upgrade.timer']) {
    rmSync(join(tree, 'etc/systemd/system', f), { force: true });
  }
  for (const f of ['etc/hostname', 'etc/resolv.conf', 'vmlinuz', 'vmlinuz.old', 'initrd.img', 'initrd.img.old']) rmSync(join(tree, f), { force: true });
  writeFileSync(join(tree, 'etc/hosts'), '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n');
  writeFileSync(join(tree, 'etc/fstab'), '# / and /usr are mounted by the initrd from the kernel command line (root=, mount.usr=)\n');
  const passwd = readFileSync(join(tree, 'etc/passwd'), 'utf8');
  const group = readFileSync(join(tree, 'etc/group'), 'utf8');
  // CoreOS's baselayout: core (500:500), etcd (232:232) and the docker group (233), which user data
  // names in owners and groups.
  if (!/^etcd:/m.test(group)) run('groupadd', ['--root', tree, '--system', '--gid', '232', 'etcd'], 'the etcd group');
  if (!/^etcd:/m.test(passwd)) run('useradd', ['--root', tree, '--system', '--uid', '232', '--gid', '232', '--no-create-home', '--home-dir', '/var/lib/etcd', '--shell', '/usr/sbin/nologin', 'etcd'], 'the etcd user');
  if (!/^docker:/m.test(group)) run('groupadd', ['--root', tree, '--gid', '233', 'docker'], 'the docker group');
  if (!/^core:/m.test(group)) run('groupadd', ['--root', tree, '--gid', '500', 'core'], 'the core group');
  if (!/^core:/m.test(passwd)) {
    run('useradd', ['--root', tree, '--uid', '500', '--gid', '500', '--create-home', '--shell', '/bin/bash', '--comment', 'CoreOS Admin', '--groups', 'systemd-journal,docker', 'core'], 'the core user');
  }
}

/**
 * The kernel modules a QEMU machine with virtio devices loads (and what they depend on): the rest
 * of Debian's modules (more than a third of /usr) only make every payload bigger and every boot slower,
 * as udev loads drivers for the emulated PC's legacy devices (floppy, PC speaker, kvm).
 */
export const keptModules = [
  // virtio: PCI transport, disks, network, entropy, console, balloon
  'virtio_pci', 'virtio_blk', 'virtio_scsi', 'virtio_net', 'virtio_rng', 'virtio_console', 'virtio_balloon',
  // file systems: ROOT and USR (ext4), the config drive (ISO9660), the ESP (vfat), autofs, fuse, overlay
  'ext4', 'isofs', 'vfat', 'nls_cp437', 'nls_ascii', 'nls_utf8', 'nls_iso8859-1', 'autofs4', 'fuse', 'overlay', 'loop',
  // the ACPI power button (logind shuts down on it: the harness's clean poweroff)
  'button',
  // the disks and the CD-ROM class a config drive may come as; the firmware config; input
  'sd_mod', 'sr_mod', 'qemu_fw_cfg', 'efivarfs', 'evdev', 'configfs', 'dm_mod', 'crc32c_generic', 'crc32c-intel',
];

/**
 * Keeps only `keep` (module names) and their dependencies in /usr/lib/modules, and refreshes the
 * module index in the tree with its own depmod.
 */
function trimModules(tree: string, kver: string, keep: readonly string[]): void {
  const dir = join(tree, 'usr/lib/modules', kver);
  const deps = new Map<string, string[]>();
  const byName = new Map<string, string>();
  const nameOf = (path: string) => path.slice(path.lastIndexOf('/') + 1).replace(/\.ko(\.\w+)?$/, '').replace(/-/g, '_');
  for (const line of readFileSync(join(dir, 'modules.dep'), 'utf8').split('\n')) {
    const [mod, rest] = line.split(':');
    if (!mod) continue;
    deps.set(mod, (rest ?? '').trim().split(/\s+/).filter(Boolean));
    byName.set(nameOf(mod), mod);
  }
  const kept = new Set<string>();
  const visit = (mod: string) => {
    if (kept.has(mod)) return;
    kept.add(mod);
    for (const d of deps.get(mod) ?? []) visit(d);
  };
  for (const name of keep) {
    const mod = byName.get(name.replace(/-/g, '_'));
    if (mod) visit(mod);
  }
  for (const mod of deps.keys()) if (!kept.has(mod)) rmSync(join(dir, mod), { force: true });
  run('find', [join(dir, 'kernel'), '-type', 'd', '-empty', '-delete'], 'pruning module directories');
  run('chroot', [tree, 'depmod', kver], 'the module index');
}

/** An ext4 image of `sizeMiB` holding `dir` (owners, modes, links as they are there). */
function mkfs(image: string, dir: string, label: string, sizeMiB: number): void {
  rmSync(image, { force: true });
  run('mkfs.ext4', ['-q', '-F', '-L', label, '-U', randomUUID(), '-E', 'root_owner=0:0', '-d', dir, image, `${sizeMiB}M`], `the ${label} file system`);
}

/** dd, as the image is laid out: `image` at `offset` bytes into `disk`, holes kept. */
function ddInto(disk: string, image: string, offset: number): void {
  run('dd', [`if=${image}`, `of=${disk}`, 'bs=1M', `seek=${offset}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none'], `copying ${image} in`);
}

/** A directory's size in MiB, as du counts it. */
function sizeMiB(dir: string): number {
  return Math.ceil(Number(run('du', ['-s', '--block-size=1M', dir], 'sizing').split('\t')[0]));
}

export interface BuildOptions {
  /** Where the outputs go; default images/out/machine. */
  out: string;
  version: string;
  log: (s: string) => void;
  nodeBinary: string;
  /** Whether to build the releases N+1 and N+2 (releaseVersions) into channels/; default true. */
  releases: boolean;
}

export async function buildMachine(options: Partial<BuildOptions> = {}): Promise<MachineImage> {
  const pkg = packageRoot();
  const out = resolve(options.out ?? join(pkg, 'images/out/machine'));
  const version = options.version ?? machineVersion;
  const log = options.log ?? (() => undefined);
  const timings: Record<string, number> = {};
  let t = Date.now();
  const lap = (name: string) => {
    const now = Date.now();
    timings[name] = (now - t) / 1000;
    log(`${name.padEnd(14)} ${timings[name]!.toFixed(1)} s`);
    t = now;
  };

  const rootfs = ensureRootfs(log);
  lap(rootfs.built ? 'rootfs (built)' : 'rootfs (cache)');

  mkdirSync(cacheDir(), { recursive: true });
  const work = mkdtempSync(join(cacheDir(), 'machine-'));
  try {
    const tree = join(work, 'root');
    run('cp', ['-a', '--reflink=auto', rootfs.dir, tree], 'copying the cached root file system');
    lap('copy');

    mkdirSync(out, { recursive: true });
    const keys = makeKeyPair(out, 'update-key');
    installBootsmith(tree, pkg, options.nodeBinary ?? process.execPath);
    installUnits(tree, pkg);
    installRelease(tree, version, keys.publicKey);
    prepareRoot(tree);
    const kver = rootfs.kernelVersion;
    trimModules(tree, kver, keptModules);
    copyFileSync(join(tree, 'boot', `vmlinuz-${kver}`), join(work, 'vmlinuz'));
    // The initrd uncompressed: inflating it takes the emulated CPU seconds on every boot.
    const initrd = readFileSync(join(tree, 'boot', `initrd.img-${kver}`));
    writeFileSync(join(work, 'initrd.img'), initrd[0] === 0x1f && initrd[1] === 0x8b ? gunzipSync(initrd) : initrd);
    for (const f of readdirSync(join(tree, 'boot'))) rmSync(join(tree, 'boot', f), { recursive: true, force: true });
    // /usr goes to USR-A; ROOT keeps an empty /usr to mount it on.
    const usrTree = join(work, 'usr');
    renameSync(join(tree, 'usr'), usrTree);
    mkdirSync(join(tree, 'usr'));
    chmodSync(join(tree, 'usr'), 0o755);
    lap('install');

    const usrUsed = sizeMiB(usrTree);
    const rootUsed = sizeMiB(tree);
    if (usrUsed > sizes.usr * 0.9) throw new Error(`/usr holds ${usrUsed} MiB, too much for USR-A (${sizes.usr} MiB)`);
    if (rootUsed > sizes.root * 0.5) throw new Error(`ROOT holds ${rootUsed} MiB, too much for ${sizes.root} MiB`);
    mkfs(join(work, 'usr.img'), usrTree, 'USR-A', sizes.usr);
    mkfs(join(work, 'root.img'), tree, 'ROOT', sizes.root);
    const emptyDir = join(work, 'empty');
    mkdirSync(emptyDir);
    mkfs(join(work, 'oem.img'), emptyDir, 'OEM', sizes.oem);
    // The ESP is FAT as on any EFI machine (systemd's gpt-auto mounts it on /boot); empty, as the
    // harness boots the kernel directly.
    run('mkfs.vfat', ['-F', '32', '-n', 'EFI-SYSTEM', '-C', join(work, 'efi.img'), String(sizes.efi * 1024)], 'the EFI-SYSTEM file system');
    lap('mkfs');

    // N+1 and N+2: the same /usr with another version (and N+2 broken), each in an ext4 just big
    // enough (a payload need not fill its slot), as signed payloads in a fresh channel tree.
    const channels = join(out, 'channels');
    rmSync(channels, { recursive: true, force: true });
    mkdirSync(channels, { recursive: true });
    const releases: MachineRelease[] = [];
    if (options.releases !== false) {
      const pool = new RememberingBzip2Pool();
      for (const r of releaseVersions) {
        writeVersion(work, r.version); // work/usr is the /usr tree
        if (r.broken) installBrokenUnit(usrTree);
        const size = Math.min(sizes.usr, Math.ceil((sizeMiB(usrTree) * 1.15 + 48) / 16) * 16);
        const image = join(work, `usr-${r.version}.img`);
        mkfs(image, usrTree, 'USR', size);
        const made = await publishRelease(channels, r.channel, r.version, image, [keys.privateKey], pool);
        rmSync(image, { force: true });
        releases.push({ version: r.version, channel: r.channel, broken: r.broken, dir: made.dir, payload: made.payload.path, sha256: made.payload.sha256, size: made.payload.size });
        lap(`release ${r.version}`);
      }
    }

    // Made beside its final place (the cache may be another file system) and renamed in last.
    const disk = join(out, 'disk.raw.tmp');
    const order: [keyof MachineImage['partitions'], typeof layout.efi, number, string | undefined][] = [
      ['efi', layout.efi, sizes.efi, join(work, 'efi.img')],
      ['usrA', layout.usrA, sizes.usr, join(work, 'usr.img')],
      ['usrB', layout.usrB, sizes.usr, undefined],
      ['oem', layout.oem, sizes.oem, join(work, 'oem.img')],
      ['root', layout.root, sizes.root, join(work, 'root.img')],
    ];
    const total = (1 + order.reduce((n, [, , s]) => n + s, 0) + 1) * mib;
    closeSync(openSync(disk, 'w'));
    run('truncate', ['-s', String(total), disk], 'the disk');
    let lba = BigInt(mib / sectorSize);
    const partitions = {} as MachineImage['partitions'];
    const entries = order.map(([key, p, s, image]) => {
      const firstLba = lba;
      lba += BigInt((s * mib) / sectorSize);
      const uniqueGuid = randomUUID().toUpperCase();
      partitions[key] = uniqueGuid;
      return {
        image,
        entry: {
          number: p.number,
          typeGuid: p.type,
          uniqueGuid,
          name: p.name,
          firstLba,
          lastLba: lba - 1n,
          // USR-A is installed and good; USR-B waits for an update.
          attributes: key === 'usrA' ? attr.with(0n, { priority: 1, tries: 0, successful: true }) : 0n,
        },
      };
    });
    createGpt(disk, randomUUID().toUpperCase(), entries.map((e) => e.entry));
    for (const { image, entry } of entries) if (image) ddInto(disk, image, Number(entry.firstLba) * sectorSize);
    lap('disk');

    // Into place: the disk last, so a half-made output never looks whole.
    const outputs = { vmlinuz: join(out, 'vmlinuz'), initrd: join(out, 'initrd.img'), disk: join(out, 'disk.raw'), bootJson: join(out, 'boot.json') };
    copyFileSync(join(work, 'vmlinuz'), outputs.vmlinuz);
    copyFileSync(join(work, 'initrd.img'), outputs.initrd);
    writeFileSync(outputs.bootJson, `${JSON.stringify(bootConfig, null, 2)}\n`);
    writeFileSync(join(out, 'image.json'), `${JSON.stringify({ version, kernel: kver, rootfs: rootfs.dir, partitions, releases }, null, 2)}\n`);
    rmSync(outputs.disk, { force: true });
    renameSync(disk, outputs.disk);
    lap('outputs');
    // The build went through: the cache can let go of what no build has used for a day. A failure
    // there is said, and does not fail the build.
    try {
      const pruned = pruneCache();
      if (pruned.length > 0) log(`pruned from ${cacheDir()}: ${pruned.join(', ')}`);
    } catch (err) {
      log(`pruning ${cacheDir()} failed: ${(err as Error).message}`);
    }
    return {
      dir: out,
      ...outputs,
      privateKey: keys.privatePath,
      publicKey: keys.publicPath,
      channels,
      version,
      releases,
      partitions,
      timings,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(join(out, 'disk.raw.tmp'), { force: true });
  }
}

/** The image in `dir` as built, if it is there. */
export function readMachineImage(dir: string): { version: string; partitions: MachineImage['partitions']; releases?: MachineRelease[] } | undefined {
  try {
    if (!statSync(join(dir, 'disk.raw')).isFile()) return undefined;
    return JSON.parse(readFileSync(join(dir, 'image.json'), 'utf8')) as { version: string; partitions: MachineImage['partitions']; releases?: MachineRelease[] };
  } catch {
    return undefined;
  }
}
