/**
 * The VMware datasources: guestinfo through a stand-in vmware-rpctool put first on PATH (answering
 * from key files, failing as asked), OVF environment files, and a first boot through the CLI.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, truncateSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { RetryPolicy } from '../../src/datasource/http';
import { vmwareGuestinfoSource, vmwareOvfSource } from '../../src/datasource/vmware';
import { FakeRpctool, ovfEnvironment } from '../support/fake-rpctool';
import { asRoot, makeRoot, snapshot } from '../support/roots';
import { runAsync } from '../support/cli';

const fast: RetryPolicy = { timeoutMs: 300, attempts: 6, backoffMs: 10, maxBackoffMs: 50, deadlineMs: 5_000 };
const userData = '#cloud-config\ncoreos:\n  etcd2:\n    advertise_client_urls: http://$private_ipv4:2379\nwrite_files:\n  - path: /etc/public-address\n    content: "$public_ipv4"\n';

/** Guestinfo as an operator sets it: two static interfaces with roles, one DHCP interface, DNS. */
const keys: Record<string, string> = {
  'coreos.config.data': userData,
  hostname: 'vm-1',
  'dns.server.0': '10.0.0.2',
  'dns.server.1': '2001:db8::53',
  'dns.domain.0': 'example.com',
  'interface.0.name': 'ens192',
  'interface.0.role': 'public',
  'interface.0.ip.0.address': '203.0.113.10/24',
  'interface.0.ip.1.address': '203.0.113.11/24',
  'interface.0.route.0.destination': '0.0.0.0/0',
  'interface.0.route.0.gateway': '203.0.113.1',
  'interface.1.mac': '00:50:56:8B:91:42',
  'interface.1.dhcp': 'no',
  'interface.1.role': 'private',
  'interface.1.ip.0.address': '10.0.0.5/16',
  'interface.1.ip.1.address': 'fd00::5/64',
  'interface.1.route.0.destination': '10.1.0.0/16',
  'interface.1.route.0.gateway': '10.0.0.1',
  'interface.1.route.1.destination': '192.0.2.0/24',
  'interface.2.name': 'ens224',
  'interface.2.dhcp': 'yes',
};

/** The metadata those keys give, as plain values. */
const metadata = {
  hostname: 'vm-1',
  publicIpv4: '203.0.113.10',
  privateIpv4: '10.0.0.5',
  privateIpv6: 'fd00::5',
  sshPublicKeys: [],
  vmwareNetwork: {
    interfaces: [
      {
        index: 0,
        name: 'ens192',
        role: 'public',
        addresses: [{ address: '203.0.113.10', prefix: 24 }, { address: '203.0.113.11', prefix: 24 }],
        routes: [{ destination: { address: '0.0.0.0', prefix: 0 }, gateway: '203.0.113.1' }],
      },
      {
        index: 1,
        mac: '00:50:56:8b:91:42',
        dhcp: false,
        role: 'private',
        addresses: [{ address: '10.0.0.5', prefix: 16 }, { address: 'fd00::5', prefix: 64 }],
        routes: [{ destination: { address: '10.1.0.0', prefix: 16 }, gateway: '10.0.0.1' }, { destination: { address: '192.0.2.0', prefix: 24 } }],
      },
      { index: 2, name: 'ens224', dhcp: true, addresses: [], routes: [] },
    ],
    dnsServers: ['10.0.0.2', '2001:db8::53'],
    dnsDomains: ['example.com'],
  },
};

let rpctools: FakeRpctool[] = [];
function rpctool(given: Record<string, string> = keys): FakeRpctool {
  const r = new FakeRpctool(given);
  rpctools.push(r);
  return r;
}
let servers: http.Server[] = [];
afterEach(async () => {
  for (const r of rpctools) r.remove();
  rpctools = [];
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  servers = [];
});

/** The guestinfo source with `r` first on PATH. */
const guestinfo = (r: FakeRpctool, limits: { timeoutMs?: number } = {}) => vmwareGuestinfoSource(fast, { env: { PATH: r.path() }, ...limits });

/** A loopback server for coreos.config.url: answers `failures` (HTTP statuses) first, then `status` with `body`. */
async function serve(body: string, status = 200, failures: number[] = []): Promise<{ url: string; requests: () => number }> {
  let requests = 0;
  const server = http.createServer((_req, res) => {
    const answer = failures[requests++] ?? status;
    res.writeHead(answer, { 'Content-Type': 'text/plain' });
    res.end(answer === 200 ? body : 'no');
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/user-data`, requests: () => requests };
}

function tempFile(name: string, content: string | Buffer): string {
  const file = join(mkdtempSync(join(tmpdir(), 'bootsmith-ovf-')), name);
  writeFileSync(file, content);
  return file;
}

describe('--from-vmware-guestinfo: vmware-rpctool "info-get guestinfo.KEY"', () => {
  test('user data and metadata, each value typed; one argument a call, no shell', async () => {
    const r = rpctool();
    expect(await guestinfo(r).fetch()).toEqual({ source: 'vmware-guestinfo', location: 'guestinfo.coreos.config.data', userData: Buffer.from(userData), metadata });
    const calls = r.calls();
    expect(calls.slice(0, 4)).toEqual(['info-get guestinfo.ovfEnv', 'info-get guestinfo.coreos.config.data.encoding', 'info-get guestinfo.coreos.config.data', 'info-get guestinfo.hostname']);
    expect(calls.every((c) => /^info-get guestinfo\.[a-zA-Z0-9.]+$/.test(c))).toBe(true);
    expect(calls).not.toContain('info-get guestinfo.coreos.config.url'); // the data is there: the URL is not asked for
  });

  test.each([
    ['base64', (t: string) => Buffer.from(t).toString('base64')],
    ['b64', (t: string) => Buffer.from(t).toString('base64')],
    ['gzip+base64', (t: string) => gzipSync(t).toString('base64')],
    ['gz+b64', (t: string) => gzipSync(t).toString('base64')],
  ])('coreos.config.data.encoding %s', async (encoding, encode) => {
    const r = rpctool({ 'coreos.config.data': encode(userData), 'coreos.config.data.encoding': encoding });
    const got = await guestinfo(r).fetch();
    expect(got?.userData?.toString()).toBe(userData);
  });

  test('data that decodes to nothing is no user data', async () => {
    const r = rpctool({ 'coreos.config.data': gzipSync('').toString('base64'), 'coreos.config.data.encoding': 'gzip+base64' });
    expect(await guestinfo(r).fetch()).toMatchObject({ userData: undefined, noUserData: 'it is empty once decoded (gzip+base64)' });
  });

  test('no keys at all: there, without user data or metadata (every missing key is exit 1, "No value found")', async () => {
    const r = rpctool({});
    expect(await guestinfo(r).fetch()).toEqual({
      source: 'vmware-guestinfo',
      location: 'guestinfo.coreos.config.data',
      userData: undefined,
      noUserData: 'neither guestinfo.coreos.config.data nor guestinfo.coreos.config.url is set',
      metadata: { sshPublicKeys: [] },
    });
    expect(r.calls()).toContain('info-get guestinfo.coreos.config.url');
  });

  test('an OVF environment in guestinfo.ovfEnv is read in place of the keys', async () => {
    const r = rpctool({ ovfEnv: ovfEnvironment(keys), hostname: 'not-this-one' });
    expect(await guestinfo(r).fetch()).toEqual({ source: 'vmware-guestinfo', location: 'guestinfo.ovfEnv (guestinfo.coreos.config.data)', userData: Buffer.from(userData), metadata });
    expect(r.calls()).toEqual(['info-get guestinfo.ovfEnv']);
  });

  describe('coreos.config.url, when there is no coreos.config.data: with the HTTP rules', () => {
    test('retried through 500s; the encoding applies to what it gives', async () => {
      const s = await serve(Buffer.from(userData).toString('base64'), 200, [500, 500]);
      const r = rpctool({ 'coreos.config.url': s.url, 'coreos.config.data.encoding': 'base64', hostname: 'vm-1' });
      expect(await guestinfo(r).fetch()).toEqual({ source: 'vmware-guestinfo', location: s.url, userData: Buffer.from(userData), metadata: { hostname: 'vm-1', sshPublicKeys: [] } });
      expect(s.requests()).toBe(3);
    });

    test('a 404 is no user data', async () => {
      const s = await serve('', 404);
      const r = rpctool({ 'coreos.config.url': s.url });
      expect(await guestinfo(r).fetch()).toMatchObject({ location: s.url, userData: undefined, noUserData: 'the server answered 404 (not found)' });
    });

    test('500 every time: given up after the attempts, naming the key and the URL', async () => {
      const s = await serve('', 500);
      const r = rpctool({ 'coreos.config.url': s.url });
      await expect(vmwareGuestinfoSource({ ...fast, attempts: 3 }, { env: { PATH: r.path() } }).fetch()).rejects.toThrow(
        new RegExp(`^vmware guestinfo: guestinfo\\.coreos\\.config\\.url: ${s.url}: HTTP 500 \\(gave up after retrying\\)$`),
      );
      expect(s.requests()).toBe(3);
    });

    test('only http and https', async () => {
      const r = rpctool({ 'coreos.config.url': 'file:///etc/shadow' });
      await expect(guestinfo(r).fetch()).rejects.toThrow('vmware guestinfo: guestinfo.coreos.config.url: file:///etc/shadow: only http and https URLs are fetched');
    });
  });

  describe('vmware-rpctool: there or not, and its failures', () => {
    test('not installed (not on PATH): the source is not there', async () => {
      const empty = mkdtempSync(join(tmpdir(), 'bootsmith-path-'));
      expect(await vmwareGuestinfoSource(fast, { env: { PATH: empty } }).fetch()).toBeUndefined();
    });

    test('not a VMware machine ("Failed sending message to VMware."): the source is not there', async () => {
      const r = rpctool();
      r.fail('not-vmware');
      expect(await guestinfo(r).fetch()).toBeUndefined();
      expect(r.calls()).toEqual(['info-get guestinfo.ovfEnv']);
    });

    test('a call that never answers: killed at the time limit, naming the call', async () => {
      const r = rpctool();
      r.fail('hang', 'hostname');
      const started = Date.now();
      await expect(guestinfo(r, { timeoutMs: 500 }).fetch()).rejects.toThrow(/^vmware-rpctool "info-get guestinfo\.hostname": no answer within 500 ms$/);
      expect(Date.now() - started).toBeLessThan(20_000); // the stand-in sleeps 600 s
    });

    test('calls that each answer slowly: all of them within the deadline', async () => {
      const r = rpctool();
      r.fail('slow');
      const started = Date.now();
      await expect(vmwareGuestinfoSource(fast, { env: { PATH: r.path() }, deadlineMs: 1_000 }).fetch()).rejects.toThrow(
        /^(vmware guestinfo: reading the keys took more than 1000 ms|vmware-rpctool "info-get guestinfo\.\S+": no answer within \d+ ms)$/,
      );
      expect(Date.now() - started).toBeLessThan(10_000); // about 50 calls of 0.3 s each without it
    });

    test('a first call that never answers is a failure, not a missing source', async () => {
      const r = rpctool();
      r.fail('hang', 'ovfEnv');
      await expect(guestinfo(r, { timeoutMs: 500 }).fetch()).rejects.toThrow(/^vmware-rpctool "info-get guestinfo\.ovfEnv": no answer within 500 ms$/);
    });

    test('more output than the limit (16 MiB): refused, naming the call', async () => {
      const r = rpctool();
      r.fail('huge', 'coreos.config.data');
      await expect(guestinfo(r).fetch()).rejects.toThrow(/^vmware-rpctool "info-get guestinfo\.coreos\.config\.data": more than 16777216 bytes of output$/);
    });

    test('a crash: its exit status and what it said', async () => {
      const r = rpctool();
      r.fail('crash', 'hostname');
      await expect(guestinfo(r).fetch()).rejects.toThrow(/^vmware-rpctool "info-get guestinfo\.hostname" failed \(exit 139\): "Segmentation fault"$/);
    });

    test('guestinfo gone after the first call: a failure naming the key', async () => {
      const r = rpctool();
      r.fail('not-vmware', 'hostname');
      await expect(guestinfo(r).fetch()).rejects.toThrow(/^vmware guestinfo: guestinfo\.hostname: vmware-rpctool says this is no VMware virtual machine$/);
    });
  });
});

describe('values are parsed into their type, or refused naming the key', () => {
  const injection = '10.0.0.1/24"\nwrite_files:\n  - path: /etc/injected\n    content: x\n#';
  test.each([
    ['hostname', 'vm\n127.0.0.1 bank', /^vmware guestinfo: guestinfo\.hostname: not a host name \(it holds "\\n"/],
    ['interface.0.ip.0.address', injection, /^vmware guestinfo: guestinfo\.interface\.0\.ip\.0\.address: not an IP address with a prefix length \(ADDRESS\/PREFIX\): "10\.0\.0\.1\/24\\"\\nwrite_files/],
    ['interface.0.ip.0.address', '203.0.113.10', /guestinfo\.interface\.0\.ip\.0\.address: not an IP address with a prefix length \(ADDRESS\/PREFIX\): "203\.0\.113\.10"$/],
    ['interface.0.ip.0.address', '203.0.113.10/33', /guestinfo\.interface\.0\.ip\.0\.address: the prefix length is not 0 to 32: "203\.0\.113\.10\/33"$/],
    ['interface.1.ip.1.address', 'fd00::5/129', /guestinfo\.interface\.1\.ip\.1\.address: the prefix length is not 0 to 128: "fd00::5\/129"$/],
    ['interface.1.ip.1.address', 'fd00::5/+64', /guestinfo\.interface\.1\.ip\.1\.address: the prefix length is not 0 to 128/],
    ['interface.1.mac', '00:50:56:8b:91', /^vmware guestinfo: guestinfo\.interface\.1\.mac: not a MAC address \(six hex pairs with ":"\): "00:50:56:8b:91"$/],
    ['interface.0.name', 'ens192\n[Match]', /^vmware guestinfo: guestinfo\.interface\.0\.name: not an interface name .*: "ens192\\n\[Match\]"$/],
    ['interface.0.name', 'a-name-of-16-chr', /guestinfo\.interface\.0\.name: not an interface name/],
    ['interface.0.name', '-ens192', /guestinfo\.interface\.0\.name: not an interface name/],
    ['interface.2.dhcp', 'true', /^vmware guestinfo: guestinfo\.interface\.2\.dhcp: not "yes" or "no": "true"$/],
    ['interface.0.role', 'dmz', /^vmware guestinfo: guestinfo\.interface\.0\.role: not "public" or "private": "dmz"$/],
    ['interface.0.route.0.gateway', '2001:db8::1', /^vmware guestinfo: guestinfo\.interface\.0\.route\.0\.gateway: not an IPv4 address, as the destination is: "2001:db8::1"$/],
    ['interface.0.route.0.destination', '0.0.0.0', /guestinfo\.interface\.0\.route\.0\.destination: not an IP address with a prefix length/],
    ['interface.1.route.0.gateway', 'gw.example.com', /^vmware guestinfo: guestinfo\.interface\.1\.route\.0\.gateway: not an IP address: "gw\.example\.com"$/],
    ['dns.server.1', 'ns1.example.com', /^vmware guestinfo: guestinfo\.dns\.server\.1: not an IP address: "ns1\.example\.com"$/],
    ['dns.domain.0', 'example..com', /^vmware guestinfo: guestinfo\.dns\.domain\.0: not a host name/],
    ['coreos.config.data.encoding', 'rot13', /^vmware guestinfo: guestinfo\.coreos\.config\.data\.encoding: not a write_files encoding \(base64, b64, .*\): "rot13"$/],
  ])('%s: %j', async (key, value, message) => {
    const r = rpctool({ ...keys, [key]: value });
    await expect(guestinfo(r).fetch()).rejects.toThrow(message);
  });

  test('data that does not decode as its encoding says', async () => {
    const r = rpctool({ 'coreos.config.data': 'not base64!', 'coreos.config.data.encoding': 'base64' });
    await expect(guestinfo(r).fetch()).rejects.toThrow(/^vmware guestinfo: guestinfo\.coreos\.config\.data: cannot be decoded as base64: it has characters outside the base64 alphabet$/);
  });

  test('a list is bounded: 65 DNS servers are refused', async () => {
    const servers = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`dns.server.${i}`, `10.0.1.${i}`]));
    const r = rpctool({ ...keys, ...servers });
    await expect(guestinfo(r).fetch()).rejects.toThrow(/^vmware guestinfo: guestinfo\.dns\.server\.64: more than 64 DNS servers$/);
  });

  test('the first address of each role and family fills the variables; an interface without a role fills none', async () => {
    const r = rpctool({
      'interface.0.ip.0.address': '10.9.0.9/24',
      'interface.1.role': 'private',
      'interface.1.ip.0.address': 'fd00::1/64',
      'interface.1.ip.1.address': '10.0.0.1/24',
      'interface.2.role': 'private',
      'interface.2.ip.0.address': '10.0.0.2/24',
    });
    expect((await guestinfo(r).fetch())?.metadata).toMatchObject({ privateIpv4: '10.0.0.1', privateIpv6: 'fd00::1' });
    expect((await guestinfo(r).fetch())?.metadata).not.toHaveProperty('publicIpv4');
  });
});

describe('--from-vmware-ovf-env PATH', () => {
  test('the same keys as guestinfo.* properties give the same user data and metadata', async () => {
    const file = tempFile('ovf-env.xml', ovfEnvironment(keys));
    expect(await vmwareOvfSource(file, fast).fetch()).toEqual({ source: 'vmware-ovf-env', location: `${file} (guestinfo.coreos.config.data)`, userData: Buffer.from(userData), metadata });
  });

  test('no file: the source is not there', async () => {
    expect(await vmwareOvfSource(join(tmpdir(), 'no-such-dir-bootsmith', 'ovf-env.xml'), fast).fetch()).toBeUndefined();
  });

  test('entities and character references in values are decoded; properties of other keys are left out', async () => {
    const text = '#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: "a & b <c> \'d\'"\n';
    const file = tempFile('ovf-env.xml', ovfEnvironment({ 'coreos.config.data': text }));
    expect(await vmwareOvfSource(file, fast).fetch()).toMatchObject({ userData: Buffer.from(text), metadata: { sshPublicKeys: [] } });
  });

  test('a bad value names the key', async () => {
    const file = tempFile('ovf-env.xml', ovfEnvironment({ ...keys, 'interface.1.ip.0.address': '10.0.0.5/16"\nx' }));
    await expect(vmwareOvfSource(file, fast).fetch()).rejects.toThrow(/^vmware ovf environment: guestinfo\.interface\.1\.ip\.0\.address: the prefix length is not 0 to 32: "10\.0\.0\.5\/16\\"\\nx"$/);
  });

  const laughs = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><Environment><PropertySection><Property key="guestinfo.hostname" value="&lol2;"/></PropertySection></Environment>';
  test.each([
    ['not well-formed XML', '<Environment><PropertySection></Environment>', /^vmware ovf environment: not well-formed XML: /],
    ['no Environment element', '<?xml version="1.0"?><Envelope/>', /^vmware ovf environment: not an OVF environment \(no Environment element\)$/],
    ['a document type (entities that expand)', laughs, /^vmware ovf environment: a document type declaration \(<!DOCTYPE\) is not accepted in an OVF environment$/],
    ['a key set twice', ovfEnvironment({ hostname: 'a' }).replace('</PropertySection>', '<Property oe:key="guestinfo.hostname" oe:value="b"/></PropertySection>'), /^vmware ovf environment: guestinfo\.hostname: set twice$/],
    ['a Property without a key', ovfEnvironment({}).replace('</PropertySection>', '<Property oe:value="b"/></PropertySection>'), /^vmware ovf environment: a Property without oe:key$/],
  ])('%s: refused', async (_what, xml, message) => {
    await expect(vmwareOvfSource(tempFile('ovf-env.xml', xml), fast).fetch()).rejects.toThrow(message);
  });

  test('a FIFO is refused without blocking; a file over 16 MiB before it is read', async () => {
    const fifo = join(mkdtempSync(join(tmpdir(), 'bootsmith-ovf-')), 'ovf-env.xml');
    execFileSync('mkfifo', [fifo]);
    await expect(vmwareOvfSource(fifo, fast).fetch()).rejects.toThrow(/^vmware ovf environment: \S+ is not a regular file$/);
    const big = tempFile('ovf-env.xml', '');
    truncateSync(big, 16 * 1024 * 1024 + 1);
    await expect(vmwareOvfSource(big, fast).fetch()).rejects.toThrow(/^vmware ovf environment: \S+ is 16777217 bytes, more than the 16777216 accepted$/);
  });
});

const bin = join(__dirname, '../../bin/coreos-cloudinit.js');

const networkDir = 'run/systemd/network';
const networkFiles = (root: string) => (existsSync(join(root, networkDir)) ? readdirSync(join(root, networkDir)).sort() : []);
const readNetworkFile = (root: string, name: string) => readFileSync(join(root, networkDir, name), 'utf8');

const cli = (args: string[], path: string) => runAsync(bin, args, { PATH: path });

describe('coreos-cloudinit with VMware', () => {
  test('-from-vmware-guestinfo, as Go spells it, with --validate: the keys are read, the report names the key', async () => {
    const r = rpctool();
    const run = await cli(['--validate', '-from-vmware-guestinfo'], r.path());
    expect([run.status, run.stderr]).toEqual([0, '']);
    expect(run.stdout).toBe('guestinfo.coreos.config.data:3:3: warning: deprecated key "etcd2" (etcd2 is no longer shipped in Container Linux) [deprecated-key]\n0 errors, 1 warning, 0 infos in 1 file\n');
    expect(r.calls()[0]).toBe('info-get guestinfo.ovfEnv');
  });

  test('without vmware-rpctool: no datasource answered, exit 1', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'bootsmith-path-'));
    expect(await cli(['--validate', '--from-vmware-guestinfo'], empty)).toEqual({ status: 1, stdout: '', stderr: 'coreos-cloudinit: no datasource answered (vmware guestinfo: not there)\n' });
  });
});

(asRoot ? describe : describe.skip)('coreos-cloudinit with VMware: a first boot', () => {
  test('guestinfo: user data, hostname and $private_ipv4 from the keys; --oem vmware does the same, with --convert-netconf vmware', async () => {
    const r = rpctool();
    const root = makeRoot();
    const run = await cli(['--from-vmware-guestinfo', '--root', root], r.path());
    expect([run.status, run.stderr]).toEqual([0, '']);
    expect(run.stdout).toMatch(/^user data from guestinfo\.coreos\.config\.data\n/);
    expect(run.stdout).toMatch(/^changed\s+instance \(no id\) \[vmware-guestinfo\]: first boot$/m);
    expect(readFileSync(join(root, 'run/systemd/system/etcd2.service.d/20-cloudinit.conf'), 'utf8')).toBe('[Service]\nEnvironment="ETCD_ADVERTISE_CLIENT_URLS=http://10.0.0.5:2379"\n');
    expect(readFileSync(join(root, 'etc/public-address'), 'utf8')).toBe('203.0.113.10');
    expect(readFileSync(join(root, 'etc/hostname'), 'utf8')).toBe('vm-1\n');
    expect(readFileSync(join(root, 'etc/environment'), 'utf8')).toBe('COREOS_PRIVATE_IPV4=10.0.0.5\nCOREOS_PRIVATE_IPV6=fd00::5\nCOREOS_PUBLIC_IPV4=203.0.113.10\n');
    expect(JSON.parse(readFileSync(join(root, 'var/lib/coreos-cloudinit/instance.json'), 'utf8'))).toEqual({ source: 'vmware-guestinfo', instanceId: null });
    expect(networkFiles(root)).toEqual([]); // without --convert-netconf vmware
    const converting = makeRoot();
    const c = await cli(['-from-vmware-guestinfo', '-convert-netconf=vmware', '--root', converting], r.path());
    expect([c.status, c.stderr]).toEqual([0, '']);
    const viaOem = makeRoot();
    const o = await cli(['--oem', 'vmware', '--root', viaOem], r.path());
    expect([o.status, o.stderr, o.stdout]).toEqual([0, '', c.stdout]);
    expect(snapshot(viaOem)).toEqual(snapshot(converting));
    expect(networkFiles(viaOem)).toHaveLength(3);
  });

  test('--convert-netconf vmware: a .network file for each configured interface, with exactly the addresses, routes and DNS of the keys', async () => {
    const r = rpctool();
    const root = makeRoot();
    const run = await cli(['--from-vmware-guestinfo', '--convert-netconf', 'vmware', '--root', root], r.path());
    expect([run.status, run.stderr]).toEqual([0, '']);
    const h = '# Written by coreos-cloudinit from VMware guestinfo.\n';
    const dns = 'DNS=10.0.0.2\nDNS=2001:db8::53\nDomains=example.com\n';
    expect(networkFiles(root)).toEqual(['10-bootsmith-ens192.network', '10-bootsmith-ens224.network', '10-bootsmith-vmware1.network']);
    expect(readNetworkFile(root, '10-bootsmith-ens192.network')).toBe(`${h}[Match]\nName=ens192\n\n[Network]\nAddress=203.0.113.10/24\nAddress=203.0.113.11/24\nGateway=203.0.113.1\n${dns}`);
    expect(readNetworkFile(root, '10-bootsmith-vmware1.network')).toBe(
      `${h}[Match]\nMACAddress=00:50:56:8b:91:42\nType=ether\n\n[Network]\nAddress=10.0.0.5/16\nAddress=fd00::5/64\n${dns}` +
        '\n[Route]\nDestination=10.1.0.0/16\nGateway=10.0.0.1\n\n[Route]\nDestination=192.0.2.0/24\nScope=link\n',
    );
    expect(readNetworkFile(root, '10-bootsmith-ens224.network')).toBe(`${h}[Match]\nName=ens224\n\n[Network]\nDHCP=yes\n${dns}`);
    expect(run.stdout).toMatch(/^changed\s+file \/run\/systemd\/network\/10-bootsmith-vmware1\.network \[VMware guestinfo\]$/m);
    expect(run.stdout).toMatch(/^skipped\s+restart systemd-networkd\.service \[VMware guestinfo\]: no systemd to run it \(offline apply\)$/m);
    expect(readFileSync(join(root, 'etc/hostname'), 'utf8')).toBe('vm-1\n');

    // The same keys in an OVF environment file, and in guestinfo.ovfEnv: the same files.
    const file = tempFile('ovf-env.xml', ovfEnvironment(keys));
    const fromOvf = makeRoot();
    const o = await cli(['--from-vmware-ovf-env', file, '--convert-netconf', 'vmware', '--root', fromOvf], process.env.PATH ?? '');
    expect([o.status, o.stderr]).toEqual([0, '']);
    const inGuestinfo = makeRoot();
    const g = await cli(['--from-vmware-guestinfo', '--convert-netconf', 'vmware', '--root', inGuestinfo], rpctool({ ovfEnv: ovfEnvironment(keys) }).path());
    expect([g.status, g.stderr]).toEqual([0, '']);
    const network = (at: string) => snapshot(at).filter((line) => line.startsWith(`/${networkDir}/`));
    expect(network(fromOvf)).toEqual(network(root));
    expect(network(inGuestinfo)).toEqual(network(root));
    expect(network(root)).toHaveLength(3);
  });

  test('--convert-netconf vmware with keys that cannot be configured: a failed action naming the key; nothing of it is written, the rest applies', async () => {
    const r = rpctool({ ...keys, 'interface.2.mac': '00:50:56:8b:91:42' });
    const root = makeRoot();
    const run = await cli(['--from-vmware-guestinfo', '--convert-netconf', 'vmware', '--root', root], r.path());
    expect(run.status).toBe(1);
    expect(run.stdout).toContain(
      'failed    network configuration [vmware-guestinfo]: vmware guestinfo: guestinfo.interface.2.mac: interface 1 has that MAC address too: "00:50:56:8b:91:42"; no network files were written\n',
    );
    expect(networkFiles(root)).toEqual([]);
    expect(readFileSync(join(root, 'etc/hostname'), 'utf8')).toBe('vm-1\n');
    const file = tempFile('ovf-env.xml', ovfEnvironment({ ...keys, 'interface.2.name': 'ens192' }));
    const v = await cli(['--validate', '--from-vmware-ovf-env', file, '--convert-netconf', 'vmware'], process.env.PATH ?? '');
    expect(v.status).toBe(1);
    expect(v.stdout).toContain(': error: the network configuration is not applied: vmware ovf environment: guestinfo.interface.2.name: interface 0\'s files have that name too: "ens192"');
  });

  test('an OVF environment file gives the same machine', async () => {
    const r = rpctool();
    const root = makeRoot();
    expect((await cli(['--from-vmware-guestinfo', '--root', root], r.path())).status).toBe(0);
    const file = tempFile('ovf-env.xml', ovfEnvironment(keys));
    const fromOvf = makeRoot();
    const run = await cli([`-from-vmware-ovf-env=${file}`, '--root', fromOvf], process.env.PATH ?? '');
    expect([run.status, run.stderr]).toEqual([0, '']);
    expect(run.stdout).toMatch(new RegExp(`^user data from ${file} \\(guestinfo\\.coreos\\.config\\.data\\)\n`));
    // All the same but the record of the source, compared on its own.
    const apart = (tree: string[]) => tree.filter((line) => !line.startsWith('/var/lib/coreos-cloudinit/instance.json '));
    expect(apart(snapshot(fromOvf))).toEqual(apart(snapshot(root)));
    expect(JSON.parse(readFileSync(join(fromOvf, 'var/lib/coreos-cloudinit/instance.json'), 'utf8'))).toEqual({ source: 'vmware-ovf-env', instanceId: null });
  });

  test('an address that carries YAML is refused, naming the key; nothing is written', async () => {
    const r = rpctool({ ...keys, 'interface.1.ip.0.address': '10.0.0.5/16"\nwrite_files:\n  - path: /etc/injected\n    content: x\n#' });
    const root = makeRoot();
    const before = snapshot(root);
    const run = await cli(['--from-vmware-guestinfo', '--root', root], r.path());
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/^coreos-cloudinit: no datasource answered \(vmware guestinfo: guestinfo\.interface\.1\.ip\.0\.address: not an IP address with a prefix length \(ADDRESS\/PREFIX\): "10\.0\.0\.5\/16\\"\\nwrite_files/);
    expect(snapshot(root)).toEqual(before);
  });

  test('--install-units --oem vmware enables its unit, which runs --oem=vmware', async () => {
    const root = makeRoot();
    const run = await cli(['--install-units', '--root', root, '--oem', 'vmware', '--exec', '/usr/bin/coreos-cloudinit'], process.env.PATH ?? '');
    expect([run.status, run.stderr]).toEqual([0, '']);
    expect(readlinkSync(join(root, 'etc/systemd/system/user-config.target.wants/oem-cloudinit-vmware.service'))).toBe('/etc/systemd/system/oem-cloudinit-vmware.service');
    expect(readFileSync(join(root, 'etc/systemd/system/oem-cloudinit-vmware.service'), 'utf8')).toMatch(/^ExecStart=\/usr\/bin\/coreos-cloudinit --oem=vmware$/m);
  });
});
