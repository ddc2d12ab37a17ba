/**
 * Applying a full CrAU payload to the passive USR slot: the source opens and the header and
 * manifest are read and checked first, and only then, right before the first write, is the slot
 * made unbootable; the payload streams in once (hashed as it passes), bzip2 chunks decompress in
 * parallel within a bounded window, each lands on its extents (flushed to the disk as the apply
 * goes, not all at the end); then three checks: the whole payload's SHA-256 against the announced
 * one, the RSA signature against the configured keys, and the written slot against
 * new_partition_info. The slot's hash is taken of the bytes written, in the image's order, as
 * they are written, when the operations fill the slot front to back (full payloads do); else the
 * slot is read back once written. (Before finalizing, the engine hashes the slot on the disk
 * again.) A failure before the first write changes nothing;
 * one after it leaves the slot unbootable. The active slot's flags are never touched, and the
 * error says which check failed.
 */
import { createHash, createPublicKey, publicDecrypt, constants as cryptoConstants } from 'node:crypto';
import type { Hash, KeyObject } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { fdatasync as fdatasyncCb, read as readCb, write as writeCb } from 'node:fs';
import { promisify } from 'node:util';
import { Bzip2Pool } from './bzip2';
import { sectorSize } from './gpt';
import type { GptEntry } from './gpt';
import { markUnbootable } from './slots';
import { PayloadReader } from './payload-source';
import { RateMeter } from './rate';
import type { PayloadSource } from './payload-source';
import { decodeManifest, decodeSignatures, headerSize, opNames, opType, parseHeader, PayloadError, sha256DigestInfo, sparseHole } from './payload-format';
import type { Manifest, Operation } from './payload-format';
import type { RetryPolicy } from '../datasource/http';
import { millis } from '../system/clock';

const write = promisify(writeCb);
const read = promisify(readCb);
const fdatasync = promisify(fdatasyncCb);

/**
 * How far writing the slot has got, in one quantity: bytes of the image written to the slot, of
 * the image's size (new_partition_info). The bar, the lines and the summary all show this one.
 */
export interface Progress {
  /** Bytes of the image written to the slot so far. */
  written: number;
  /** The image's size in bytes: what `written` reaches when done. */
  total: number;
  /** written / total, 0 to 1. */
  fraction: number;
  /**
   * Bytes written per second: a moving average over the last 3 s; on the last report (fraction
   * 1), the average over the whole write, which is what {@link ApplyResult.writeSeconds} gives.
   */
  rate: number;
}

export interface ApplyOptions {
  source: PayloadSource;
  /** The disk (device or image) holding the slot. */
  disk: string;
  /** The passive USR partition to write. */
  target: GptEntry;
  /** PEM public keys; a signature by any of them is accepted. None: the signature is not checked (a warning). */
  publicKeys?: string[];
  /** The whole payload's SHA-256 as the update server announced it. */
  sha256?: Buffer;
  /** The payload's size as announced; a larger payload is refused. */
  size?: number;
  onProgress?: (p: Progress) => void;
  /**
   * Called once the slot is marked unbootable, before its first byte is written: what recorded
   * the slot's old content (the staged record) is void from here on, and not before.
   */
  onWriteStart?: () => void;
  pool?: Bzip2Pool;
  resumePolicy?: RetryPolicy;
}

export interface ApplyResult {
  payloadBytes: number;
  payloadSha256: string;
  /** What was written to the slot and verified: new_partition_info. */
  imageSize: number;
  imageSha256: string;
  /** Which of the configured keys verified the signature; undefined when none was configured. */
  keyIndex: number | undefined;
  operations: number;
  /** The whole apply, verification included, in seconds. */
  seconds: number;
  /** Writing the image, from the slot's first byte to its last, in seconds: imageSize / writeSeconds is the write rate. */
  writeSeconds: number;
  resumes: number;
  warnings: string[];
}

/** The index of the first key under which one of the signatures is a PKCS#1 v1.5 signature of `digest`, or -1. */
export function verifySignatures(digest: Buffer, signatures: Buffer[], keys: KeyObject[]): number {
  const expected = Buffer.concat([sha256DigestInfo, digest]);
  for (const [i, key] of keys.entries()) {
    for (const sig of signatures) {
      try {
        if (publicDecrypt({ key, padding: cryptoConstants.RSA_PKCS1_PADDING }, sig).equals(expected)) return i;
      } catch {
        // not this key's signature
      }
    }
  }
  return -1;
}

function loadKeys(pems: string[]): KeyObject[] {
  return pems.map((pem, i) => {
    try {
      const key = createPublicKey(pem);
      if (key.asymmetricKeyType !== 'rsa') throw new Error(`a ${key.asymmetricKeyType} key, not RSA`);
      return key;
    } catch (err) {
      throw new PayloadError('signature', `public key ${i + 1} is unusable: ${(err as Error).message}`);
    }
  });
}

/**
 * The most one operation may write: 16 MiB. Flatcar's full payloads cut the image into 1 MiB
 * chunks; the cap is what keeps an operation's data and output in memory bounded, whatever a
 * manifest says.
 */
export const maxOperationBytes = 16 << 20;
/** The most a Signatures message may take: a handful of RSA-4096 signatures need 3 KiB. */
export const maxSignaturesBytes = 64 << 10;
/** The most `n` bytes grow to under bzip2 (its manual: 1% and 600 bytes at worst). */
const bzip2Bound = (n: number) => n + Math.ceil(n / 100) + 600;

/** What the manifest says, checked against the slot before anything is written. */
interface Checked {
  imageSize: number;
  /** Where the payload ends by its manifest, from the start of the blob area. */
  blobEnd: number;
}

/**
 * Checks the manifest against the slot before anything is written: each operation's destination
 * inside the slot and at most maxOperationBytes, its data no more than its destination can hold
 * (REPLACE: the blocks; REPLACE_BZ: bzip2's worst case for them), read front to back.
 */
function checkManifest(m: Manifest, target: GptEntry): Checked {
  if (m.blockSize !== 4096) throw new PayloadError('manifest', `block size ${m.blockSize} is not supported (only 4096)`);
  const info = m.newPartitionInfo;
  if (!info || info.size === 0 || info.hash.length !== 32) throw new PayloadError('manifest', 'the manifest has no new_partition_info with a size and a SHA-256');
  const slotBytes = Number(target.lastLba - target.firstLba + 1n) * sectorSize;
  if (info.size > slotBytes) throw new PayloadError('size', `the image is ${info.size} bytes but ${target.name} holds ${slotBytes}`);
  const slotBlocks = BigInt(Math.floor(slotBytes / m.blockSize));
  let end = 0;
  for (const [i, op] of m.operations.entries()) {
    const name = `operation ${i} (${opNames[op.type] ?? `type ${op.type}`})`;
    if (op.type !== opType.REPLACE && op.type !== opType.REPLACE_BZ) throw new PayloadError('manifest', `${name}: only full payloads (REPLACE, REPLACE_BZ) are supported`);
    if (op.dataOffset < end) throw new PayloadError('manifest', `${name}: its data (offset ${op.dataOffset}) overlaps or precedes the previous operation's; a payload is read once, front to back`);
    end = op.dataOffset + op.dataLength;
    if (m.signaturesOffset !== undefined && end > m.signaturesOffset) throw new PayloadError('manifest', `${name}: its data runs into the signatures`);
    if (op.dstExtents.length === 0) throw new PayloadError('manifest', `${name} has no destination`);
    for (const e of op.dstExtents) {
      if (e.startBlock === sparseHole || e.startBlock + e.numBlocks > slotBlocks) {
        throw new PayloadError('size', `${name} writes blocks ${e.startBlock}-${e.startBlock + e.numBlocks - 1n}, beyond the ${slotBlocks} blocks of ${target.name}`);
      }
    }
    const capacity = op.dstExtents.reduce((n, e) => n + Number(e.numBlocks) * m.blockSize, 0);
    if (capacity > maxOperationBytes) throw new PayloadError('manifest', `${name} writes ${capacity} bytes; one operation may write at most ${maxOperationBytes}`);
    const most = op.type === opType.REPLACE ? capacity : bzip2Bound(capacity);
    if (op.dataLength > most) throw new PayloadError('manifest', `${name}: its ${op.dataLength} bytes of data are more than its ${capacity / m.blockSize} blocks can hold`);
  }
  if (m.signaturesOffset !== undefined && m.signaturesSize) {
    if (m.signaturesSize > maxSignaturesBytes) throw new PayloadError('manifest', `the signatures take ${m.signaturesSize} bytes, more than the ${maxSignaturesBytes} allowed`);
    end = m.signaturesOffset + m.signaturesSize;
  }
  return { imageSize: info.size, blobEnd: end };
}

/** Writes `data` over the extents, zero-padding the last block; what it wrote. */
async function writeExtents(fd: number, slotStart: number, bs: number, op: Operation, data: Buffer, name: string): Promise<Buffer> {
  const capacity = op.dstExtents.reduce((n, e) => n + Number(e.numBlocks) * bs, 0);
  if (data.length > capacity || data.length <= capacity - bs) {
    throw new PayloadError('operation', `${name} produces ${data.length} bytes for ${capacity / bs} blocks`);
  }
  const padded = data.length === capacity ? data : Buffer.concat([data, Buffer.alloc(capacity - data.length)]);
  let at = 0;
  for (const e of op.dstExtents) {
    const len = Number(e.numBlocks) * bs;
    let done = 0;
    while (done < len) {
      try {
        done += (await write(fd, padded, at + done, len - done, slotStart + Number(e.startBlock) * bs + done)).bytesWritten;
      } catch (err) {
        throw new PayloadError('write', `writing ${name} to block ${e.startBlock}: ${(err as Error).message}`);
      }
    }
    at += len;
  }
  return padded;
}

/** SHA-256 of the first `size` bytes of the slot as they are on the disk. */
export async function hashSlot(fd: number, slotStart: number, size: number): Promise<Buffer> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  for (let at = 0; at < size; ) {
    const { bytesRead } = await read(fd, buf, 0, Math.min(buf.length, size - at), slotStart + at);
    if (bytesRead === 0) throw new PayloadError('partition-hash', `the disk ends ${size - at} bytes before the end of the image`);
    hash.update(buf.subarray(0, bytesRead));
    at += bytesRead;
  }
  return hash.digest();
}

/** Payload bytes (operation data and their output) in flight to bzip2 and the disk, per core. */
const windowPerCore = 24 << 20;
/** Written bytes after which the disk is flushed in the background, so the last flush is short. */
const flushEvery = 32 << 20;

/**
 * Whether the operations' extents, taken in order, fill the slot from its first block on without
 * gaps or overlaps up to at least `imageSize` bytes: then the image can be hashed from the
 * operations' outputs, in the manifest's order.
 */
function frontToBack(m: Manifest, imageSize: number): boolean {
  let next = 0n;
  for (const op of m.operations) {
    for (const e of op.dstExtents) {
      if (e.startBlock !== next) return false;
      next += e.numBlocks;
    }
  }
  return next * BigInt(m.blockSize) >= BigInt(imageSize);
}

export async function applyPayload(opts: ApplyOptions): Promise<ApplyResult> {
  const started = millis();
  const keys = loadKeys(opts.publicKeys ?? []);
  const pool = opts.pool ?? new Bzip2Pool();
  const { target } = opts;
  const fileHash: Hash = createHash('sha256');
  const reader = new PayloadReader(opts.source, (chunk) => fileHash.update(chunk), opts.resumePolicy);
  const inFlight = new Set<Promise<unknown>>();
  /** The background fdatasync of the slot, while one runs. */
  let flushing: Promise<void> | undefined;
  let failure: unknown;
  let fd: number | undefined;
  let marked = false;
  try {
    if (opts.size !== undefined) reader.limitTo(opts.size, 'announced');
    // The source opens, the header and the manifest check out, before the slot is touched: a typo,
    // a refused URL or a wrong file changes nothing on the disk.
    const manifestLength = parseHeader(await reader.read(headerSize, 'the header'));
    const manifest = decodeManifest(await reader.read(manifestLength, 'the manifest'));
    const { imageSize, blobEnd } = checkManifest(manifest, target);
    const blobStart = headerSize + manifestLength;
    const end = blobStart + blobEnd;
    if (opts.size !== undefined && end !== opts.size) {
      throw new PayloadError('size', `its manifest accounts for ${end} bytes, ${end > opts.size ? 'more' : 'fewer'} than the ${opts.size} announced`);
    }
    const total = reader.size;
    if (total !== undefined && manifest.signaturesOffset !== undefined && manifest.signaturesSize && total !== end) {
      throw new PayloadError('size', `the payload is ${total} bytes but its manifest accounts for ${end}`);
    }
    reader.limitTo(end, 'manifest');

    // First of the writes: the slot about to be overwritten must not be booted, whatever happens next.
    markUnbootable(opts.disk, target);
    marked = true;
    opts.onWriteStart?.();
    fd = openSync(opts.disk, 'r+');
    const disk = fd;
    const bs = manifest.blockSize;
    const slotStart = Number(target.firstLba) * sectorSize;
    // Image bytes written: each operation's output, without the padding of its last block.
    let written = 0;
    const firstByteAt = millis();
    let lastByteAt = firstByteAt;
    const meter = new RateMeter();
    meter.sample(firstByteAt, 0);
    const report = () => {
      lastByteAt = millis();
      if (!opts.onProgress) return;
      const shown = Math.min(written, imageSize);
      const done = shown === imageSize;
      const rate = meter.sample(lastByteAt, shown);
      const seconds = (lastByteAt - firstByteAt) / 1000;
      opts.onProgress({ written: shown, total: imageSize, fraction: shown / imageSize, rate: done && seconds > 0 ? shown / seconds : rate });
    };
    const capacityOf = (op: Operation) => op.dstExtents.reduce((n, e) => n + Number(e.numBlocks) * bs, 0);
    type Item = { index: number; op: Operation; data: Buffer; name: string };
    // Memory: what is read ahead waits for bzip2, the disk and the image's hash within a window
    // of bytes (each operation's data and its output), so it stays bounded whatever the
    // payload's operations are.
    const window = pool.size * windowPerCore;
    let inFlightBytes = 0;
    const bytesOf = (items: Item[]) => items.reduce((n, b) => n + b.data.length + capacityOf(b.op), 0);
    // The image's hash, as the operations' outputs are written: in the manifest's order, so an
    // output written ahead of an earlier operation's waits for it (within the window).
    const imageHash = frontToBack(manifest, imageSize) ? createHash('sha256') : undefined;
    const toHash = new Map<number, { data: Buffer; bytes: number }>();
    let nextToHash = 0;
    let hashed = 0;
    const hashInOrder = () => {
      for (let next = toHash.get(nextToHash); next; next = toHash.get(nextToHash)) {
        toHash.delete(nextToHash++);
        const take = Math.min(next.data.length, imageSize - hashed);
        if (take > 0) imageHash!.update(take === next.data.length ? next.data : next.data.subarray(0, take));
        hashed += take;
        inFlightBytes -= next.bytes;
      }
    };
    // Flushing as the apply goes: one fdatasync at a time, in the background; a failure fails the apply.
    let unflushed = 0;
    const flushSoon = (bytes: number) => {
      unflushed += bytes;
      if (flushing || unflushed < flushEvery) return;
      unflushed = 0;
      flushing = fdatasync(disk).then(
        () => void (flushing = undefined),
        (err: unknown) => {
          failure ??= new PayloadError('write', `flushing ${target.name}: ${(err as Error).message}`);
          flushing = undefined;
        },
      );
    };
    /** Decompresses (REPLACE_BZ, several to one bzip2) and writes a run of operations, in the background. */
    const dispatch = (items: Item[]) => {
      inFlightBytes += bytesOf(items);
      const work = (async () => {
        let outs = items.map((b) => b.data);
        if (items[0]!.op.type === opType.REPLACE_BZ) {
          try {
            outs = await pool.decompressBatch(items.map((b) => ({ data: b.data, capacity: capacityOf(b.op), minimum: capacityOf(b.op) - bs + 1 })));
          } catch (err) {
            throw new PayloadError('operation', `${items[(err as { chunk?: number }).chunk ?? 0]!.name}: ${(err as Error).message}`);
          }
        }
        for (const [j, b] of items.entries()) {
          const padded = await writeExtents(disk, slotStart, bs, b.op, outs[j]!, b.name);
          written += outs[j]!.length;
          report();
          flushSoon(padded.length);
          const bytes = b.data.length + capacityOf(b.op);
          if (imageHash) toHash.set(b.index, { data: padded, bytes });
          else inFlightBytes -= bytes;
        }
        if (imageHash) hashInOrder();
      })();
      const tracked: Promise<unknown> = work.then(
        () => inFlight.delete(tracked),
        (err: unknown) => {
          failure ??= err;
          inFlight.delete(tracked);
        },
      );
      inFlight.add(tracked);
    };
    // A process per batch of chunks, not per chunk: starting one costs a fork of this process.
    const batchSize = 8;
    const batchBytes = windowPerCore / 2;
    let batch: Item[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      dispatch(batch);
      batch = [];
      while (inFlight.size > 0 && inFlightBytes >= window) await Promise.race(inFlight);
    };
    for (const [i, op] of manifest.operations.entries()) {
      if (failure) break;
      const name = `operation ${i} (${opNames[op.type]}, payload bytes ${blobStart + op.dataOffset}-${blobStart + op.dataOffset + op.dataLength - 1})`;
      const gap = blobStart + op.dataOffset - reader.position;
      if (gap > 0) await reader.skip(gap, `the data before ${name}`);
      const data = await reader.read(op.dataLength, name);
      if (op.dataSha256 && !createHash('sha256').update(data).digest().equals(op.dataSha256)) {
        throw new PayloadError('operation-hash', `${name}: its data does not match its SHA-256`);
      }
      if (batch.length > 0 && batch[0]!.op.type !== op.type) await flush();
      batch.push({ index: i, op, data, name });
      if (op.type === opType.REPLACE || batch.length >= batchSize || bytesOf(batch) >= batchBytes) await flush();
    }
    if (!failure) await flush();
    await Promise.all(inFlight);
    await flushing;
    if (failure) throw failure;

    // The signatures: everything before them is what was signed.
    let signatures: Buffer[] = [];
    let signedDigest: Buffer | undefined;
    if (manifest.signaturesOffset !== undefined && manifest.signaturesSize) {
      const gap = blobStart + manifest.signaturesOffset - reader.position;
      if (gap > 0) await reader.skip(gap, 'the data before the signatures');
      signedDigest = fileHash.copy().digest();
      signatures = decodeSignatures(await reader.read(manifest.signaturesSize, 'the signatures'));
    }
    if (!(await reader.atEnd())) {
      throw new PayloadError('size', `more data follows byte ${reader.position}, where the payload ends by its manifest`);
    }
    try {
      await fdatasync(disk);
    } catch (err) {
      throw new PayloadError('write', `flushing ${target.name}: ${(err as Error).message}`);
    }

    const payloadSha256 = fileHash.digest();
    if (opts.sha256 && !payloadSha256.equals(opts.sha256)) {
      throw new PayloadError('payload-hash', `the payload's SHA-256 is ${payloadSha256.toString('hex')}, not the announced ${opts.sha256.toString('hex')}`);
    }
    const warnings: string[] = [];
    let keyIndex: number | undefined;
    if (keys.length === 0) {
      warnings.push('no public key is configured: the payload signature was not checked');
    } else {
      if (!signedDigest || signatures.length === 0) throw new PayloadError('signature', 'the payload is not signed');
      keyIndex = verifySignatures(signedDigest, signatures, keys);
      if (keyIndex < 0) {
        throw new PayloadError('signature', `none of the payload's ${signatures.length} signature(s) verifies with any of the ${keys.length} configured key(s)`);
      }
    }
    const info = manifest.newPartitionInfo!;
    const slotHash = imageHash && hashed === imageSize ? imageHash.digest() : await hashSlot(disk, slotStart, imageSize);
    if (!slotHash.equals(info.hash)) {
      throw new PayloadError('partition-hash', `${target.name} as written hashes to ${slotHash.toString('hex')}, not new_partition_info's ${info.hash.toString('hex')}`);
    }
    return {
      payloadBytes: reader.position,
      payloadSha256: payloadSha256.toString('hex'),
      imageSize,
      imageSha256: slotHash.toString('hex'),
      keyIndex,
      operations: manifest.operations.length,
      seconds: (millis() - started) / 1000,
      writeSeconds: (lastByteAt - firstByteAt) / 1000,
      resumes: reader.resumes,
      warnings,
    };
  } catch (err) {
    failure ??= err;
    reader.close();
    if (!marked) throw failure; // nothing was written: the slot, its flags and the staged record are as they were
    // No write may land after the slot is declared failed, and no flush may outlive the file.
    await Promise.allSettled(inFlight);
    await flushing;
    if (failure instanceof PayloadError) failure.slotTouched = true;
    try {
      markUnbootable(opts.disk, target);
    } catch (err) {
      throw Object.assign(new PayloadError('gpt', `${(failure as Error).message}; then marking ${target.name} unbootable failed: ${(err as Error).message}`), { slotTouched: true });
    }
    throw failure;
  } finally {
    reader.close();
    if (fd !== undefined) closeSync(fd);
  }
}
