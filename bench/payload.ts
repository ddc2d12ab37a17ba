/**
 * The payload-apply benchmark (section 7 of `npm run bench`): a signed full payload of a 192 MiB
 * USR image (ext4, made by mkfs.ext4 -d from a copy of real files of this machine's /usr), applied
 * to USR-B of a sparse disk image by applyPayload, against the floor: what any correct apply must
 * do, done by standard tools one after the other, each at its fastest:
 *  1. the same REPLACE_BZ chunks decompressed by the fastest decoder here (lbzip2 -n1 -dc, else
 *     bzip2 -dc) on every core (xargs -P), the output thrown away;
 *  2. sha256sum of the payload;
 *  3. openssl dgst -sha256 of the image (new_partition_info);
 *  4. the image written to the slot by dd conv=fdatasync.
 * applyPayload does the same work, overlapped, and more (every operation's SHA-256, the
 * signature), all inside its time. It runs in its own process (this bundle, `apply <job>`), as
 * update_engine_client would. Each contender writes into a fresh disk image, so each pays for
 * allocating the slot's blocks. CPU is a process's own (process.cpuUsage) plus its waited-for
 * children's (cutime and cstime of /proc/self/stat). The generator's time is printed, not
 * measured against anything.
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { makeDisk, layout } from '../images/make';
import { applyPayload } from '../src/update/apply-payload';
import { readGpt, sectorSize } from '../src/update/gpt';
import type { GptEntry } from '../src/update/gpt';
import { makePayload } from '../src/update/make-payload';
import type { MadePayload } from '../src/update/make-payload';
import { fileSource } from '../src/update/payload-source';
import { decodeManifest, headerSize, opType, parseHeader } from '../src/update/payload-format';

const mib = 1 << 20;
const imageMiB = 192;
/** Of the image, what the files take: the rest is ext4's metadata and journal, and free space. */
const contentBytes = 160 * mib;
/** USR slots of the benchmark disk, in MiB: room for the image. */
const usrMiB = 200;
const rounds = 3;
const sources = ['/usr/lib', '/usr/share', '/usr/bin'];

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const seconds = (s: number) => `${s.toFixed(2)} s`;
const rate = (bytes: number, s: number) => `${(bytes / 1e6 / s).toFixed(1)} MB/s`;

const ticks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU seconds of this process's children that have been waited for (cutime + cstime). */
function childrenCpu(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3, state
  return (Number(fields[13]) + Number(fields[14])) / ticks;
}

/** CPU seconds of this process itself, every thread. */
function ownCpu(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** Regular files under `dir` with their sizes, in name order; what cannot be read is passed over. */
function walk(dir: string, out: { path: string; size: number }[]): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) walk(path, out);
    else if (e.isFile()) {
      try {
        out.push({ path, size: statSync(path).size });
      } catch {
        // gone
      }
    }
  }
}

/** The most of one file an image takes, so that no one big binary or archive sets the mix. */
const perFileMax = 16 * mib;

/**
 * A tree of `bytes` of real /usr content under `stage`: a sample of the regular files of
 * /usr/lib, /usr/share and /usr/bin, each taken with the same fixed pseudo-random chance, copied
 * whole (at most 16 MiB of each) to the same path under `stage`; so the image has the byte mix
 * of this /usr: binaries, libraries, text, already-compressed archives.
 */
function makeUsrTree(stage: string, bytes: number): { files: number } {
  const files: { path: string; size: number }[] = [];
  for (const dir of sources) walk(dir, files);
  const pool = files.reduce((n, f) => n + Math.min(f.size, perFileMax), 0);
  const chance = Math.min(1, (bytes / pool) * 1.1);
  let x = 0x9e3779b9;
  const random = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
  const taken = new Set<number>();
  let at = 0;
  // Passes until full: the last files' chance may leave the first pass short.
  for (let pass = 0; at < bytes && pass < 100; pass++) {
    for (const [i, f] of files.entries()) {
      if (f.size === 0 || f.size > perFileMax || f.size > bytes - at || taken.has(i) || random() >= chance) continue;
      const to = join(stage, relative('/usr', f.path));
      try {
        mkdirSync(dirname(to), { recursive: true });
        copyFileSync(f.path, to);
      } catch {
        continue; // unreadable, or gone
      }
      at += f.size;
      taken.add(i);
      if (bytes - at < 4096) break;
    }
  }
  if (bytes - at > mib) throw new Error(`${sources.join(', ')} hold only ${at} bytes of readable files, less than ${bytes}`);
  return { files: taken.size };
}

/** An ext4 image of `sizeMiB` of the tree under `stage`, made as images/make.ts makes USR images. */
function mkfs(stage: string, image: string, sizeMiB: number): void {
  const r = spawnSync('mkfs.ext4', ['-q', '-F', '-L', 'USR', '-E', 'root_owner=0:0', '-d', stage, image, `${sizeMiB}M`], { encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run mkfs.ext4 (package e2fsprogs): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`mkfs.ext4 failed: ${r.stderr.trim()}`);
}

/**
 * The REPLACE_BZ operations' data, each as its own file cut out of the payload into `dir` (the
 * floor's input, cut before the clock starts); their names, in order.
 */
function extractBzChunks(payload: string, dir: string): string[] {
  const fd = openSync(payload, 'r');
  try {
    const readAt = (at: number, length: number) => {
      const buf = Buffer.alloc(length);
      for (let got = 0; got < length; ) {
        const n = readSync(fd, buf, got, length - got, at + got);
        if (n === 0) throw new Error(`${payload} ends at byte ${at + got}`);
        got += n;
      }
      return buf;
    };
    const manifestLength = parseHeader(readAt(0, headerSize));
    const manifest = decodeManifest(readAt(headerSize, manifestLength));
    const blobStart = headerSize + manifestLength;
    mkdirSync(dir, { recursive: true });
    const files: string[] = [];
    for (const [i, op] of manifest.operations.entries()) {
      if (op.type !== opType.REPLACE_BZ) continue;
      const file = `${String(i).padStart(6, '0')}.bz2`;
      writeFileSync(join(dir, file), readAt(blobStart + op.dataOffset, op.dataLength));
      files.push(file);
    }
    return files;
  } finally {
    closeSync(fd);
  }
}

/** The fastest bzip2 decoder here for one stream on one core: lbzip2 -n1 (about a quarter faster), else bzip2. */
function floorDecoder(): string {
  return spawnSync('lbzip2', ['--version'], { stdio: 'ignore' }).status === 0 ? 'lbzip2 -n1 -dc' : 'bzip2 -dc';
}

interface Measure {
  wall: number;
  /** CPU seconds, every process of the contender. */
  cpu: number;
  /** Of `cpu`, what the node process itself used (ours only). */
  node?: number;
}

interface Step {
  name: string;
  /** A bash script, run in the chunks' directory. */
  script: string;
  /** What it must print, when it prints something to check. */
  prints?: string;
}

/**
 * The floor's steps, one after the other: decompressing the chunks on every core (xargs -P, 8
 * chunks to a process, as ours), hashing the payload, hashing the image, writing it and syncing.
 */
function floorSteps(decoder: string, list: string, cores: number, made: MadePayload, image: string, disk: string, slotStart: number): Step[] {
  return [
    { name: `${decoder.split(' ')[0]} on ${cores} cores`, script: `xargs -a ${list} -P ${cores} -n 8 ${decoder} > /dev/null` },
    { name: 'sha256sum of the payload', script: `sha256sum ${made.path} | cut -d' ' -f1`, prints: made.sha256 },
    { name: 'openssl dgst of the image', script: `openssl dgst -sha256 -r ${image} | cut -d' ' -f1`, prints: made.imageSha256 },
    { name: 'dd conv=fdatasync', script: `dd if=${image} of=${disk} bs=1M oflag=seek_bytes seek=${slotStart} conv=notrunc,fdatasync status=none` },
  ];
}

function freshDisk(path: string): GptEntry {
  makeDisk(path, usrMiB);
  const usrB = readGpt(path).entries.find((e) => e.number === layout.usrB.number);
  if (!usrB) throw new Error(`${path} has no ${layout.usrB.name}`);
  return usrB;
}

interface ApplyJob {
  payload: string;
  sha256: string;
  imageSha256: string;
  disk: string;
  target: { firstLba: string; lastLba: string; number: number; name: string; typeGuid: string; uniqueGuid: string; attributes: string };
  publicKey: string;
}

/**
 * In its own process (this bundle, `apply <job>`), as update_engine_client would: a process that
 * only applies, so its size (which a fork per decoder copies) is not the generator's.
 */
async function applyJob(job: ApplyJob): Promise<void> {
  const t = job.target;
  const target: GptEntry = { ...t, firstLba: BigInt(t.firstLba), lastLba: BigInt(t.lastLba), attributes: BigInt(t.attributes) };
  const c0 = childrenCpu();
  const o0 = ownCpu();
  const t0 = performance.now();
  const r = await applyPayload({ source: fileSource(job.payload), disk: job.disk, target, publicKeys: [job.publicKey], sha256: Buffer.from(job.sha256, 'hex') });
  const wall = (performance.now() - t0) / 1000;
  const children = childrenCpu() - c0;
  const node = ownCpu() - o0;
  if (r.imageSha256 !== job.imageSha256) throw new Error(`applyPayload wrote an image hashing to ${r.imageSha256}, not ${job.imageSha256}`);
  process.stdout.write(JSON.stringify({ wall, cpu: node + children, node } satisfies Measure));
}

function ours(made: MadePayload, disk: string, publicKey: string): Measure {
  const t = freshDisk(disk);
  const target = { ...t, firstLba: String(t.firstLba), lastLba: String(t.lastLba), attributes: String(t.attributes) };
  const job: ApplyJob = { payload: made.path, sha256: made.sha256, imageSha256: made.imageSha256, disk, target, publicKey };
  const r = spawnSync(process.execPath, [__filename, 'apply', JSON.stringify(job)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`applyPayload failed (${r.status ?? r.signal}): ${r.stderr.trim()}`);
  rmSync(disk, { force: true });
  return JSON.parse(r.stdout) as Measure;
}

/** Runs the floor's steps one after the other into a fresh disk: each step's measure. */
function floor(made: MadePayload, image: string, disk: string, cwd: string, decoder: string, list: string, cores: number): Measure[] {
  const target = freshDisk(disk);
  const steps = floorSteps(decoder, list, cores, made, image, disk, Number(target.firstLba) * sectorSize);
  const measures = steps.map((step) => {
    const c0 = childrenCpu();
    const t0 = performance.now();
    const r = spawnSync('bash', ['-c', `set -euo pipefail\n${step.script}`], { cwd, encoding: 'utf8', maxBuffer: 1 << 20 });
    const wall = (performance.now() - t0) / 1000;
    const cpu = childrenCpu() - c0;
    if (r.status !== 0) throw new Error(`the floor's step ${step.name} failed (${r.status ?? r.signal}): ${r.stderr.trim()}`);
    if (step.prints !== undefined && r.stdout.trim() !== step.prints) throw new Error(`the floor's step ${step.name} printed ${r.stdout.trim()}, not ${step.prints}`);
    return { wall, cpu };
  });
  rmSync(disk, { force: true });
  return measures;
}

const sum = (ms: Measure[]): Measure => ({ wall: ms.reduce((n, m) => n + m.wall, 0), cpu: ms.reduce((n, m) => n + m.cpu, 0) });

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'bootsmith-bench-payload-'));
  try {
    const { bsize, bavail } = statfsSync(work);
    if (bsize * bavail < 2 * 1024 * mib) {
      console.log(`\n7. skipped: needs 2 GiB free under ${tmpdir()} (${((bsize * bavail) / 2 ** 30).toFixed(1)} GiB free)`);
      return;
    }
    const g0 = performance.now();
    const stage = join(work, 'usr');
    const { files } = makeUsrTree(stage, contentBytes);
    const image = join(work, 'usr.img');
    mkfs(stage, image, imageMiB);
    rmSync(stage, { recursive: true, force: true });
    const g1 = performance.now();
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    const made = await makePayload(image, join(work, 'update.gz'), [privateKey]);
    const g2 = performance.now();
    const chunkDir = join(work, 'chunks');
    const bz = extractBzChunks(made.path, chunkDir);
    const list = join(chunkDir, 'chunks.list');
    writeFileSync(list, bz.map((f) => `${f}\n`).join(''));
    const cores = availableParallelism();
    const decoder = floorDecoder();
    const disk = join(work, 'disk.img');

    // Interleaved rounds, so drift in the machine's speed hits each alike; the best of each, and
    // each round's ratio to show the noise.
    const oursRuns: Measure[] = [];
    const floorRuns: Measure[][] = [];
    for (let i = 0; i < rounds; i++) {
      floorRuns.push(floor(made, image, disk, chunkDir, decoder, list, cores));
      oursRuns.push(ours(made, disk, publicKey));
    }
    const us = oursRuns.reduce((a, b) => (b.wall < a.wall ? b : a));
    const floorTotals = floorRuns.map(sum);
    const bestFloor = floorTotals.reduce((a, b) => (b.wall < a.wall ? b : a));
    const steps = floorSteps(decoder, list, cores, made, image, disk, 0);
    const stepBest = steps.map((_, k) => floorRuns.map((r) => r[k]!).reduce((a, b) => (b.wall < a.wall ? b : a)));
    const cpu = (m: Measure) => `CPU ${seconds(m.cpu)} (${((m.cpu / m.wall) * 100).toFixed(0)}% of wall)`;
    const label = (s: string) => `   ${s.padEnd(30)}`;
    const ratio = us.wall / bestFloor.wall;

    console.log(`\n7. applying a signed payload of a ${imageMiB} MiB ext4 USR image (${files} files of this machine's /usr) to USR-B of a disk image, ${cores} cores; best of ${rounds} interleaved runs`);
    console.log(
      `${label('payload')}${mb(made.size)} for ${mb(made.imageSize)} (${((made.size / made.imageSize) * 100).toFixed(1)}%), ${made.operations} operations (${made.operations - bz.length} REPLACE); ` +
        `made in ${seconds((g2 - g0) / 1000)} (image ${seconds((g1 - g0) / 1000)}, payload ${seconds((g2 - g1) / 1000)}; not measured)`,
    );
    console.log(`${label('floor (one step after another)')}${seconds(bestFloor.wall)}  ${cpu(bestFloor)}`);
    steps.forEach((s, k) => console.log(`${label(`  ${s.name}`)}${seconds(stepBest[k]!.wall)}  CPU ${seconds(stepBest[k]!.cpu)}  [${s.script.replace(/ \| cut.*$/, '').replace(/seek=\d+/, 'seek=<USR-B>').replaceAll(`${work}/`, '')}]`));
    console.log(
      `${label('ours (applyPayload)')}${seconds(us.wall)}  ${rate(made.imageSize, us.wall)} image, ${rate(made.size, us.wall)} payload; ` +
        `${cpu(us)}: node ${seconds(us.node ?? 0)}, decoders ${seconds(us.cpu - (us.node ?? 0))}`,
    );
    console.log(`${label('ratio')}${ratio.toFixed(2)}x the floor's time, ${(us.cpu / bestFloor.cpu).toFixed(2)}x its CPU`);
    console.log(`${label('ratio by round (noise)')}${oursRuns.map((o, i) => `${(o.wall / floorTotals[i]!.wall).toFixed(2)}x (${seconds(o.wall)} / ${seconds(floorTotals[i]!.wall)})`).join(', ')}`);
    console.log(`   target: at most 1.15x the floor (decompressing on ${cores} cores, then hashing, writing and syncing) (${ratio.toFixed(2)}x): ${ratio <= 1.15 ? 'met' : 'MISSED'}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
if (process.argv[2] === 'apply') {
  void applyJob(JSON.parse(process.argv[3] ?? '') as ApplyJob).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
} else {
  void main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
