/**
 * A hostile payload server: what it sends never sets the client's memory or time. The bundled
 * update_engine_client runs against a loopback server that streams a crafted header and manifest
 * and then hundreds of MiB of zeros (chunked, no size); the client's peak RSS (VmHWM, written at
 * exit by a preloaded hook) and the bytes the server got to send are the oracles. Stalls and a
 * drip-feeding server are bounded by the resume policy's stall timeout and deadline.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { applyPayload } from '../../src/update/apply-payload';
import { httpSource } from '../../src/update/payload-source';
import { PayloadError, decodeManifest, encodeHeader, encodeManifest, headerSize, parseHeader } from '../../src/update/payload-format';
import type { Manifest } from '../../src/update/payload-format';
import { cgptFlags, diskCopy, fixture, sha256, updateTools, usrSlot } from '../support/update';
import type { Fixture } from '../support/update';

const root = join(__dirname, '../..');
const cli = join(root, 'bin/update_engine_client.js');
const ready = updateTools && existsSync(join(root, 'dist/update_engine_client.js'));
if (!ready) test.skip('needs bzip2, e2fsprogs, gdisk, cgpt and a build (npm test builds first)', () => undefined);

const MiB = 1 << 20;
/** The most the client may take whatever the server sends: the bzip2 window and Node itself. */
const maxRssKb = 250 * 1024;

(ready ? describe : describe.skip)('a payload server that sends too much, too long or too slowly', () => {
  let f: Fixture;
  let good: Buffer;
  let manifest: Manifest;
  let server: Server;
  let base: string;
  /** What the server streams: `prefix`, then `zeros` zero bytes (chunked), then the end; `sent` counts what it wrote. */
  const serve: { prefix: Buffer; zeros: number; sent: number } = { prefix: Buffer.alloc(0), zeros: 0, sent: 0 };

  beforeAll(async () => {
    f = await fixture();
    good = readFileSync(f.payloads['1001.0.0']!.path);
    const m = parseHeader(good);
    manifest = decodeManifest(good.subarray(headerSize, headerSize + m));
    writeFileSync(join(f.dir, 'hwm.js'), "process.on('exit', () => require('fs').writeFileSync(process.env.HWM_FILE, /VmHWM:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]));\n");
    server = createServer((_req, res) => {
      serve.sent = serve.prefix.length;
      res.writeHead(200);
      res.write(serve.prefix);
      const zero = Buffer.alloc(64 << 10);
      let left = serve.zeros;
      const pump = () => {
        while (!res.destroyed) {
          if (left <= 0) return void res.end();
          const n = Math.min(left, zero.length);
          left -= n;
          serve.sent += n;
          if (!res.write(zero.subarray(0, n))) return void res.once('drain', pump);
        }
      };
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }, 60_000);
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  /** A header and the good payload's manifest as `change` leaves it. */
  const crafted = (change: (m: Manifest) => void): Buffer => {
    const m: Manifest = { ...manifest, operations: manifest.operations.map((op) => ({ ...op, dstExtents: [...op.dstExtents] })) };
    change(m);
    const body = encodeManifest(m);
    return Buffer.concat([encodeHeader(body.length), body]);
  };

  /** Runs the bundled client against the server; its exit code, stderr and peak RSS in kB. */
  async function apply(name: string, extra: string[] = []): Promise<{ code: number | null; stderr: string; hwmKb: number; disk: string; diskBefore: string }> {
    const disk = diskCopy(f, name);
    const diskBefore = sha256(readFileSync(disk));
    const hwmFile = join(f.dir, `${name}.hwm`);
    const child = spawn(process.execPath, ['-r', join(f.dir, 'hwm.js'), cli, '--apply-payload', `${base}/${name}.gz`, '--disk', disk, '--active', 'USR-A', '--state-dir', join(f.dir, `state-${name}`), '--progress', 'none', ...extra], {
      env: { ...process.env, HWM_FILE: hwmFile },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    return { code, stderr, hwmKb: Number(readFileSync(hwmFile, 'utf8')), disk, diskBefore };
  }

  test("an operation whose data is more than its extents hold is refused before its data is read", async () => {
    serve.prefix = crafted((m) => {
      m.operations = [{ ...m.operations[0]!, dataLength: 0xffff0000 }];
      delete m.signaturesOffset; // nothing else about it is wrong
      delete m.signaturesSize;
    });
    serve.zeros = 512 * MiB;
    const r = await apply('long-op');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/payload rejected \(manifest check\): operation 0 \(REPLACE_BZ\): its 4294901760 bytes of data are more than its 256 blocks can hold; nothing was written/);
    expect(sha256(readFileSync(r.disk))).toBe(r.diskBefore);
    expect(serve.sent).toBeLessThan(serve.prefix.length + 32 * MiB);
    expect(r.hwmKb).toBeLessThan(maxRssKb);
  }, 60_000);

  test('a manifest of millions of empty operations is refused by its length, before it is read or decoded', async () => {
    const ops = Buffer.alloc(8 * MiB);
    for (let i = 0; i < ops.length; i += 4) ops.set([0x0a, 0x02, 0x08, 0x00], i); // partition_operations { type: REPLACE }
    serve.prefix = Buffer.concat([encodeHeader(ops.length), ops]);
    serve.zeros = 0;
    const r = await apply('many-ops');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/payload rejected \(header check\): the manifest is 8388608 bytes, more than the 1048576 allowed; nothing was written/);
    expect(r.hwmKb).toBeLessThan(maxRssKb);
  }, 60_000);

  test('a gap of a GiB before the first operation streams through, hashed, never held: memory stays bounded', async () => {
    serve.prefix = crafted((m) => {
      for (const op of m.operations) op.dataOffset += 1 << 30;
      delete m.signaturesOffset;
      delete m.signaturesSize;
    });
    serve.zeros = 384 * MiB;
    const r = await apply('gap');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`payload rejected \\(truncated check\\): the payload ends at byte ${serve.prefix.length + 384 * MiB}, inside the data before operation 0`));
    expect(r.hwmKb).toBeLessThan(maxRssKb);
  }, 60_000);

  test('a manifest that accounts for more than the announced size is refused before its data is read', async () => {
    serve.prefix = crafted((m) => {
      for (const op of m.operations) op.dataOffset += 1 << 30;
      delete m.signaturesOffset;
      delete m.signaturesSize;
    });
    serve.zeros = 512 * MiB;
    const announced = serve.prefix.length + 64 * MiB;
    const r = await apply('gap-announced', ['--size', String(announced)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`payload rejected \\(size check\\): its manifest accounts for \\d+ bytes, more than the ${announced} announced; nothing was written`));
    expect(sha256(readFileSync(r.disk))).toBe(r.diskBefore);
    expect(serve.sent).toBeLessThan(serve.prefix.length + 32 * MiB);
    expect(r.hwmKb).toBeLessThan(maxRssKb);
  }, 60_000);

  test('zeros after a whole payload: refused at the chunk that passes the announced size (wherever it falls)', async () => {
    serve.prefix = good;
    serve.zeros = 512 * MiB;
    const r = await apply('endless', ['--size', String(good.length)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`payload rejected \\(size check\\): more data follows byte ${good.length}, where the payload ends by its announced size`));
    expect(cgptFlags(r.disk, 4)).toEqual([0, 0, 0]);
    expect(serve.sent).toBeLessThan(good.length + 32 * MiB);
    expect(r.hwmKb).toBeLessThan(maxRssKb);
  }, 60_000);

  describe('stalls and drips', () => {
    let slow: Server;
    let slowBase: string;
    const requests: string[] = [];
    beforeAll(async () => {
      slow = createServer((req, res) => {
        requests.push(req.headers.range ?? 'all');
        if (req.url === '/drip') {
          // A byte every 20 ms: never a stall, never done.
          res.writeHead(200, { 'content-length': good.length });
          let at = 0;
          const t = setInterval(() => (res.destroyed ? clearInterval(t) : res.write(good.subarray(at, ++at))), 20);
          return;
        }
        const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
        const start = m ? Number(m[1]) : 0;
        res.writeHead(start > 0 ? 206 : 200, { 'content-length': good.length - start, ...(start > 0 ? { 'content-range': `bytes ${start}-${good.length - 1}/${good.length}` } : {}) });
        // The first response stalls after 300,000 bytes and never ends; a resumed one is served whole.
        if (start === 0) res.write(good.subarray(0, 300_000));
        else res.end(good.subarray(start));
      });
      await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
      slowBase = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      slow.closeAllConnections();
      await new Promise<void>((r) => slow.close(() => r()));
    });

    test('a response that stops sending is dropped after the stall timeout and resumed where it stopped', async () => {
      requests.length = 0;
      const disk = diskCopy(f, 'stall');
      const r = await applyPayload({
        source: httpSource(`${slowBase}/stall`), disk, target: usrSlot(disk, 'USR-B'), publicKeys: [f.keys[0]!.publicKey], size: good.length,
        resumePolicy: { attempts: 3, backoffMs: 10, maxBackoffMs: 50, timeoutMs: 500, deadlineMs: 30_000 },
      });
      expect(r.resumes).toBe(1);
      expect(requests).toEqual(['all', 'bytes=300000-']);
      expect(r.payloadSha256).toBe(f.payloads['1001.0.0']!.sha256);
    }, 20_000);

    test('a server that drips bytes forever is cut off at the deadline', async () => {
      const disk = diskCopy(f, 'drip');
      const before = sha256(readFileSync(disk));
      const err = await applyPayload({
        source: httpSource(`${slowBase}/drip`), disk, target: usrSlot(disk, 'USR-B'),
        resumePolicy: { attempts: 3, backoffMs: 10, maxBackoffMs: 50, timeoutMs: 1000, deadlineMs: 1500 },
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PayloadError);
      expect((err as PayloadError).check).toBe('download');
      expect((err as PayloadError).message).toMatch(/\/drip: not done within 1\.5 s \(byte \d+ reached\)/);
      expect((err as PayloadError).slotTouched).toBe(false);
      expect(sha256(readFileSync(disk))).toBe(before);
    }, 20_000);
  });
});
