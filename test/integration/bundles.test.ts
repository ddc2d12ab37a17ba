/**
 * coreos-cloudinit is built as two bundles (scripts/build.mjs): validating reads only
 * dist/coreos-cloudinit.js, and the rest loads dist/coreos-cloudinit-more.js on first use, which
 * takes the modules the two share from the first (one copy: a class is the same class in both).
 * Each run here is the built program in a child process that records which bundles it read.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(__dirname, '../..');
const loader = join(root, 'bin/load-bundle.js');

beforeAll(() => {
  if (!existsSync(join(root, 'dist/coreos-cloudinit-more.js'))) throw new Error('dist/ is missing: run "npm run build" (npm test does)');
});

/** Runs coreos-cloudinit's main with `args` in a child; its exit code and the bundles it read. */
function bundlesRead(args: string[]) {
  const script = `
    const fs = require('node:fs');
    const open = fs.openSync;
    const bundles = [];
    fs.openSync = (file, ...rest) => {
      const m = /dist\\/([\\w-]+)\\.js$/.exec(String(file));
      if (m) bundles.push(m[1]);
      return open(file, ...rest);
    };
    const io = { stdout: { write() {} }, stderr: { write() {} } };
    require(${JSON.stringify(loader)}).loadBundle('coreos-cloudinit').main(${JSON.stringify(args)}, io)
      .then((code) => console.log(JSON.stringify({ code, bundles })));
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`the child failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { code: number; bundles: string[] };
}

const examples = ['etcd-node', 'machine', 'static-network'].map((name) => join(root, 'examples', `${name}.yaml`));

test('validating plain YAML reads coreos-cloudinit.js alone', () => {
  expect(bundlesRead(['--validate', '--from-file', ...examples])).toEqual({ code: 0, bundles: ['coreos-cloudinit'] });
});

test('converting, and YAML the fast reader declines (the yaml package), load coreos-cloudinit-more.js once', () => {
  expect(bundlesRead(['--convert-to', 'ignition', '--from-file', examples[2]!])).toEqual({ code: 0, bundles: ['coreos-cloudinit', 'coreos-cloudinit-more'] });
  const dir = mkdtempSync(join(tmpdir(), 'bootsmith-bundles-'));
  try {
    const anchors = join(dir, 'anchors.yaml');
    writeFileSync(anchors, '#cloud-config\nhostname: &name node-1\nwrite_files:\n  - path: /etc/motd\n    content: *name\n');
    expect(bundlesRead(['--validate', '--from-file', anchors, anchors])).toEqual({ code: 0, bundles: ['coreos-cloudinit', 'coreos-cloudinit-more'] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('no module of ours is in both bundles: coreos-cloudinit-more.js takes the shared ones from the first', () => {
  const sources = (bundle: string) => (JSON.parse(readFileSync(join(root, 'dist', `${bundle}.js.map`), 'utf8')) as { sources: string[] }).sources;
  // Files only: a stand-in esbuild made (`part:`, `lazy:`, `host:` ...) is named by a namespace.
  const files = (bundle: string) => sources(bundle).filter((s) => !/^[a-z]+:/.test(s));
  const host = new Set(files('coreos-cloudinit'));
  const more = files('coreos-cloudinit-more');
  const ours = (s: string) => /\/src\/.*\.ts$/.test(s);
  expect(more.filter((s) => ours(s) && host.has(s))).toEqual([]);
  // Both hold some: the first what validation needs, the second the rest.
  expect([...host].some((s) => s.endsWith('src/cloudconfig/validate.ts'))).toBe(true);
  expect(more.some((s) => s.endsWith('src/apply/apply.ts'))).toBe(true);
  expect([...host].some((s) => s.endsWith('src/apply/apply.ts'))).toBe(false);
});

// The second bundle takes a shared module as its `import * as` namespace object, where a default
// export would not be found the way esbuild looks for it.
test('no module of ours has a default export', () => {
  const withDefault: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (path.endsWith('.ts') && /^export default\b|^export \{[^}]*\bas default\b/m.test(readFileSync(path, 'utf8'))) withDefault.push(path);
    }
  };
  walk(join(root, 'src'));
  expect(withDefault).toEqual([]);
});

// bin/load-bundle.js starts a bundle from its code cache when V8 accepts it, and silently
// compiles it anew when not: a cache missing or stale costs every start, and nothing else shows it.
test('every program bundle has a code cache that V8 accepts', () => {
  const bundles = readdirSync(join(root, 'bin'))
    .filter((f) => f.endsWith('.js') && f !== 'load-bundle.js')
    .map((f) => /run\('([\w-]+)'/.exec(readFileSync(join(root, 'bin', f), 'utf8'))![1]!);
  const script = `
    const fs = require('node:fs');
    const vm = require('node:vm');
    const rejected = ${JSON.stringify([...bundles, 'coreos-cloudinit-more'])}.filter((name) => {
      const file = ${JSON.stringify(join(root, 'dist'))} + '/' + name + '.js';
      if (!fs.existsSync(file + '.cache')) return true;
      return new vm.Script(fs.readFileSync(file, 'latin1'), { filename: file, cachedData: fs.readFileSync(file + '.cache') }).cachedDataRejected;
    });
    console.log(JSON.stringify(rejected));
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  expect(bundles).toHaveLength(7);
  expect(JSON.parse(r.stdout)).toEqual([]);
});
