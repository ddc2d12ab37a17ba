/**
 * The payload-apply benchmark (section 7 of `npm run bench`): a signed full payload of a 512 MiB
 * USR image, its content real files from this machine's /usr, applied to USR-B of a sparse disk
 * image by applyPayload; against the same bytes landing on the same slot through the best shell
 * pipeline of standard tools (bzip2 -dc of the chunks, sha256sum, dd), serial and split in two.
 * The pipelines read chunk files cut out of the payload before the clock starts, so they pay
 * nothing for the manifest; applyPayload does more (the payload's and every operation's SHA-256,
 * the signature, and a re-read of the slot to check it), all inside its time.
 * Each contender writes into a fresh disk image, so each pays for allocating the slot's blocks.
 * CPU is the process's own (process.cpuUsage) plus its waited-for children's (cutime and cstime
 * of /proc/self/stat): the bzip2 processes applyPayload spawns, and everything under the bash
 * that runs a pipeline.
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync, writeSync } from 'node:fs';
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

/** Regular files under `dir`, in directory order; unreadable directories are passed over. */
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
    else if (e.isFile()) out.push({ path, size: 0 });
  }
}

/**
 * `bytes` of real /usr content: regular files of /usr/lib, /usr/share and /usr/bin, in a fixed
 * pseudo-random order (so no one package dominates), concatenated whole; the last one cut short.
 */
function makeUsrContent(path: string, bytes: number): { files: number } {
  const files: { path: string; size: number }[] = [];
  for (const dir of sources) walk(dir, files);
  let x = 0x9e3779b9;
  for (let i = files.length - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const j = x % (i + 1);
    [files[i], files[j]] = [files[j]!, files[i]!];
  }
  const out = openSync(path, 'w');
  let at = 0;
  let used = 0;
  try {
    for (const f of files) {
      if (at >= bytes) break;
      let data: Buffer;
      try {
        data = readFileSync(f.path);
      } catch {
        continue; // unreadable, or gone
      }
      if (data.length === 0) continue;
      const take = data.subarray(0, Math.min(data.length, bytes - at));
      for (let done = 0; done < take.length; ) done += writeSync(out, take, done);
      at += take.length;
      used++;
    }
  } finally {
    closeSync(out);
  }
  if (at < bytes) throw new Error(`${sources.join(', ')} hold only ${at} bytes of readable files, less than ${bytes}`);
  return { files: used };
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
  const all = readFileSync(payload);
  const manifestLength = parseHeader(all.subarray(0, headerSize));
  const manifest = decodeManifest(all.subarray(headerSize, headerSize + manifestLength));
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
    writeFileSync(join(dir, file), all.subarray(blobStart + op.dataOffset, blobStart + op.dataOffset + op.dataLength));
    chunks.push({ file, bz, startBlock: next });
    next += Number(e.numBlocks);
  }
  return { chunks, manifest };
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

const dd = (disk: string, offset: number) => `dd of=${disk} bs=1M iflag=fullblock oflag=seek_bytes seek=${offset} conv=notrunc,fdatasync status=none`;

interface Pipeline {
  name: string;
  describe: string;
  script: (disk: string, slotStart: number, imageSize: number) => string;
}

function pipelines(chunks: Chunk[], dir: string, bs: number): Pipeline[] {
  const fifo = join(dir, 'hash.fifo');
  const serial: Pipeline = {
    name: 'pipeline, serial',
    describe: 'bzip2 -dc (cat for REPLACE) | tee >(sha256sum) | dd',
    script: (disk, slotStart) =>
      [
        'set -euo pipefail',
        `rm -f ${fifo}; mkfifo ${fifo}`,
        `sha256sum < ${fifo} > ${fifo}.sum &`,
        `{ ${produce(chunks)}; } | tee ${fifo} | ${dd(disk, slotStart)}`,
        'wait',
        `cut -d' ' -f1 ${fifo}.sum; rm -f ${fifo} ${fifo}.sum`,
      ].join('\n'),
  };
  // Two halves of equal decompression work (a REPLACE chunk is only copied: a twentieth of the
  // work), each its own bzip2 -dc | dd at its offset; then the slot read back for its hash.
  const weight = (c: Chunk) => (c.bz ? 1 : 1 / 20);
  const total = chunks.reduce((n, c) => n + weight(c), 0);
  let split = 0;
  for (let acc = 0; split < chunks.length - 1 && acc + weight(chunks[split]!) <= total / 2; split++) acc += weight(chunks[split]!);
  const [first, second] = [chunks.slice(0, split), chunks.slice(split)];
  const twoWay: Pipeline = {
    name: 'pipeline, 2-way',
    describe: `2 x (bzip2 -dc | dd) over ${first.length} and ${second.length} chunks, then dd | sha256sum of the slot`,
    script: (disk, slotStart, imageSize) =>
      [
        'set -euo pipefail',
        `( { ${produce(first)}; } | ${dd(disk, slotStart)} ) & a=$!`,
        `( { ${produce(second)}; } | ${dd(disk, slotStart + second[0]!.startBlock * bs)} ) & b=$!`,
        'wait $a; wait $b',
        `dd if=${disk} bs=1M iflag=skip_bytes,count_bytes skip=${slotStart} count=${imageSize} status=none | sha256sum | cut -d' ' -f1`,
      ].join('\n'),
  };
  return [serial, twoWay];
}

interface Measure {
  wall: number;
  cpu: number;
  /** Of `cpu`, what children used. */
  children: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function freshDisk(path: string): GptEntry {
  makeDisk(path, usrMiB);
  const usrB = readGpt(path).entries.find((e) => e.number === layout.usrB.number);
  if (!usrB) throw new Error(`${path} has no ${layout.usrB.name}`);
  return usrB;
}

async function ours(made: MadePayload, disk: string, publicKey: string): Promise<Measure> {
  const target = freshDisk(disk);
  const c0 = childrenCpu();
  const o0 = ownCpu();
  const t0 = performance.now();
  const r = await applyPayload({ source: fileSource(made.path), disk, target, publicKeys: [publicKey], sha256: Buffer.from(made.sha256, 'hex') });
  const wall = (performance.now() - t0) / 1000;
  const children = childrenCpu() - c0;
  const cpu = ownCpu() - o0 + children;
  if (r.imageSha256 !== made.imageSha256) throw new Error(`applyPayload wrote an image hashing to ${r.imageSha256}, not ${made.imageSha256}`);
  rmSync(disk, { force: true });
  return { wall, cpu, children };
}

function pipeline(p: Pipeline, made: MadePayload, disk: string, cwd: string): Measure {
  const target = freshDisk(disk);
  const script = p.script(disk, Number(target.firstLba) * sectorSize, made.imageSize);
  const c0 = childrenCpu();
  const t0 = performance.now();
  const r = spawnSync('bash', ['-c', script], { cwd, encoding: 'utf8', maxBuffer: 1 << 20 });
  const wall = (performance.now() - t0) / 1000;
  const children = childrenCpu() - c0;
  if (r.status !== 0) throw new Error(`${p.name} failed (${r.status ?? r.signal}): ${r.stderr.trim()}`);
  const hash = r.stdout.trim();
  if (hash !== made.imageSha256) throw new Error(`${p.name} wrote an image hashing to ${hash}, not ${made.imageSha256}`);
  rmSync(disk, { force: true });
  return { wall, cpu: children, children };
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
    const { chunks, manifest } = extractChunks(made.path, join(work, 'chunks'));
    const raw = manifest.operations.filter((op) => op.type === opType.REPLACE).length;
    const chunkDir = join(work, 'chunks');
    const contenders = pipelines(chunks, chunkDir, manifest.blockSize);
    const disk = join(work, 'disk.img');

    // Interleaved rounds, so drift in the machine's speed hits each alike.
    const results: Measure[][] = [[], ...contenders.map(() => [])];
    for (let i = 0; i < rounds; i++) {
      results[0]!.push(await ours(made, disk, publicKey));
      contenders.forEach((p, k) => results[k + 1]!.push(pipeline(p, made, disk, chunkDir)));
    }
    const summary = results.map((ms) => ({ wall: median(ms.map((m) => m.wall)), cpu: median(ms.map((m) => m.cpu)), children: median(ms.map((m) => m.children)) }));
    const [us, ...theirs] = summary as [(typeof summary)[number], ...typeof summary];
    const best = theirs.reduce((b, t, k) => (t.wall < theirs[b]!.wall ? k : b), 0);
    const cores = availableParallelism();
    const cpu = (m: Measure, split: string) => `CPU ${seconds(m.cpu)} (${((m.cpu / m.wall) * 100).toFixed(0)}% of wall${split})`;

    console.log(`\n7. applying a signed payload of a 512 MiB USR image (${files} files of this machine's /usr) to USR-B of a disk image; median of ${rounds} interleaved runs, ${cores} cores`);
    console.log(
      `   payload              ${mb(made.size)} for ${mb(made.imageSize)} of image (${((made.size / made.imageSize) * 100).toFixed(1)}%), ` +
        `${made.operations} operations (${raw} REPLACE); made in ${seconds((g2 - g0) / 1000)} (image ${seconds((g1 - g0) / 1000)}, payload ${seconds((g2 - g1) / 1000)}; not measured)`,
    );
    console.log(
      `   ours (applyPayload)  ${seconds(us.wall)}  ${rate(made.imageSize, us.wall)} image, ${rate(made.size, us.wall)} payload; ` +
        cpu(us, `: node ${seconds(us.cpu - us.children)}, bzip2 ${seconds(us.children)}`),
    );
    contenders.forEach((p, k) => {
      const t = theirs[k]!;
      console.log(`   ${p.name.padEnd(20)} ${seconds(t.wall)}  ${rate(made.imageSize, t.wall)} image; ${cpu(t, '')}  [${p.describe}]`);
    });
    console.log(
      `   ratio                ${(theirs[best]!.wall / us.wall).toFixed(2)}x the best pipeline's speed (${contenders[best]!.name.replace('pipeline, ', '')}); ` +
        `target: above 1, decompression across all ${cores} cores (${((us.cpu / us.wall) * 100).toFixed(0)}% of ${cores * 100}% here)`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
