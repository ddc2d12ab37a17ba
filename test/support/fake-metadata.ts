/**
 * A loopback metadata service for tests, answering as EC2's IMDS (v1 and v2), OpenStack's, Google
 * Compute Engine's, DigitalOcean's and Packet's do, on the paths coreos-cloudinit reads. It can be
 * told to fail: 500s, slow answers, connection resets, truncated bodies, bodies that drip a byte a
 * second; and it logs every request.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/** `drip`: the headers at once, then the body (padded to at least 60 bytes) one byte a second, as a stalling peer would. */
export type Failure = '500' | 'slow' | 'reset' | 'truncate' | '403' | 'drip';

export interface Ec2Settings {
  userData?: string | Buffer;
  /** meta-data values by path: hostname, local-ipv4, public-ipv4, instance-id, ipv6 ... */
  metaData?: Record<string, string>;
  /** Public keys by name, listed as public-keys/N=name. */
  keys?: Record<string, string>;
  /** v2: tokens required; v1: no token endpoint (404); v2-optional: tokens accepted, not required; forbidden: token PUT 403. */
  imds?: 'v2' | 'v2-optional' | 'v1' | 'forbidden';
  /** A token stops working after this many requests with it (then 401). */
  tokenUses?: number;
  /** Tokens live for at most this many ms, whatever TTL was asked (then 401). */
  tokenLifetimeMs?: number;
}

export interface OpenstackSettings {
  metaData?: object;
  userData?: string;
  networkData?: object;
}

/** GCE: answers only requests with `Metadata-Flavor: Google` (403 otherwise), each with that header too. */
export interface GceSettings {
  /** The instance attribute user-data. */
  userData?: string;
  /** Instance values by path under computeMetadata/v1/instance/: hostname, id, network-interfaces/0/ip ... */
  instance?: Record<string, string>;
}

/** DigitalOcean: metadata/v1/user-data and the document metadata/v1.json. */
export interface DigitaloceanSettings {
  userData?: string;
  /** The document: an object sent as JSON, or text sent as it is. */
  metadata?: object | string;
}

/** Packet: `userdata` and the document `metadata`. */
export interface PacketSettings {
  userData?: string;
  /** The document: an object sent as JSON, or text sent as it is. */
  metadata?: object | string;
}

/** The clouds other than EC2 and OpenStack this stand-in can be; a cloud not given answers 404 on its paths. */
export interface CloudSettings {
  gce?: GceSettings;
  digitalocean?: DigitaloceanSettings;
  packet?: PacketSettings;
}

export interface Logged {
  method: string;
  path: string;
  /** The status answered (0 for a reset or a slow answer not given). */
  status: number;
  token: string | undefined;
  ttl: string | undefined;
  /** The Metadata-Flavor header (GCE). */
  flavor: string | undefined;
}

export class FakeMetadata {
  readonly requests: Logged[] = [];
  /** Failures to answer with, one per request, before answering normally. */
  failures: Failure[] = [];
  /** Paths that always fail this way. */
  alwaysFail = new Map<string, Failure>();
  /** Paths that fail this way once, the next time they are asked for. */
  failOnce = new Map<string, Failure>();
  private readonly server = http.createServer((req, res) => this.handle(req, res));
  /** Uses and expiry time of each token handed out. */
  private readonly tokens = new Map<string, { uses: number; expires: number }>();
  private nextToken = 1;

  constructor(
    public ec2: Ec2Settings = {},
    public openstack: OpenstackSettings | undefined = undefined,
    public clouds: CloudSettings = {},
  ) {}

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this.url;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private fail(failure: Failure, res: http.ServerResponse, body: string): void {
    if (failure === '500') {
      res.writeHead(500).end('internal error');
    } else if (failure === '403') {
      res.writeHead(403).end('forbidden');
    } else if (failure === 'slow') {
      setTimeout(() => res.writeHead(200).end(body), 3_000).unref();
    } else if (failure === 'drip') {
      const bytes = Buffer.from(body.padEnd(60, ' '));
      res.writeHead(200, { 'content-length': String(bytes.length) });
      let sent = 0;
      const tick = setInterval(() => {
        if (res.destroyed || sent >= bytes.length) {
          clearInterval(tick);
          if (!res.destroyed) res.end();
          return;
        }
        res.write(bytes.subarray(sent, ++sent));
      }, 1_000);
      tick.unref();
      res.on('close', () => clearInterval(tick));
    } else if (failure === 'reset') {
      res.socket?.destroy();
    } else {
      res.writeHead(200, { 'content-length': String(body.length + 100) });
      res.write(body.slice(0, Math.ceil(body.length / 2)));
      res.socket?.end();
    }
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').replace(/^\/+/, '');
    const token = req.headers['x-aws-ec2-metadata-token'] as string | undefined;
    const flavor = req.headers['metadata-flavor'] as string | undefined;
    const logged: Logged = { method: req.method ?? 'GET', path, status: 0, token, ttl: req.headers['x-aws-ec2-metadata-token-ttl-seconds'] as string | undefined, flavor };
    this.requests.push(logged);
    const answer = this.cloudAnswer(path, flavor) ?? this.answer(req.method ?? 'GET', path, token, logged.ttl);
    const once = this.failOnce.get(path);
    if (once) this.failOnce.delete(path);
    const failure = this.failures.shift() ?? once ?? this.alwaysFail.get(path);
    if (failure && answer.status === 200) {
      logged.status = failure === '500' ? 500 : failure === '403' ? 403 : failure === 'truncate' || failure === 'drip' ? 200 : 0;
      this.fail(failure, res, answer.body.toString());
      return;
    }
    logged.status = answer.status;
    res.writeHead(answer.status, { 'content-length': String(answer.body.length), ...answer.headers }).end(answer.body);
  }

  /** The answer of GCE, DigitalOcean or Packet for their paths; undefined for other paths. */
  private cloudAnswer(path: string, flavor: string | undefined): { status: number; body: Buffer; headers?: Record<string, string> } | undefined {
    const ok = (body: string | object) => ({ status: 200, body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)) });
    const none = { status: 404, body: Buffer.from('not found') };
    if (path.startsWith('computeMetadata/')) {
      const gce = this.clouds.gce;
      if (!gce) return none;
      // As Google's server: every answer says Metadata-Flavor: Google; a request without it is refused.
      const headers = { 'metadata-flavor': 'Google', 'content-type': 'application/text' };
      if (flavor !== 'Google') {
        return { status: 403, body: Buffer.from(`Your client does not have permission to get URL /${path} from this server. Missing Metadata-Flavor:Google header.`), headers };
      }
      const instance = path.startsWith('computeMetadata/v1/instance/') ? path.slice('computeMetadata/v1/instance/'.length) : undefined;
      const value = path === 'computeMetadata/v1/' ? 'instance/\noauth/\nproject/\n' : instance === 'attributes/user-data' ? gce.userData : instance === undefined ? undefined : gce.instance?.[instance];
      return { ...(value === undefined ? none : ok(value)), headers };
    }
    if (path === 'metadata/v1.json' || path === 'metadata/v1/user-data') {
      const digitalocean = this.clouds.digitalocean;
      const value = path === 'metadata/v1.json' ? digitalocean?.metadata : digitalocean?.userData;
      return value === undefined ? none : ok(value);
    }
    if (path === 'metadata' || path === 'userdata') {
      const packet = this.clouds.packet;
      const value = path === 'metadata' ? packet?.metadata : packet?.userData;
      return value === undefined ? none : { ...ok(value), headers: { 'content-type': path === 'metadata' ? 'application/json' : 'text/plain' } };
    }
    return undefined;
  }

  private answer(method: string, path: string, token: string | undefined, ttl?: string): { status: number; body: Buffer; headers?: Record<string, string> } {
    const ok = (body: string | Buffer) => ({ status: 200, body: Buffer.from(body) });
    const none = { status: 404, body: Buffer.from('not found') };
    if (path.startsWith('openstack/')) {
      const os = this.openstack;
      if (!os) return none;
      if (path === 'openstack/latest/meta_data.json' && os.metaData) return ok(JSON.stringify(os.metaData));
      if (path === 'openstack/latest/user_data' && os.userData !== undefined) return ok(os.userData);
      if (path === 'openstack/latest/network_data.json' && os.networkData) return ok(JSON.stringify(os.networkData));
      return none;
    }
    const mode = this.ec2.imds ?? 'v2';
    if (path === 'latest/api/token') {
      if (mode === 'v1') return none;
      if (mode === 'forbidden') return { status: 403, body: Buffer.from('forbidden') };
      if (method !== 'PUT') return { status: 405, body: Buffer.from('method not allowed') };
      // As IMDS: a TTL of 1 to 21600 seconds must be asked for, and is echoed in the answer.
      const seconds = Number(ttl);
      if (!Number.isInteger(seconds) || seconds < 1 || seconds > 21600) return { status: 400, body: Buffer.from('bad ttl') };
      const t = `token-${this.nextToken++}`;
      this.tokens.set(t, { uses: 0, expires: Date.now() + Math.min(seconds * 1000, this.ec2.tokenLifetimeMs ?? Infinity) });
      return { ...ok(t), headers: { 'x-aws-ec2-metadata-token-ttl-seconds': String(seconds) } };
    }
    if (mode === 'v2' || (mode === 'v2-optional' && token)) {
      const state = token === undefined ? undefined : this.tokens.get(token);
      const expired = !state || Date.now() >= state.expires || (this.ec2.tokenUses !== undefined && state.uses >= this.ec2.tokenUses);
      if (expired) return { status: 401, body: Buffer.from('unauthorized') };
      state.uses++;
    }
    const prefix = '2009-04-04/';
    if (!path.startsWith(prefix)) return none;
    const rest = path.slice(prefix.length);
    if (rest === 'user-data') return this.ec2.userData === undefined ? none : ok(this.ec2.userData);
    if (!rest.startsWith('meta-data/')) return none;
    const key = rest.slice('meta-data/'.length);
    const keys = Object.entries(this.ec2.keys ?? {});
    if (key === 'public-keys/' || key === 'public-keys') return keys.length ? ok(keys.map(([name], i) => `${i}=${name}`).join('\n')) : none;
    const m = /^public-keys\/(\d+)\/openssh-key$/.exec(key);
    if (m) return keys[Number(m[1])] ? ok(keys[Number(m[1])]![1]) : none;
    const value = this.ec2.metaData?.[key];
    return value === undefined ? none : ok(value);
  }
}

/** An SSH key the cloud documents below hand out. */
export const cloudKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq7E68devjRKAB2lwqxl16pR8Y+7vOt6k2VMYV4L7l6 cloud-key';

/** GCE's instance values, by path under computeMetadata/v1/instance/. */
export const gceInstance = {
  id: '4520031799277581759',
  hostname: 'node-1.c.example-project.internal',
  'network-interfaces/0/ip': '10.128.0.5',
  'network-interfaces/0/access-configs/0/external-ip': '203.0.113.7',
  zone: 'projects/123456789/zones/us-central1-a',
};

/** metadata/v1.json as a droplet sees it (documentation addresses; IPv6 upper-case, as DigitalOcean writes it). */
export const digitaloceanDocument = {
  droplet_id: 2756294,
  hostname: 'droplet-1',
  vendor_data: '#cloud-config\n',
  public_keys: [`${cloudKey}\n`],
  region: 'nyc3',
  interfaces: {
    private: [{ ipv4: { ip_address: '10.132.255.113', netmask: '255.255.0.0', gateway: '10.132.0.1' }, mac: '04:01:2a:0f:2a:02', type: 'private' }],
    public: [
      {
        ipv4: { ip_address: '203.0.113.20', netmask: '255.255.192.0', gateway: '203.0.113.1' },
        ipv6: { ip_address: '2001:0DB8:0800:0010:0000:0000:017D:2001', cidr: 64, gateway: '2001:0DB8:0800:0010:0000:0000:0000:0001' },
        anchor_ipv4: { ip_address: '10.17.0.5', netmask: '255.255.0.0', gateway: '10.17.0.1' },
        mac: '04:01:2a:0f:2a:01',
        type: 'public',
      },
      { ipv4: { ip_address: '198.51.100.99', netmask: '255.255.255.0', gateway: '198.51.100.1' }, mac: '04:01:2a:0f:2a:03', type: 'public' },
    ],
  },
  floating_ip: { ipv4: { active: false } },
  dns: { nameservers: ['2001:4860:4860::8844', '8.8.8.8'] },
  features: { dhcp_enabled: false },
};

/** Packet's `metadata`: the management addresses first, then an elastic one. */
export const packetDocument = {
  id: '6a2dcd47-5d37-4c0f-a1f1-e3c4d01b8f6d',
  hostname: 'metal-1',
  plan: 'c3.small.x86',
  facility: 'ewr1',
  operating_system: { slug: 'flatcar_stable' },
  ssh_keys: [cloudKey],
  network: {
    bonding: { mode: 4 },
    interfaces: [{ name: 'enp1s0f0', mac: '0c:c4:7a:e5:43:fa' }],
    addresses: [
      { address_family: 4, public: true, management: true, cidr: 31, address: '203.0.113.11', gateway: '203.0.113.10', netmask: '255.255.255.254' },
      { address_family: 6, public: true, management: true, cidr: 127, address: '2001:db8:1::3', gateway: '2001:db8:1::2' },
      { address_family: 4, public: false, management: true, cidr: 31, address: '10.88.1.3', gateway: '10.88.1.2' },
      { address_family: 4, public: true, management: false, cidr: 32, address: '198.51.100.9' },
    ],
  },
  api_url: 'https://metadata.packet.net',
};
