/**
 * The root's file system: atomic writes (owner and mode set before any content goes in, a reader
 * sees old or new), and confinement (every component of a path, the last included, resolved inside
 * the root; operations on a link itself act on the link).
 */
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { absoluteRoot, PathError, RootedFs } from '../../src/system/rooted-fs';

const me = { uid: process.getuid!(), gid: process.getgid!() };
const asRoot = process.getuid?.() === 0;
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

describe('createDir', () => {
  test('makes a directory whole from a template: directories, files, links copied as links, owner and modes', () => {
    const root = mkdtempSync(join(tmpdir(), 'bootsmith-fs-'));
    mkdirSync(join(root, 'etc/skel/.config'), { recursive: true });
    writeFileSync(join(root, 'etc/skel/.profile'), 'export A=1\n', { mode: 0o640 });
    writeFileSync(join(root, 'etc/skel/.config/app'), 'x');
    chmodSync(join(root, 'etc/skel/.config'), 0o700);
    symlinkSync('/etc/shadow', join(root, 'etc/skel/.secret'));
    const rfs = new RootedFs(root);
    // A temporary directory left by a run killed before its rename is replaced.
    mkdirSync(join(root, 'home/.u.bootsmith-tmp/half'), { recursive: true });
    expect(rfs.createDir('/home/u', { mode: 0o750, ...me }, '/etc/skel')).toBe('changed');
    const entry = (rel: string) => {
      const st = lstatSync(join(root, 'home/u', rel));
      return [(st.mode & 0o7777).toString(8), st.uid, st.gid];
    };
    expect(readdirSync(join(root, 'home'))).toEqual(['u']);
    expect(readdirSync(join(root, 'home/u')).sort()).toEqual(['.config', '.profile', '.secret']);
    expect(entry('.')).toEqual(['750', me.uid, me.gid]);
    expect(entry('.profile')).toEqual(['640', me.uid, me.gid]);
    expect(entry('.config')).toEqual(['700', me.uid, me.gid]);
    expect(readFileSync(join(root, 'home/u/.config/app'), 'utf8')).toBe('x');
    expect(readlinkSync(join(root, 'home/u/.secret'))).toBe('/etc/shadow');
    // Something there already is left as it is.
    writeFileSync(join(root, 'home/u/.profile'), 'mine');
    expect(rfs.createDir('/home/u', { mode: 0o700, ...me }, '/etc/skel')).toBe('unchanged');
    expect(readFileSync(join(root, 'home/u/.profile'), 'utf8')).toBe('mine');
    expect(entry('.')).toEqual(['750', me.uid, me.gid]);
  });

  test('a template that is missing, or a link out of the root, gives an empty directory; nothing outside is read', () => {
    const root = mkdtempSync(join(tmpdir(), 'bootsmith-fs-'));
    const outside = mkdtempSync(join(tmpdir(), 'bootsmith-outside-'));
    writeFileSync(join(outside, 'secret'), 'host');
    mkdirSync(join(root, 'etc'));
    symlinkSync(`../../../../../../..${outside}`, join(root, 'etc/skel-out'));
    symlinkSync(outside, join(root, 'etc/skel-abs'));
    const rfs = new RootedFs(root);
    expect(rfs.createDir('/home/a', { mode: 0o755, ...me }, '/etc/none')).toBe('changed');
    expect(readdirSync(join(root, 'home/a'))).toEqual([]);
    expect(() => rfs.createDir('/home/b', { mode: 0o755, ...me }, '/etc/skel-out')).toThrow(PathError);
    expect(existsSync(join(root, 'home/b'))).toBe(false);
    // An absolute link is taken inside the root, where there is nothing.
    expect(rfs.createDir('/home/c', { mode: 0o755, ...me }, '/etc/skel-abs')).toBe('changed');
    expect(readdirSync(join(root, 'home/c'))).toEqual([]);
  });
});

describe('staged writes', () => {
  const me644 = { mode: 0o644, ...me };

  test('wait under their temporary names until commit, which completes them all', () => {
    const root = mkdtempSync(join(tmpdir(), 'bootsmith-fs-'));
    const rfs = new RootedFs(root);
    rfs.writeAtomic('/d/kept', Buffer.from('old'), me644);
    rfs.stageWrites(1);
    // Enough files that one `sync -f` makes them durable, not an fsync of each.
    for (let i = 0; i < 20; i++) expect(rfs.writeAtomic(`/d/f${i}`, Buffer.from(`new ${i}`), me644)).toBe('changed');
    expect(rfs.writeAtomic('/d/kept', Buffer.from('old'), me644)).toBe('unchanged');
    expect(existsSync(join(root, 'd/f0'))).toBe(false);
    expect(readdirSync(join(root, 'd')).filter((n) => n.endsWith('.bootsmith-tmp'))).toHaveLength(20);
    expect(rfs.commit()).toEqual([]);
    expect(readdirSync(join(root, 'd')).sort()).toEqual(['kept', ...Array.from({ length: 20 }, (_, i) => `f${i}`)].sort());
    expect(readFileSync(join(root, 'd/f19'), 'utf8')).toBe('new 19');
    // commit stops staging: the next write is complete when it returns.
    rfs.writeAtomic('/d/after', Buffer.from('x'), me644);
    expect(readFileSync(join(root, 'd/after'), 'utf8')).toBe('x');
  });

  test('are completed first by any operation on their path, above it or below it', () => {
    const root = mkdtempSync(join(tmpdir(), 'bootsmith-fs-'));
    const rfs = new RootedFs(root);
    rfs.stageWrites(1);
    rfs.writeAtomic('/a/b/one', Buffer.from('1'), me644);
    rfs.writeAtomic('/c/two', Buffer.from('2'), me644);
    expect(rfs.read('/x/unrelated')).toBeUndefined();
    expect(existsSync(join(root, 'a/b/one'))).toBe(false);
    // Reading the file, listing its directory: both see the staged writes done.
    expect(rfs.read('/a/b/one')?.toString()).toBe('1');
    expect(existsSync(join(root, 'c/two'))).toBe(true);
    rfs.writeAtomic('/c/three', Buffer.from('3'), me644);
    expect(rfs.list('/c')).toEqual(['three', 'two']);
    // Writing a staged path again: the first write is completed, then compared with.
    rfs.writeAtomic('/c/four', Buffer.from('4'), me644);
    expect(rfs.writeAtomic('/c/four', Buffer.from('4'), me644)).toBe('unchanged');
    expect(rfs.commit()).toEqual([]);
  });

  test('that cannot be completed are returned by commit with their tag, the target as it was', () => {
    const root = mkdtempSync(join(tmpdir(), 'bootsmith-fs-'));
    const rfs = new RootedFs(root);
    rfs.stageWrites(3);
    rfs.writeAtomic('/etc/good', Buffer.from('g'), me644);
    rfs.stageWrites(4);
    rfs.writeAtomic('/etc/bad', Buffer.from('b'), me644);
    // A directory put where the file goes: the rename over it fails.
    mkdirSync(join(root, 'etc/bad'));
    const failures = rfs.commit();
    expect(failures.map((f) => [f.path, f.tag, (f.error as NodeJS.ErrnoException).code])).toEqual([['/etc/bad', 4, 'EISDIR']]);
    expect(readFileSync(join(root, 'etc/good'), 'utf8')).toBe('g');
    expect(readdirSync(join(root, 'etc')).sort()).toEqual(['bad', 'good']);
  });
});

test('paths resolve as in a chroot', () => {
  const root = mkdtempSync(join(tmpdir(), 'bootsmith-fs-'));
  fs.mkdirSync(join(root, 'real'));
  fs.symlinkSync('/real', join(root, 'abs'));
  fs.symlinkSync('real', join(root, 'rel'));
  fs.symlinkSync('../..', join(root, 'real/up'));
  const rfs = new RootedFs(root);
  expect(rfs.resolve('/abs/f', { follow: true })).toBe('/real/f');
  expect(rfs.resolve('/rel/f', { follow: true })).toBe('/real/f');
  expect(() => rfs.resolve('/real/up/f', { follow: true })).toThrow('leads out of the root');
  expect(() => rfs.resolve('relative', { follow: true })).toThrow('not an absolute path');
});

/** A root, and beside it (outside) a 0600 host file holding a secret, as an attacker would link to. */
function rootAndSecret() {
  const root = mkdtempSync(join(tmpdir(), 'bootsmith-fs-'));
  mkdirSync(join(root, 'etc'));
  const secret = join(mkdtempSync(join(tmpdir(), 'bootsmith-host-')), 'secret');
  writeFileSync(secret, 'HOST-SECRET\n', { mode: 0o600 });
  return { root, secret, rfs: new RootedFs(root) };
}

const me600 = { mode: 0o600, ...me };

describe('the last component is resolved inside the root too', () => {
  test('an absolute final link is taken inside the root: read, stat, write act on the in-root target', () => {
    const { root, secret, rfs } = rootAndSecret();
    symlinkSync(secret, join(root, 'etc/conf'));
    expect(rfs.resolve('/etc/conf', { follow: true })).toBe(secret);
    expect(rfs.resolve('/etc/conf', { follow: false })).toBe('/etc/conf');
    expect(rfs.read('/etc/conf')).toBeUndefined(); // nothing at ROOT/<secret path>
    expect(rfs.stat('/etc/conf')).toBeUndefined();
    expect(rfs.lstat('/etc/conf')?.isSymbolicLink()).toBe(true);
    mkdirSync(join(root, dirname(secret)), { recursive: true });
    writeFileSync(join(root, secret), 'in the image\n');
    expect(rfs.read('/etc/conf')?.toString()).toBe('in the image\n');
    expect(rfs.writeAtomic('/etc/conf', Buffer.from('new\n'), me600)).toBe('changed');
    expect(readFileSync(join(root, secret), 'utf8')).toBe('new\n');
    expect(readlinkSync(join(root, 'etc/conf'))).toBe(secret); // the link stays; its in-root target changed
    expect(readFileSync(secret, 'utf8')).toBe('HOST-SECRET\n');
  });

  test('a relative final link that climbs above the root is refused for every use but the link itself', () => {
    const { root, secret, rfs } = rootAndSecret();
    const climb = `../../../../../../../../..${secret}`;
    symlinkSync(climb, join(root, 'etc/conf'));
    expect(() => rfs.resolve('/etc/conf', { follow: true })).toThrow(PathError);
    expect(() => rfs.read('/etc/conf')).toThrow('/etc/conf leads out of the root through a symlink');
    expect(() => rfs.stat('/etc/conf')).toThrow(PathError);
    expect(() => rfs.writeAtomic('/etc/conf', Buffer.from('x'), me600)).toThrow(PathError);
    expect(() => rfs.ensureDir('/etc/conf', me600)).toThrow(PathError);
    expect(() => rfs.list('/etc/conf')).toThrow(PathError);
    expect(rfs.readLink('/etc/conf')).toBe(climb);
    expect(readFileSync(secret, 'utf8')).toBe('HOST-SECRET\n');
    // One that climbs but stays inside is fine.
    symlinkSync('../data/f', join(root, 'etc/inside'));
    expect(rfs.resolve('/etc/inside', { follow: true })).toBe('/data/f');
  });

  test('link chains, absolute and relative, are followed inside the root', () => {
    const { root, secret, rfs } = rootAndSecret();
    mkdirSync(join(root, 'real'));
    writeFileSync(join(root, 'real/file'), 'end of the chain');
    symlinkSync('b', join(root, 'etc/a'));
    symlinkSync('/etc/c', join(root, 'etc/b'));
    symlinkSync('../lnk/file', join(root, 'etc/c'));
    symlinkSync('/real', join(root, 'lnk'));
    expect(rfs.resolve('/etc/a', { follow: true })).toBe('/real/file');
    expect(rfs.read('/etc/a')?.toString()).toBe('end of the chain');
    // A chain whose last hop names a host file ends inside the root.
    symlinkSync('/etc/e', join(root, 'etc/d'));
    symlinkSync(secret, join(root, 'etc/e'));
    expect(rfs.resolve('/etc/d', { follow: true })).toBe(secret);
    expect(rfs.read('/etc/d')).toBeUndefined();
  });

  test('loops are refused, not followed forever', () => {
    const { root, rfs } = rootAndSecret();
    symlinkSync('/etc/passwd', join(root, 'etc/passwd')); // absolute to itself: inside the root, a loop
    symlinkSync('y', join(root, 'etc/x'));
    symlinkSync('/etc/x', join(root, 'etc/y'));
    for (const p of ['/etc/passwd', '/etc/x', '/etc/x/below']) {
      expect(() => rfs.resolve(p, { follow: true })).toThrow(`${p}: too many levels of symbolic links`);
    }
    expect(() => rfs.read('/etc/passwd')).toThrow(PathError);
    expect(rfs.readLink('/etc/passwd')).toBe('/etc/passwd');
  });

  test('a dangling final link acts on its in-root target: absolute, relative, through a missing directory', () => {
    const { root, rfs } = rootAndSecret();
    const nowhere = `/nonexistent-${basename(root)}`;
    symlinkSync(nowhere, join(root, 'etc/hosts'));
    symlinkSync('gone/deeper', join(root, 'etc/rel'));
    expect(rfs.read('/etc/hosts')).toBeUndefined();
    expect(rfs.writeAtomic('/etc/hosts', Buffer.from('127.0.0.1 h\n'), me600)).toBe('changed');
    expect(readFileSync(join(root, nowhere), 'utf8')).toBe('127.0.0.1 h\n');
    expect(existsSync(nowhere)).toBe(false);
    expect(rfs.writeAtomic('/etc/rel', Buffer.from('r'), me600)).toBe('changed');
    expect(readFileSync(join(root, 'etc/gone/deeper'), 'utf8')).toBe('r');
    symlinkSync('/made/here', join(root, 'etc/dangling-dir'));
    expect(rfs.ensureDir('/etc/dangling-dir', { ...me600, mode: 0o700 })).toBe('changed');
    expect(statSync(join(root, 'made/here')).isDirectory()).toBe(true);
  });

  test('a final link to a host directory: ensureDir and list act inside the root; the host directory is untouched', () => {
    const { root, secret, rfs } = rootAndSecret();
    const hostDir = dirname(secret);
    chmodSync(hostDir, 0o755);
    symlinkSync(hostDir, join(root, 'etc/d'));
    expect(rfs.list('/etc/d')).toEqual([]);
    expect(rfs.ensureDir('/etc/d', { ...me600, mode: 0o711 })).toBe('changed');
    expect(lstatSync(join(root, hostDir)).mode & 0o777).toBe(0o711);
    expect(lstatSync(hostDir).mode & 0o777).toBe(0o755);
    expect(rfs.list('/etc/d')).toEqual([]);
  });

  test('link operations act on the link itself: readLink, symlink, remove, lstat', () => {
    const { root, secret, rfs } = rootAndSecret();
    symlinkSync(secret, join(root, 'etc/m.service'));
    expect(rfs.readLink('/etc/m.service')).toBe(secret);
    expect(rfs.symlink('/etc/m.service', '/dev/null')).toBe('changed');
    expect(readlinkSync(join(root, 'etc/m.service'))).toBe('/dev/null');
    expect(rfs.symlink('/etc/m.service', '/dev/null')).toBe('unchanged');
    expect(rfs.remove('/etc/m.service')).toBe('changed');
    expect(existsSync(join(root, 'etc/m.service'))).toBe(false);
    expect(readFileSync(secret, 'utf8')).toBe('HOST-SECRET\n');
    expect(existsSync('/dev/null')).toBe(true);
    // A link inside a linked directory: the parent is resolved, the link is not.
    mkdirSync(join(root, 'real'));
    symlinkSync('/real', join(root, 'etc/wants'));
    expect(rfs.symlink('/etc/wants/a.service', '/usr/lib/systemd/system/a.service')).toBe('changed');
    expect(readlinkSync(join(root, 'real/a.service'))).toBe('/usr/lib/systemd/system/a.service');
  });

  test('a FIFO, a device or a directory is refused as a file, without blocking', () => {
    const { root, rfs } = rootAndSecret();
    execFileSync('mkfifo', [join(root, 'etc/fifo')]);
    symlinkSync('/etc/fifo', join(root, 'etc/to-fifo'));
    expect(() => rfs.read('/etc/fifo')).toThrow('/etc/fifo is not a regular file');
    expect(() => rfs.read('/etc/to-fifo')).toThrow('/etc/to-fifo is not a regular file');
    expect(() => rfs.read('/etc')).toThrow('/etc is a directory');
    if (asRoot) {
      execFileSync('mknod', [join(root, 'etc/zero'), 'c', '1', '5']);
      expect(() => rfs.read('/etc/zero')).toThrow('/etc/zero is not a regular file');
    }
  });

  test('a final component swapped for a host link after resolving is not followed (O_NOFOLLOW, rename)', () => {
    const { root, secret, rfs } = rootAndSecret();
    writeFileSync(join(root, 'etc/conf'), 'mine');
    mkdirSync(join(root, 'etc/dir'));
    // The attacker's move, made between resolving (these paths have no links: each is itself) and acting.
    const swap = jest.spyOn(rfs, 'resolve').mockImplementation((p) => {
      fs.rmSync(join(root, p), { recursive: true, force: true });
      symlinkSync(secret, join(root, p));
      return p;
    });
    expect(() => rfs.read('/etc/conf')).toThrow('/etc/conf became a symlink while in use');
    expect(rfs.writeAtomic('/etc/conf', Buffer.from('written'), me600)).toBe('changed');
    expect(lstatSync(join(root, 'etc/conf')).isFile()).toBe(true); // the link was replaced, not followed
    expect(() => rfs.ensureDir('/etc/dir', { ...me600, mode: 0o700 })).toThrow(PathError);
    swap.mockRestore();
    expect(readFileSync(secret, 'utf8')).toBe('HOST-SECRET\n');
    expect(lstatSync(secret).mode & 0o777).toBe(0o600);
  });
});

test('a relative root is made absolute once, where it is taken in', () => {
  const parent = mkdtempSync(join(tmpdir(), 'bootsmith-fs-'));
  const cwd = process.cwd();
  try {
    process.chdir(parent);
    expect(absoluteRoot('img')).toBe(join(parent, 'img'));
    expect(new RootedFs('./img/').root).toBe(join(parent, 'img'));
    expect(new RootedFs('/').root).toBe('/');
  } finally {
    process.chdir(cwd);
  }
  expect(() => absoluteRoot('')).toThrow(PathError);
});

/**
 * Structural: a new call site cannot build a host path from a root by hand. Host paths under a
 * root are made in one place, RootedFs; anything else that joins a root with a path is a bypass.
 */
test('no module but system/rooted-fs.ts makes a host path from a root', () => {
  const src = join(__dirname, '../../src');
  const files = execFileSync('find', [src, '-name', '*.ts'], { encoding: 'utf8' }).trim().split('\n');
  const joinsRoot = /\b(join|resolve)\(\s*[\w.]*\broot\b\s*,|\$\{[\w.]*\broot\b\}\/|\b[\w.]*\broot\s*\+\s*['`"\w]/i;
  // The update server's root is its channel tree (read by release-tree.ts, channel names checked
  // against their form first), served over HTTP, not a machine root.
  const allowed = new Set(['system/rooted-fs.ts', 'update/server.ts', 'update/release-tree.ts']);
  const offenders = files
    .filter((f) => !allowed.has(f.slice(src.length + 1)))
    .flatMap((f) => readFileSync(f, 'utf8').split('\n').map((line, i) => ({ f, line, i })))
    .filter(({ line }) => joinsRoot.test(line))
    .map(({ f, line, i }) => `${f.slice(src.length + 1)}:${i + 1}: ${line.trim()}`);
  expect(offenders).toEqual([]);
});
