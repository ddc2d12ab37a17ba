/**
 * The machine image's cache of Debian root file systems (images/rootfs.ts): what pruning removes
 * after a build (other keys' trees unused for a day, leftovers of interrupted builds) and what it
 * never touches (the current key, anything used lately, names not the cache's own, symbolic
 * links, everything while another build prunes); and a tree taken from the cache is marked used.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheKeepMs, ensureRootfs, pruneCache, rootfsKey } from '../../images/rootfs';

const key = rootfsKey();
const other = ['0123456789abcdef', 'fedcba9876543210', '00000000deadbeef'];
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bootsmith-image-cache-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const twoDaysAgo = () => new Date(Date.now() - 2 * cacheKeepMs);

/** A cache entry: a directory with a file in it, or a file; `old` dates it two days back. */
function entry(name: string, kind: 'dir' | 'file', old: boolean): void {
  const path = join(dir, name);
  if (kind === 'dir') {
    mkdirSync(join(path, 'etc'), { recursive: true });
    writeFileSync(join(path, 'etc/os-release'), 'ID=debian\n');
  } else writeFileSync(path, 'x\n');
  if (old) utimesSync(path, twoDaysAgo(), twoDaysAgo());
}

test('removes other keys unused for a day and leftovers of interrupted builds, and keeps the rest', () => {
  entry(`rootfs-${key}`, 'dir', true); // the current key: kept however old
  entry(`rootfs-${key}.complete`, 'file', true);
  entry(`rootfs-${other[0]}`, 'dir', true); // unused for two days: removed with its stamp
  entry(`rootfs-${other[0]}.complete`, 'file', true);
  entry(`rootfs-${other[1]}`, 'dir', true); // built long ago, used today (its stamp): kept
  entry(`rootfs-${other[1]}.complete`, 'file', false);
  entry(`rootfs-${other[2]}`, 'dir', true); // no stamp: a build stopped before the end
  entry(`rootfs-${key}.tmp-4242`, 'dir', true); // mmdebstrap interrupted, and its hooks
  entry(`rootfs-${key}.tmp-4242.hooks`, 'dir', true);
  entry(`rootfs-${other[1]}.tmp-77`, 'dir', false); // mmdebstrap running now
  entry('machine-AbC123', 'dir', true); // an interrupted image build
  entry('machine-Zz9876', 'dir', false); // an image build running now
  // Not the cache's names, however old.
  for (const name of ['notes.txt', 'rootfs-xyz', `rootfs-${key.toUpperCase()}`, 'machine-toolong1', `rootfs-${other[0]}.bak`]) entry(name, name.includes('.') ? 'file' : 'dir', true);
  const outside = mkdtempSync(join(tmpdir(), 'bootsmith-image-cache-outside-'));
  try {
    writeFileSync(join(outside, 'keep'), 'x\n');
    symlinkSync(outside, join(dir, 'machine-Link12'));

    const removed = pruneCache({ base: dir, key });

    expect(removed.sort()).toEqual(
      [`rootfs-${other[0]}.complete`, `rootfs-${other[0]}`, `rootfs-${other[2]}`, `rootfs-${key}.tmp-4242`, `rootfs-${key}.tmp-4242.hooks`, 'machine-AbC123'].sort(),
    );
    expect(readdirSync(dir).sort()).toEqual(
      [
        `rootfs-${key}`, `rootfs-${key}.complete`, `rootfs-${other[1]}`, `rootfs-${other[1]}.complete`, `rootfs-${other[1]}.tmp-77`,
        'machine-Zz9876', 'machine-Link12', 'notes.txt', 'rootfs-xyz', `rootfs-${key.toUpperCase()}`, 'machine-toolong1', `rootfs-${other[0]}.bak`,
      ].sort(),
    );
    expect(existsSync(join(outside, 'keep'))).toBe(true);
    // The stamp of a tree in use keeps its time (it was put back, not rewritten).
    expect(Date.now() - statSync(join(dir, `rootfs-${other[1]}.complete`)).mtimeMs).toBeLessThan(cacheKeepMs);
  } finally {
    rmSync(outside, { recursive: true, force: true });
  }
});

test('prunes nothing while another build holds the lock, and clears a lock left for a day', () => {
  entry(`rootfs-${other[0]}`, 'dir', true);
  entry(`rootfs-${other[0]}.complete`, 'file', true);
  entry('prune.lock', 'file', false);
  expect(pruneCache({ base: dir, key })).toEqual([]);
  expect(existsSync(join(dir, `rootfs-${other[0]}`))).toBe(true);

  utimesSync(join(dir, 'prune.lock'), twoDaysAgo(), twoDaysAgo());
  expect(pruneCache({ base: dir, key })).toEqual([]); // the stale lock goes; the next build prunes
  expect(existsSync(join(dir, 'prune.lock'))).toBe(false);
  expect(pruneCache({ base: dir, key }).sort()).toEqual([`rootfs-${other[0]}`, `rootfs-${other[0]}.complete`]);
  expect(readdirSync(dir)).toEqual([]);
});

test('a missing cache directory is nothing to prune', () => {
  expect(pruneCache({ base: join(dir, 'none'), key })).toEqual([]);
});

test('a tree taken from the cache is marked used, so another build\'s pruning keeps it', () => {
  const saved = process.env['XDG_CACHE_HOME'];
  process.env['XDG_CACHE_HOME'] = dir;
  try {
    const base = join(dir, 'bootsmith');
    mkdirSync(join(base, `rootfs-${key}/usr/lib/modules/6.1.0-test-amd64`), { recursive: true });
    writeFileSync(join(base, `rootfs-${key}.complete`), 'x\n');
    utimesSync(join(base, `rootfs-${key}.complete`), twoDaysAgo(), twoDaysAgo());

    const rootfs = ensureRootfs();

    expect(rootfs).toEqual({ dir: join(base, `rootfs-${key}`), kernelVersion: '6.1.0-test-amd64', built: false });
    expect(Date.now() - statSync(join(base, `rootfs-${key}.complete`)).mtimeMs).toBeLessThan(60_000);
    // Another checkout, whose key is another, prunes: this tree was used just now and stays.
    expect(pruneCache({ base, key: other[0] })).toEqual([]);
    expect(existsSync(join(base, `rootfs-${key}`))).toBe(true);
  } finally {
    if (saved === undefined) delete process.env['XDG_CACHE_HOME'];
    else process.env['XDG_CACHE_HOME'] = saved;
  }
});
