/**
 * Makes a full CrAU v1 payload from a USR image, as Flatcar's generator does: the image cut into
 * 1 MiB chunks, each REPLACE_BZ (or REPLACE when bzip2 does not shrink it) with its SHA-256,
 * new_partition_info, the dummy operation old clients need over the signatures, and one RSA
 * PKCS#1 v1.5 SHA-256 signature per private key over everything before the signatures.
 */
import { createHash, createPrivateKey, privateEncrypt, constants as cryptoConstants } from 'node:crypto';
import { closeSync, createReadStream, fsyncSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { Bzip2Pool } from './bzip2';
import { blockSize, encodeHeader, encodeManifest, encodeSignatures, opType, sha256DigestInfo, sparseHole } from './payload-format';
import type { Operation } from './payload-format';

export const chunkSize = 1 << 20;

export interface MadePayload {
  path: string;
  size: number;
  sha256: string;
  imageSize: number;
  imageSha256: string;
  operations: number;
}

function writeAll(fd: number, data: Buffer): void {
  for (let done = 0; done < data.length; ) done += writeSync(fd, data, done);
}

/** Signs a SHA-256 digest: RSA PKCS#1 v1.5 over DigestInfo || digest. */
export function signDigest(privateKeyPem: string, digest: Buffer): Buffer {
  return privateEncrypt({ key: privateKeyPem, padding: cryptoConstants.RSA_PKCS1_PADDING }, Buffer.concat([sha256DigestInfo, digest]));
}

export async function makePayload(image: string, out: string, privateKeys: string[], pool = new Bzip2Pool()): Promise<MadePayload> {
  const imageSize = statSync(image).size;
  if (imageSize === 0) throw new Error(`${image} is empty`);
  const blobPath = `${out}.blob.tmp`;
  const tmp = `${out}.tmp`;
  const imageHash = createHash('sha256');
  const operations: Operation[] = [];
  const blobFd = openSync(blobPath, 'w');
  try {
    // Compress chunks a few at a time in parallel, append them to the blob in order.
    const src = openSync(image, 'r');
    try {
      const pending: Promise<{ data: Buffer; raw: Buffer; at: number }>[] = [];
      let blobLength = 0;
      const drain = async () => {
        const { data, raw, at } = await pending.shift()!;
        const compressed = data.length < raw.length;
        const stored = compressed ? data : raw;
        operations.push({
          type: compressed ? opType.REPLACE_BZ : opType.REPLACE,
          dataOffset: blobLength,
          dataLength: stored.length,
          dstExtents: [{ startBlock: BigInt(at / blockSize), numBlocks: BigInt(Math.ceil(raw.length / blockSize)) }],
          dataSha256: createHash('sha256').update(stored).digest(),
        });
        writeAll(blobFd, stored);
        blobLength += stored.length;
      };
      for (let at = 0; at < imageSize; at += chunkSize) {
        const raw = Buffer.alloc(Math.min(chunkSize, imageSize - at));
        for (let got = 0; got < raw.length; ) got += readSync(src, raw, got, raw.length - got, at + got);
        imageHash.update(raw);
        pending.push(pool.compress(raw).then((data) => ({ data, raw, at })));
        if (pending.length >= pool.size * 2) await drain();
      }
      while (pending.length > 0) await drain();
    } finally {
      closeSync(src);
    }
  } finally {
    closeSync(blobFd);
  }
  const imageSha256 = imageHash.digest();
  try {
    const blobLength = statSync(blobPath).size;
    const keyBytes = privateKeys.map((pem) => (createPrivateKey(pem).asymmetricKeyDetails?.modulusLength ?? 2048) / 8);
    const signaturesSize = encodeSignatures(keyBytes.map((n) => Buffer.alloc(n))).length;
    const manifest = encodeManifest({
      operations,
      noopOperations:
        privateKeys.length > 0
          ? [{ type: opType.REPLACE, dataOffset: blobLength, dataLength: signaturesSize, dstExtents: [{ startBlock: sparseHole, numBlocks: BigInt(Math.ceil(signaturesSize / blockSize)) }] }]
          : [],
      blockSize,
      ...(privateKeys.length > 0 ? { signaturesOffset: blobLength, signaturesSize } : {}),
      newPartitionInfo: { size: imageSize, hash: imageSha256 },
      procedures: 0,
    });
    const fileHash = createHash('sha256');
    const fd = openSync(tmp, 'w');
    try {
      const put = (b: Buffer) => {
        fileHash.update(b);
        writeAll(fd, b);
      };
      put(encodeHeader(manifest.length));
      put(manifest);
      for await (const chunk of createReadStream(blobPath, { highWaterMark: chunkSize })) put(chunk as Buffer);
      if (privateKeys.length > 0) {
        const digest = fileHash.copy().digest();
        const signatures = encodeSignatures(privateKeys.map((pem) => signDigest(pem, digest)));
        if (signatures.length !== signaturesSize) throw new Error(`the signatures take ${signatures.length} bytes, not the ${signaturesSize} planned`);
        put(signatures);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, out);
    return { path: out, size: statSync(out).size, sha256: fileHash.digest('hex'), imageSize, imageSha256: imageSha256.toString('hex'), operations: operations.length };
  } finally {
    rmSync(blobPath, { force: true });
    rmSync(tmp, { force: true });
  }
}
