/**
 * Builds what the update tests and demos need (`npm run images`; output under images/out, never
 * committed): a development RSA key pair made on the fly, USR filesystem images (ext4, made
 * without root by mkfs.ext4 -d) holding /usr/share/coreos/release and /usr/lib/os-release with a
 * version, a sparse GPT disk with the CoreOS layout whose USR-A holds the installed version, signed
 * payloads made from the images, and a channel tree alpha/beta/stable laid out as Flatcar's
 * release server is (<channel>/amd64-usr/<version>/flatcar_production_update.gz, .sha256,
 * version.txt, and current/).
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Command } from 'commander';
import { createGpt, sectorSize } from '../src/update/gpt';
import { attr } from '../src/update/gpt';
import { usrTypeGuid } from '../src/update/slots';
import { makePayload } from '../src/update/make-payload';
import type { MadePayload } from '../src/update/make-payload';
import type { Bzip2Pool } from '../src/update/bzip2';
import { parseArgs } from '../src/cli/options';
import { buildMachine } from './machine';

const mib = 1 << 20;

export interface KeyPair {
  privateKey: string;
  publicKey: string;
}

export function makeKeyPair(dir: string, name = 'dev-update-key'): KeyPair & { privatePath: string; publicPath: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  mkdirSync(dir, { recursive: true });
  const privatePath = join(dir, `${name}.pem`);
  const publicPath = join(dir, `${name}.pub.pem`);
  writeFileSync(privatePath, privateKey, { mode: 0o600 });
  writeFileSync(publicPath, publicKey);
  return { privateKey, publicKey, privatePath, publicPath };
}

/** Deterministic filler: text-like runs (compresses well), or dense (16 symbols at random: about half). */
function filler(bytes: number, seed: number, dense: boolean): Buffer {
  const out = Buffer.alloc(bytes);
  let x = seed >>> 0 || 1;
  if (dense) {
    for (let i = 0; i < bytes; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[i] = 0x40 + ((x >>> 7) & 15);
    }
    return out;
  }
  const words = ['lib', 'systemd', 'usr', 'share', 'locale', 'module', 'kernel', 'firmware', 'etc', 'bin', '\n', ' ', '=', '/', '0x'];
  for (let i = 0; i < bytes; ) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    if (x % 3 === 0) {
      out[i++] = x & 0xff; // a random byte now and then
    } else {
      i += out.write(words[x % words.length]!, i);
    }
  }
  return out;
}

/** An ext4 image of `sizeMiB` holding a USR tree with `version`; `dense` filler compresses to about half, like binaries. */
export function makeUsrImage(path: string, version: string, sizeMiB = 24, fillMiB = 4, dense = false, files: Record<string, string> = {}): void {
  const stage = mkdtempSync(join(tmpdir(), 'bootsmith-usr-'));
  try {
    mkdirSync(join(stage, 'share/coreos'), { recursive: true });
    mkdirSync(join(stage, 'lib'), { recursive: true });
    mkdirSync(join(stage, 'share/bootsmith'), { recursive: true });
    writeFileSync(join(stage, 'share/coreos/release'), `COREOS_RELEASE_VERSION=${version}\nCOREOS_RELEASE_BOARD=amd64-usr\nCOREOS_RELEASE_APPID={e96281a6-d1af-4bde-9a0a-97b76e56dc57}\n`);
    writeFileSync(join(stage, 'lib/os-release'), `NAME="Bootsmith Demo Linux"\nID=bootsmith\nVERSION=${version}\nVERSION_ID=${version}\nPRETTY_NAME="Bootsmith Demo Linux ${version}"\n`);
    const seed = [...version].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
    writeFileSync(join(stage, 'share/bootsmith/filler'), filler(fillMiB * mib, seed, dense));
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(dirname(join(stage, name)), { recursive: true });
      writeFileSync(join(stage, name), text);
    }
    rmSync(path, { force: true });
    const r = spawnSync('mkfs.ext4', ['-q', '-F', '-L', 'USR', '-U', randomUUID(), '-E', 'root_owner=0:0', '-d', stage, path, `${sizeMiB}M`], { encoding: 'utf8' });
    if (r.error) throw new Error(`cannot run mkfs.ext4 (package e2fsprogs): ${r.error.message}`);
    if (r.status !== 0) throw new Error(`mkfs.ext4 failed: ${r.stderr.trim()}`);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

export const layout = {
  efi: { number: 1, name: 'EFI-SYSTEM', type: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B' },
  biosBoot: { number: 2, name: 'BIOS-BOOT', type: '21686148-6449-6E6F-744E-656564454649' },
  usrA: { number: 3, name: 'USR-A', type: usrTypeGuid },
  usrB: { number: 4, name: 'USR-B', type: usrTypeGuid },
  oem: { number: 6, name: 'OEM', type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4' },
  root: { number: 9, name: 'ROOT', type: '3884DD41-8582-4404-B9A8-E9B84F2DF50E' },
};

/**
 * A sparse disk image with the CoreOS layout: EFI-SYSTEM 8 MiB, BIOS-BOOT 1 MiB, USR-A and USR-B of
 * `usrMiB`, OEM 8 MiB, ROOT 16 MiB. USR-A is the installed slot (priority 1, successful) and holds
 * `usrImage` when given; USR-B is empty and unbootable.
 */
export function makeDisk(path: string, usrMiB = 32, usrImage?: string): void {
  const sizes: [typeof layout.efi, number][] = [
    [layout.efi, 8],
    [layout.biosBoot, 1],
    [layout.usrA, usrMiB],
    [layout.usrB, usrMiB],
    [layout.oem, 8],
    [layout.root, 16],
  ];
  const total = (1 + sizes.reduce((n, [, s]) => n + s, 0) + 1) * mib;
  rmSync(path, { force: true });
  closeSync(openSync(path, 'w'));
  spawnSync('truncate', ['-s', String(total), path]);
  let lba = BigInt(mib / sectorSize);
  const partitions = sizes.map(([p, s]) => {
    const firstLba = lba;
    lba += BigInt((s * mib) / sectorSize);
    return {
      number: p.number,
      typeGuid: p.type,
      uniqueGuid: randomUUID().toUpperCase(),
      name: p.name,
      firstLba,
      lastLba: lba - 1n,
      attributes: p === layout.usrA ? attr.with(0n, { priority: 1, tries: 0, successful: true }) : 0n,
    };
  });
  createGpt(path, randomUUID().toUpperCase(), partitions);
  if (usrImage) {
    const usrA = partitions.find((p) => p.number === layout.usrA.number)!;
    const src = openSync(usrImage, 'r');
    const dst = openSync(path, 'r+');
    try {
      const buf = Buffer.alloc(mib);
      for (let at = 0; ; at += buf.length) {
        const n = readSync(src, buf, 0, buf.length, at);
        if (n === 0) break;
        if (at + n > usrMiB * mib) throw new Error(`${usrImage} does not fit in USR-A (${usrMiB} MiB)`);
        writeSync(dst, buf, 0, n, Number(usrA.firstLba) * sectorSize + at);
      }
    } finally {
      closeSync(src);
      closeSync(dst);
    }
  }
}

export const channelVersions = { stable: '1001.1.0', beta: '1002.1.0', alpha: '1003.0.0' } as const;
export const installedVersion = '1000.0.0';
export const board = 'amd64-usr';

export interface Channel {
  channel: string;
  version: string;
  dir: string;
  payload: MadePayload;
}

/** A signed release in the channel tree; `files` go into its USR image besides the release files. */
export async function makeRelease(tree: string, channel: string, version: string, privateKeys: string[], work: string, files: Record<string, string> = {}): Promise<Channel> {
  const image = join(work, `usr-${version}.img`);
  makeUsrImage(image, version, 24, 4, false, files);
  return publishRelease(tree, channel, version, image, privateKeys);
}

/**
 * One release in a channel tree, from a USR image made elsewhere: the signed payload, its .sha256
 * sidecar, version.txt, and current/ pointing at it. `pool` compresses the chunks (one that
 * remembers chunks it has seen makes a second release of a similar image quick).
 */
export async function publishRelease(tree: string, channel: string, version: string, image: string, privateKeys: string[], pool?: Bzip2Pool): Promise<Channel> {
  const dir = join(tree, channel, board, version);
  mkdirSync(dir, { recursive: true });
  const payload = await makePayload(image, join(dir, 'flatcar_production_update.gz'), privateKeys, pool);
  writeFileSync(`${payload.path}.sha256`, `${payload.sha256}  flatcar_production_update.gz\n`);
  const [major, minor, patch] = version.split('.');
  writeFileSync(
    join(dir, 'version.txt'),
    `FLATCAR_BUILD=${major}\nFLATCAR_BRANCH=${minor}\nFLATCAR_PATCH=${patch}\nFLATCAR_VERSION=${version}\nFLATCAR_VERSION_ID=${version}\nFLATCAR_BUILD_ID=""\n`,
  );
  const current = join(tree, channel, board, 'current');
  rmSync(current, { force: true });
  symlinkSync(version, current);
  return { channel, version, dir, payload };
}

/** Everything, under `out`: keys/, disk.img (installed version in USR-A), usr-*.img, channels/. */
export async function makeAll(out: string, log: (s: string) => void = () => undefined): Promise<{ keys: KeyPair; disk: string; channels: Channel[] }> {
  mkdirSync(out, { recursive: true });
  const keys = makeKeyPair(join(out, 'keys'));
  log(`key pair      ${keys.privatePath}, ${keys.publicPath}`);
  const installed = join(out, `usr-${installedVersion}.img`);
  makeUsrImage(installed, installedVersion);
  const disk = join(out, 'disk.img');
  makeDisk(disk, 32, installed);
  log(`disk          ${disk} (USR-A: ${installedVersion})`);
  const channels: Channel[] = [];
  for (const [channel, version] of Object.entries(channelVersions)) {
    const c = await makeRelease(join(out, 'channels'), channel, version, [keys.privateKey], out);
    log(`${channel.padEnd(13)} ${c.payload.path} (${version}, ${c.payload.size} bytes, ${c.payload.operations} operations)`);
    channels.push(c);
  }
  return { keys, disk, channels };
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'machine') return machineMain(argv.slice(1));
  const program = new Command('make-images')
    .description('build the development disk, USR images, signed payloads and channel tree ("machine": the bootable machine image instead)')
    .argument('[out]', 'output directory', 'images/out')
    .exitOverride();
  const done = parseArgs(program, argv);
  if (done !== undefined) return done;
  const out = resolve(program.args[0] ?? 'images/out');
  if (existsSync(join(out, 'channels'))) rmSync(join(out, 'channels'), { recursive: true, force: true });
  await makeAll(out, (s) => process.stdout.write(`${s}\n`));
  return 0;
}

/** `make-images machine [OUT]`: the bootable machine image (images/machine.ts), as root. */
async function machineMain(argv: string[]): Promise<number> {
  const program = new Command('make-images machine')
    .description('build the bootable machine image: disk.raw, vmlinuz, initrd.img, boot.json, update-key.pem, update-key.pub.pem, channels/ (as root; the Debian part is cached under $XDG_CACHE_HOME/bootsmith)')
    .argument('[out]', 'output directory', 'images/out/machine')
    .exitOverride();
  const done = parseArgs(program, argv);
  if (done !== undefined) return done;
  const image = await buildMachine({ out: resolve(program.args[0] ?? 'images/out/machine'), log: (s) => process.stdout.write(`${s}\n`) });
  process.stdout.write(`machine image ${image.version} in ${image.dir}; releases ${image.releases.map((r) => `${r.version} (${r.channel}${r.broken ? ', broken' : ''})`).join(', ') || 'none'}\n`);
  return 0;
}
