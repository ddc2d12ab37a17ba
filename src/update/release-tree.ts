/**
 * The channel tree as the update server reads it (<tree>/<channel>/<board>/<version>/
 * flatcar_production_update.gz with its .sha256 sidecar), cached: an update check costs one stat
 * of the channel's board directory, not a directory listing, and never a read of a payload.
 *
 * A channel's releases are read again when its board directory is another one or has changed
 * (its identity, mtime and ctime: adding a version, or switching `current` as publishing does,
 * changes them; so does switching a `current` symlink above it, the tree's or a channel's, since
 * the stat follows it). A release seen half-published (a payload without its sidecar yet) keeps
 * its channel checked on every call until it is whole, and every `recheckMs` the payloads and
 * sidecars themselves are looked at, for a file rewritten in place.
 *
 * A payload's SHA-1 (Omaha's package hash) is computed once per file, streamed, never read whole
 * into memory, and kept by the file's identity (device, inode, size, mtime): a tree switched to
 * another that shares files reuses them. Digests of files no channel lists any more are dropped.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, readFileSync, statSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { decodeDigest } from './omaha';

export const packageName = 'flatcar_production_update.gz';

export interface Release {
  channel: string;
  version: string;
  path: string;
  size: number;
  sha256: Buffer;
  sha1: Buffer;
}

/** Channel names a check may ask for; anything else has no releases. */
const channelForm = /^[A-Za-z0-9._-]+$/;
const versionForm = /^\d+(\.\d+)*$/;

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

/** What a file is: a change of any part (another file, rewritten, touched) is a change. */
const identity = (st: Stats) => `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;

interface ChannelEntry {
  /** The identity of the board directory the releases were read from. */
  dir: string;
  releases: Release[];
  /** Each payload's and sidecar's path with its identity when read. */
  files: [string, string][];
  /** A version directory lacked its payload or sidecar: look again on the next call. */
  incomplete: boolean;
  checkedAt: number;
}

export class ReleaseTree {
  private readonly channels = new Map<string, ChannelEntry>();
  /** Reads in progress, by channel: callers at the same time share one. */
  private readonly reading = new Map<string, Promise<Release[]>>();
  private readonly digests = new Map<string, Promise<Buffer>>();

  /** `recheckMs`: how often the payloads and sidecars of a cached channel are looked at, in ms. Default 1,000. */
  constructor(
    readonly root: string,
    readonly board: string,
    private readonly recheckMs = 1000,
  ) {}

  /** The channel names in the tree (directories at its top). */
  channelNames(): string[] {
    try {
      return readdirSync(this.root).filter((c) => channelForm.test(c));
    } catch {
      return [];
    }
  }

  /** The releases of a channel, newest first: from the cache while the tree has not changed. */
  async releases(channel: string): Promise<Release[]> {
    if (!channelForm.test(channel)) return [];
    const dir = join(this.root, channel, this.board);
    let st: Stats;
    try {
      st = statSync(dir);
    } catch {
      this.forget(channel);
      return [];
    }
    const entry = this.channels.get(channel);
    const now = Date.now();
    if (entry && entry.dir === identity(st) && !entry.incomplete) {
      if (now - entry.checkedAt < this.recheckMs) return entry.releases;
      if (entry.files.every(([path, id]) => sameFile(path, id))) {
        entry.checkedAt = now;
        return entry.releases;
      }
    }
    const pending = this.reading.get(channel);
    if (pending) return pending;
    const read = this.read(channel, dir, identity(st)).finally(() => this.reading.delete(channel));
    this.reading.set(channel, read);
    return read;
  }

  private forget(channel: string): void {
    if (this.channels.delete(channel)) this.prune(0);
  }

  private async read(channel: string, dir: string, dirId: string): Promise<Release[]> {
    let versions: string[];
    try {
      versions = readdirSync(dir).filter((v) => v !== 'current' && versionForm.test(v));
    } catch {
      this.forget(channel);
      return [];
    }
    const entry: ChannelEntry = { dir: dirId, releases: [], files: [], incomplete: false, checkedAt: Date.now() };
    for (const version of versions.sort((a, b) => compareVersions(b, a))) {
      const path = join(dir, version, packageName);
      try {
        const st = statSync(path);
        const sidecar = statSync(`${path}.sha256`);
        const sha256 = decodeDigest(readFileSync(`${path}.sha256`, 'utf8').trim().split(/\s+/)[0] ?? '');
        if (!st.isFile() || !sha256) throw new Error('not a release yet');
        const sha1 = await this.sha1(path, st);
        entry.releases.push({ channel, version, path, size: st.size, sha256, sha1 });
        entry.files.push([path, identity(st)], [`${path}.sha256`, identity(sidecar)]);
      } catch {
        // A release still being published, or one that went away while it was read.
        entry.incomplete = true;
      }
    }
    this.channels.set(channel, entry);
    this.prune(1);
    return entry.releases;
  }

  /** The payload's SHA-1, streamed once per file identity. */
  private sha1(path: string, st: Stats): Promise<Buffer> {
    const key = identity(st);
    let digest = this.digests.get(key);
    if (!digest) {
      digest = new Promise<Buffer>((resolve, reject) => {
        const hash = createHash('sha1');
        createReadStream(path, { highWaterMark: 1 << 20 })
          .on('data', (chunk) => hash.update(chunk))
          .on('end', () => resolve(hash.digest()))
          .on('error', reject);
      });
      this.digests.set(key, digest);
      digest.catch(() => this.digests.delete(key));
    }
    return digest;
  }

  /** Drops the digests of files that no cached channel lists, unless other reads than the caller's are under way. */
  private prune(own: number): void {
    if (this.reading.size > own) return;
    const listed = new Set<string>();
    for (const e of this.channels.values()) for (const [, id] of e.files) listed.add(id);
    for (const key of this.digests.keys()) if (!listed.has(key)) this.digests.delete(key);
  }
}

function sameFile(path: string, id: string): boolean {
  try {
    return identity(statSync(path)) === id;
  } catch {
    return false;
  }
}
