/** Atomic writes: owner and mode are set before any content goes in, and a reader sees old or new. */
import * as fs from 'node:fs';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RootedFs } from '../../src/system/rooted-fs';

const me = { uid: process.getuid!(), gid: process.getgid!() };
// The module object itself: the `import * as` namespace has fixed properties.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const realFs = require('node:fs') as typeof fs;

test('a secret file is created 0600 and gets its final mode and owner before its content', () => {
  const root = mkdtempSync(join(tmpdir(), 'bootsmith-fs-'));
  const seen: Array<{ mode: number; uid: number; size: number }> = [];
  const spy = jest.spyOn(realFs, 'writeSync').mockImplementation(((fd: number, buf: Buffer, off: number, len: number) => {
    const st = fs.fstatSync(fd);
    seen.push({ mode: st.mode & 0o7777, uid: st.uid, size: st.size });
    spy.mockRestore();
    return fs.writeSync(fd, buf, off, len);
  }) as typeof fs.writeSync);
  new RootedFs(root).writeAtomic('/etc/secret', Buffer.from('s3cret'), { mode: 0o600, ...me });
  expect(seen).toEqual([{ mode: 0o600, uid: me.uid, size: 0 }]);
  expect(readFileSync(join(root, 'etc/secret'), 'utf8')).toBe('s3cret');
  expect(readdirSync(join(root, 'etc'))).toEqual(['secret']);
});

test('an unchanged file is not rewritten', () => {
  const root = mkdtempSync(join(tmpdir(), 'bootsmith-fs-'));
  const rfs = new RootedFs(root);
  expect(rfs.writeAtomic('/a', Buffer.from('x'), { mode: 0o644, ...me })).toBe('changed');
  const inode = fs.statSync(join(root, 'a')).ino;
  expect(rfs.writeAtomic('/a', Buffer.from('x'), { mode: 0o644, ...me })).toBe('unchanged');
  expect(rfs.writeAtomic('/a', Buffer.from('x'), { mode: 0o600, ...me })).toBe('changed');
  expect(fs.statSync(join(root, 'a')).ino).not.toBe(inode);
});

test('paths resolve as in a chroot', () => {
  const root = mkdtempSync(join(tmpdir(), 'bootsmith-fs-'));
  fs.mkdirSync(join(root, 'real'));
  fs.symlinkSync('/real', join(root, 'abs'));
  fs.symlinkSync('real', join(root, 'rel'));
  fs.symlinkSync('../..', join(root, 'real/up'));
  const rfs = new RootedFs(root);
  expect(rfs.resolve('/abs/f')).toBe('/real/f');
  expect(rfs.resolve('/rel/f')).toBe('/real/f');
  expect(() => rfs.resolve('/real/up/f')).toThrow('leads out of the root');
  expect(() => rfs.resolve('relative')).toThrow('not an absolute path');
});
