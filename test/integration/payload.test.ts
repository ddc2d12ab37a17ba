/**
 * Payloads applied to real GPT disk images with real ext4 USR images: the happy path through
 * finalize, boot selection and mark-successful (cgpt, sgdisk and the image's release file as
 * oracles), and every fault the issue names: truncated, corrupted, wrongly signed, oversized
 * payloads, wrong announced hash, an image larger than the slot, key rotation, HTTP resumed with
 * Range after dropped connections.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { applyPayload } from '../../src/update/apply-payload';
import type { Progress } from '../../src/update/apply-payload';
import { makePayload } from '../../src/update/make-payload';
import { bestSlot } from '../../src/update/slots';
import { readGpt } from '../../src/update/gpt';
import { fileSource, httpSource } from '../../src/update/payload-source';
import { PayloadError, decodeManifest, headerSize, parseHeader } from '../../src/update/payload-format';
import { finalizeStaged, markGood, readStaged, stage } from '../../src/update/engine';
import { makeUsrImage } from '../../images/make';
import { cgptFlags, diskCopy, fixture, keyPair, mountedVersion, rewritePayload, sgdiskVerify, sha256, slotVersion, updateTools, usrSlot } from '../support/update';
import type { Fixture } from '../support/update';

if (!updateTools) test.skip('payload tests need bzip2, e2fsprogs, gdisk and cgpt; CI installs them', () => undefined);

const fast = { attempts: 5, backoffMs: 10, maxBackoffMs: 50, timeoutMs: 5000, deadlineMs: 30_000 };

(updateTools ? describe : describe.skip)('payloads', () => {
  let f: Fixture;
  let good: { path: string; sha256: string; size: number };
  beforeAll(async () => {
    f = await fixture();
    good = f.payloads['1001.0.0']!;
  }, 60_000);
  afterAll(() => rmSync(f.dir, { recursive: true, force: true }));

  const machine = (disk: string, active: 'USR-A' | 'USR-B' = 'USR-A') => ({ disk, active: { label: active } });

  test('stage, finalize, boot, mark successful: each step as cgpt and sgdisk see it', async () => {
    const disk = diskCopy(f, 'happy');
    const state = join(f.dir, 'state-happy');
    expect(cgptFlags(disk, 3)).toEqual([1, 0, 1]);
    const seen: Progress[] = [];
    const r = await stage(machine(disk), state, { source: fileSource(good.path), publicKeys: [f.keys[0]!.publicKey], sha256: Buffer.from(good.sha256, 'hex'), size: good.size, onProgress: (p) => seen.push(p) });
    // Progress: one report per operation, in one quantity: image bytes written to the slot, of the
    // image's size, rising to it; the last report's rate is the whole write's, as in the result.
    expect(seen).toHaveLength(24);
    expect(seen.map((p) => p.fraction)).toEqual([...seen.map((p) => p.fraction)].sort((a, b) => a - b));
    expect(seen.every((p) => p.total === 25165824 && p.fraction === p.written / p.total)).toBe(true);
    expect(seen.at(-1)).toMatchObject({ fraction: 1, written: 25165824, total: 25165824 });
    expect(seen.at(-1)!.rate).toBeCloseTo(r.imageSize / r.writeSeconds, 6);
    expect(r).toMatchObject({ payloadBytes: good.size, payloadSha256: good.sha256, keyIndex: 0, warnings: [] });
    expect(r.imageSha256).toBe(sha256(readFileSync(f.images['1001.0.0']!)));
    // Staged only: USR-B holds the new version but cannot boot until finalized.
    expect(cgptFlags(disk, 3)).toEqual([1, 0, 1]);
    expect(cgptFlags(disk, 4)).toEqual([0, 0, 0]);
    expect(sgdiskVerify(disk)).toContain('No problems found');
    expect(slotVersion(disk, usrSlot(disk, 'USR-B'), f.dir)).toBe('1001.0.0');
    expect(readStaged(state)).toMatchObject({ label: 'USR-B', partition: 4, imageSha256: r.imageSha256 });

    await finalizeStaged(machine(disk), state);
    expect(cgptFlags(disk, 4)).toEqual([2, 1, 0]);
    expect(cgptFlags(disk, 3)).toEqual([1, 0, 1]);
    expect(sgdiskVerify(disk)).toContain('No problems found');
    expect(readStaged(state)).toBeUndefined();
    await expect(finalizeStaged(machine(disk), state)).rejects.toThrow(/no verified update is staged in USR-B/);

    const pick = bestSlot(readGpt(disk).entries)!;
    expect(pick.name).toBe('USR-B');
    expect(slotVersion(disk, pick, f.dir)).toBe('1001.0.0');
    if (process.getuid?.() === 0) expect(mountedVersion(disk, pick, f.dir)).toBe('1001.0.0');

    const marked = markGood(machine(disk, 'USR-B'));
    expect(marked).toMatchObject({ rollback: false, changed: true });
    expect(cgptFlags(disk, 4)).toEqual([2, 0, 1]);
    expect(sgdiskVerify(disk)).toContain('No problems found');
    expect(markGood(machine(disk, 'USR-B')).changed).toBe(false);
  }, 60_000);

  test('a finalized slot that never boots successfully falls back, and the boot is reported as a rollback', async () => {
    const disk = diskCopy(f, 'rollback');
    const state = join(f.dir, 'state-rollback');
    await stage(machine(disk), state, { source: fileSource(good.path), publicKeys: [f.keys[0]!.publicKey] });
    await finalizeStaged(machine(disk), state);
    // The boot loader uses up USR-B's one try; the new OS never marks itself good; next boot:
    const { entries } = readGpt(disk);
    const b = entries[3]!;
    expect(bestSlot(entries)!.name).toBe('USR-B');
    const { updateGpt, attr } = await import('../../src/update/gpt');
    updateGpt(disk, (e) => (e[3]!.attributes = attr.with(b.attributes, { tries: 0 })));
    expect(bestSlot(readGpt(disk).entries)!.name).toBe('USR-A');
    const marked = markGood(machine(disk, 'USR-A'));
    expect(marked.rollback).toBe(true);
    expect(marked.changed).toBe(false);
  }, 60_000);

  test('a slot that changed after staging is not finalized', async () => {
    const disk = diskCopy(f, 'tampered');
    const state = join(f.dir, 'state-tampered');
    await stage(machine(disk), state, { source: fileSource(good.path) });
    const b = usrSlot(disk, 'USR-B');
    const fd = openSync(disk, 'r+');
    writeSync(fd, Buffer.from('x'), 0, 1, Number(b.firstLba) * 512 + 5000);
    closeSync(fd);
    await expect(finalizeStaged(machine(disk), state)).rejects.toThrow(/USR-B changed since it was staged/);
    expect(cgptFlags(disk, 4)).toEqual([0, 0, 0]);
  }, 60_000);

  test('key rotation: a payload signed by the second configured key, or by both, is accepted', async () => {
    const both = join(f.dir, 'both-keys.gz');
    await makePayload(f.images['1001.0.0']!, both, [f.keys[1]!.privateKey, f.keys[0]!.privateKey]);
    const second = join(f.dir, 'second-key.gz');
    await makePayload(f.images['1001.0.0']!, second, [f.keys[1]!.privateKey]);
    const disk = diskCopy(f, 'rotation');
    const target = usrSlot(disk, 'USR-B');
    const keys = [f.keys[0]!.publicKey, f.keys[1]!.publicKey];
    expect((await applyPayload({ source: fileSource(second), disk, target, publicKeys: keys })).keyIndex).toBe(1);
    expect((await applyPayload({ source: fileSource(both), disk, target, publicKeys: keys })).keyIndex).toBe(0);
    expect((await applyPayload({ source: fileSource(both), disk, target, publicKeys: [keys[1]!] })).keyIndex).toBe(0);
  }, 60_000);

  test('no key configured: applied with a warning', async () => {
    const disk = diskCopy(f, 'nokey');
    const r = await applyPayload({ source: fileSource(good.path), disk, target: usrSlot(disk, 'USR-B') });
    expect(r.keyIndex).toBeUndefined();
    expect(r.warnings).toEqual(['no public key is configured: the payload signature was not checked']);
  }, 60_000);

  describe('faults: found before the first write, nothing changes; after it, the slot is left unbootable and nothing staged; USR-A untouched, the table sound', () => {
    type When = 'before the first write' | 'after writing';
    const before: When = 'before the first write';
    const after: When = 'after writing';
    const cases: [string, () => Promise<{ path: string; opts?: { sha256?: Buffer; size?: number; keys?: string[] } }>, string, RegExp, When][] = [
      ['truncated in the header', async () => cut(10), 'truncated', /the payload ends at byte 10, inside the header/, before],
      ['truncated in the manifest', async () => cut(headerSize + 30), 'truncated', /inside the manifest/, before],
      // A file's size is known: shorter than its manifest says is refused before anything is written.
      ['truncated in the data', async () => cut(Math.floor(good.size / 2)), 'size', /the payload is \d+ bytes but its manifest accounts for \d+/, before],
      ['truncated in the signatures', async () => cut(good.size - 10), 'size', /the payload is \d+ bytes but its manifest accounts for \d+/, before],
      ['a gzip file, not a payload', async () => write('gzip.gz', Buffer.from('1f8b0800000000000003', 'hex')), 'truncated', /the payload ends at byte 10, inside the header/, before],
      ['not a payload', async () => write('text.gz', Buffer.from('<html>Service unavailable, try again later</html>')), 'header', /not an update payload: it starts with "<htm"/, before],
      ['a byte of operation data flipped', async () => flip(Math.floor(good.size / 3)), 'operation-hash', /does not match its SHA-256/, after],
      ['a byte of the signature flipped', async () => flip(good.size - 20), 'signature', /none of the payload's 1 signature/, after],
      ['signed with another key', async () => ({ path: await resign([keyOther()]) }), 'signature', /none of the payload's 1 signature\(s\) verifies with any of the 1/, after],
      ['a wrong announced SHA-256', async () => ({ path: good.path, opts: { sha256: Buffer.alloc(32, 7) } }), 'payload-hash', /not the announced 0707/, after],
      ['larger than announced', async () => ({ path: good.path, opts: { size: good.size - 1 } }), 'size', /more than the \d+ announced/, before],
      ['data after the signatures', async () => write('trailing.gz', Buffer.concat([readFileSync(good.path), Buffer.from('extra')])), 'size', /the payload is \d+ bytes but its manifest accounts for \d+/, before],
      [
        'a manifest whose partition hash does not match the data (validly signed)',
        async () => ({ path: rewrite((m) => (m.newPartitionInfo!.hash = Buffer.alloc(32, 1))) }),
        'partition-hash',
        /USR-B as written hashes to [0-9a-f]{64}, not new_partition_info's 0101/,
        after,
      ],
      [
        'an operation writing beyond the slot',
        async () => ({ path: rewrite((m) => (m.operations[0]!.dstExtents[0]!.startBlock = 8191n)) }),
        'size',
        /beyond the 8192 blocks of USR-B/,
        before,
      ],
      ['bzip2 data corrupted in operation 5, with no per-operation hashes', async () => {
        const p = rewrite((m) => m.operations.forEach((op) => delete op.dataSha256));
        const b = Buffer.from(readFileSync(p));
        const m = parseHeader(b);
        const op5 = decodeManifest(b.subarray(headerSize, headerSize + m)).operations[5]!;
        b[headerSize + m + op5.dataOffset + 200] = b[headerSize + m + op5.dataOffset + 200]! ^ 0xff;
        return write('bz-corrupt.gz', b);
      }, 'operation', /^operation 5 \(REPLACE_BZ, payload bytes \d+-\d+\): bzip2: .*(CRC|data integrity|corrupt)/i, after],
      ['an unsigned payload when keys are configured', async () => ({ path: await unsigned() }), 'signature', /the payload is not signed/, after],
    ];

    let n = 0;
    const write = (name: string, b: Buffer) => {
      const p = join(f.dir, name);
      writeFileSync(p, b);
      return { path: p };
    };
    const cut = (at: number) => write(`cut-${at}.gz`, readFileSync(good.path).subarray(0, at));
    const flip = (at: number) => {
      const b = Buffer.from(readFileSync(good.path));
      b[at] = b[at]! ^ 0x55;
      return write(`flip-${at}.gz`, b);
    };
    const keyOther = () => keyPair().privateKey;
    const resign = async (keys: string[]) => {
      const p = join(f.dir, `resigned-${n++}.gz`);
      rewritePayload(good.path, p, () => undefined, keys);
      return p;
    };
    const rewrite = (change: Parameters<typeof rewritePayload>[2]) => {
      const p = join(f.dir, `rewritten-${n++}.gz`);
      rewritePayload(good.path, p, change, [f.keys[0]!.privateKey]);
      return p;
    };
    const unsigned = async () => makePayload(f.images['1001.0.0']!, join(f.dir, 'unsigned.gz'), []).then((m) => m.path);

    test.each(cases)('%s', async (_name, make, check, message, when) => {
      const disk = diskCopy(f, `fault-${n++}`);
      const state = join(f.dir, `state-fault-${n}`);
      // A previous update staged: a failure after the first write must drop that record, one before must keep it.
      await stage(machine(disk), state, { source: fileSource(good.path), publicKeys: [f.keys[0]!.publicKey] });
      const staged = readStaged(state);
      const diskBefore = readFileSync(disk);
      const head = diskBefore.subarray(0, 1 << 20);
      const { path, opts } = await make();
      const err = await stage(machine(disk), state, {
        source: fileSource(path),
        publicKeys: opts?.keys ?? [f.keys[0]!.publicKey],
        ...(opts?.sha256 ? { sha256: opts.sha256 } : {}),
        ...(opts?.size !== undefined ? { size: opts.size } : {}),
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(PayloadError);
      expect((err as PayloadError).check).toBe(check);
      expect((err as PayloadError).message).toMatch(message);
      expect((err as PayloadError).slotTouched).toBe(when === after);
      expect(cgptFlags(disk, 4)).toEqual([0, 0, 0]);
      expect(cgptFlags(disk, 3)).toEqual([1, 0, 1]);
      expect(sgdiskVerify(disk)).toContain('No problems found');
      expect(bestSlot(readGpt(disk).entries)!.name).toBe('USR-A');
      if (when === before) {
        expect(sha256(readFileSync(disk))).toBe(sha256(diskBefore));
        expect(readStaged(state)).toEqual(staged);
        return;
      }
      expect(readStaged(state)).toBeUndefined();
      // Nothing else in the first MiB (MBR, the other entries, the gap before EFI-SYSTEM) changed.
      const tail = readFileSync(disk).subarray(0, 1 << 20);
      expect(sha256(tail.subarray(0, 512))).toBe(sha256(head.subarray(0, 512)));
      expect(sha256(tail.subarray(2 * 512 + 128 * 4))).toBe(sha256(head.subarray(2 * 512 + 128 * 4)));
    }, 60_000);
  });

  test('an image larger than the slot is refused before anything is written', async () => {
    const big = join(f.dir, 'usr-big.img');
    makeUsrImage(big, '1002.0.0', 40, 1);
    const payload = await makePayload(big, join(f.dir, 'big.gz'), [f.keys[0]!.privateKey]);
    const disk = diskCopy(f, 'oversize');
    const b = usrSlot(disk, 'USR-B');
    const slotBefore = sha256(readFileSync(disk).subarray(Number(b.firstLba) * 512, (Number(b.lastLba) + 1) * 512));
    await expect(applyPayload({ source: fileSource(payload.path), disk, target: b })).rejects.toThrow(/the image is 41943040 bytes but USR-B holds 33554432/);
    expect(sha256(readFileSync(disk).subarray(Number(b.firstLba) * 512, (Number(b.lastLba) + 1) * 512))).toBe(slotBefore);
    expect(cgptFlags(disk, 4)).toEqual([0, 0, 0]);
    expect(cgptFlags(disk, 3)).toEqual([1, 0, 1]);
  }, 60_000);

  describe('over HTTP', () => {
    let server: Server;
    let base: string;
    /** Per path: how many requests were cut short after `dropAfter` bytes, and whether Range is ignored. */
    const behaviour = { drops: 0, dropAfter: 300_000, ignoreRange: false, requests: [] as string[] };
    beforeAll(async () => {
      server = createServer((req, res) => {
        const body = readFileSync(good.path);
        behaviour.requests.push(req.headers.range ?? 'all');
        if (req.url === '/trailing') {
          // Chunked, no Content-Length: the size is unknown until the end.
          res.writeHead(200);
          res.write(body);
          res.end('extra');
          return;
        }
        if (req.url === '/truncated') {
          res.writeHead(200);
          res.end(body.subarray(0, Math.floor(body.length / 2)));
          return;
        }
        if (req.url === '/missing') {
          res.writeHead(404).end();
          return;
        }
        const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
        const start = m && !behaviour.ignoreRange ? Number(m[1]) : 0;
        const part = body.subarray(start);
        res.writeHead(start > 0 ? 206 : 200, {
          'content-length': part.length,
          ...(start > 0 ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
        });
        if (behaviour.drops > 0) {
          behaviour.drops--;
          res.write(part.subarray(0, behaviour.dropAfter), () => res.socket?.destroy());
          return;
        }
        res.end(part);
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    test('dropped connections are resumed with Range where they stopped', async () => {
      Object.assign(behaviour, { drops: 3, dropAfter: 300_000, ignoreRange: false, requests: [] });
      const disk = diskCopy(f, 'http');
      const r = await applyPayload({ source: httpSource(`${base}/update.gz`), disk, target: usrSlot(disk, 'USR-B'), publicKeys: [f.keys[0]!.publicKey], sha256: Buffer.from(good.sha256, 'hex'), resumePolicy: fast });
      expect(r.resumes).toBe(3);
      expect(r.payloadSha256).toBe(good.sha256);
      expect(behaviour.requests).toEqual(['all', 'bytes=300000-', 'bytes=600000-', 'bytes=900000-']);
    }, 60_000);

    test('a server that ignores Range is read past the bytes already had', async () => {
      Object.assign(behaviour, { drops: 1, dropAfter: 500_000, ignoreRange: true, requests: [] });
      const disk = diskCopy(f, 'http-norange');
      const r = await applyPayload({ source: httpSource(`${base}/update.gz`), disk, target: usrSlot(disk, 'USR-B'), publicKeys: [f.keys[0]!.publicKey], resumePolicy: fast });
      expect(r.resumes).toBe(1);
      expect(r.payloadSha256).toBe(good.sha256);
    }, 60_000);

    /** Applies what the server serves at `path` and expects it to fail: the error; USR-B is left unbootable. */
    async function failing(path: string, server: Partial<typeof behaviour> = {}): Promise<PayloadError> {
      Object.assign(behaviour, { drops: 0, dropAfter: 0, ignoreRange: false, requests: [] }, server);
      const disk = diskCopy(f, `http-${path.slice(1)}`);
      const err = (await applyPayload({ source: httpSource(`${base}${path}`), disk, target: usrSlot(disk, 'USR-B'), resumePolicy: fast }).catch((e: unknown) => e)) as PayloadError;
      expect(err).toBeInstanceOf(PayloadError);
      expect(cgptFlags(disk, 4)).toEqual([0, 0, 0]);
      behaviour.drops = 0;
      return err;
    }

    test('a server that keeps failing: the error names the byte reached and the tries', async () => {
      const err = await failing('/update.gz', { drops: 100 });
      expect(err.check).toBe('download');
      expect(err.message).toMatch(/reading http:\/\/127\.0\.0\.1:\d+\/update\.gz at byte 0: .*\(after 5 tries\)/);
    }, 60_000);

    test('data after the signatures, size unknown beforehand: found at the end', async () => {
      const err = await failing('/trailing');
      expect(err.check).toBe('size');
      expect(err.message).toBe(`more data follows byte ${good.size}, where the payload ends by its manifest`);
    }, 60_000);

    test('cut short on an unsized stream: found where it ends', async () => {
      const err = await failing('/truncated');
      expect(err.check).toBe('truncated');
      expect(err.message).toMatch(new RegExp(`^the payload ends at byte ${Math.floor(good.size / 2)}, inside operation \\d+ \\(REPLACE_BZ, payload bytes \\d+-\\d+\\)`));
    }, 60_000);

    test('a 404 is final, not retried', async () => {
      const err = await failing('/missing');
      expect(err.check).toBe('download');
      expect(err.message).toMatch(/\/missing: HTTP 404$/);
      expect(behaviour.requests).toEqual(['all']);
    });
  });

  test('the payload header is what update_engine reads', () => {
    const b = readFileSync(good.path);
    expect(b.toString('latin1', 0, 4)).toBe('CrAU');
    expect(b.readBigUInt64BE(4)).toBe(1n);
    expect(parseHeader(b)).toBe(Number(b.readBigUInt64BE(12)));
    expect(existsSync(`${good.path}.blob.tmp`)).toBe(false);
  });
});
