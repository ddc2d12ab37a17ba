/**
 * coreos-cloudinit --convert-to, as users run it (the built program in a child process): the
 * config on stdout, the findings on stderr in each --format, the exit codes; and the corpus of
 * real cloud-config (../shared/corpus/validate) converted to both formats: each Ignition output
 * valid by our validator, each Butane output the same config, the findings as recorded in
 * test/corpus/convert/NAME.warnings.txt (`exit=N`, then LINE:COL SEVERITY CODE a finding).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { validateIgnition } from '../../src/cloudconfig/ignition/validate';
import { corpusDir } from '../helpers';

const root = join(__dirname, '../..');
const bin = join(root, 'bin/coreos-cloudinit.js');
const corpus = corpusDir();
const expectedDir = join(root, 'test/corpus/convert');
const samples = readdirSync(corpus).filter((f) => f.endsWith('.yaml'));

beforeAll(() => {
  if (!existsSync(join(root, 'dist/coreos-cloudinit.js'))) throw new Error('dist/ is missing: run "npm run build" (npm test does)');
});

function run(args: string[], input?: string, cwd?: string) {
  const r = spawnSync(process.execPath, [bin, ...args], { input, encoding: 'utf8', cwd });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const clean = '#cloud-config\nhostname: node1\ncoreos:\n  units:\n    - name: a.service\n      enable: true\n      content: "[Service]\\nExecStart=/bin/true\\n[Install]\\nWantedBy=multi-user.target\\n"\n';
const lossy = '#cloud-config\ncoreos:\n  fleet:\n    metadata: region=us\n  units:\n    - name: a.service\n      command: stop\n';

test('a config that converts whole: Ignition 3.3.0 on stdout, nothing on stderr, exit 0', () => {
  const r = run(['--convert-to', 'ignition', '--from-file', '-'], clean);
  expect([r.status, r.stderr]).toEqual([0, '']);
  const config = JSON.parse(r.stdout) as { ignition: { version: string }; storage: { files: Array<{ path: string }> } };
  expect(config.ignition.version).toBe('3.3.0');
  expect(config.storage.files.map((f) => f.path)).toEqual(['/etc/hostname']);
  expect(validateIgnition(r.stdout).findings).toEqual([]);
});

test('Butane on stdout: variant flatcar, version 1.0.0', () => {
  const r = run(['-convert-to=butane', '-from-file', '-'], clean);
  expect(r.status).toBe(0);
  expect(parse(r.stdout)).toMatchObject({ variant: 'flatcar', version: '1.0.0', systemd: { units: [{ name: 'a.service', enabled: true }] } });
});

test('what is left out: warnings on stderr at their line and column, exit 1; the config still on stdout', () => {
  const r = run(['--convert-to', 'ignition', '--from-file', '-'], lossy);
  expect(r.status).toBe(1);
  expect(JSON.parse(r.stdout)).toMatchObject({ ignition: { version: '3.3.0' } });
  expect(r.stderr).toMatch(/^<stdin>:3:3: warning: coreos.fleet is not converted: .* \[unconverted-fleet\]$/m);
  expect(r.stderr).toMatch(/^<stdin>:7:16: warning: command: stop has no Ignition equivalent: .* \[unconverted-command\]$/m);
  expect(r.stderr).toMatch(/^0 errors, \d+ warnings, 0 infos in 1 file$/m);
});

test('--format json and github report on stderr as --validate does', () => {
  const json = run(['--convert-to', 'ignition', '--format', 'json', '--from-file', '-'], lossy);
  expect(json.status).toBe(1);
  const doc = JSON.parse(json.stderr) as { valid: boolean; files: Array<{ diagnostics: Array<{ code: string; line: number; column: number }> }> };
  expect(doc.valid).toBe(false);
  expect(doc.files[0]!.diagnostics.map((d) => `${d.code}@${d.line}:${d.column}`)).toContain('unconverted-command@7:16');
  expect(JSON.parse(run(['--convert-to', 'ignition', '--format', 'json', '--from-file', '-'], clean).stderr)).toMatchObject({ valid: true, summary: { error: 0, warning: 0 } });
  const github = run(['--convert-to', 'butane', '--format', 'github', '--from-file', '-'], lossy);
  expect(github.stderr).toMatch(/^::warning file=<stdin>,line=7,col=16,.*title=cloud-config unconverted-command::command: stop/m);
});

test('--platform turns $private_ipv4 into the metadata agent\'s variable; an unknown platform is a usage error', () => {
  const input = '#cloud-config\ncoreos:\n  etcd2:\n    listen-peer-urls: http://$private_ipv4:2380\n';
  const ec2 = run(['--convert-to', 'ignition', '--platform', 'ec2', '--from-file', '-'], input);
  expect(ec2.status).toBe(0);
  expect(ec2.stderr).toMatch(/^0 errors, 0 warnings, 1 info in 1 file$/m); // (wrapper-drop-in)
  expect(ec2.stdout).toContain('${COREOS_EC2_IPV4_LOCAL}');
  const none = run(['--convert-to', 'ignition', '--from-file', '-'], input);
  expect(none.status).toBe(1);
  expect(none.stderr).toMatch(/^<stdin>:4:30: warning: \$private_ipv4 stays as written: give --platform \(ec2, openstack, .*\) .* \[needs-platform\]$/m);
  const bad = run(['--convert-to', 'ignition', '--platform', 'mars', '--from-file', '-'], input);
  expect(bad).toEqual({ status: 2, stdout: '', stderr: expect.stringMatching(/^coreos-cloudinit: --platform mars is unknown; known: ec2, openstack, azure, gce, digitalocean, packet, custom\n$/) });
});

test('usage errors exit 2 and say what is wrong', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--convert-to', 'ignition'], /--convert-to takes one --from-file/],
    [['--convert-to', 'ignition', '--from-file', 'a', 'b'], /--convert-to takes one --from-file/],
    [['--convert-to', 'ignition', '--validate', '--from-file', '-'], /--convert-to takes one --from-file/],
    [['--convert-to', 'json', '--from-file', '-'], /argument 'json' is invalid. Allowed choices are ignition, butane/],
    [['--platform', 'ec2', '--from-file', '-'], /--platform goes with --convert-to/],
  ];
  for (const [args, message] of cases) {
    const r = run(args, clean);
    expect([args, r.status, r.stdout]).toEqual([args, 2, '']);
    expect(r.stderr).toMatch(message);
  }
});

test('invalid input exits 2: the validation errors with their places on stderr, nothing on stdout', () => {
  const r = run(['--convert-to', 'ignition', '--from-file', '-'], '#cloud-config\nhostname: [a\n');
  expect([r.status, r.stdout]).toEqual([2, '']);
  expect(r.stderr).toMatch(/^<stdin>:\d+:\d+: error: .*$/m);
  expect(r.stderr).toMatch(/^coreos-cloudinit: <stdin> is not converted: the user data has errors/m);
  const ignition = run(['--convert-to', 'butane', '--from-file', '-'], '{"ignition": {"version": "3.3.0"}}');
  expect(ignition).toEqual({ status: 2, stdout: '', stderr: expect.stringMatching(/^<stdin>:1:1: error: this is an Ignition config already: check it with --validate \[already-ignition\]$/m) });
  const missing = run(['--convert-to', 'ignition', '--from-file', join(root, 'no-such-file.yaml')]);
  expect([missing.status, missing.stdout]).toEqual([2, '']);
  expect(missing.stderr).toMatch(/error: cannot read user data: no such file \[unreadable\]/);
});

/** A config's files with their contents as bytes, whichever way they were written, so Butane and Ignition compare. */
function normalize(config: Record<string, unknown>): unknown {
  const camel = (o: unknown): unknown =>
    Array.isArray(o) ? o.map(camel) : o && typeof o === 'object' ? Object.fromEntries(Object.entries(o).map(([k, v]) => [k.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase()), camel(v)])) : o;
  const out = camel(config) as { variant?: string; version?: string; ignition?: unknown; storage?: { files: Array<{ contents: { inline?: string; source?: string; bytes?: string } }> } };
  delete out.variant;
  delete out.version;
  delete out.ignition;
  for (const f of out.storage?.files ?? []) {
    const { inline, source } = f.contents;
    delete f.contents.inline;
    delete f.contents.source;
    f.contents.bytes = inline !== undefined ? Buffer.from(inline).toString('base64') : dataUrlBytes(source!).toString('base64');
  }
  return out;
}

function dataUrlBytes(url: string): Buffer {
  const comma = url.indexOf(',');
  const data = url.slice(comma + 1);
  if (url.slice(0, comma).endsWith(';base64')) return Buffer.from(data, 'base64');
  return Buffer.from(data.replace(/%([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
}

test.each(samples)('corpus %s: both formats, the recorded findings, valid Ignition, the same config in Butane', (sample) => {
  const expected = readFileSync(join(expectedDir, sample.replace(/\.yaml$/, '.warnings.txt')), 'utf8');
  const results = (['ignition', 'butane'] as const).map((format) => {
    // Run in the corpus, so that messages name the file as the recorded findings do.
    const r = run(['--convert-to', format, '--format', 'json', '--from-file', sample], undefined, corpus);
    const report = r.stderr.startsWith('{') ? (JSON.parse(r.stderr) as { files: Array<{ diagnostics: Array<Record<string, unknown>> }> }) : undefined;
    const lines = report ? report.files[0]!.diagnostics.map((d) => `${d.line}:${d.column} ${d.severity} ${d.code}`) : [r.stderr.trim()];
    return { ...r, findings: [`exit=${r.status}`, ...lines].join('\n') + '\n' };
  });
  const [ignition, butane] = results as [(typeof results)[0], (typeof results)[0]];
  expect(ignition.findings).toBe(expected);
  expect(butane.findings).toBe(expected);
  if (ignition.status === 2) {
    expect([ignition.stdout, butane.stdout]).toEqual(['', '']);
    return;
  }
  expect(validateIgnition(ignition.stdout).findings.filter((f) => f.severity === 'error')).toEqual([]);
  expect(normalize(parse(butane.stdout, { version: '1.1' }) as Record<string, unknown>)).toEqual(normalize(JSON.parse(ignition.stdout) as Record<string, unknown>));
});
