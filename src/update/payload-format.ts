/**
 * The CrAU v1 update payload of CoreOS/Flatcar update_engine ("flatcar_production_update.gz",
 * not gzip despite the name):
 *
 *   "CrAU" | version u64 BE (1) | manifest length M u64 BE | DeltaArchiveManifest (M bytes) | blobs
 *
 * Operation data offsets count from the start of the blob area; the Signatures message sits at
 * signatures_offset in it (the end). The signed value is the SHA-256 of every byte before the
 * Signatures message; the whole-file SHA-256 is what the update server announces.
 * Field numbers: update_metadata.proto of coreos/update_engine (package chromeos_update_engine).
 */
import protobuf from 'protobufjs';

const proto = `
syntax = "proto2";
package chromeos_update_engine;
message Extent {
  optional uint64 start_block = 1;
  optional uint64 num_blocks = 2;
}
message InstallOperation {
  enum Type { REPLACE = 0; REPLACE_BZ = 1; MOVE = 2; BSDIFF = 3; }
  required Type type = 1;
  optional uint32 data_offset = 2;
  optional uint32 data_length = 3;
  repeated Extent src_extents = 4;
  optional uint64 src_length = 5;
  repeated Extent dst_extents = 6;
  optional uint64 dst_length = 7;
  optional bytes data_sha256_hash = 8;
}
message Signatures {
  message Signature {
    optional uint32 version = 1;
    optional bytes data = 2;
  }
  repeated Signature signatures = 1;
}
message InstallInfo {
  optional uint64 size = 1;
  optional bytes hash = 2;
}
message InstallProcedure {
  enum Type { KERNEL = 0; PCR_POLICY = 1; }
  optional Type type = 1;
  repeated InstallOperation operations = 2;
  optional InstallInfo old_info = 3;
  optional InstallInfo new_info = 4;
}
message DeltaArchiveManifest {
  repeated InstallOperation partition_operations = 1;
  repeated InstallOperation noop_operations = 2;
  optional uint32 block_size = 3 [default = 4096];
  optional uint64 signatures_offset = 4;
  optional uint64 signatures_size = 5;
  optional InstallInfo old_partition_info = 8;
  optional InstallInfo new_partition_info = 9;
  repeated InstallProcedure procedures = 10;
}
`;

const root = protobuf.parse(proto, { keepCase: true }).root;
const ManifestType = root.lookupType('chromeos_update_engine.DeltaArchiveManifest');
const SignaturesType = root.lookupType('chromeos_update_engine.Signatures');

export const magic = 'CrAU';
export const headerSize = 20;
export const blockSize = 4096;
/** A destination extent starting here is a hole: nothing is written (the dummy signature operation). */
export const sparseHole = 0xffffffffffffffffn;
export const opType = { REPLACE: 0, REPLACE_BZ: 1, MOVE: 2, BSDIFF: 3 } as const;
export const opNames = ['REPLACE', 'REPLACE_BZ', 'MOVE', 'BSDIFF'];
/** The DER DigestInfo for SHA-256 that PKCS#1 v1.5 puts before the hash it signs. */
export const sha256DigestInfo = Buffer.from('3031300d060960864801650304020105000420', 'hex');

export interface Extent {
  startBlock: bigint;
  numBlocks: bigint;
}

export interface Operation {
  type: number;
  dataOffset: number;
  dataLength: number;
  dstExtents: Extent[];
  dataSha256?: Buffer;
}

export interface InstallInfo {
  size: number;
  hash: Buffer;
}

export interface Manifest {
  operations: Operation[];
  noopOperations: Operation[];
  blockSize: number;
  signaturesOffset?: number;
  signaturesSize?: number;
  newPartitionInfo?: InstallInfo;
  /** Kernel and PCR-policy procedures: update_engine applies them to /boot, not to the USR slot. */
  procedures: number;
}

/** A payload that is not what it claims, with the check that found it. */
export class PayloadError extends Error {
  /**
   * Whether the passive slot had been marked unbootable to be written when this was found. False:
   * the failure came before the first write, and the slot, its flags and the staged record are as
   * they were.
   */
  slotTouched = false;

  constructor(
    readonly check: string,
    message: string,
  ) {
    super(message);
    this.name = 'PayloadError';
  }
}

type Long = { low: number; high: number; unsigned: boolean } | number;
const big = (v: Long | undefined | null): bigint => {
  if (v === undefined || v === null) return 0n;
  if (typeof v === 'number') return BigInt(v);
  return (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
};
const num = (v: Long | undefined | null, what: string): number => {
  const b = big(v);
  if (b > BigInt(Number.MAX_SAFE_INTEGER)) throw new PayloadError('manifest', `${what} ${b} is too large`);
  return Number(b);
};

interface RawOp {
  type: number;
  data_offset?: number;
  data_length?: number;
  dst_extents?: { start_block?: Long; num_blocks?: Long }[];
  data_sha256_hash?: Uint8Array;
}

function operation(o: RawOp): Operation {
  return {
    type: o.type,
    dataOffset: o.data_offset ?? 0,
    dataLength: o.data_length ?? 0,
    dstExtents: (o.dst_extents ?? []).map((e) => ({ startBlock: big(e.start_block), numBlocks: big(e.num_blocks) })),
    ...(o.data_sha256_hash && o.data_sha256_hash.length > 0 ? { dataSha256: Buffer.from(o.data_sha256_hash) } : {}),
  };
}

/**
 * The most a manifest may take: 1 MiB. A full payload of a 1 GiB USR image in 1 MiB chunks has a
 * manifest of about 60 KiB (500 KiB in 128 KiB chunks); decoding costs about 150 bytes of memory
 * per manifest byte at worst (a manifest of empty operations), so this bounds it near 150 MB.
 */
export const maxManifestBytes = 1 << 20;

/** The manifest length from the first 20 bytes, or why they are not a CrAU v1 header. */
export function parseHeader(head: Buffer): number {
  if (head.length < headerSize) throw new PayloadError('header', `the payload is ${head.length} bytes, shorter than its 20-byte header`);
  if (head.toString('latin1', 0, 4) !== magic) throw new PayloadError('header', `not an update payload: it starts with ${JSON.stringify(head.toString('latin1', 0, 4))}, not "CrAU"`);
  const version = head.readBigUInt64BE(4);
  if (version !== 1n) throw new PayloadError('header', `payload format version ${version} is not supported (only 1)`);
  const length = head.readBigUInt64BE(12);
  if (length === 0n) throw new PayloadError('header', `implausible manifest length ${length}`);
  if (length > BigInt(maxManifestBytes)) throw new PayloadError('header', `the manifest is ${length} bytes, more than the ${maxManifestBytes} allowed`);
  return Number(length);
}

export function decodeManifest(bytes: Buffer): Manifest {
  let m: Record<string, unknown>;
  try {
    m = ManifestType.toObject(ManifestType.decode(bytes), { defaults: false }) as Record<string, unknown>;
  } catch (err) {
    throw new PayloadError('manifest', `the manifest does not decode: ${(err as Error).message}`);
  }
  const info = m.new_partition_info as { size?: Long; hash?: Uint8Array } | undefined;
  return {
    operations: ((m.partition_operations as RawOp[] | undefined) ?? []).map(operation),
    noopOperations: ((m.noop_operations as RawOp[] | undefined) ?? []).map(operation),
    blockSize: (m.block_size as number | undefined) ?? blockSize,
    ...(m.signatures_offset !== undefined ? { signaturesOffset: num(m.signatures_offset as Long, 'signatures_offset') } : {}),
    ...(m.signatures_size !== undefined ? { signaturesSize: num(m.signatures_size as Long, 'signatures_size') } : {}),
    ...(info ? { newPartitionInfo: { size: num(info.size, 'new_partition_info.size'), hash: Buffer.from(info.hash ?? []) } } : {}),
    procedures: ((m.procedures as unknown[] | undefined) ?? []).length,
  };
}

export function decodeSignatures(bytes: Buffer): Buffer[] {
  try {
    const s = SignaturesType.toObject(SignaturesType.decode(bytes)) as { signatures?: { data?: Uint8Array }[] };
    return (s.signatures ?? []).map((sig) => Buffer.from(sig.data ?? []));
  } catch (err) {
    throw new PayloadError('signature', `the Signatures message does not decode: ${(err as Error).message}`);
  }
}

export function encodeManifest(m: Manifest): Buffer {
  const op = (o: Operation) => ({
    type: o.type,
    data_offset: o.dataOffset,
    data_length: o.dataLength,
    dst_extents: o.dstExtents.map((e) => ({ start_block: e.startBlock.toString(), num_blocks: Number(e.numBlocks) })),
    ...(o.dataSha256 ? { data_sha256_hash: o.dataSha256 } : {}),
  });
  const msg = ManifestType.fromObject({
    partition_operations: m.operations.map(op),
    noop_operations: m.noopOperations.map(op),
    block_size: m.blockSize,
    ...(m.signaturesOffset !== undefined ? { signatures_offset: m.signaturesOffset, signatures_size: m.signaturesSize } : {}),
    ...(m.newPartitionInfo ? { new_partition_info: { size: m.newPartitionInfo.size, hash: m.newPartitionInfo.hash } } : {}),
  });
  return Buffer.from(ManifestType.encode(msg).finish());
}

export function encodeSignatures(signatures: Buffer[]): Buffer {
  return Buffer.from(SignaturesType.encode(SignaturesType.fromObject({ signatures: signatures.map((data) => ({ version: 1, data })) })).finish());
}

export function encodeHeader(manifestLength: number): Buffer {
  const h = Buffer.alloc(headerSize);
  h.write(magic, 0, 'latin1');
  h.writeBigUInt64BE(1n, 4);
  h.writeBigUInt64BE(BigInt(manifestLength), 12);
  return h;
}
