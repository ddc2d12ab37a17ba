/**
 * The Azure agent's files (--from-waagent) and CloudSigma's server context (--from-cloudsigma-metadata):
 * each source against a stand-in that has or says what the cloud does (a waagent directory; a
 * pseudo-terminal that answers as the server context does, or fails), its faults, and a first boot
 * through the CLI into a temporary root.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cloudsigmaSource, serverContextData } from '../../src/datasource/cloudsigma';
import type { RetryPolicy } from '../../src/datasource/http';
import { customData, sharedConfigMetadata, waagentSource } from '../../src/datasource/waagent';
import { FakeSerial, cloudsigmaContext, contextWithUserData, python } from '../support/fake-serial';
import type { SerialMode } from '../support/fake-serial';
import { asRoot, makeRoot, snapshot } from '../support/roots';
import { pathOnly, runAsync } from '../support/cli';

const bin = join(__dirname, '../../bin/coreos-cloudinit.js');
const fast: RetryPolicy = { timeoutMs: 300, attempts: 6, backoffMs: 10, maxBackoffMs: 50, deadlineMs: 5_000 };
const userData = '#cloud-config\ncoreos:\n  etcd2:\n    advertise_client_urls: http://$private_ipv4:2379\nwrite_files:\n  - path: /etc/public-address\n    content: "$public_ipv4"\n';
const injection = '10.0.0.1"\nwrite_files:\n  - path: /etc/injected\n    content: x\n#';
const vmId = '0f6c7a4e-4a38-4bd2-9c4c-3d1f4a1d2a10';

/** SharedConfig.xml as the agent saves it from the goal state: the instance, its address and endpoints. */
function sharedConfig(address = '100.73.202.64', loadBalanced = '191.239.39.77:22'): string {
  return `<?xml version="1.0" encoding="utf-8"?>
<SharedConfig version="1.0.0.0" goalStateIncarnation="1">
  <Deployment name="c8f9e4c9c18948e1bebf57c5685da756" guid="{1d10394f-c741-4a1a-a6bb-278f213c5a5e}" incarnation="0">
    <Service name="core-test-1" guid="{00000000-0000-0000-0000-000000000000}" />
  </Deployment>
  <Incarnation number="1" instance="core-test-1" guid="{8767eb4b-b445-4783-b1f5-6c0beaf41ea0}" />
  <Role guid="{53ecc81e-257f-fbc9-a53a-8cf1a0a122b4}" name="core-test-1" settleTimeSeconds="0" />
  <Instances>
    <Instance id="core-test-0" address="100.73.202.63" />
    <Instance id="core-test-1" address="${address}">
      <FaultDomains randomId="0" updateId="0" updateCount="0" />
      <InputEndpoints>
        <Endpoint name="openInternalEndpoint" address="${address}" protocol="any" isPublic="false" />
        <Endpoint name="ssh" address="${address}:22" protocol="tcp" isPublic="true" loadBalancedPublicAddress="${loadBalanced}">
          <LocalPorts><LocalPortRange from="22" to="22" /></LocalPorts>
        </Endpoint>
      </InputEndpoints>
    </Instance>
  </Instances>
</SharedConfig>
`;
}

/** ovf-env.xml as Azure's provisioning DVD holds it (the agent copies it, password removed). */
function ovfEnv(hostname = 'core-test-1'): string {
  return `<?xml version="1.0" encoding="utf-8"?>
<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1" xmlns:oe="http://schemas.dmtf.org/ovf/environment/1" xmlns:wa="http://schemas.microsoft.com/windowsazure" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
  <wa:ProvisioningSection>
    <wa:Version>1.0</wa:Version>
    <LinuxProvisioningConfigurationSet xmlns="http://schemas.microsoft.com/windowsazure" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
      <ConfigurationSetType>LinuxProvisioningConfiguration</ConfigurationSetType>
      <HostName>${hostname}</HostName>
      <UserName>core</UserName>
      <DisableSshPasswordAuthentication>true</DisableSshPasswordAuthentication>
      <CustomData>${Buffer.from(userData).toString('base64')}</CustomData>
    </LinuxProvisioningConfigurationSet>
  </wa:ProvisioningSection>
  <wa:PlatformSettingsSection>
    <wa:Version>1.0</wa:Version>
    <PlatformSettings xmlns="http://schemas.microsoft.com/windowsazure"><ProvisionGuestAgent>true</ProvisionGuestAgent></PlatformSettings>
  </wa:PlatformSettingsSection>
</Environment>
`;
}

/** A waagent directory as the agent leaves it after provisioning; a file given as undefined is left out. */
function waagentDir(files: Record<string, string | Buffer | undefined> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'bootsmith-waagent-'));
  const all = { provisioned: vmId, CustomData: Buffer.from(userData).toString('base64'), 'SharedConfig.xml': sharedConfig(), 'ovf-env.xml': ovfEnv(), ...files };
  for (const [name, content] of Object.entries(all)) if (content !== undefined) writeFileSync(join(dir, name), content);
  return dir;
}

const azureMetadata = { instanceId: vmId, hostname: 'core-test-1', privateIpv4: '100.73.202.64', publicIpv4: '191.239.39.77', sshPublicKeys: [] };

describe('Azure: the agent\'s directory', () => {
  test('user data (base64, as the agent leaves it) and metadata, each value typed', async () => {
    const dir = waagentDir();
    expect(await waagentSource(dir, 0).fetch()).toEqual({ source: 'waagent', location: join(dir, 'CustomData'), userData: Buffer.from(userData), metadata: azureMetadata });
  });

  test('custom data the agent decoded (Provisioning.DecodeCustomData=y), and gzip, are taken as they are', async () => {
    expect((await waagentSource(waagentDir({ CustomData: userData }), 0).fetch())?.userData).toEqual(Buffer.from(userData));
    const gzip = Buffer.from('1f8b0800000000000003cb48cdc9c9e702003020c5c306000000', 'hex');
    expect(customData(gzip)).toEqual(gzip);
    expect(customData(Buffer.from(`${Buffer.from(userData).toString('base64').replace(/(.{76})/g, '$1\n')}\n`))).toEqual(Buffer.from(userData));
  });

  test('no custom data, or an empty file, is no user data: the metadata still comes', async () => {
    const none = waagentDir({ CustomData: undefined });
    expect(await waagentSource(none, 0).fetch()).toEqual({ source: 'waagent', location: join(none, 'CustomData'), userData: undefined, noUserData: 'there is none', metadata: azureMetadata });
    expect((await waagentSource(waagentDir({ CustomData: '' }), 0).fetch())?.noUserData).toBe('the file is empty');
  });

  test('an older agent\'s empty provisioned, and no SharedConfig.xml or ovf-env.xml: no id, no addresses, no host name', async () => {
    const dir = waagentDir({ provisioned: '', 'SharedConfig.xml': undefined, 'ovf-env.xml': undefined });
    expect((await waagentSource(dir, 0).fetch())?.metadata).toEqual({ sshPublicKeys: [] });
  });

  test('while the agent provisions, the source waits for provisioned; then it answers', async () => {
    const dir = waagentDir({ provisioned: undefined });
    const fetching = waagentSource(dir, 60_000).fetch();
    let settled = false;
    void fetching.finally(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(settled).toBe(false);
    writeFileSync(join(dir, 'provisioned'), vmId);
    expect((await fetching)?.metadata).toEqual(azureMetadata);
  });

  test('an agent that never provisions: given up after the wait, saying so', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'bootsmith-waagent-')), 'not-yet');
    const started = Date.now();
    await expect(waagentSource(dir, 300).fetch()).rejects.toThrow(`azure agent: ${dir}/provisioned did not appear within 300 ms: the agent has not provisioned this machine`);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  test('the instance is the Incarnation\'s; one the document does not list has no addresses', () => {
    expect(sharedConfigMetadata(Buffer.from(sharedConfig().replace('instance="core-test-1"', 'instance="core-test-0"')))).toEqual({ privateIpv4: '100.73.202.63', sshPublicKeys: [] });
    expect(sharedConfigMetadata(Buffer.from(sharedConfig().replace('instance="core-test-1"', 'instance="core-test-9"')))).toEqual({});
  });

  test.each([
    ['an address with YAML after it', { 'SharedConfig.xml': sharedConfig(injection.replace(/"/g, '&quot;').replace(/\n/g, '&#10;')) }, /^azure agent: SharedConfig\.xml Instance address: not an IP address: "10\.0\.0\.1&quot;&#10;write_files/],
    ['an IPv6 load-balanced address', { 'SharedConfig.xml': sharedConfig(undefined, '[2001:db8::7]:22') }, /^azure agent: SharedConfig\.xml Instance Endpoint loadBalancedPublicAddress: not an IPv4 address: "2001:db8::7"$/],
    ['a load-balanced address without a port', { 'SharedConfig.xml': sharedConfig(undefined, 'lb.example.com') }, /loadBalancedPublicAddress: not an IP address: "lb\.example\.com"$/],
    ['SharedConfig.xml that is not XML', { 'SharedConfig.xml': '<SharedConfig><Instances>' }, /^azure agent: SharedConfig\.xml: not XML: /],
    ['a host name with a space', { 'ovf-env.xml': ovfEnv('core test') }, /^azure agent: ovf-env\.xml HostName: not a host name/],
    ['an id with a newline', { provisioned: 'a\nb' }, /^azure agent: provisioned: not an instance id/],
    ['a SharedConfig.xml over 1 MiB', { 'SharedConfig.xml': sharedConfig().replace('<Instances>', `<!--${'x'.repeat(1024 * 1024)}--><Instances>`) }, /^azure agent: SharedConfig\.xml is \d+ bytes, more than the 1048576 accepted$/],
  ])('refused, naming the file and field: %s', async (_name, files, message) => {
    await expect(waagentSource(waagentDir(files), 0).fetch()).rejects.toThrow(message);
  });

  test('a FIFO for CustomData is refused before it is read (it would block)', async () => {
    const dir = waagentDir({ CustomData: undefined });
    expect(spawnSync('mkfifo', [join(dir, 'CustomData')]).status).toBe(0);
    await expect(waagentSource(dir, 0).fetch()).rejects.toThrow('azure agent: CustomData is not a regular file');
  });

  test('entities in a DOCTYPE are not expanded: a small document stays small', async () => {
    const laughs = `<?xml version="1.0"?>
<!DOCTYPE SharedConfig [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>
<SharedConfig><Incarnation instance="x" /><Instances><Instance id="x" address="&d;" /></Instances></SharedConfig>`;
    await expect(waagentSource(waagentDir({ 'SharedConfig.xml': laughs }), 0).fetch()).rejects.toThrow(/SharedConfig\.xml Instance address: not an IP address: "&d;"$/);
  });
});

const cloudsigmaMetadata = {
  instanceId: cloudsigmaContext.uuid,
  hostname: 'coreos',
  publicIpv4: '31.171.251.74',
  privateIpv4: '10.0.0.7',
  sshPublicKeys: [cloudsigmaContext.meta.ssh_public_key],
};
/** This machine as the test tells it: the VLAN NIC's MAC on an interface with 10.0.0.7. */
const interfaces = () => ({
  lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4' as const, mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
  eth1: [
    { address: 'fe80::20ae:4aff:fefb:8f31', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6' as const, mac: '22:ae:4a:fb:8f:31', internal: false, cidr: 'fe80::20ae:4aff:fefb:8f31/64', scopeid: 3 },
    { address: '10.0.0.7', netmask: '255.255.255.0', family: 'IPv4' as const, mac: '22:AE:4A:FB:8F:31', internal: false, cidr: '10.0.0.7/24' },
  ],
});

/** A DMI product name file saying `name`. */
function productName(name = 'CloudSigma\n'): string {
  const file = join(mkdtempSync(join(tmpdir(), 'bootsmith-dmi-')), 'product_name');
  writeFileSync(file, name);
  return file;
}

const canServe = existsSync(python);
if (!canServe) test.skip('the serial stand-in needs python3 (scripts/ensure-deps.sh installs it)', () => undefined);

(canServe ? describe : describe.skip)('CloudSigma: the server context over a serial port', () => {
  let serial: FakeSerial | undefined;
  afterEach(async () => {
    await serial?.stop();
    serial = undefined;
  });
  const serve = async (context: object | string, modes: SerialMode[] = []) => (serial = await new FakeSerial().start(context, modes));
  const source = (s: FakeSerial, options: { product?: string; maxBytes?: number } = {}, policy = fast) =>
    cloudsigmaSource({ serialPort: s.path, productNameFile: options.product ?? productName(), maxBytes: options.maxBytes, interfaces }, policy);

  test('user data (base64, as base64_fields says) and metadata, each value typed; one request, for the whole context', async () => {
    const s = await serve(contextWithUserData(userData));
    expect(await source(s).fetch()).toEqual({ source: 'cloudsigma', location: `${s.path} (server context)`, userData: Buffer.from(userData), metadata: cloudsigmaMetadata });
    expect(s.requests).toEqual(['']);
  });

  test('not a CloudSigma machine (another product name, or none): not this source, and the port is not touched', async () => {
    const s = await serve(contextWithUserData(userData));
    expect(await source(s, { product: productName('Standard PC (Q35 + ICH9, 2009)\n') }).fetch()).toBeUndefined();
    expect(await source(s, { product: join(tmpdir(), 'bootsmith-no-such-dmi-file') }).fetch()).toBeUndefined();
    expect(s.requests).toEqual([]);
  });

  test.each<[SerialMode[]]>([[['silent']], [['truncate']], [['silent', 'truncate']]])('asks again after the answers %j and gets the context intact', async (modes) => {
    const s = await serve(contextWithUserData(userData), modes);
    const got = await source(s).fetch();
    expect(got?.userData?.toString()).toBe(userData);
    expect(got?.metadata).toEqual(cloudsigmaMetadata);
    expect(s.requests).toEqual(['', ...modes.map(() => '')]);
  });

  test('silence every time: given up at the deadline, naming the port', async () => {
    const s = await serve(contextWithUserData(userData), Array<SerialMode>(100).fill('silent'));
    const started = Date.now();
    await expect(source(s, {}, { ...fast, attempts: 100, deadlineMs: 1_000 }).fetch()).rejects.toThrow(new RegExp(`^${s.path}: no complete answer within \\d+ ms \\(gave up after retrying\\)$`));
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  test('a truncated answer every time is an error, never short data', async () => {
    const s = await serve(contextWithUserData(userData), Array<SerialMode>(3).fill('truncate'));
    await expect(source(s, {}, { ...fast, attempts: 3 }).fetch()).rejects.toThrow(/: cloudsigma server context: the answer: not valid JSON: .*\(gave up after retrying\)$/);
    expect(s.requests).toHaveLength(3);
  });

  test('an answer without end: refused at the size limit, not asked again', async () => {
    const s = await serve(contextWithUserData(userData), ['oversize']);
    await expect(source(s, { maxBytes: 64 * 1024 }, { ...fast, timeoutMs: 5_000 }).fetch()).rejects.toThrow(`${s.path}: an answer larger than 65536 bytes`);
    expect(s.requests).toEqual(['']);
  });

  test('a port that is no terminal is refused, and not asked again', async () => {
    await expect(cloudsigmaSource({ serialPort: productName(), productNameFile: productName() }, fast).fetch()).rejects.toThrow(/: not a serial port \(not a terminal\)$/);
  });
});

describe('CloudSigma: server context values are parsed into their type, or refused naming the field', () => {
  const data = (change: object) => serverContextData({ ...contextWithUserData(userData), ...change }, interfaces);
  const meta = (change: object) => ({ meta: { ...contextWithUserData(userData).meta, ...change } });

  test('user data not listed in base64_fields is taken as it is; none is no user data', () => {
    expect(data(meta({ base64_fields: 'other', 'cloudinit-user-data': userData })).userData).toEqual(Buffer.from(userData));
    expect(data(meta({ base64_fields: 'a,cloudinit-user-data,b' })).userData).toEqual(Buffer.from(userData));
    expect(data({ meta: {} })).toMatchObject({ userData: undefined, noUserData: 'the server context has no meta cloudinit-user-data' });
    expect(data(meta({ 'cloudinit-user-data': '' }))).toMatchObject({ userData: undefined, noUserData: 'meta cloudinit-user-data is empty' });
  });

  test('a name that is no host name gives way to the uuid, as cloud-init does; the first NIC\'s address is the public one', () => {
    expect(data({ name: 'Web server #1' }).metadata.hostname).toBe(cloudsigmaContext.uuid);
    const nics = [{ ip_v4_conf: { conf: 'static', ip: { uuid: '203.0.113.9' } } }, ...cloudsigmaContext.nics];
    expect(data({ nics }).metadata.publicIpv4).toBe('203.0.113.9');
    expect(serverContextData({ ...contextWithUserData(userData) }, () => ({})).metadata).not.toHaveProperty('privateIpv4');
  });

  const withIp = (uuid: unknown) => ({ nics: [{ ip_v4_conf: { conf: 'static', ip: { uuid } } }] });
  test.each([
    ['an address with YAML after it', withIp(injection), /^cloudsigma server context: nics\[0\]\.ip_v4_conf\.ip\.uuid: not an IP address: "10\.0\.0\.1\\"\\nwrite_files/],
    ['an IPv6 address', withIp('2001:db8::9'), /nics\[0\]\.ip_v4_conf\.ip\.uuid: not an IPv4 address/],
    ['an address that is a number', withIp(42), /nics\[0\]\.ip_v4_conf\.ip\.uuid: not a string but a number$/],
    ['nics that are an object', { nics: {} }, /^cloudsigma server context: nics: not a list but an object$/],
    ['user data that is not base64', meta({ 'cloudinit-user-data': '#cloud-config' }), /^cloudsigma server context: meta\.cloudinit-user-data: listed in meta\.base64_fields, but not base64$/],
    ['a key with a second key after a newline', meta({ ssh_public_key: `${cloudsigmaContext.meta.ssh_public_key}\nssh-rsa AAAA x` }), /meta\.ssh_public_key: an SSH key is one line/],
    ['a uuid with a space', { uuid: 'a b', name: 'not a host name' }, /^cloudsigma server context: uuid: not a host name/],
    ['meta that is a list', { meta: [] }, /^cloudsigma server context: meta: not an object but a list$/],
  ])('%s', (_name, change, message) => {
    expect(() => data(change)).toThrow(message);
  });
});

const cli = (args: string[]) => runAsync(bin, args, pathOnly());

(asRoot ? describe : describe.skip)('Azure and CloudSigma: a first boot through the CLI', () => {
  let serial: FakeSerial | undefined;
  afterEach(async () => {
    await serial?.stop();
    serial = undefined;
  });

  test('Azure: user data, metadata and $private_ipv4; --oem azure does the same', async () => {
    const dir = waagentDir();
    const root = makeRoot();
    const r = await cli(['--from-waagent', dir, '--root', root]);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toMatch(new RegExp(`^user data from ${dir}/CustomData\n`));
    expect(r.stdout).toMatch(new RegExp(`^changed\\s+instance ${vmId} \\[waagent\\]: first boot$`, 'm'));
    expect(readFileSync(join(root, 'run/systemd/system/etcd2.service.d/20-cloudinit.conf'), 'utf8')).toBe('[Service]\nEnvironment="ETCD_ADVERTISE_CLIENT_URLS=http://100.73.202.64:2379"\n');
    expect(readFileSync(join(root, 'etc/public-address'), 'utf8')).toBe('191.239.39.77');
    expect(readFileSync(join(root, 'etc/hostname'), 'utf8')).toBe('core-test-1\n');
    expect(readFileSync(join(root, 'etc/environment'), 'utf8')).toBe('COREOS_PRIVATE_IPV4=100.73.202.64\nCOREOS_PUBLIC_IPV4=191.239.39.77\n');
    expect(JSON.parse(readFileSync(join(root, 'var/lib/coreos-cloudinit/instance.json'), 'utf8'))).toEqual({ source: 'waagent', instanceId: vmId });
    // Go's spelling, and the preset with its directory given.
    const viaOem = makeRoot();
    const o = await cli(['-oem=azure', `-from-waagent=${dir}`, '--root', viaOem]);
    expect([o.status, o.stderr, o.stdout]).toEqual([0, '', r.stdout]);
    expect(snapshot(viaOem)).toEqual(snapshot(root));
  });

  test('Azure: an address that carries YAML is refused, naming the field; nothing is written', async () => {
    const dir = waagentDir({ 'SharedConfig.xml': sharedConfig('10.0.0.1&quot;&#10;write_files:&#10;  - path: /etc/injected&#10;#') });
    const root = makeRoot();
    const before = snapshot(root);
    const r = await cli(['--from-waagent', dir, '--root', root]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^coreos-cloudinit: no datasource answered \\(${dir}: azure agent: SharedConfig\\.xml Instance address: not an IP address: "10\\.0\\.0\\.1&quot;&#10;write_files`));
    expect(snapshot(root)).toEqual(before);
  });

  test('CloudSigma: user data, metadata and $public_ipv4 from the serial port; --oem cloudsigma does the same', async () => {
    // No $private_ipv4: no interface of this machine has the VLAN NIC's MAC.
    const s = (serial = await new FakeSerial().start(contextWithUserData('#cloud-config\nwrite_files:\n  - path: /etc/public-address\n    content: "$public_ipv4"\n')));
    const product = productName();
    const root = makeRoot();
    const r = await cli(['--from-cloudsigma-metadata', '--cloudsigma-serial', s.path, '--dmi-product-name', product, '--root', root]);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toMatch(new RegExp(`^user data from ${s.path} \\(server context\\)\n`));
    expect(r.stdout).toMatch(new RegExp(`^changed\\s+instance ${cloudsigmaContext.uuid} \\[cloudsigma\\]: first boot$`, 'm'));
    expect(readFileSync(join(root, 'etc/public-address'), 'utf8')).toBe('31.171.251.74');
    expect(readFileSync(join(root, 'etc/hostname'), 'utf8')).toBe('coreos\n');
    expect(readFileSync(join(root, 'home/core/.ssh/authorized_keys'), 'utf8')).toBe(`${cloudsigmaContext.meta.ssh_public_key}\n`);
    expect(readFileSync(join(root, 'etc/environment'), 'utf8')).toBe('COREOS_PUBLIC_IPV4=31.171.251.74\n');
    expect(JSON.parse(readFileSync(join(root, 'var/lib/coreos-cloudinit/instance.json'), 'utf8'))).toEqual({ source: 'cloudsigma', instanceId: cloudsigmaContext.uuid });
    const viaOem = makeRoot();
    const o = await cli(['-oem=cloudsigma', '--cloudsigma-serial', s.path, '--dmi-product-name', product, '--root', viaOem]);
    expect([o.status, o.stderr, o.stdout]).toEqual([0, '', r.stdout]);
    expect(snapshot(viaOem)).toEqual(snapshot(root));
    expect(s.requests).toEqual(['', '']);
  });

  test('CloudSigma: silence is retried, said on stderr; an address that carries YAML is refused; nothing is written', async () => {
    const s = (serial = await new FakeSerial().start(contextWithUserData(userData, withPublic(injection)), ['silent']));
    const root = makeRoot();
    const before = snapshot(root);
    const r = await cli(['--from-cloudsigma-metadata', '--cloudsigma-serial', s.path, '--dmi-product-name', productName(), '--root', root, '--http-timeout', '500']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^coreos-cloudinit: ${s.path}: no complete answer within 500 ms; retry 2 of 15 in \\d+ ms\n`));
    expect(r.stderr).toMatch(/^coreos-cloudinit: no datasource answered \(\S+: cloudsigma server context: nics\[0\]\.ip_v4_conf\.ip\.uuid: not an IP address: "10\.0\.0\.1\\"\\nwrite_files/m);
    expect(snapshot(root)).toEqual(before);
  });

  test.each(['azure', 'cloudsigma'])('--install-units --oem %s enables its unit, which runs --oem=NAME', async (oem) => {
    const root = makeRoot();
    const r = await cli(['--install-units', '--root', root, '--oem', oem, '--exec', '/usr/bin/coreos-cloudinit']);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(readlinkSync(join(root, `etc/systemd/system/user-config.target.wants/oem-cloudinit-${oem}.service`))).toBe(`/etc/systemd/system/oem-cloudinit-${oem}.service`);
    expect(readFileSync(join(root, `etc/systemd/system/oem-cloudinit-${oem}.service`), 'utf8')).toMatch(new RegExp(`^ExecStart=/usr/bin/coreos-cloudinit --oem=${oem}$`, 'm'));
  });
});

/** The first NIC's address as `address`. */
function withPublic(address: string): object {
  const [first, ...rest] = cloudsigmaContext.nics;
  return { nics: [{ ...first, ip_v4_conf: { conf: 'static', ip: { uuid: address } } }, ...rest] };
}

test('validating from the agent\'s directory (-from-waagent=DIR, as Go spells it): the decoded custom data is checked', async () => {
  const dir = waagentDir();
  const r = await cli(['-validate', `-from-waagent=${dir}`]);
  expect([r.status, r.stderr]).toEqual([0, '']);
  expect(r.stdout).toBe(`${dir}/CustomData:3:3: warning: deprecated key "etcd2" (etcd2 is no longer shipped in Container Linux) [deprecated-key]\n0 errors, 1 warning, 0 infos in 1 file\n`);
});
