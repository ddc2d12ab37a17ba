/**
 * The update server's cached channel tree: releases read once and kept while the tree is the
 * same, and read again when it changes as publishing changes it: a version added with `current`
 * switched, a release whose sidecar comes after its payload, a payload rewritten in place, the
 * whole tree switched through a `current` symlink above it. Payload SHA-1s are streamed and right.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReleaseTree } from '../../src/update/release-tree';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bootsmith-tree-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A release's payload and sidecar; `sidecar` false leaves it half-published. */
function publish(tree: string, channel: string, version: string, content: string, sidecar = true): void {
  const board = join(tree, channel, 'amd64-usr');
  mkdirSync(join(board, version), { recursive: true });
  const file = join(board, version, 'flatcar_production_update.gz');
  writeFileSync(file, content);
  if (sidecar) writeFileSync(`${file}.sha256`, `${createHash('sha256').update(content).digest('hex')}  flatcar_production_update.gz\n`);
  rmSync(join(board, 'current'), { force: true });
  symlinkSync(version, join(board, 'current'));
}

const sha1 = (s: string) => createHash('sha1').update(s).digest();

test('releases are cached, and read again as publishing changes the tree', async () => {
  const tree = join(dir, 'tree');
  publish(tree, 'stable', '1001.0.0', 'one');
  const cache = new ReleaseTree(tree, 'amd64-usr', 60_000);
  const first = await cache.releases('stable');
  expect(first.map((r) => [r.version, r.sha1])).toEqual([['1001.0.0', sha1('one')]]);
  expect(await cache.releases('stable')).toBe(first); // the same list: nothing was read again

  publish(tree, 'stable', '1002.0.0', 'two');
  expect((await cache.releases('stable')).map((r) => r.version)).toEqual(['1002.0.0', '1001.0.0']);

  // Half-published: the payload without its sidecar is not a release, until the sidecar comes.
  publish(tree, 'stable', '1003.0.0', 'three', false);
  expect((await cache.releases('stable')).map((r) => r.version)).toEqual(['1002.0.0', '1001.0.0']);
  const payload = join(tree, 'stable/amd64-usr/1003.0.0/flatcar_production_update.gz');
  writeFileSync(`${payload}.sha256`, `${createHash('sha256').update('three').digest('hex')}  x\n`);
  expect((await cache.releases('stable')).map((r) => [r.version, r.sha1])[0]).toEqual(['1003.0.0', sha1('three')]);

  expect(await cache.releases('nightly')).toEqual([]);
  expect(await cache.releases('../stable')).toEqual([]);
  expect(cache.channelNames()).toEqual(['stable']);
});

test('a payload rewritten in place is noticed within recheckMs', async () => {
  const tree = join(dir, 'tree');
  publish(tree, 'stable', '1001.0.0', 'one');
  const cache = new ReleaseTree(tree, 'amd64-usr', 0);
  expect((await cache.releases('stable'))[0]!.sha1).toEqual(sha1('one'));
  const payload = join(tree, 'stable/amd64-usr/1001.0.0/flatcar_production_update.gz');
  writeFileSync(payload, 'ONE, again');
  utimesSync(payload, new Date(), new Date(Date.now() + 5000));
  expect((await cache.releases('stable'))[0]).toMatchObject({ sha1: sha1('ONE, again'), size: 10 });
});

test('a tree switched through a current symlink is read anew', async () => {
  publish(join(dir, 'a'), 'stable', '1001.0.0', 'one');
  publish(join(dir, 'b'), 'stable', '1005.0.0', 'five');
  symlinkSync('a', join(dir, 'current'));
  const cache = new ReleaseTree(join(dir, 'current'), 'amd64-usr', 60_000);
  expect((await cache.releases('stable')).map((r) => r.version)).toEqual(['1001.0.0']);
  // Switched atomically, as a publisher does: a new link renamed over the old.
  symlinkSync('b', join(dir, 'next'));
  renameSync(join(dir, 'next'), join(dir, 'current'));
  expect((await cache.releases('stable')).map((r) => [r.version, r.sha1])).toEqual([['1005.0.0', sha1('five')]]);
});

test('checks at the same time share one read; a large payload is hashed by streaming', async () => {
  const tree = join(dir, 'tree');
  const big = 'x'.repeat(24 << 20);
  publish(tree, 'stable', '1001.0.0', big);
  const cache = new ReleaseTree(tree, 'amd64-usr');
  const lists = await Promise.all(Array.from({ length: 20 }, () => cache.releases('stable')));
  expect(new Set(lists).size).toBe(1);
  expect(lists[0]![0]!.sha1).toEqual(sha1(big));
});
