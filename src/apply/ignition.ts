/**
 * Applying an Ignition config through the same plan and executor as cloud-config: its remote
 * sources are fetched first (http and https, with the datasources' time and size bounds) and
 * every resource is decompressed and checked against its verification hash; then planning, pure,
 * turns the config and the fetched contents into actions in Ignition's order: groups, users and
 * their SSH keys, then files, directories and links (parents first), then units and drop-ins,
 * masks, and last enabling and disabling. What is not applied here (storage devices, merged
 * configs, kernel arguments, sources of other schemes, deleting users) becomes a line that says
 * so; a file whose contents could not be fetched or verified becomes a failure, and nothing is
 * written at its path.
 */
import { createHash } from 'node:crypto';
import type { IgnitionConfig, IgnitionFile, NodeOwner, Resource } from '../cloudconfig/ignition/config';
import { zlib } from '../cloudconfig/userdata';
import { defaultRetryPolicy, fetchWithRetry } from '../datasource/http';
import type { RetryPolicy } from '../datasource/http';
import type { UnitDirs } from '../system/paths';
import { checkedDropIn } from './plan';
import type { Action } from './plan';

/** The name Ignition keeps a user's SSH keys under: ~/.ssh/authorized_keys.d/ignition. */
export const ignitionKeyName = 'ignition';

/**
 * Most bytes of file contents one config may bring, all resources together after decompression.
 * 256 MiB: each fetch is bounded (16 MiB, as datasources), but a config can name many, and a
 * small gzip can unpack to a great deal.
 */
export const maxContentTotal = 256 * 1024 * 1024;

/** What a resource came to: its bytes, or why there are none (`failed`: a fetch or a check went wrong; `not-applied`: not fetched here). */
export type ResolvedResource = { kind: 'ok'; data: Buffer } | { kind: 'failed'; why: string } | { kind: 'not-applied'; why: string };

export interface FetchOptions {
  /** Timeouts, retries and deadline of each fetch, as for datasources. */
  policy: RetryPolicy;
  /** Most bytes of contents in all; default maxContentTotal. */
  maxTotal: number;
  /** Most milliseconds for all the fetches together; default 10 minutes. */
  totalMs: number;
}

export const defaultFetchOptions: FetchOptions = { policy: defaultRetryPolicy, maxTotal: maxContentTotal, totalMs: 600_000 };

/** The hash functions of verification hashes, with their digest length in hex digits. */
const hashFunctions: Record<string, number> = { sha512: 128, sha256: 64 };

/** Why `data` does not match a `FUNCTION-HEX` verification hash, or undefined when it does. */
export function hashMismatch(data: Buffer, hash: string): string | undefined {
  const m = /^(sha512|sha256)-([0-9A-Fa-f]+)$/.exec(hash);
  if (!m || m[2]!.length !== hashFunctions[m[1]!]) return `verification hash ${JSON.stringify(hash)} is not sha512-HEX or sha256-HEX`;
  const actual = createHash(m[1]!).update(data).digest('hex');
  return actual === m[2]!.toLowerCase() ? undefined : `the contents do not match the verification hash: ${m[1]} is ${actual}, want ${m[2]!.toLowerCase()}`;
}

/** Fetches a URL source: http and https only, with the given bounds; other schemes are not fetched here. */
async function fetchSource(resource: Resource, url: string, scheme: string, policy: RetryPolicy): Promise<ResolvedResource> {
  if (scheme !== 'http' && scheme !== 'https') {
    return { kind: 'not-applied', why: `not applied: ${scheme} sources are not fetched here (only http, https and data URLs); fetch it into a data URL or serve it over https` };
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of resource.headers) {
    // A line break would end the header early: refused here rather than retried until the deadline.
    if (/[\0\r\n]/.test(name) || /[\0\r\n]/.test(value)) return { kind: 'failed', why: `${url}: HTTP header ${JSON.stringify(name)} holds a line break` };
    headers[name] = value;
  }
  try {
    const answer = await fetchWithRetry({ url, headers }, policy);
    if (answer.kind === 'not-found') return { kind: 'failed', why: `${url}: HTTP 404 (not found)` };
    return { kind: 'ok', data: answer.body };
  } catch (err) {
    return { kind: 'failed', why: `fetching failed: ${(err as Error).message}` };
  }
}

/** The resources of the files, in the config's order. */
function resourcesOf(config: IgnitionConfig): Resource[] {
  return config.files.flatMap((f) => [...(f.contents ? [f.contents] : []), ...f.append]);
}

/**
 * Fetches, decompresses and verifies every resource of the config's files, one after another.
 * Never throws: each resource comes to its bytes, a failure, or a reason it is not applied.
 */
export async function resolveResources(config: IgnitionConfig, options: FetchOptions = defaultFetchOptions): Promise<Map<Resource, ResolvedResource>> {
  const out = new Map<Resource, ResolvedResource>();
  let total = 0;
  // Each fetch has its own bounds; this one bounds them all, however many sources a config names.
  const deadline = Date.now() + options.totalMs;
  for (const resource of resourcesOf(config)) {
    const source = resource.source;
    const left = deadline - Date.now();
    let resolved: ResolvedResource;
    if (source.kind === 'inline') resolved = { kind: 'ok', data: source.data };
    else if (left <= 0) resolved = { kind: 'failed', why: `not fetched: fetching the config's sources took more than ${options.totalMs} ms in all` };
    else resolved = await fetchSource(resource, source.url, source.scheme, { ...options.policy, deadlineMs: Math.min(options.policy.deadlineMs, left) });
    if (resolved.kind === 'ok' && resource.compression === 'gzip') {
      try {
        resolved = { kind: 'ok', data: zlib().gunzipSync(resolved.data, { maxOutputLength: Math.max(1, options.maxTotal - total + 1) }) };
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const why = code === 'ERR_BUFFER_TOO_LARGE' ? `unpacks to more than the ${options.maxTotal} bytes of contents a config may bring` : `is not valid gzip data (${(err as Error).message})`;
        resolved = { kind: 'failed', why: `the contents ${why}` };
      }
    }
    if (resolved.kind === 'ok') {
      total += resolved.data.length;
      const mismatch = resource.hash === undefined ? undefined : hashMismatch(resolved.data, resource.hash);
      if (total > options.maxTotal) resolved = { kind: 'failed', why: `the config's contents come to more than the ${options.maxTotal} bytes a config may bring` };
      else if (mismatch) resolved = { kind: 'failed', why: mismatch };
    }
    out.set(resource, resolved);
  }
  return out;
}

export interface IgnitionPlanOptions {
  /** Where units go: Ignition writes them to the persistent directories (networkd's for spec 2.x networkd units). */
  unitDirs: UnitDirs;
}

/** An owner as the executor takes it: undefined when neither is given (root, whoever applies). */
function ownerOf(owner: NodeOwner): NodeOwner | undefined {
  return owner.user === undefined && owner.group === undefined ? undefined : owner;
}

function depth(path: string): number {
  return path.split('/').filter(Boolean).length;
}

/** A file's action: its contents (and what is appended) written, kept, or why it is not. */
function fileAction(file: IgnitionFile, resolved: Map<Resource, ResolvedResource>): Action {
  const parts: Buffer[] = [];
  for (const resource of [...(file.contents ? [file.contents] : []), ...file.append]) {
    const r = resolved.get(resource);
    if (!r) throw new Error(`${resource.origin} was not fetched`);
    if (r.kind !== 'ok') return { kind: 'not-applied', origin: resource.origin, what: 'file', target: file.path, why: r.why, failed: r.kind === 'failed' };
    parts.push(r.data);
  }
  const owner = ownerOf(file.owner);
  if (file.contents) {
    return { kind: 'file', origin: file.origin, path: file.path, content: Buffer.concat(parts), mode: file.mode ?? 0o644, owner, overwrite: file.overwrite };
  }
  return { kind: 'keep-file', origin: file.origin, path: file.path, append: Buffer.concat(parts), mode: file.mode, owner };
}

/**
 * Plans an Ignition config whose resources `resolveResources` resolved. Pure. Throws a PlanError
 * on a drop-in name that validation reports as an error.
 */
export function planIgnition(config: IgnitionConfig, resolved: Map<Resource, ResolvedResource>, options: IgnitionPlanOptions): Action[] {
  const actions: Action[] = config.notApplied.map((n) => ({ kind: 'not-applied', origin: n.origin, what: n.what, target: n.target, why: n.why, failed: false }));
  for (const group of config.groups) {
    if (group.shouldExist) actions.push({ kind: 'group', origin: group.origin, group });
    else actions.push({ kind: 'not-applied', origin: group.origin, what: 'group', target: group.name, why: 'not applied: groups are not deleted here (shouldExist is false); remove it with groupdel', failed: false });
  }
  const users = config.users.filter((u) => u.shouldExist);
  for (const user of config.users) {
    if (user.shouldExist) actions.push({ kind: 'user', origin: user.origin, user });
    else actions.push({ kind: 'not-applied', origin: user.origin, what: 'user', target: user.name, why: 'not applied: users are not deleted here (shouldExist is false); remove it with userdel', failed: false });
  }
  for (const user of users) {
    if (user.sshAuthorizedKeys.length > 0) {
      actions.push({ kind: 'ssh-keys', origin: `${user.origin}.sshAuthorizedKeys`, user: user.name, keyName: ignitionKeyName, keys: user.sshAuthorizedKeys });
    }
  }
  // Parents before what is in them, as Ignition orders them; in the config's order otherwise.
  const nodes: Array<{ path: string; action: Action }> = [];
  for (const d of config.directories) nodes.push({ path: d.path, action: { kind: 'directory', origin: d.origin, path: d.path, mode: d.mode, owner: ownerOf(d.owner), overwrite: d.overwrite } });
  for (const f of config.files) nodes.push({ path: f.path, action: fileAction(f, resolved) });
  for (const l of config.links) {
    nodes.push({ path: l.path, action: { kind: 'link', origin: l.origin, path: l.path, target: l.target, hard: l.hard, owner: l.hard ? undefined : ownerOf(l.owner), overwrite: l.overwrite } });
  }
  nodes.sort((a, b) => depth(a.path) - depth(b.path));
  actions.push(...nodes.map((n) => n.action));
  const later: Action[] = [];
  for (const unit of config.units) {
    const dir = (unit.network ? options.unitDirs.network : options.unitDirs.system).persistent;
    const unitPath = `${dir}/${unit.name}`;
    // Unmasked first: contents written to a masked unit would go where its link leads.
    if (unit.mask === false) actions.push({ kind: 'mask', origin: unit.origin, unit: unit.name, path: unitPath, runtime: false, mask: false });
    if (unit.contents !== undefined && unit.mask !== true) {
      actions.push({ kind: 'file', origin: unit.origin, path: unitPath, content: Buffer.from(unit.contents), mode: 0o644, owner: undefined });
    }
    for (const d of unit.dropIns) {
      if (d.contents === undefined) continue;
      actions.push({ kind: 'file', origin: unit.origin, path: `${unitPath}.d/${checkedDropIn(unit.name, d.name)}`, content: Buffer.from(d.contents), mode: 0o644, owner: undefined });
    }
    if (unit.mask === true) actions.push({ kind: 'mask', origin: unit.origin, unit: unit.name, path: unitPath, runtime: false, mask: true });
    if (unit.network || unit.mask === true || unit.enabled === undefined) continue;
    later.push({ kind: unit.enabled ? 'enable' : 'disable', origin: unit.origin, unit: unit.name, runtime: false, dir });
  }
  actions.push(...later);
  return actions;
}
