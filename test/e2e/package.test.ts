/**
 * The package as a user gets it: `npm pack` in a clean copy of the tree (the build runs in
 * prepack), `npm install -g` of the tarball into a temporary prefix, and every program run from
 * there, from a directory outside any source tree.
 *
 * The copy borrows this checkout's node_modules (for esbuild; no `npm ci`). The install runs with
 * --prefer-offline: package tarballs come from npm's cache, which `npm ci` filled, but npm still
 * asks the registry for the dependencies' version lists (it keeps none of those from `npm ci`, and
 * installing a tarball does not follow a lock file), so this needs the npm registry.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { SpawnSyncOptions } from 'node:child_process';
import { accessSync, constants, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const root = join(__dirname, '../..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
const work = mkdtempSync(join(tmpdir(), 'bootsmith-package-'));
const copy = join(work, 'tree');
const prefix = join(work, 'prefix');
const outside = join(work, 'elsewhere');

/** The environment without what a surrounding `npm test` exports (npm_config_*, npm_package_*). */
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));

function sh(cmd: string, args: string[], opts: SpawnSyncOptions = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, cwd: outside, timeout: 120_000, ...opts });
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr), error: r.error };
}

/** The tracked (and new, not ignored) files of the checkout, as they are in the working tree. */
function cleanCopy(): void {
  const files = sh('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root }).stdout.split('\0').filter(Boolean);
  for (const f of files) {
    if (f === 'node_modules' || f.startsWith('node_modules/') || !existsSync(join(root, f))) continue;
    mkdirSync(dirname(join(copy, f)), { recursive: true });
    copyFileSync(join(root, f), join(copy, f));
  }
  symlinkSync(realpathSync(join(root, 'node_modules')), join(copy, 'node_modules'));
}

let tarball: string;
let packed: ReturnType<typeof sh>;
let installed: ReturnType<typeof sh>;

beforeAll(() => {
  mkdirSync(outside, { recursive: true });
  cleanCopy();
  expect(existsSync(join(copy, 'dist'))).toBe(false);
  packed = sh('npm', ['pack', '--silent'], { cwd: copy });
  tarball = join(copy, packed.stdout.trim());
  installed = sh('npm', ['install', '-g', '--prefer-offline', '--no-audit', '--no-fund', '--prefix', prefix, tarball]);
}, 240_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

test('npm pack builds in prepack, quietly, and makes the tarball', () => {
  expect(packed.error).toBeUndefined();
  expect(packed.stderr).toBe(''); // the build prints nothing when it works
  expect(packed.status).toBe(0);
  expect(packed.stdout).toBe(`bootsmith-${pkg.version}.tgz\n`);
});

test('npm test\'s set-up prints nothing when there is nothing to install', () => {
  // Only when node_modules was installed from this lock file: otherwise ensure-deps would run npm
  // ci, into the checkout's node_modules.
  const stamp = join(copy, 'node_modules/.bootsmith-lock.sha256');
  const lock = createHash('sha256').update(readFileSync(join(copy, 'package-lock.json'))).digest('hex');
  if (!existsSync(stamp) || readFileSync(stamp, 'utf8').trim() !== lock) return;
  const r = sh('bash', ['scripts/ensure-deps.sh'], { cwd: copy });
  expect(r.status).toBe(0);
  expect(r.stdout).toBe('');
  // Not as root, missing Debian packages are named (the tests that need them are skipped).
  if (process.getuid?.() === 0 || !r.stderr.includes('missing Debian packages')) expect(r.stderr).toBe('');
});

test('the tarball holds the programs, their source maps, units and LICENSE; no sources, tests or tools', () => {
  const files = sh('tar', ['-tzf', tarball]).stdout.split('\n').filter(Boolean).map((f) => f.replace(/^package\//, ''));
  for (const program of Object.values(pkg.bin)) expect(files).toContain(program);
  for (const bundle of ['coreos-cloudinit', 'locksmithctl', 'locksmithd', 'fleetlockd', 'update_engine', 'update_engine_client', 'update-server']) {
    expect(files).toEqual(expect.arrayContaining([`dist/${bundle}.js`, `dist/${bundle}.js.map`]));
  }
  expect(files).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'package.json', 'bin/load-bundle.js', 'units/user-config.target', 'schemas/cloud-config.schema.json']));
  expect(files).toEqual(expect.arrayContaining(['dist/ignition-v3_4.js', 'dist/ignition-v2_3.js', 'schemas/ignition-v3_4.schema.json', 'schemas/ignition-v2_3.schema.json']));
  const notShipped = files.filter((f) => /^(src|test|bench|images|scripts|docs|examples)\/|make-images|bench-|tsconfig|jest\.config|\.ts$/.test(f));
  expect(notShipped).toEqual([]);
  const license = readFileSync(join(copy, 'LICENSE'), 'utf8');
  expect(license).toContain('Apache License\n                           Version 2.0, January 2004');
  expect(license).toContain('TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION');
  expect(license).toContain('END OF TERMS AND CONDITIONS');
});

test('package.json: engines as the code needs (zlib.crc32), bzip2 named as a requirement', () => {
  const manifest = JSON.parse(sh('tar', ['-xzOf', tarball, 'package/package.json']).stdout) as { engines: { node: string }; description: string; license: string };
  expect(manifest.license).toBe('Apache-2.0');
  expect(manifest.engines.node).toBe('^20.15.0 || >=22.2.0');
  expect(manifest.description).toMatch(/bzip2/);
  // This Node is one the range admits, and the API that sets the range is there.
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  expect((major === 20 && minor >= 15) || (major === 22 && minor >= 2) || major > 22).toBe(true);
  expect(typeof (require('node:zlib') as { crc32?: unknown }).crc32).toBe('function');
});

describe('installed with npm install -g into a temporary prefix', () => {
  const bin = (name: string) => join(prefix, 'bin', name);

  test('npm install -g succeeds', () => {
    expect(installed.error).toBeUndefined();
    if (installed.status !== 0) throw new Error(`npm install -g failed:\n${installed.stderr}`);
  });

  test.each(Object.keys(pkg.bin))('%s --version', (program) => {
    expect(sh(bin(program), ['--version'])).toMatchObject({ status: 0, stdout: `${program} ${pkg.version}\n`, stderr: '' });
  });

  test('coreos-cloudinit --validate --from-file: an example passes, a bad file is reported', () => {
    const example = join(outside, 'etcd-node.yaml');
    copyFileSync(join(root, 'examples/etcd-node.yaml'), example);
    expect(sh(bin('coreos-cloudinit'), ['--validate', '--from-file', example])).toMatchObject({ status: 0, stderr: '' });
    const bad = join(outside, 'bad.yaml');
    writeFileSync(bad, '#cloud-config\ncoreos:\n  update:\n    reboot-strategy: sometimes\n');
    const r = sh(bin('coreos-cloudinit'), ['--validate', '--format', 'json', '--from-file', bad]);
    expect(r.status).toBe(1);
    const report = JSON.parse(r.stdout) as { files: Array<{ diagnostics: Array<{ code: string; line: number }> }> };
    expect(report.files[0]!.diagnostics.map((d) => `${d.code}@${d.line}`)).toEqual(['invalid-value@4']);
  });

  test('coreos-cloudinit --validate on an Ignition config loads its version\'s validator from the package', () => {
    const ign = join(outside, 'node.ign');
    writeFileSync(ign, '{"ignition": {"version": "3.4.0"},\n "storage": {"files": [{"path": "etc/x"}]}}\n');
    const r = sh(bin('coreos-cloudinit'), ['--validate', '--format', 'json', '--from-file', ign]);
    expect(r).toMatchObject({ status: 1, stderr: '' });
    const report = JSON.parse(r.stdout) as { files: Array<{ kind: string; diagnostics: Array<{ code: string; line: number }> }> };
    expect(report.files[0]!.kind).toBe('ignition');
    expect(report.files[0]!.diagnostics.map((d) => `${d.code}@${d.line}`)).toEqual(['relative-path@2']);
  });

  test('coreos-cloudinit --install-units writes the units shipped in the package into a root', () => {
    const target = join(outside, 'root');
    mkdirSync(target);
    const r = sh(bin('coreos-cloudinit'), ['--install-units', '--root', target]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const unit = 'etc/systemd/system/user-config.target';
    expect(readFileSync(join(target, unit), 'utf8')).toBe(readFileSync(join(prefix, 'lib/node_modules/bootsmith/units/user-config.target'), 'utf8'));
  });

  test('the installed units run the programs installed in the prefix', () => {
    const target = join(outside, 'root-daemons');
    mkdirSync(target);
    const r = sh(bin('coreos-cloudinit'), ['--install-units', '--with-daemons', '--root', target]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const dir = join(target, 'etc/systemd/system');
    const services = readdirSync(dir).filter((n) => n.endsWith('.service'));
    expect(services).toEqual(expect.arrayContaining(['locksmithd.service', 'update-engine.service', 'fleetlockd.service', 'bootsmith-update-server.service', 'oem-cloudinit-ec2.service']));
    const programs = services.map((name) => /^ExecStart=(\S+)/m.exec(readFileSync(join(dir, name), 'utf8'))?.[1]);
    for (const program of programs) {
      expect(Object.keys(pkg.bin).map(bin)).toContain(program);
      accessSync(program!, constants.X_OK);
    }
    expect(new Set(programs)).toEqual(new Set(['coreos-cloudinit', 'locksmithd', 'update_engine', 'fleetlockd', 'bootsmith-update-server'].map(bin)));
    if (sh('systemd-analyze', ['--version']).status === 0) {
      const verify = sh('systemd-analyze', ['verify', ...readdirSync(dir).filter((n) => /\.(service|target|path|mount)$/.test(n)).map((n) => join(dir, n))]);
      expect(verify).toMatchObject({ status: 0, stdout: '', stderr: '' });
    }
  });

  test('locksmithctl reaches for etcd with the installed etcd3 (none listening: exit 1, no missing module)', () => {
    const r = sh(bin('locksmithctl'), ['--endpoint', 'http://127.0.0.1:9', 'status'], { timeout: 30_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).not.toMatch(/Cannot find module|MODULE_NOT_FOUND/);
  });

  test('a crash trace from the installed package names src/*.ts lines', () => {
    const loader = join(prefix, 'lib/node_modules/bootsmith/bin/load-bundle.js');
    const r = sh(process.execPath, ['-e', `require(${JSON.stringify(loader)}).run('coreos-cloudinit', null)`]);
    expect(r.status).toBe(70);
    expect(r.stderr).toMatch(/\n {4}at \S+ \(\/.*\/bootsmith\/src\/cli\/[\w-]+\.ts:\d+:\d+\)/);
  });
});
