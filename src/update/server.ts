/**
 * An update server for labs, tests and air-gapped fleets: Omaha v3 over the channel tree images/
 * builds (<tree>/<channel>/<board>/<version>/flatcar_production_update.gz with its .sha256).
 * An update check is answered with the channel's newest version when it is newer than the
 * machine's, else noupdate; the payload is served with Range; every machine's events are kept, and
 * a version a machine reports an error or a rollback for is halted (offered to nobody) until an
 * operator resumes it (POST /admin/resume). GET /admin/status shows channels, halts and machines.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, createReadStream, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, renameSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { join, resolve, sep } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { coreosAppId, decodeDigest, eventResult, eventType, xmlEscape as esc } from './omaha';

export const packageName = 'flatcar_production_update.gz';

export interface Release {
  channel: string;
  version: string;
  path: string;
  size: number;
  sha256: Buffer;
  sha1: Buffer;
}

export interface MachineRecord {
  machineId: string;
  track: string;
  version: string;
  /** The version last offered to it. */
  offered?: string;
  lastSeen: string;
  events: { at: string; type: number; result: number; errorCode?: number; previousVersion?: string; version: string }[];
}

/** Compares dotted versions numerically (1002.1.0 > 1001.10.0 is false; 1001.10.0 > 1001.9.0). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (n) => ['app', 'event'].includes(n), parseAttributeValue: false, parseTagValue: false });

export interface ServerOptions {
  tree: string;
  board?: string;
  /** Where events and halts are kept across restarts; none: in memory only. */
  stateDir?: string;
  appId?: string;
  log?: (line: string) => void;
}

export class UpdateServer {
  readonly board: string;
  readonly appId: string;
  readonly machines = new Map<string, MachineRecord>();
  halted = new Set<string>();
  private readonly digests = new Map<string, { mtimeMs: number; sha1: Buffer }>();
  private server: Server | undefined;
  /** Counts of what was served, for tests and benchmarks. */
  readonly counts = { requests: 0, checks: 0, events: 0, downloads: 0 };

  constructor(private readonly opts: ServerOptions) {
    this.board = opts.board ?? 'amd64-usr';
    this.appId = opts.appId ?? coreosAppId;
    if (opts.stateDir) {
      mkdirSync(opts.stateDir, { recursive: true });
      try {
        this.halted = new Set(JSON.parse(readFileSync(join(opts.stateDir, 'halted.json'), 'utf8')) as string[]);
      } catch {
        // nothing halted yet
      }
    }
  }

  /** The releases of a channel, newest first. The tree is read anew, so publishing is adding a directory. */
  releases(channel: string): Release[] {
    if (!/^[A-Za-z0-9._-]+$/.test(channel)) return [];
    const dir = join(this.opts.tree, channel, this.board);
    let versions: string[];
    try {
      versions = readdirSync(dir).filter((v) => v !== 'current' && /^\d+(\.\d+)*$/.test(v));
    } catch {
      return [];
    }
    const out: Release[] = [];
    for (const version of versions.sort((a, b) => compareVersions(b, a))) {
      const path = join(dir, version, packageName);
      try {
        const st = statSync(path);
        const sha256 = decodeDigest(readFileSync(`${path}.sha256`, 'utf8').trim().split(/\s+/)[0] ?? '');
        if (!sha256) continue;
        let d = this.digests.get(path);
        if (!d || d.mtimeMs !== st.mtimeMs) {
          d = { mtimeMs: st.mtimeMs, sha1: createHash('sha1').update(readFileSync(path)).digest() };
          this.digests.set(path, d);
        }
        out.push({ channel, version, path, size: st.size, sha256, sha1: d.sha1 });
      } catch {
        // a release still being published
      }
    }
    return out;
  }

  private saveHalts(): void {
    if (!this.opts.stateDir) return;
    const f = join(this.opts.stateDir, 'halted.json');
    writeFileSync(`${f}.tmp`, JSON.stringify([...this.halted]));
    renameSync(`${f}.tmp`, f);
  }

  halt(channel: string, version: string, why: string): void {
    const key = `${channel}/${version}`;
    if (this.halted.has(key)) return;
    this.halted.add(key);
    this.saveHalts();
    this.opts.log?.(`halted ${key}: ${why}`);
  }

  resume(channel: string, version: string): boolean {
    const had = this.halted.delete(`${channel}/${version}`);
    if (had) this.saveHalts();
    return had;
  }

  /** The answer to one Omaha request. */
  omaha(body: string, baseUrl: string): string {
    let doc: Record<string, unknown>;
    try {
      doc = xml.parse(body, true) as Record<string, unknown>;
    } catch {
      return this.reply('', '<app status="error-internal"><updatecheck status="error-internal"></updatecheck></app>');
    }
    const request = doc.request as Record<string, unknown> | undefined;
    const app = ((request?.app as Record<string, unknown>[] | undefined) ?? [])[0];
    if (!app) return this.reply('', '');
    const a = (k: string) => (typeof app[k] === 'string' ? (app[k] as string) : '');
    const appId = a('appid');
    if (appId.toLowerCase() !== this.appId.toLowerCase()) {
      return this.reply('', `<app appid="${esc(appId)}" status="error-unknownApplication"><updatecheck status="error-internal"></updatecheck></app>`);
    }
    const now = new Date().toISOString();
    const machineId = a('machineid');
    const record = this.machines.get(machineId) ?? { machineId, track: a('track'), version: a('version'), lastSeen: now, events: [] };
    Object.assign(record, { track: a('track'), version: a('version'), lastSeen: now });
    this.machines.set(machineId, record);
    const parts: string[] = [];
    for (const e of (app.event as Record<string, string>[] | undefined) ?? []) {
      this.counts.events++;
      parts.push('<event status="ok"></event>');
      // Every update check carries 3/2 with previousversion 0.0.0.0 when there is no update to report: not kept.
      if (e.previousversion === '0.0.0.0') continue;
      const ev = {
        at: now,
        type: Number(e.eventtype),
        result: Number(e.eventresult),
        ...(e.errorcode ? { errorCode: Number(e.errorcode) } : {}),
        ...(e.previousversion ? { previousVersion: e.previousversion } : {}),
        version: record.version,
      };
      record.events.push(ev);
      if (this.opts.stateDir) appendFileSync(join(this.opts.stateDir, 'events.jsonl'), `${JSON.stringify({ machineId, track: record.track, ...ev })}\n`);
      if (ev.type === eventType.updateComplete && ev.result === eventResult.error && record.offered) {
        const why = ev.errorCode === 44 ? `machine ${machineId} rolled back to ${record.version}` : `machine ${machineId} reported error ${ev.errorCode ?? '?'}`;
        this.halt(record.track, record.offered, why);
      }
    }
    if (app.ping !== undefined) parts.push('<ping status="ok"></ping>');
    if (app.updatecheck !== undefined) {
      this.counts.checks++;
      const newest = this.releases(record.track).find((r) => !this.halted.has(`${r.channel}/${r.version}`));
      if (!newest || compareVersions(newest.version, record.version) <= 0) {
        parts.push('<updatecheck status="noupdate"></updatecheck>');
      } else {
        record.offered = newest.version;
        const codebase = `${baseUrl}/${encodeURIComponent(newest.channel)}/${this.board}/${newest.version}/`;
        parts.push(
          `<updatecheck status="ok"><urls><url codebase="${esc(codebase)}"></url></urls><manifest version="${newest.version}"><packages>` +
            `<package name="${packageName}" hash="${newest.sha1.toString('base64')}" size="${newest.size}" required="true"></package></packages>` +
            `<actions><action event="postinstall" sha256="${newest.sha256.toString('base64')}" DisablePayloadBackoff="true"></action></actions></manifest></updatecheck>`,
        );
      }
    }
    return this.reply(appId, parts.join(''));
  }

  private reply(appId: string, inner: string): string {
    const app = inner.startsWith('<app') || inner === '' ? inner : `<app appid="${esc(appId)}" status="ok">${inner}</app>`;
    return `<?xml version="1.0" encoding="UTF-8"?>\n<response protocol="3.0" server="bootsmith"><daystart elapsed_seconds="0"></daystart>${app}</response>\n`;
  }

  /** A file of the tree, whole or one Range. */
  private file(req: IncomingMessage, res: ServerResponse, path: string): void {
    const root = resolve(this.opts.tree);
    const full = resolve(root, `.${decodeURIComponent(path)}`);
    let size: number;
    try {
      if (!full.startsWith(root + sep)) throw new Error('outside');
      const st = statSync(full);
      if (!st.isFile()) throw new Error('not a file');
      size = st.size;
    } catch {
      res.writeHead(404).end();
      return;
    }
    if (full.endsWith(packageName)) this.counts.downloads++;
    const m = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    if (m && (m[1] || m[2])) {
      const start = m[1] ? Number(m[1]) : Math.max(0, size - Number(m[2]));
      const end = m[1] && m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      if (start >= size || start > end) {
        res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
        return;
      }
      res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${size}`, 'accept-ranges': 'bytes' });
      createReadStream(full, { start, end, highWaterMark: 1 << 20 }).pipe(res);
      return;
    }
    res.writeHead(200, { 'content-length': size, 'accept-ranges': 'bytes' });
    createReadStream(full, { highWaterMark: 1 << 20 }).pipe(res);
  }

  private status(): unknown {
    const channels = readdirSync(this.opts.tree)
      .map((c) => [c, this.releases(c)] as const)
      .filter(([, releases]) => releases.length > 0);
    return {
      channels: Object.fromEntries(channels.map(([c, releases]) => [c, releases.map((r) => ({ version: r.version, size: r.size, halted: this.halted.has(`${c}/${r.version}`) }))])),
      halted: [...this.halted],
      machines: [...this.machines.values()].map(({ events, ...m }) => ({ ...m, lastEvent: events.at(-1) })),
    };
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const base = `http://${req.headers.host ?? 'localhost'}`;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        const body = Buffer.concat(chunks).toString('utf8');
        if (req.method === 'POST' && url.pathname.startsWith('/v1/update')) {
          this.counts.requests++;
          res.writeHead(200, { 'content-type': 'text/xml' }).end(this.omaha(body, base));
        } else if (req.method === 'GET' && url.pathname === '/admin/status') {
          res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(this.status(), null, 2)}\n`);
        } else if (req.method === 'POST' && url.pathname === '/admin/resume') {
          const channel = url.searchParams.get('channel') ?? '';
          const version = url.searchParams.get('version') ?? '';
          const ok = this.resume(channel, version);
          res.writeHead(ok ? 200 : 404, { 'content-type': 'text/plain' }).end(ok ? `resumed ${channel}/${version}\n` : `${channel}/${version} is not halted\n`);
        } else if (req.method === 'GET' || req.method === 'HEAD') {
          this.file(req, res, url.pathname);
        } else {
          res.writeHead(405).end();
        }
      } catch (err) {
        this.opts.log?.(`request ${req.method} ${req.url} failed: ${(err as Error).message}`);
        if (!res.headersSent) res.writeHead(500).end();
      }
    });
  }

  listen(port: number, host = '127.0.0.1'): Promise<string> {
    this.server = createServer((req, res) => this.handle(req, res));
    return new Promise((resolveUrl, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => {
        const addr = this.server!.address() as { port: number };
        resolveUrl(`http://${host}:${addr.port}`);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
