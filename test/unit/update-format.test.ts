/** The payload header and manifest codec, signatures over a digest, and finding the running slot. */
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeManifest, encodeHeader, encodeManifest, parseHeader, PayloadError, sparseHole } from '../../src/update/payload-format';
import { verifySignatures } from '../../src/update/apply-payload';
import { signDigest } from '../../src/update/make-payload';
import { discoverMachine } from '../../src/update/engine';
import { normalizeGoFlags } from '../../src/cli/options';

test('the manifest round-trips, the hole sentinel included', () => {
  const m = {
    operations: [{ type: 1, dataOffset: 0, dataLength: 10, dstExtents: [{ startBlock: 0n, numBlocks: 256n }], dataSha256: Buffer.alloc(32, 9) }],
    noopOperations: [{ type: 0, dataOffset: 10, dataLength: 267, dstExtents: [{ startBlock: sparseHole, numBlocks: 1n }] }],
    blockSize: 4096,
    signaturesOffset: 10,
    signaturesSize: 267,
    newPartitionInfo: { size: 1048576, hash: Buffer.alloc(32, 3) },
    procedures: 0,
  };
  expect(decodeManifest(encodeManifest(m))).toEqual(m);
});

test('header errors say what is wrong', () => {
  const err = (b: Buffer) => {
    try {
      parseHeader(b);
    } catch (e) {
      return [(e as PayloadError).check, (e as Error).message];
    }
    return undefined;
  };
  expect(parseHeader(encodeHeader(1234))).toBe(1234);
  expect(err(Buffer.from('CrAU'))).toEqual(['header', 'the payload is 4 bytes, shorter than its 20-byte header']);
  const v2 = encodeHeader(10);
  v2.writeBigUInt64BE(2n, 4);
  expect(err(v2)).toEqual(['header', 'payload format version 2 is not supported (only 1)']);
  expect(err(encodeHeader(0))).toEqual(['header', 'implausible manifest length 0']);
  expect(() => decodeManifest(Buffer.from([0x0a, 0xff]))).toThrow(/the manifest does not decode/);
});

test('a digest signed our way verifies as an ordinary RSA-SHA256 signature, and the other way round', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
  const data = Buffer.from('payload bytes');
  const digest = createHash('sha256').update(data).digest();
  const ours = signDigest(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), digest);
  expect(ours).toEqual(sign('sha256', data, privateKey));
  expect(verifySignatures(digest, [Buffer.alloc(256), ours], [other, publicKey])).toBe(1);
  expect(verifySignatures(digest, [ours], [other])).toBe(-1);
});

test('the running slot: --active, then usr= on the command line, then the device under /usr', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bootsmith-discover-'));
  const cmdline = join(dir, 'cmdline');
  writeFileSync(cmdline, 'root=LABEL=ROOT usr=PARTUUID=7130c94a-213a-4e5a-8e26-6cce9662f132 quiet\n');
  expect(discoverMachine({ disk: '/dev/vda', active: 'USR-B', cmdlineFile: cmdline })).toEqual({ disk: '/dev/vda', active: { label: 'USR-B' } });
  expect(discoverMachine({ disk: '/dev/vda', cmdlineFile: cmdline })).toEqual({ disk: '/dev/vda', active: { partUuid: '7130C94A-213A-4E5A-8E26-6CCE9662F132' } });
  // A sysfs with vda4 (partition 4 of vda) mounted at /usr.
  const sys = join(dir, 'sys');
  mkdirSync(join(sys, 'devices/virtio0/block/vda/vda4'), { recursive: true });
  writeFileSync(join(sys, 'devices/virtio0/block/vda/vda4/partition'), '4\n');
  mkdirSync(join(sys, 'dev/block'), { recursive: true });
  symlinkSync('../../devices/virtio0/block/vda/vda4', join(sys, 'dev/block/254:4'));
  const mountinfo = join(dir, 'mountinfo');
  writeFileSync(mountinfo, '22 1 254:9 / / rw,relatime - ext4 /dev/vda9 rw\n23 22 254:4 / /usr ro,relatime - ext4 /dev/vda4 ro\n');
  expect(discoverMachine({ cmdlineFile: join(dir, 'none'), mountinfoFile: mountinfo, sysRoot: sys })).toEqual({ disk: '/dev/vda', active: { label: '#4' } });
  expect(() => discoverMachine({ cmdlineFile: join(dir, 'none'), mountinfoFile: join(dir, 'none'), sysRoot: sys })).toThrow('cannot tell which disk holds the USR partitions: give --disk');
});

test('gflags spellings: single dash, underscores, =values', () => {
  expect(normalizeGoFlags(['-boot_next', 'd', '--state_dir=/x', '-v', '--', '-slots'], ['boot-next', 'state-dir', 'slots'])).toEqual(['--boot-next', 'd', '--state-dir=/x', '-v', '--', '-slots']);
});
