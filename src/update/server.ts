/**
 * An update server for labs, tests and air-gapped fleets: Omaha v3 over the channel tree images/
 * builds (<tree>/<channel>/<board>/<version>/flatcar_production_update.gz with its .sha256).
 * An update check is answered with the channel's newest version when it is newer than the
 * machine's, else noupdate (the tree and payload digests cached: release-tree.ts); the payload is
 * streamed, with Range; machines' events are kept (the newest of each), and a version is halted
 * (offered to nobody) when a machine it was offered to reports that it is bad: a verification or
 * install error, or a rollback. Other errors (a download cut short) are counted. An operator
 * resumes a halted version (POST /admin/resume).
 *
 * Everything a client sends is bounded (ServerLimits): request bodies, attribute values, events
 * per request and per machine, machines remembered, the event log's size, the time a request may
 * take. The admin endpoints (/admin/...) answer only a caller with the admin token
 * (`Authorization: Bearer TOKEN`, compared in constant time); with no token configured they are
 * off. Nothing else serves machine ids.
 *
 * What it remembers (halts, machines, events, failure counts) is a ServerState: in memory and a
 * state directory for a single server (FileState), or in etcd for replicas (EtcdState). Each
 * request's change is decided from the machine's record and committed by the store whole.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { resolve, sep } from 'node:path';
import { pipeline } from 'node:stream';
import type { LogFn } from '../report/log';
import type { ServerMetrics } from '../report/metrics';
import { metricsRoute } from '../system/metrics-http';
import { coreosAppId, errorCode, eventResult, eventType, xmlEscape as esc } from './omaha';
import { readOmahaRequest } from './omaha-request';
import type { OmahaApp } from './omaha-request';
import { compareVersions, packageName, ReleaseTree } from './release-tree';
import type { Release } from './release-tree';
import { FileState, StateUnavailable } from './server-state';
import type { Decision, Failure, MachineEvent, MachineRecord, ServerState } from './server-state';
import { serverOptions } from '../system/http-server';

export { compareVersions, packageName };
export type { Release };
export type { FailureCounts, MachineEvent, MachineRecord } from './server-state';

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

/** An event's type or result as a metric label: its name, or `other` (a client picks the number). */
function eventLabel(names: Record<string, number>, n: number): string {
  return Object.entries(names).find(([, v]) => v === n)?.[0] ?? 'other';
}

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
  /** Counts requests, checks, events, halts and payload bytes, and serves them at /metrics (with /healthz and /readyz). */
  metrics?: ServerMetrics;
  /** Serve HTTPS with this certificate and key (PEM); none: HTTP. */
  tls?: { cert: Buffer | string; key: Buffer | string };
  /** Where halts, machines and events are kept; none: a FileState (memory, and stateDir when given). */
  state?: ServerState;
}

/** What the access log line of an Omaha request shows: the machine, its version and track, and the outcome. */
export interface OmahaSeen {
  machineId?: string;
  version?: string;
  track?: string;
  result?: string;
}

export class UpdateServer {
  readonly board: string;
  readonly appId: string;
  readonly limits: ServerLimits;
  /** Halts, machines, events and failure counts: in memory (and --state-dir), or shared by replicas in etcd. */
  readonly state: ServerState;
  /** The channel tree, cached. */
  readonly tree: ReleaseTree;
  private server: Server | undefined;
  private readonly observability: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  /** Counts of what was served, for tests and benchmarks. */
  readonly counts = { requests: 0, checks: 0, events: 0, downloads: 0, refused: 0, unavailable: 0 };

  constructor(private readonly opts: ServerOptions) {
    this.board = opts.board ?? 'amd64-usr';
    this.appId = opts.appId ?? coreosAppId;
    this.limits = { ...defaultServerLimits, ...opts.limits };
    this.tree = new ReleaseTree(opts.tree, this.board);
    this.state = opts.state ?? new FileState(this.limits, opts.stateDir);
    this.observability = opts.metrics ? metricsRoute(opts.metrics.registry, () => this.state.notReady()) : undefined;
  }

  /** The releases halted now, as this server knows them (none known while the state store is out of reach). */
  get halted(): ReadonlySet<string> {
    return this.state.halted() ?? new Set();
  }

  /** The machines a FileState keeps, with their newest events (none with another store): for tests and tools on one server. */
  get machines(): ReadonlyMap<string, MachineRecord & { events: MachineEvent[] }> {
    return this.state instanceof FileState ? this.state.machines : new Map();
  }

  /** The releases of a channel, newest first. */
  releases(channel: string): Promise<Release[]> {
    return this.tree.releases(channel);
  }

  /** Resumes a halted release: it is offered again. False when it was not halted. */
  async resume(channel: string, version: string): Promise<boolean> {
    const ok = await this.state.resume(`${channel}/${version}`);
    if (ok) this.opts.log?.(`resumed ${channel}/${version}`);
    return ok;
  }

  /** The request's app parsed into its fields, or the name of the one that is refused. Values are checked, never echoed unchecked. */
  private parseApp(app: OmahaApp): AppRequest | string {
    const max = this.limits.maxAttributeLength;
    const attr = (o: Record<string, string>, k: string, form: RegExp): string | undefined => {
      const v = o[k];
      if (v === undefined) return '';
      if (v.length > max || !form.test(v)) return undefined;
      return v;
    };
    const a = app.attributes;
    const appId = attr(a, 'appid', forms.appid);
    const machineId = attr(a, 'machineid', forms.machineid);
    const version = attr(a, 'version', forms.version);
    const track = attr(a, 'track', forms.track);
    if (appId === undefined) return 'appid';
    if (machineId === undefined || machineId === '') return 'machineid';
    if (version === undefined) return 'version';
    if (track === undefined) return 'track';
    const events: AppRequest['events'] = [];
    for (const o of app.events.slice(0, this.limits.maxEventsPerRequest)) {
      const type = attr(o, 'eventtype', forms.number);
      const result = attr(o, 'eventresult', forms.number);
      const code = attr(o, 'errorcode', forms.number);
      const previous = attr(o, 'previousversion', forms.version);
      if (!type || !result || code === undefined || previous === undefined) return 'event';
      events.push({ type: Number(type), result: Number(result), ...(code ? { errorCode: Number(code) } : {}), ...(previous ? { previousVersion: previous } : {}) });
    }
    return { appId, machineId, version, track, events, ping: app.ping, updateCheck: app.updateCheck };
  }

  /**
   * What a request does to its machine's record: the record brought up to date, the events to
   * keep, the failures reported, and the release to offer (the channel's newest not halted, when
   * newer than the machine's). Pure: the state store may call it again on a fresh read.
   */
  private decide(r: AppRequest, previous: MachineRecord | undefined, releases: Release[], halted: ReadonlySet<string>, now: string): Decision {
    const record: MachineRecord = { machineId: r.machineId, track: r.track, version: r.version, lastSeen: now };
    if (previous?.offered && previous.offeredChannel) Object.assign(record, { offered: previous.offered, offeredChannel: previous.offeredChannel });
    if (previous?.lastEvent) record.lastEvent = previous.lastEvent;
    const events: MachineEvent[] = [];
    const failures: Failure[] = [];
    for (const e of r.events) {
      // Every update check carries 3/2 with previousversion 0.0.0.0 when there is no update to report: not kept.
      if (e.previousVersion === '0.0.0.0') continue;
      const ev: MachineEvent = { at: now, ...e, version: record.version };
      events.push(ev);
      record.lastEvent = ev;
      if (ev.type === eventType.updateComplete && ev.result === eventResult.error) {
        const f = this.failure(record, ev.errorCode);
        if (f) failures.push(f);
      }
    }
    const decision: Decision = { record, events: events.slice(-this.limits.maxEventsPerMachine), failures };
    if (r.updateCheck) {
      const halting = new Set(failures.filter((f) => f.halting).map((f) => f.release));
      const newest = releases.find((rel) => !halted.has(`${rel.channel}/${rel.version}`) && !halting.has(`${rel.channel}/${rel.version}`));
      if (newest && compareVersions(newest.version, record.version) > 0) {
        Object.assign(record, { offered: newest.version, offeredChannel: newest.channel });
        decision.offer = `${newest.channel}/${newest.version}`;
      }
    }
    return decision;
  }

  /**
   * A failure event speaks against the release the machine was offered, and only while the machine
   * does not yet run it (an error from a machine already on it is about something else). It halts
   * the release when the error means the release is bad (haltingErrorCodes); any other is counted.
   */
  private failure(record: MachineRecord, code: number | undefined): Failure | undefined {
    if (!record.offered || !record.offeredChannel || compareVersions(record.version, record.offered) >= 0) return undefined;
    const release = `${record.offeredChannel}/${record.offered}`;
    if (code === undefined || !haltingErrorCodes.has(code)) return { release, halting: false, why: `machine ${record.machineId} reported error ${code ?? 'none'}` };
    const why = code === errorCode.rollback ? `machine ${record.machineId} rolled back to ${record.version}` : `machine ${record.machineId} reported error ${code}`;
    return { release, halting: true, why };
  }

  /**
   * The answer to one Omaha request; `seen` gets what the access log shows of it. StateUnavailable
   * when the state store could not take what the request changes (nothing is answered then).
   */
  async omaha(body: string, baseUrl: string, seen: OmahaSeen = {}): Promise<string> {
    const apps = readOmahaRequest(body);
    if (!apps) {
      this.opts.metrics?.request('malformed');
      return this.reply('', '<app status="error-internal"><updatecheck status="error-internal"></updatecheck></app>');
    }
    const app = apps[0];
    if (!app) {
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
    Object.assign(seen, { machineId: r.machineId, version: r.version, track: r.track });
    const releases = r.updateCheck ? await this.tree.releases(r.track) : [];
    const now = new Date().toISOString();
    const { decision, halted } = await this.state.apply(r.machineId, (previous, haltedNow) => this.decide(r, previous, releases, haltedNow, now));
    this.opts.metrics?.request('ok');
    seen.result = r.updateCheck ? 'noupdate' : r.events.length > 0 ? 'event' : 'ping';
    for (const f of halted) {
      this.opts.metrics?.halt(f.release.split('/')[0]!);
      this.opts.log?.(`halted ${f.release}: ${f.why}`, 'warning');
    }
    const parts: string[] = [];
    for (const e of r.events) {
      this.counts.events++;
      this.opts.metrics?.event(eventLabel(eventType, e.type), eventLabel(eventResult, e.result));
      parts.push('<event status="ok"></event>');
    }
    if (r.ping) parts.push('<ping status="ok"></ping>');
    if (r.updateCheck) {
      this.counts.checks++;
      const offer = decision.offer === undefined ? undefined : releases.find((rel) => `${rel.channel}/${rel.version}` === decision.offer);
      // Labels only a channel and a version the tree has: a client cannot make up new series.
      this.opts.metrics?.check(releases.length > 0 ? r.track : 'other', releases.some((rel) => rel.version === r.version) ? r.version : 'other', offer ? 'update' : 'noupdate');
      if (!offer) {
        parts.push('<updatecheck status="noupdate"></updatecheck>');
      } else {
        seen.result = 'update';
        const codebase = `${baseUrl}/${encodeURIComponent(offer.channel)}/${this.board}/${offer.version}/`;
        parts.push(
          `<updatecheck status="ok"><urls><url codebase="${esc(codebase)}"></url></urls><manifest version="${offer.version}"><packages>` +
            `<package name="${packageName}" hash="${offer.sha1.toString('base64')}" size="${offer.size}" required="true"></package></packages>` +
            `<actions><action event="postinstall" sha256="${offer.sha256.toString('base64')}" DisablePayloadBackoff="true"></action></actions></manifest></updatecheck>`,
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
    // Streamed from the file, never buffered; a file that goes away under a download ends the
    // response (the client resumes with Range) instead of failing the server.
    const send = (stream: ReturnType<typeof createReadStream>) => {
      if (payload && this.opts.metrics) stream.on('data', (chunk) => this.opts.metrics?.sent(chunk.length));
      pipeline(stream, res, () => undefined);
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
      if (req.method === 'HEAD') return void res.end();
      send(createReadStream(full, { start, end, highWaterMark: 1 << 20 }));
      return;
    }
    res.writeHead(200, { 'content-length': size, 'accept-ranges': 'bytes' });
    if (req.method === 'HEAD') return void res.end();
    send(createReadStream(full, { highWaterMark: 1 << 20 }));
  }

  /** Channels, halts, failure counts and machines: for the admin only (machine ids are not public). */
  async status(): Promise<unknown> {
    const state = await this.state.snapshot();
    const halted = new Set(state.halted);
    const channels: [string, Release[]][] = [];
    for (const c of this.tree.channelNames()) {
      const releases = await this.tree.releases(c);
      if (releases.length > 0) channels.push([c, releases]);
    }
    return {
      channels: Object.fromEntries(
        channels.map(([c, releases]) => [c, releases.map((r) => ({ version: r.version, size: r.size, halted: halted.has(`${c}/${r.version}`), failures: state.failures.get(`${c}/${r.version}`) ?? { halting: 0, other: 0 } }))]),
      ),
      halted: state.halted,
      machines: state.machines,
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

  private async route(req: IncomingMessage, res: ServerResponse, url: URL, body: string, started: number): Promise<void> {
    const base = `${this.opts.tls ? 'https' : 'http'}://${req.headers.host ?? 'localhost'}`;
    if (req.method === 'POST' && url.pathname.startsWith('/v1/update')) {
      this.counts.requests++;
      const seen: OmahaSeen = {};
      let status = 200;
      try {
        const answer = await this.omaha(body, base, seen);
        res.writeHead(200, { 'content-type': 'text/xml' }).end(answer);
      } catch (err) {
        if (!(err instanceof StateUnavailable)) throw err;
        // Nothing was kept or offered: the client sends it again later.
        status = 503;
        seen.result = 'unavailable';
        this.counts.unavailable++;
        this.opts.metrics?.request('unavailable');
        res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '10' }).end(`${err.message}\n`);
        this.opts.log?.(err.message, 'warning');
      }
      // The access log: one line per Omaha request. The values were checked against their forms
      // (or are absent); the logger escapes and caps the line all the same.
      this.opts.log?.(`${req.method} ${url.pathname.slice(0, 64)} ${status}`, 'info', {
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
        res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(await this.status(), null, 2)}\n`);
      } else if (req.method === 'POST' && url.pathname === '/admin/resume') {
        const channel = url.searchParams.get('channel') ?? '';
        const version = url.searchParams.get('version') ?? '';
        const ok = await this.resume(channel, version);
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
      this.route(req, res, url, Buffer.concat(chunks).toString('utf8'), started).catch((err: Error) => {
        const status = err instanceof StateUnavailable ? 503 : 500;
        this.opts.log?.(`request ${req.method} ${req.url?.slice(0, 100)} failed: ${err.message}`, status === 503 ? 'warning' : 'error');
        if (!res.headersSent) res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 503 ? `${err.message}\n` : '');
      });
    });
  }

  listen(port: number, host = '127.0.0.1'): Promise<string> {
    const options = serverOptions(this.limits.requestTimeoutMs);
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
