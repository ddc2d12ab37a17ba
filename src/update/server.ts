/**
 * An update server for labs, tests and air-gapped fleets: Omaha v3 over the channel tree images/
 * builds (<tree>/<channel>/<board>/<version>/flatcar_production_update.gz with its .sha256).
 * An update check is answered with the channel's newest version when it is newer than the
 * machine's, else noupdate; the payload is served with Range; machines' events are kept (the
 * newest of each), and a version is halted (offered to nobody) when a machine it was offered to
 * reports that it is bad: a verification or install error, or a rollback. Other errors (a
 * download cut short) are counted. An operator resumes a halted version (POST /admin/resume).
 *
 * Everything a client sends is bounded (ServerLimits): request bodies, attribute values, events
 * per request and per machine, machines remembered, the event log's size, the time a request may
 * take. The admin endpoints (/admin/...) answer only a caller with the admin token
 * (`Authorization: Bearer TOKEN`, compared in constant time); with no token configured they are
 * off. Nothing else serves machine ids.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { appendFileSync, createReadStream, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, renameSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { join, resolve, sep } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import type { LogFn } from '../report/log';
import type { ServerMetrics } from '../report/metrics';
import { metricsRoute } from '../system/metrics-http';
import { coreosAppId, decodeDigest, errorCode, eventResult, eventType, xmlEscape as esc } from './omaha';

export const packageName = 'flatcar_production_update.gz';

export interface Release {
  channel: string;
  version: string;
  path: string;
  size: number;
  sha256: Buffer;
  sha1: Buffer;
}

export interface MachineEvent {
  at: string;
  type: number;
  result: number;
  errorCode?: number;
  previousVersion?: string;
  version: string;
}

export interface MachineRecord {
  machineId: string;
  track: string;
  version: string;
  /** The version last offered to it. */
  offered?: string;
  /** The channel it was offered in. */
  offeredChannel?: string;
  lastSeen: string;
  /** The newest events, at most ServerLimits.maxEventsPerMachine. */
  events: MachineEvent[];
}

/** What a client can make the server hold or spend, with the defaults. */
export interface ServerLimits {
  /** Largest request body in bytes; a larger one gets 413 without being read. Default 64 KiB (an Omaha request is about 1 KiB). */
  maxBodyBytes: number;
  /** Longest attribute value of an Omaha request (appid, machineid, version, track, ...), in characters. Default 128. */
  maxAttributeLength: number;
  /** Events read from one request; more are ignored. Default 16 (update_engine sends one). */
  maxEventsPerRequest: number;
  /** Events kept per machine in memory, the newest. Default 50. */
  maxEventsPerMachine: number;
  /** Machines kept in memory; past it the one seen longest ago is forgotten. Default 10,000. */
  maxMachines: number;
  /** events.jsonl (with --state-dir) is moved to events.jsonl.1 past this size, in bytes. Default 64 MiB. */
  maxEventLogBytes: number;
  /** Time for a whole request, headers and body, in ms. Default 30,000. */
  requestTimeoutMs: number;
  /** Connections at once; more are refused. Default 1,024. */
  maxConnections: number;
}

export const defaultServerLimits: ServerLimits = {
  maxBodyBytes: 64 << 10,
  maxAttributeLength: 128,
  maxEventsPerRequest: 16,
  maxEventsPerMachine: 50,
  maxMachines: 10_000,
  maxEventLogBytes: 64 << 20,
  requestTimeoutMs: 30_000,
  maxConnections: 1024,
};

/**
 * The error codes that say the version itself is bad: its payload failed verification, it did not
 * install, or the machine rolled back from it. Only these halt a rollout; any other failure (a
 * download cut short, a server that did not answer, one machine's disk) is counted.
 */
export const haltingErrorCodes: ReadonlySet<number> = new Set<number>([
  errorCode.postinstallRunnerError,
  errorCode.payloadHashMismatch,
  errorCode.payloadSizeMismatch,
  errorCode.payloadVerificationError,
  errorCode.newPartitionInfoError,
  errorCode.newRootfsVerificationError,
  errorCode.payloadPubkeyVerificationError,
  errorCode.invalidMetadataMagic,
  errorCode.signatureMissingInManifest,
  errorCode.manifestParseError,
  errorCode.operationHashMismatch,
  errorCode.invalidMetadataSize,
  errorCode.rollback,
]);

/** Whether `given` is the admin token, in time that does not depend on where they differ (both are hashed first). */
export function tokenMatches(given: string, token: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(token));
}

/** The attributes of an Omaha request's app, each checked against its form; or what is wrong. */
interface AppRequest {
  appId: string;
  machineId: string;
  version: string;
  track: string;
  events: { type: number; result: number; errorCode?: number; previousVersion?: string }[];
  ping: boolean;
  updateCheck: boolean;
}

const forms = {
  appid: /^\{?[0-9A-Za-z-]+\}?$/,
  machineid: /^[0-9A-Za-z{}._:-]+$/,
  version: /^[0-9A-Za-z.+_-]+$/,
  track: /^[A-Za-z0-9._-]*$/,
  number: /^\d{1,10}$/,
};

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

/** An event's type or result as a metric label: its name, or `other` (a client picks the number). */
function eventLabel(names: Record<string, number>, n: number): string {
  return Object.entries(names).find(([, v]) => v === n)?.[0] ?? 'other';
}

const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (n) => ['app', 'event'].includes(n), parseAttributeValue: false, parseTagValue: false });

export interface ServerOptions {
  tree: string;
  board?: string;
  /** Where events and halts are kept across restarts; none: in memory only. */
  stateDir?: string;
  appId?: string;
  /** The admin endpoints' bearer token; none: the admin endpoints are off (403). */
  adminToken?: string;
  limits?: Partial<ServerLimits>;
  log?: LogFn;
  /** Counts requests, checks, events, halts and payload bytes, and serves them at /metrics (with /healthz). */
  metrics?: ServerMetrics;
  /** Serve HTTPS with this certificate and key (PEM); none: HTTP. */
  tls?: { cert: Buffer | string; key: Buffer | string };
}

/** What the access log line of an Omaha request shows: the machine, its version and track, and the outcome. */
export interface OmahaSeen {
  machineId?: string;
  version?: string;
  track?: string;
  result?: string;
}

/** Per offered release (channel/version): failures reported by machines it was offered to. */
export interface FailureCounts {
  /** Errors that halted it or would have (verification, install, rollback). */
  halting: number;
  /** Other errors: counted, not acted on. */
  other: number;
}

export class UpdateServer {
  readonly board: string;
  readonly appId: string;
  readonly limits: ServerLimits;
  /** Machines by id, the one seen longest ago first. */
  readonly machines = new Map<string, MachineRecord>();
  halted = new Set<string>();
  /** Failures per offered release ("channel/version"). */
  readonly failures = new Map<string, FailureCounts>();
  private readonly digests = new Map<string, { mtimeMs: number; sha1: Buffer }>();
  private server: Server | undefined;
  private readonly observability: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  private eventLogBytes = 0;
  /** Counts of what was served, for tests and benchmarks. */
  readonly counts = { requests: 0, checks: 0, events: 0, downloads: 0, refused: 0 };

  constructor(private readonly opts: ServerOptions) {
    this.board = opts.board ?? 'amd64-usr';
    this.appId = opts.appId ?? coreosAppId;
    this.limits = { ...defaultServerLimits, ...opts.limits };
    this.observability = opts.metrics ? metricsRoute(opts.metrics.registry) : undefined;
    if (opts.stateDir) {
      mkdirSync(opts.stateDir, { recursive: true });
      try {
        this.halted = new Set(JSON.parse(readFileSync(join(opts.stateDir, 'halted.json'), 'utf8')) as string[]);
      } catch {
        // nothing halted yet
      }
      try {
        this.eventLogBytes = statSync(join(opts.stateDir, 'events.jsonl')).size;
      } catch {
        // no events yet
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
    this.opts.metrics?.halt(channel);
    this.opts.log?.(`halted ${key}: ${why}`, 'warning');
  }

  resume(channel: string, version: string): boolean {
    const had = this.halted.delete(`${channel}/${version}`);
    if (had) this.saveHalts();
    return had;
  }

  /** Appends to events.jsonl, moving a full one to events.jsonl.1 first: the disk it takes is bounded too. */
  private logEvent(line: string): void {
    if (!this.opts.stateDir) return;
    const file = join(this.opts.stateDir, 'events.jsonl');
    if (this.eventLogBytes + line.length > this.limits.maxEventLogBytes) {
      try {
        renameSync(file, `${file}.1`);
      } catch {
        // nothing to move
      }
      this.eventLogBytes = 0;
    }
    appendFileSync(file, line);
    this.eventLogBytes += Buffer.byteLength(line);
  }

  /** The request's app parsed into its fields, or the name of the one that is refused. Values are checked, never echoed unchecked. */
  private parseApp(app: Record<string, unknown>): AppRequest | string {
    const max = this.limits.maxAttributeLength;
    const attr = (o: Record<string, unknown>, k: string, form: RegExp): string | undefined => {
      const v = o[k];
      if (v === undefined) return '';
      if (typeof v !== 'string' || v.length > max || !form.test(v)) return undefined;
      return v;
    };
    const appId = attr(app, 'appid', forms.appid);
    const machineId = attr(app, 'machineid', forms.machineid);
    const version = attr(app, 'version', forms.version);
    const track = attr(app, 'track', forms.track);
    if (appId === undefined) return 'appid';
    if (machineId === undefined || machineId === '') return 'machineid';
    if (version === undefined) return 'version';
    if (track === undefined) return 'track';
    const events: AppRequest['events'] = [];
    const raw = Array.isArray(app.event) ? (app.event as unknown[]) : [];
    for (const e of raw.slice(0, this.limits.maxEventsPerRequest)) {
      if (typeof e !== 'object' || e === null) return 'event';
      const o = e as Record<string, unknown>;
      const type = attr(o, 'eventtype', forms.number);
      const result = attr(o, 'eventresult', forms.number);
      const code = attr(o, 'errorcode', forms.number);
      const previous = attr(o, 'previousversion', forms.version);
      if (!type || !result || code === undefined || previous === undefined) return 'event';
      events.push({ type: Number(type), result: Number(result), ...(code ? { errorCode: Number(code) } : {}), ...(previous ? { previousVersion: previous } : {}) });
    }
    return { appId, machineId, version, track, events, ping: app.ping !== undefined, updateCheck: app.updatecheck !== undefined };
  }

  /** The machine's record, made the most recently seen; the one seen longest ago is forgotten past maxMachines. */
  private recordFor(r: AppRequest, now: string): MachineRecord {
    const record = this.machines.get(r.machineId) ?? { machineId: r.machineId, track: r.track, version: r.version, lastSeen: now, events: [] };
    Object.assign(record, { track: r.track, version: r.version, lastSeen: now });
    this.machines.delete(r.machineId);
    this.machines.set(r.machineId, record);
    while (this.machines.size > this.limits.maxMachines) this.machines.delete(this.machines.keys().next().value!);
    return record;
  }

  /**
   * A failure event halts the release the machine was offered, and only when the error means the
   * release is bad (haltingErrorCodes) and the machine does not yet run it (an error from a machine
   * already on it is about something else). Anything else is counted.
   */
  private failed(record: MachineRecord, code: number | undefined): void {
    if (!record.offered || !record.offeredChannel || compareVersions(record.version, record.offered) >= 0) return;
    const key = `${record.offeredChannel}/${record.offered}`;
    const counts = this.failures.get(key) ?? { halting: 0, other: 0 };
    this.failures.set(key, counts);
    if (code === undefined || !haltingErrorCodes.has(code)) {
      counts.other++;
      return;
    }
    counts.halting++;
    const why = code === errorCode.rollback ? `machine ${record.machineId} rolled back to ${record.version}` : `machine ${record.machineId} reported error ${code}`;
    this.halt(record.offeredChannel, record.offered, why);
  }

  /** The answer to one Omaha request; `seen` gets what the access log shows of it. */
  omaha(body: string, baseUrl: string, seen: OmahaSeen = {}): string {
    let doc: Record<string, unknown>;
    try {
      doc = xml.parse(body, true) as Record<string, unknown>;
    } catch {
      this.opts.metrics?.request('malformed');
      return this.reply('', '<app status="error-internal"><updatecheck status="error-internal"></updatecheck></app>');
    }
    const request = doc.request as Record<string, unknown> | undefined;
    const app = ((request?.app as Record<string, unknown>[] | undefined) ?? [])[0];
    if (!app || typeof app !== 'object') {
      this.opts.metrics?.request('malformed');
      return this.reply('', '');
    }
    const r = this.parseApp(app);
    if (typeof r === 'string') {
      seen.result = `invalid ${r}`;
      this.counts.refused++;
      this.opts.metrics?.request('invalid');
      return this.reply('', '<app status="error-invalidRequest"><updatecheck status="error-internal"></updatecheck></app>');
    }
    if (r.appId.toLowerCase() !== this.appId.toLowerCase()) {
      seen.result = 'unknown application';
      this.opts.metrics?.request('unknown_application');
      return this.reply('', `<app appid="${esc(r.appId)}" status="error-unknownApplication"><updatecheck status="error-internal"></updatecheck></app>`);
    }
    this.opts.metrics?.request('ok');
    Object.assign(seen, { machineId: r.machineId, version: r.version, track: r.track, result: r.updateCheck ? 'noupdate' : r.events.length > 0 ? 'event' : 'ping' });
    const now = new Date().toISOString();
    const record = this.recordFor(r, now);
    const parts: string[] = [];
    for (const e of r.events) {
      this.counts.events++;
      this.opts.metrics?.event(eventLabel(eventType, e.type), eventLabel(eventResult, e.result));
      parts.push('<event status="ok"></event>');
      // Every update check carries 3/2 with previousversion 0.0.0.0 when there is no update to report: not kept.
      if (e.previousVersion === '0.0.0.0') continue;
      const ev: MachineEvent = { at: now, ...e, version: record.version };
      record.events.push(ev);
      if (record.events.length > this.limits.maxEventsPerMachine) record.events.splice(0, record.events.length - this.limits.maxEventsPerMachine);
      this.logEvent(`${JSON.stringify({ machineId: record.machineId, track: record.track, ...ev })}\n`);
      if (ev.type === eventType.updateComplete && ev.result === eventResult.error) this.failed(record, ev.errorCode);
    }
    if (r.ping) parts.push('<ping status="ok"></ping>');
    if (r.updateCheck) {
      this.counts.checks++;
      const releases = this.releases(record.track);
      const newest = releases.find((rel) => !this.halted.has(`${rel.channel}/${rel.version}`));
      const update = newest !== undefined && compareVersions(newest.version, record.version) > 0;
      // Labels only a channel and a version the tree has: a client cannot make up new series.
      this.opts.metrics?.check(releases.length > 0 ? record.track : 'other', releases.some((rel) => rel.version === record.version) ? record.version : 'other', update ? 'update' : 'noupdate');
      if (update) seen.result = 'update';
      if (!newest || !update) {
        parts.push('<updatecheck status="noupdate"></updatecheck>');
      } else {
        record.offered = newest.version;
        record.offeredChannel = newest.channel;
        const codebase = `${baseUrl}/${encodeURIComponent(newest.channel)}/${this.board}/${newest.version}/`;
        parts.push(
          `<updatecheck status="ok"><urls><url codebase="${esc(codebase)}"></url></urls><manifest version="${newest.version}"><packages>` +
            `<package name="${packageName}" hash="${newest.sha1.toString('base64')}" size="${newest.size}" required="true"></package></packages>` +
            `<actions><action event="postinstall" sha256="${newest.sha256.toString('base64')}" DisablePayloadBackoff="true"></action></actions></manifest></updatecheck>`,
        );
      }
    }
    return this.reply(r.appId, parts.join(''));
  }

  private reply(appId: string, inner: string): string {
    const app = inner.startsWith('<app') || inner === '' ? inner : `<app appid="${esc(appId)}" status="ok">${inner}</app>`;
    return `<?xml version="1.0" encoding="UTF-8"?>\n<response protocol="3.0" server="bootsmith"><daystart elapsed_seconds="0"></daystart>${app}</response>\n`;
  }

  /** A file of the tree, whole or one Range. */
  private file(req: IncomingMessage, res: ServerResponse, path: string): void {
    const root = resolve(this.opts.tree);
    let full: string;
    let size: number;
    try {
      full = resolve(root, `.${decodeURIComponent(path)}`);
      if (!full.startsWith(root + sep)) throw new Error('outside');
      const st = statSync(full);
      if (!st.isFile()) throw new Error('not a file');
      size = st.size;
    } catch {
      res.writeHead(404).end();
      return;
    }
    const payload = full.endsWith(packageName);
    if (payload) {
      this.counts.downloads++;
      this.opts.metrics?.download();
    }
    const send = (stream: ReturnType<typeof createReadStream>) => {
      if (payload && this.opts.metrics) stream.on('data', (chunk) => this.opts.metrics?.sent(chunk.length));
      stream.pipe(res);
    };
    const m = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    if (m && (m[1] || m[2])) {
      const start = m[1] ? Number(m[1]) : Math.max(0, size - Number(m[2]));
      const end = m[1] && m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      if (start >= size || start > end) {
        res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
        return;
      }
      res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${size}`, 'accept-ranges': 'bytes' });
      send(createReadStream(full, { start, end, highWaterMark: 1 << 20 }));
      return;
    }
    res.writeHead(200, { 'content-length': size, 'accept-ranges': 'bytes' });
    send(createReadStream(full, { highWaterMark: 1 << 20 }));
  }

  /** Channels, halts, failure counts and machines: for the admin only (machine ids are not public). */
  status(): unknown {
    const channels = readdirSync(this.opts.tree)
      .map((c) => [c, this.releases(c)] as const)
      .filter(([, releases]) => releases.length > 0);
    return {
      channels: Object.fromEntries(
        channels.map(([c, releases]) => [c, releases.map((r) => ({ version: r.version, size: r.size, halted: this.halted.has(`${c}/${r.version}`), failures: this.failures.get(`${c}/${r.version}`) ?? { halting: 0, other: 0 } }))]),
      ),
      halted: [...this.halted],
      machines: [...this.machines.values()].map(({ events, ...m }) => ({ ...m, lastEvent: events.at(-1) })),
    };
  }

  /**
   * Whether the caller holds the admin token; answers it otherwise: 403 when the admin API is off
   * (no token configured), 401 without `Authorization: Bearer`, 403 with a wrong token.
   */
  private admitted(req: IncomingMessage, res: ServerResponse): boolean {
    const text = { 'content-type': 'text/plain' };
    if (this.opts.adminToken === undefined) {
      res.writeHead(403, text).end('the admin API is off: start the server with --admin-token-file\n');
      return false;
    }
    const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    if (!m) {
      res.writeHead(401, { ...text, 'www-authenticate': 'Bearer realm="bootsmith-update-server"' }).end('the admin API needs Authorization: Bearer TOKEN\n');
      return false;
    }
    if (!tokenMatches(m[1]!, this.opts.adminToken)) {
      this.opts.log?.(`admin request ${req.method} ${req.url?.slice(0, 100)} from ${req.socket.remoteAddress}: wrong token`, 'warning');
      res.writeHead(403, text).end('wrong admin token\n');
      return false;
    }
    return true;
  }

  /**
   * 413: the rest of the body is not read (a listener and a pause keep Node from draining it), and
   * the connection is closed a second later, once the answer had time to reach a client that is
   * still writing (closing at once would reset it before it reads the answer; that is also why
   * there is no Connection: close, on which Node closes as soon as the answer is written).
   */
  private tooLarge(req: IncomingMessage, res: ServerResponse): void {
    this.counts.refused++;
    req.on('data', () => undefined);
    req.pause();
    res.writeHead(413, { 'content-type': 'text/plain' }).end(`request bodies are at most ${this.limits.maxBodyBytes} bytes\n`);
    setTimeout(() => req.socket.destroy(), 1000).unref();
  }

  private route(req: IncomingMessage, res: ServerResponse, url: URL, body: string, started: number): void {
    const base = `${this.opts.tls ? 'https' : 'http'}://${req.headers.host ?? 'localhost'}`;
    if (req.method === 'POST' && url.pathname.startsWith('/v1/update')) {
      this.counts.requests++;
      const seen: OmahaSeen = {};
      res.writeHead(200, { 'content-type': 'text/xml' }).end(this.omaha(body, base, seen));
      // The access log: one line per Omaha request. The values were checked against their forms
      // (or are absent); the logger escapes and caps the line all the same.
      this.opts.log?.(`${req.method} ${url.pathname.slice(0, 64)} 200`, 'info', {
        machine: seen.machineId === undefined ? '-' : seen.machineId.length > 16 ? `${seen.machineId.slice(0, 16)}…` : seen.machineId,
        version: seen.version ?? '-',
        track: seen.track ?? '-',
        result: seen.result ?? 'malformed',
        duration_ms: Date.now() - started,
      });
    } else if (this.observability?.(req, res)) {
      return;
    } else if (url.pathname.startsWith('/admin/')) {
      if (!this.admitted(req, res)) return;
      if (req.method === 'GET' && url.pathname === '/admin/status') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(this.status(), null, 2)}\n`);
      } else if (req.method === 'POST' && url.pathname === '/admin/resume') {
        const channel = url.searchParams.get('channel') ?? '';
        const version = url.searchParams.get('version') ?? '';
        const ok = this.resume(channel, version);
        res.writeHead(ok ? 200 : 404, { 'content-type': 'text/plain' }).end(ok ? `resumed ${channel}/${version}\n` : `${channel}/${version} is not halted\n`);
      } else {
        res.writeHead(404).end();
      }
    } else if (req.method === 'GET' || req.method === 'HEAD') {
      this.file(req, res, url.pathname);
    } else {
      res.writeHead(405).end();
    }
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const started = Date.now();
    const url = new URL(req.url ?? '/', 'http://x');
    const max = this.limits.maxBodyBytes;
    if (Number(req.headers['content-length'] ?? 0) > max) return this.tooLarge(req, res);
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (c: Buffer) => {
      if (refused) return;
      size += c.length;
      if (size > max) {
        refused = true;
        chunks.length = 0;
        this.tooLarge(req, res);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (refused) return;
      try {
        this.route(req, res, url, Buffer.concat(chunks).toString('utf8'), started);
      } catch (err) {
        this.opts.log?.(`request ${req.method} ${req.url?.slice(0, 100)} failed: ${(err as Error).message}`, 'error');
        if (!res.headersSent) res.writeHead(500).end();
      }
    });
  }

  listen(port: number, host = '127.0.0.1'): Promise<string> {
    const options = { requestTimeout: this.limits.requestTimeoutMs, headersTimeout: Math.min(this.limits.requestTimeoutMs, 10_000) };
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    this.server = this.opts.tls ? createTlsServer({ ...options, cert: this.opts.tls.cert, key: this.opts.tls.key }, handler) : createServer(options, handler);
    this.server.maxConnections = this.limits.maxConnections;
    return new Promise((resolveUrl, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => {
        const addr = this.server!.address() as { port: number };
        resolveUrl(`${this.opts.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${addr.port}`);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((r) => {
      if (!this.server) return r();
      this.server.close(() => r());
      this.server.closeIdleConnections();
    });
  }
}
