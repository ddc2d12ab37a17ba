/** Disks, images, keys and payloads for the update tests, and the cgpt/sgdisk oracles. */
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDisk, makeUsrImage } from '../../images/make';
import { UpdateAttempter } from '../../src/update/attempter';
import { machineIdentity, readEngineSettings } from '../../src/update/engine-config';
import { readGpt } from '../../src/update/gpt';
import type { GptEntry } from '../../src/update/gpt';
import { decodeManifest, encodeHeader, encodeManifest, encodeSignatures, headerSize, parseHeader } from '../../src/update/payload-format';
import type { Manifest } from '../../src/update/payload-format';
import { makePayload, signDigest } from '../../src/update/make-payload';

const works = (cmd: string, ...args: string[]) => {
  const r = spawnSync(cmd, args);
  return !r.error;
};

/** Whether the tools the update tests need are here (CI installs them: bzip2, e2fsprogs, gdisk, cgpt). */
export const updateTools = works('bzip2', '--help') && works('mkfs.ext4', '-V') && works('sgdisk', '--version') && works('cgpt', 'version') && works('debugfs', '-V');

export function keyPair(): { privateKey: string; publicKey: string } {
  return generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

export interface Fixture {
  dir: string;
  keys: { privateKey: string; publicKey: string }[];
  publicKeyFiles: string[];
  /** Installed (in USR-A of `disk`) and next version images. */
  images: Record<string, string>;
  disk: string;
  payloads: Record<string, { path: string; sha256: string; size: number }>;
}

/** A disk with 1000.0.0 in USR-A, USR images of 1000.0.0 and 1001.0.0, two keys, a payload of 1001.0.0 signed by the first. */
export async function fixture(): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'bootsmith-update-'));
  const keys = [keyPair(), keyPair()];
  const publicKeyFiles = keys.map((k, i) => {
    const f = join(dir, `key${i}.pub.pem`);
    writeFileSync(f, k.publicKey);
    return f;
  });
  const images: Record<string, string> = {};
  for (const v of ['1000.0.0', '1001.0.0']) {
    images[v] = join(dir, `usr-${v}.img`);
    makeUsrImage(images[v], v);
  }
  const disk = join(dir, 'disk.img');
  makeDisk(disk, 32, images['1000.0.0']);
  const made = await makePayload(images['1001.0.0']!, join(dir, 'update-1001.0.0.gz'), [keys[0]!.privateKey]);
  return { dir, keys, publicKeyFiles, images, disk, payloads: { '1001.0.0': { path: made.path, sha256: made.sha256, size: made.size } } };
}

/** A fresh copy of the fixture's disk. */
export function diskCopy(f: Fixture, name: string): string {
  const d = join(f.dir, `${name}.img`);
  copyFileSync(f.disk, d);
  return d;
}

export function usrSlot(disk: string, label: 'USR-A' | 'USR-B'): GptEntry {
  return readGpt(disk).entries.find((e) => e.name === label)!;
}

/** cgpt's view of a partition's flags: [priority, tries, successful]. */
export function cgptFlags(disk: string, n: number): [number, number, number] {
  const get = (f: string) => Number(spawnSync('cgpt', ['show', '-i', String(n), `-${f}`, disk], { encoding: 'utf8' }).stdout.trim());
  return [get('P'), get('T'), get('S')];
}

/** sgdisk -v's verdict; "No problems found." when the table is sound. */
export function sgdiskVerify(disk: string): string {
  return spawnSync('sgdisk', ['-v', disk], { encoding: 'utf8' }).stdout;
}

/** The version in /share/coreos/release of the ext4 image in a slot, read with debugfs (no mount needed). */
export function slotVersion(disk: string, slot: GptEntry, work: string): string {
  const img = join(work, `slot-${slot.number}.img`);
  const bytes = Buffer.alloc(Number(slot.lastLba - slot.firstLba + 1n) * 512);
  const fd = openSync(disk, 'r');
  readSync(fd, bytes, 0, bytes.length, Number(slot.firstLba) * 512);
  closeSync(fd);
  writeFileSync(img, bytes);
  const out = spawnSync('debugfs', ['-R', 'cat /share/coreos/release', img], { encoding: 'utf8' }).stdout;
  return /COREOS_RELEASE_VERSION=(\S+)/.exec(out)?.[1] ?? `(no version: ${out})`;
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A copy of a payload with its manifest changed, signed anew with `privateKeys`. */
export function rewritePayload(src: string, out: string, change: (m: Manifest) => void, privateKeys: string[]): void {
  const bytes = readFileSync(src);
  const m = parseHeader(bytes);
  const manifest = decodeManifest(bytes.subarray(headerSize, headerSize + m));
  const blob = bytes.subarray(headerSize + m, headerSize + m + (manifest.signaturesOffset ?? bytes.length));
  change(manifest);
  const body = encodeManifest(manifest);
  const signed = Buffer.concat([encodeHeader(body.length), body, blob]);
  const digest = createHash('sha256').update(signed).digest();
  writeFileSync(out, Buffer.concat([signed, encodeSignatures(privateKeys.map((k) => signDigest(k, digest)))]));
}

/** The version the ext4 in a slot shows when loop-mounted read-only (root only), as the booted /usr would. */
export function mountedVersion(disk: string, slot: GptEntry, work: string): string {
  const mnt = mkdtempSync(join(work, 'mnt-'));
  const m = spawnSync('mount', ['-o', `loop,ro,offset=${Number(slot.firstLba) * 512},sizelimit=${Number(slot.lastLba - slot.firstLba + 1n) * 512}`, disk, mnt], { encoding: 'utf8' });
  if (m.status !== 0) throw new Error(`mount: ${m.stderr}`);
  try {
    return /COREOS_RELEASE_VERSION=(\S+)/.exec(readFileSync(join(mnt, 'share/coreos/release'), 'utf8'))?.[1] ?? '(none)';
  } finally {
    spawnSync('umount', [mnt]);
  }
}

/**
 * A simulated machine for the update engine: a root with its release (1000.0.0), update.conf
 * (GROUP, SERVER), machine id and boot id, and a disk with 1000.0.0 in USR-A.
 */
export function updateMachine(dir: string, name: string, serverUrl: string, group = 'stable'): { root: string; disk: string; machineId: string } {
  const root = join(dir, name);
  mkdirSync(join(root, 'usr/share/coreos'), { recursive: true });
  mkdirSync(join(root, 'etc/coreos'), { recursive: true });
  writeFileSync(join(root, 'usr/share/coreos/release'), 'COREOS_RELEASE_VERSION=1000.0.0\nCOREOS_RELEASE_BOARD=amd64-usr\n');
  writeFileSync(join(root, 'etc/coreos/update.conf'), `GROUP=${group}\nSERVER=${serverUrl}/v1/update/\n`);
  const machineId = createHash('md5').update(name).digest('hex');
  writeFileSync(join(root, 'etc/machine-id'), `${machineId}\n`);
  writeFileSync(join(root, 'boot_id'), '3c4ba6a1-0d3e-4b5a-9a65-1f7e0e7a2b11\n');
  const image = join(root, 'usr.img');
  makeUsrImage(image, '1000.0.0');
  const disk = join(root, 'disk.img');
  makeDisk(disk, 32, image);
  return { root, disk, machineId };
}

/** The update attempt of such a machine, as a daemon would make it at start. */
export function attempterFor(root: string, disk: string, publicKeys: string[]): UpdateAttempter {
  const prefsDir = join(root, 'var/lib/update_engine/prefs');
  return new UpdateAttempter({
    settings: () => readEngineSettings(root),
    identity: (s) => machineIdentity(s, { root, prefsDir, bootIdFile: join(root, 'boot_id') }),
    machine: () => ({ disk, active: { label: 'USR-A' } }),
    stateDir: join(root, 'var/lib/update_engine'),
    prefsDir,
    publicKeys,
  });
}

/** An HTTP POST (an Omaha request, text/xml) to the update server: its status and body. */
export function post(url: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'text/xml', ...headers } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
