/** coreos-cloudinit --validate on Ignition configs, as users run it: the built program in a child process. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const root = join(__dirname, '../..');
const bin = join(root, 'bin/coreos-cloudinit.js');
const corpus = join(root, 'test/corpus/ignition');
const samples = readdirSync(corpus).filter((f) => f.endsWith('.ign'));

beforeAll(() => {
  if (!existsSync(join(root, 'dist/coreos-cloudinit.js'))) throw new Error('dist/ is missing: run "npm run build" (npm test does)');
});

function run(args: string[], input?: string | Buffer) {
  const r = spawnSync(process.execPath, [bin, ...args], { input, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function expected(sample: string): string[] {
  return readFileSync(join(corpus, sample.replace(/\.ign$/, '.expected')), 'utf8').split('\n').filter(Boolean);
}

test('every corpus file in one run: the JSON report holds each file\'s expected findings, exit 1', () => {
  const r = run(['--validate', '--format', 'json', '--from-file', ...samples.map((s) => join(corpus, s))]);
  expect(r.status).toBe(1);
  expect(r.stderr).toBe('');
  const doc = JSON.parse(r.stdout) as { files: Array<{ file: string; kind: string; valid: boolean; diagnostics: Array<Record<string, unknown>> }> };
  for (const [i, sample] of samples.entries()) {
    const file = doc.files[i]!;
    expect(file.kind).toBe('ignition');
    const lines = file.diagnostics.map((d) => `${d.line}:${d.column} ${d.severity} ${d.code} ${d.path || '-'}`);
    expect([sample, lines]).toEqual([sample, expected(sample)]);
    expect([sample, file.valid]).toEqual([sample, !expected(sample).some((l) => l.includes(' error '))]);
  }
});

test('a valid config: exit 0, no output; warnings pass, and fail under --strict', () => {
  expect(run(['--validate', '--from-file', join(corpus, 'v3_0-valid.ign')])).toEqual({ status: 0, stdout: '', stderr: '' });
  const warned = '{"ignition": {"version": "3.4.0"}, "storag": {}}';
  expect(run(['--validate', '--from-file', '-'], warned).status).toBe(0);
  expect(run(['--validate', '--strict', '--from-file', '-'], warned).status).toBe(1);
});

test('text: FILE:LINE:COL: severity: message [code], at the value itself', () => {
  const file = join(corpus, 'paths-and-modes.ign');
  const r = run(['--validate', '--from-file', file]);
  expect(r.status).toBe(1);
  expect(r.stdout).toContain(`${file}:5:17: error: path "etc/relative" is not absolute [relative-path]\n`);
  expect(r.stdout).toMatch(/^10 errors, 2 warnings, 0 infos in 1 file$/m);
});

test('JSON syntax errors have a line and column', () => {
  const r = run(['--validate', '--from-file', '-'], '{\n  "ignition": {"version": "3.4.0"},\n  "storage": {,}\n}\n');
  expect(r.status).toBe(1);
  expect(r.stdout).toMatch(/^<stdin>:3:15: error: invalid JSON: .* \[json-syntax\]$/m);
});

test('an unsupported version names the supported ones', () => {
  const r = run(['--validate', '--from-file', join(corpus, 'version-unsupported.ign')]);
  expect(r.status).toBe(1);
  expect(r.stdout).toMatch(/unsupported config version "3\.6\.0" \(supported: 3\.0\.0, .*3\.5\.0, 2\.0\.0, .*2\.3\.0\)/);
});

test('github annotations', () => {
  const r = run(['--validate', '--format', 'github', '--from-file', join(corpus, 'units.ign')]);
  expect(r.status).toBe(1);
  expect(r.stdout).toMatch(/^::error file=[^,]*units\.ign,line=5,col=17,endLine=5,endColumn=24,title=ignition unit-name::invalid unit extension/m);
  expect(r.stdout).toMatch(/^::warning file=[^,]*,line=7,col=61,.*title=ignition enable-without-install::/m);
});

test('gzip-compressed Ignition is unpacked first; cloud-config and Ignition mix in one run', () => {
  const gz = run(['--validate', '--from-file', '-'], gzipSync('{"ignition": {"version": "3.4.0"}, "storage": {"files": [{"path": "x"}]}}'));
  expect(gz.status).toBe(1);
  expect(gz.stdout).toMatch(/^<stdin>:1:67: error: .*\[relative-path\]$/m);
  const r = run(['--validate', '--format', 'json', '--from-file', join(corpus, 'v3_0-valid.ign'), join(root, 'examples/etcd-node.yaml')]);
  expect(JSON.parse(r.stdout).files.map((f: { kind: string }) => f.kind)).toEqual(['ignition', 'cloud-config']);
});

test('applying an Ignition config with errors reports its findings and applies none of it, exit 1', () => {
  const target = mkdtempSync(join(tmpdir(), 'bootsmith-ign-'));
  try {
    const r = run(['--from-file', join(corpus, 'units.ign'), '--root', target]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/units\.ign:5:17: error: .*\[unit-name\]/);
    expect(r.stdout).toMatch(/not applied: the user data has errors\n$/);
    expect(readdirSync(target)).toEqual([]);
  } finally {
    rmSync(target, { recursive: true, force: true });
  }
});
