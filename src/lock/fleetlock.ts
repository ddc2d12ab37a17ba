/**
 * The FleetLock protocol's server side (Zincati's reboot manager protocol): POST /v1/pre-reboot
 * takes a slot (recursively), POST /v1/steady-state gives it back if held. Requests carry the
 * header `fleet-lock-protocol: true` and `{"client_params":{"group":..., "id":...}}`; success is
 * 200 with no body; failures are JSON `{"kind", "value"}` with a 4xx or 5xx status. Slots are those
 * of the etcd semaphore, shared with locksmithctl and locksmithd. A corrupt semaphore value is a 500
 * naming the key and the fault, for every request on that group: no slot is granted on it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Etcd3 } from 'etcd3';
import { Semaphore, SemaphoreError, checkHolderId, groupPattern, groupPrefix, parseSemaphoreValue } from './semaphore';
import type { LockMetrics, ReadSlots } from '../report/metrics';
import type { LogFn } from '../report/log';

interface Failure {
  status: number;
  kind: string;
  value: string;
}

const maxBody = 64 * 1024;

function fail(status: number, kind: string, value: string): Failure {
  return { status, kind, value };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBody) throw fail(413, 'invalid_client_identity', `request body larger than ${maxBody} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The client's group and id, checked as the protocol says. */
async function clientParams(req: IncomingMessage): Promise<{ group: string; id: string }> {
  if (req.headers['fleet-lock-protocol'] !== 'true') throw fail(400, 'invalid_client_identity', "missing or wrong 'fleet-lock-protocol' header (want: true)");
  let body: unknown;
  try {
    body = JSON.parse(await readBody(req));
  } catch (err) {
    if ((err as Failure).kind) throw err;
    throw fail(400, 'invalid_client_identity', `request body is not JSON: ${(err as Error).message}`);
  }
  const params = (body as { client_params?: { group?: unknown; id?: unknown } } | null)?.client_params;
  const group = params?.group;
  const id = params?.id;
  if (typeof group !== 'string' || group === '') throw fail(400, 'invalid_client_identity', 'empty client group');
  if (typeof id !== 'string' || id === '') throw fail(400, 'invalid_client_identity', 'empty client ID');
  if (!groupPattern.test(group)) throw fail(400, 'invalid_client_identity', `invalid group "${group.slice(0, 64)}": want ^[a-zA-Z0-9.-]+$`);
  try {
    checkHolderId(id);
  } catch (err) {
    throw fail(400, 'invalid_client_identity', (err as Error).message);
  }
  return { group, id };
}

export interface FleetLockOptions {
  /** Groups served; undefined: any valid group name. */
  groups?: string[];
  log?: LogFn;
  /** Counts each request's outcome and reports the slots of the groups asked for. */
  metrics?: LockMetrics;
}

/** An HTTP request handler for the FleetLock protocol on `client`'s semaphores. */
export function fleetLockHandler(client: Etcd3, options: FleetLockOptions = {}) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const send = (f?: Failure) => {
      if (!f) {
        res.writeHead(200).end();
        return;
      }
      const body = `${JSON.stringify({ kind: f.kind, value: f.value })}\n`;
      res.writeHead(f.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    };
    const route = (req.url ?? '').split('?')[0];
    const operation = route === '/v1/pre-reboot' ? 'lock' : 'unlock';
    const count = (f: Failure, reason: string) => {
      if (f.status !== 404 && f.status !== 405) options.metrics?.request(operation, f.status === 409 ? 'refused' : 'failed', reason);
    };
    try {
      if (route !== '/v1/pre-reboot' && route !== '/v1/steady-state') throw fail(404, 'not_found', `no such endpoint: ${route}`);
      if (req.method !== 'POST') throw fail(405, 'method_not_allowed', `${req.method} ${route}: use POST`);
      const { group, id } = await clientParams(req);
      if (options.groups && !options.groups.includes(group)) throw fail(400, 'unknown_group', `unknown group "${group}"`);
      const semaphore = new Semaphore(client, group);
      options.metrics?.watch(group);
      if (route === '/v1/pre-reboot') {
        await semaphore.lock(id);
        options.log?.(`pre-reboot: ${id} holds a slot of ${group}`);
      } else {
        if (await semaphore.unlockIfHeld(id)) options.log?.(`steady-state: ${id} gave back its slot of ${group}`);
      }
      options.metrics?.request(operation, 'ok');
      send();
    } catch (err) {
      let f: Failure;
      if ((err as Failure).kind && (err as Failure).status) count((f = err as Failure), f.kind);
      else if (err instanceof SemaphoreError && err.kind === 'failed_lock_semaphore_full') count((f = fail(409, err.kind, err.message)), err.kind);
      else {
        f = fail(500, operation === 'lock' ? 'failed_lock' : 'failed_unlock', (err as Error).message);
        count(f, err instanceof SemaphoreError ? err.kind : 'etcd');
        options.log?.(`${route ?? ''} failed: ${f.value}`, 'warning');
      }
      send(f);
    }
  };
}

/**
 * Reads a group's slots for the metrics, without creating the semaphore (a scrape changes
 * nothing), within `timeoutMs`.
 */
export function slotsReader(client: Etcd3, timeoutMs = 2000): ReadSlots {
  return async (group) => {
    const key = `${groupPrefix(group)}/semaphore`;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`etcd did not answer within ${timeoutMs} ms`)), timeoutMs)));
    try {
      const kv = (await Promise.race([client.get(key).exec(), timeout])).kvs[0];
      return kv ? parseSemaphoreValue(kv.value, key) : undefined;
    } finally {
      clearTimeout(timer);
    }
  };
}
