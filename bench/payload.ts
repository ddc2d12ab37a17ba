/**
 * The payload-apply benchmark (section 7 of `npm run bench`): a signed full payload of a 512 MiB
 * USR image, its content real files from this machine's /usr, applied to USR-B of a sparse disk
 * image by applyPayload; against the same bytes landing on the same slot through shell pipelines
 * of standard tools (bzip2 -dc of the chunks, sha256sum, dd): one serial stream, and the chunks
 * decompressed on every core (halves, and one chunk at a time, through xargs -P).
 * The pipelines read chunk files cut out of the payload before the clock starts, so they pay
 * nothing for the manifest; applyPayload does more (the payload's and every operation's SHA-256,
 * the signature, and a re-read of the slot to check it), all inside its time. It runs in its own
 * process (this bundle, `apply <job>`), as update_engine_client would: a fork per bzip2 costs in
 * proportion to the forking process's size, which should be an applier's, not the generator's.
 * Each contender writes into a fresh disk image, so each pays for allocating the slot's blocks.
 * CPU is a process's own (process.cpuUsage) plus its waited-for children's (cutime and cstime of
 * /proc/self/stat): the bzip2 processes applyPayload spawns, and everything under the bash that
 * runs a pipeline. The generator's time is printed, not measured against anything.
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statfsSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDisk, layout } from '../images/make';
import { applyPayload } from '../src/update/apply-payload';
import { readGpt, sectorSize } from '../src/update/gpt';
import type { GptEntry } from '../src/update/gpt';
import { makePayload } from '../src/update/make-payload';
import type { MadePayload } from '../src/update/make-payload';
import { fileSource } from '../src/update/payload-source';
import { decodeManifest, headerSize, opType, parseHeader } from '../src/update/payload-format';
import type { Manifest } from '../src/update/payload-format';

const mib = 1 << 20;
const imageBytes = 512 * mib;
/** USR slots of the benchmark disk, in MiB: room for the image. */
const usrMiB = 600;
const rounds = 2;
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
 * `bytes` of real /usr content: a sample of the regular files of /usr/lib, /usr/share and
 * /usr/bin, each taken with the same fixed pseudo-random chance, in directory order as a
 * filesystem image would hold them, concatenated whole (at most 16 MiB of each); so the image has
 * the byte mix of this /usr: binaries, libraries, text, already-compressed archives.
 */
function makeUsrContent(path: string, bytes: number): { files: number } {
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
  const out = openSync(path, 'w');
  let at = 0;
  try {
    // Passes until full: the last files' chance may leave the first pass short.
    for (let pass = 0; at < bytes && pass < 100; pass++) {
      for (const [i, f] of files.entries()) {
        if (at >= bytes) break;
        if (f.size === 0 || taken.has(i) || random() >= chance) continue;
        let data: Buffer;
        try {
          data = readFileSync(f.path);
        } catch {
          continue; // unreadable, or gone
        }
        const take = data.subarray(0, Math.min(data.length, perFileMax, bytes - at));
        for (let done = 0; done < take.length; ) done += writeSync(out, take, done);
        at += take.length;
        taken.add(i);
      }
    }
  } finally {
    closeSync(out);
  }
  if (at < bytes) throw new Error(`${sources.join(', ')} hold only ${at} bytes of readable files, less than ${bytes}`);
  return { files: taken.size };
}

interface Chunk {
  /** The file holding the operation's data: NNNNNN.bz2 (REPLACE_BZ) or NNNNNN.raw (REPLACE). */
  file: string;
  bz: boolean;
  /** Where on the slot it lands. */
  startBlock: number;
}

/**
 * Every operation's data as its own file, cut out of the payload into `dir`: the pipelines' input.
 * Checks what the pipelines rely on: each operation one extent, starting where the previous ended.
 */
function extractChunks(payload: string, dir: string): { chunks: Chunk[]; manifest: Manifest } {
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
    const chunks: Chunk[] = [];
    let next = 0;
    for (const [i, op] of manifest.operations.entries()) {
      const [e, ...more] = op.dstExtents;
      if (!e || more.length > 0 || Number(e.startBlock) !== next) throw new Error(`operation ${i}: not one extent following the previous one; the pipelines cannot write it with one dd`);
      const bz = op.type === opType.REPLACE_BZ;
      if (!bz && op.type !== opType.REPLACE) throw new Error(`operation ${i}: type ${op.type}, not REPLACE or REPLACE_BZ`);
      const file = `${String(i).padStart(6, '0')}.${bz ? 'bz2' : 'raw'}`;
      writeFileSync(join(dir, file), readAt(blobStart + op.dataOffset, op.dataLength));
      chunks.push({ file, bz, startBlock: next });
      next += Number(e.numBlocks);
    }
    return { chunks, manifest };
  } finally {
    closeSync(fd);
  }
}

/**
 * Shell commands writing the chunks' output, in order, to one stream: one `bzip2 -dc` over each
 * run of consecutive REPLACE_BZ chunks (bzip2 -dc of several files writes their outputs one after
 * another), one `cat` over each run of REPLACE chunks.
 */
function produce(chunks: Chunk[]): string {
  const runs: { bz: boolean; files: string[] }[] = [];
  for (const c of chunks) {
    const last = runs[runs.length - 1];
    if (last && last.bz === c.bz) last.files.push(c.file);
    else runs.push({ bz: c.bz, files: [c.file] });
  }
  return runs.map((r) => `${r.bz ? 'bzip2 -dc' : 'cat'} ${r.files.join(' ')}`).join('; ');
}

const dd = (disk: string, seek: string, sync: boolean) =>
  `dd of=${disk} bs=1M iflag=fullblock oflag=seek_bytes seek=${seek} conv=notrunc${sync ? ',fdatasync' : ''} status=none`;

interface Pipeline {
  name: string;
  describe: string;
  /** The bash script, run in the chunks' directory; it prints the SHA-256 of what it wrote. */
  script: (disk: string, slotStart: number, imageSize: number) => string;
}

/**
 * The pipelines: one stream through one bzip2 (its output hashed by a tee on the way to dd); and
 * the chunks cut into `parts` runs of equal decompression work (a REPLACE chunk is only copied, a
 * twentieth of the work), each run a script `{ bzip2 -dc ...; } | dd` at its offset, as many
 * running at once as there are cores (xargs -P), one fdatasync at the end, then the slot read back
 * for its hash (the one SHA-256 of the image cannot be taken over pieces written in parallel).
 */
function pipelines(chunks: Chunk[], dir: string, bs: number, cores: number, partCounts: number[]): Pipeline[] {
  const fifo = join(dir, 'hash.fifo');
  const serial: Pipeline = {
    name: 'serial',
    describe: 'bzip2 -dc | tee >(sha256sum) | dd',
    script: (disk, slotStart) =>
      [
        'set -euo pipefail',
        `rm -f ${fifo}; mkfifo ${fifo}`,
        `sha256sum < ${fifo} > ${fifo}.sum &`,
        `{ ${produce(chunks)}; } | tee ${fifo} | ${dd(disk, String(slotStart), true)}`,
        'wait',
        `cut -d' ' -f1 ${fifo}.sum; rm -f ${fifo} ${fifo}.sum`,
      ].join('\n'),
  };
  const weight = (c: Chunk) => (c.bz ? 1 : 1 / 20);
  const total = chunks.reduce((n, c) => n + weight(c), 0);
  const parallel = partCounts.map((count): Pipeline => {
    const parts: Chunk[][] = count >= chunks.length ? chunks.map((c) => [c]) : [];
    let acc = 0;
    for (const c of count >= chunks.length ? [] : chunks) {
      const k = Math.min(count - 1, Math.floor((acc / total) * count));
      (parts[k] ??= []).push(c);
      acc += weight(c);
    }
    const list = `parts-${count}.list`;
    const scripts = parts.filter((p) => p.length > 0).map((p, i) => {
      const file = `part-${count}-${String(i).padStart(4, '0')}.sh`;
      // $1: the disk, $2: the slot's first byte
      writeFileSync(join(dir, file), `set -eo pipefail\n{ ${produce(p)}; } | ${dd('"$1"', `$(($2 + ${p[0]!.startBlock * bs}))`, false)}\n`);
      return file;
    });
    writeFileSync(join(dir, list), scripts.map((f) => `${f}\n`).join(''));
    return {
      name: `${cores}-way, ${scripts.length === chunks.length ? 'per chunk' : scripts.length === 2 ? 'halves' : `${scripts.length} parts`}`,
      describe: `xargs -P ${cores}: ${scripts.length} x ({ bzip2 -dc ...; } | dd), then fdatasync, dd | sha256sum`,
      script: (disk, slotStart, imageSize) =>
        [
          'set -euo pipefail',
          `xargs -a ${list} -P ${cores} -I {} bash {} ${disk} ${slotStart}`,
          `sync -d ${disk}`,
          `dd if=${disk} bs=1M iflag=skip_bytes,count_bytes skip=${slotStart} count=${imageSize} status=none | sha256sum | cut -d' ' -f1`,
        ].join('\n'),
    };
  });
  return [serial, ...parallel];
}

interface Measure {
  wall: number;
  /** CPU seconds, every process of the contender. */
  cpu: number;
  /** Of `cpu`, what the node process itself used (ours only). */
  node?: number;
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
 * only applies, so its size (which a fork per bzip2 copies) is not the generator's.
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

function pipeline(p: Pipeline, made: MadePayload, disk: string, cwd: string): Measure {
  const target = freshDisk(disk);
  const script = p.script(disk, Number(target.firstLba) * sectorSize, made.imageSize);
  const c0 = childrenCpu();
  const t0 = performance.now();
  const r = spawnSync('bash', ['-c', script], { cwd, encoding: 'utf8', maxBuffer: 1 << 20 });
  const wall = (performance.now() - t0) / 1000;
  const cpu = childrenCpu() - c0;
  if (r.status !== 0) throw new Error(`the ${p.name} pipeline failed (${r.status ?? r.signal}): ${r.stderr.trim()}`);
  const hash = r.stdout.trim();
  if (hash !== made.imageSha256) throw new Error(`the ${p.name} pipeline wrote an image hashing to ${hash}, not ${made.imageSha256}`);
  rmSync(disk, { force: true });
  return { wall, cpu };
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'bootsmith-bench-payload-'));
  try {
    const { bsize, bavail } = statfsSync(work);
    if (bsize * bavail < 3 * 1024 * mib) {
      console.log(`\n7. skipped: needs 3 GiB free under ${tmpdir()} (${((bsize * bavail) / 2 ** 30).toFixed(1)} GiB free)`);
      return;
    }
    const g0 = performance.now();
    const image = join(work, 'usr.img');
    const { files } = makeUsrContent(image, imageBytes);
    const g1 = performance.now();
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    const made = await makePayload(image, join(work, 'update.gz'), [privateKey]);
    const g2 = performance.now();
    rmSync(image);
    const chunkDir = join(work, 'chunks');
    const { chunks, manifest } = extractChunks(made.path, chunkDir);
    const raw = manifest.operations.filter((op) => op.type === opType.REPLACE).length;
    const cores = availableParallelism();
    const contenders = pipelines(chunks, chunkDir, manifest.blockSize, cores, [cores, chunks.length]);
    const disk = join(work, 'disk.img');

    // Interleaved rounds, so drift in the machine's speed hits each alike; the best of each.
    const runs: Measure[][] = [[], ...contenders.map(() => [])];
    for (let i = 0; i < rounds; i++) {
      runs[0]!.push(ours(made, disk, publicKey));
      contenders.forEach((p, k) => runs[k + 1]!.push(pipeline(p, made, disk, chunkDir)));
    }
    const [us, ...theirs] = runs.map((ms) => ms.reduce((a, b) => (b.wall < a.wall ? b : a))) as [Measure, ...Measure[]];
    const best = theirs.reduce((b, t, k) => (t.wall < theirs[b]!.wall ? k : b), 0);
    const cpu = (m: Measure) => `CPU ${seconds(m.cpu)} (${((m.cpu / m.wall) * 100).toFixed(0)}% of wall)`;
    const label = (s: string) => `   ${s.padEnd(28)}`;

    console.log(`\n7. applying a signed payload of a 512 MiB USR image (${files} files of this machine's /usr) to USR-B of a disk image, ${cores} cores; best of ${rounds} interleaved runs`);
    console.log(
      `${label('payload')}${mb(made.size)} for ${mb(made.imageSize)} (${((made.size / made.imageSize) * 100).toFixed(1)}%), ${made.operations} operations (${raw} REPLACE); ` +
        `made in ${seconds((g2 - g0) / 1000)} (image ${seconds((g1 - g0) / 1000)}, payload ${seconds((g2 - g1) / 1000)}; not measured)`,
    );
    console.log(
      `${label('ours (applyPayload)')}${seconds(us.wall)}  ${rate(made.imageSize, us.wall)} image, ${rate(made.size, us.wall)} payload; ` +
        `${cpu(us)}: node ${seconds(us.node ?? 0)}, bzip2 ${seconds(us.cpu - (us.node ?? 0))}`,
    );
    contenders.forEach((p, k) => {
      const t = theirs[k]!;
      console.log(`${label(`pipeline, ${p.name}`)}${seconds(t.wall)}  ${rate(made.imageSize, t.wall)} image; ${cpu(t)}  [${p.describe}]`);
    });
    console.log(
      `${label('ratio')}${(theirs[best]!.wall / us.wall).toFixed(2)}x the speed of the best pipeline (${contenders[best]!.name}), ` +
        `${(us.cpu / theirs[best]!.cpu).toFixed(2)}x its CPU`,
    );
    console.log(`   target: faster than the best pipeline, decompressing on all ${cores} cores: ${us.wall < theirs[best]!.wall ? 'met' : 'MISSED'}`);
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
