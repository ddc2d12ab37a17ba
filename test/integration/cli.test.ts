/** coreos-cloudinit --validate as users run it: the built program in a child process. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { applyRoot, runAsync } from '../support/cli';

const root = join(__dirname, '../..');
const bin = join(root, 'bin/coreos-cloudinit.js');
const dir = mkdtempSync(join(tmpdir(), 'bootsmith-cli-'));

beforeAll(() => {
  if (!existsSync(join(root, 'dist/coreos-cloudinit.js'))) throw new Error('dist/ is missing: run "npm run build" (npm test does)');
});

function file(name: string, content: string | Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

function run(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [bin, ...args], { input, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const good = file('good.yaml', '#cloud-config\nhostname: a\n');
const warn = file('warn.yaml', '#cloud-config\nhostnam: a\n');
const bad = file('bad.yaml', '#cloud-config\ncoreos:\n  update:\n    reboot-strategy: false\n');

test('valid user data: exit 0, no output', () => {
  expect(run(['--validate', '--from-file', good])).toEqual({ status: 0, stdout: '', stderr: '' });
});

test('errors: FILE:LINE:COL: error: message [code], exit 1', () => {
  const r = run(['--validate', '--from-file', bad]);
  expect(r.status).toBe(1);
  expect(r.stdout).toMatch(new RegExp(`^${bad}:4:22: error: invalid value "false" for "reboot_strategy": .* \\[invalid-value\\]$`, 'm'));
  expect(r.stdout).toMatch(/^1 error, 0 warnings, 0 infos in 1 file$/m);
});

test('warnings pass, and fail under --strict', () => {
  expect(run(['--validate', '--from-file', warn]).status).toBe(0);
  expect(run(['--validate', '--strict', '--from-file', warn]).status).toBe(1);
});

test('several files in one run; Go-style single-dash flags', () => {
  const r = run(['-validate', '-from-file', good, warn, bad]);
  expect(r.status).toBe(1);
  expect(r.stdout).toContain(`${warn}:2:1: warning: unrecognized key "hostnam"; did you mean "hostname"?`);
  expect(run(['-validate', `-from-file=${good}`]).status).toBe(0);
});

test('standard input with -', () => {
  const r = run(['--validate', '--from-file', '-'], '#cloud-config\nusers: 5\n');
  expect(r.status).toBe(1);
  expect(r.stdout).toMatch(/^<stdin>:2:8: error: incorrect type/m);
});

test('gzip-compressed user data is validated after unpacking; corrupt gzip is an error', () => {
  expect(run(['--validate', '--from-file', file('z.gz', gzipSync('#cloud-config\nhostname: [x]\n'))]).status).toBe(1);
  const corrupt = run(['--validate', '--from-file', file('c.gz', Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3]))]);
  expect(corrupt.status).toBe(1);
  expect(corrupt.stdout).toMatch(/error: gzip-compressed user data cannot be unpacked.*\[gzip\]/);
});

test('unreadable inputs are errors, not silent passes', () => {
  expect(run(['--validate', '--from-file', dir]).stdout).toMatch(/cannot read user data: it is a directory \[unreadable\]/);
  const missing = run(['--validate', '--from-file', join(dir, 'nope.yaml')]);
  expect(missing.status).toBe(1);
  expect(missing.stdout).toMatch(/no such file/);
  if (process.getuid?.() !== 0) {
    const locked = file('locked.yaml', '#cloud-config\n');
    chmodSync(locked, 0);
    expect(run(['--validate', '--from-file', locked]).status).toBe(1);
  }
});

test('--format json: one stable shape', () => {
  const r = run(['--validate', '--format', 'json', '--from-file', good, bad]);
  expect(r.status).toBe(1);
  const out = JSON.parse(r.stdout);
  expect(out).toEqual({
    version: 1,
    valid: false,
    summary: { error: 1, warning: 0, info: 0 },
    files: [
      { file: good, kind: 'cloud-config', valid: true, diagnostics: [] },
      {
        file: bad,
        kind: 'cloud-config',
        valid: false,
        diagnostics: [
          {
            severity: 'error',
            code: 'invalid-value',
            message: expect.stringContaining('invalid value "false"'),
            path: 'coreos.update.reboot_strategy',
            pointer: '/coreos/update/reboot_strategy',
            line: 4,
            column: 22,
            endLine: 4,
            endColumn: 27,
          },
        ],
      },
    ],
  });
});

test('--format github: workflow annotations', () => {
  const r = run(['--validate', '--format', 'github', '--from-file', bad, warn]);
  expect(r.stdout.split('\n')).toEqual([
    expect.stringMatching(new RegExp(`^::error file=${bad},line=4,col=22,endLine=4,endColumn=27,title=cloud-config invalid-value::invalid value "false"`)),
    expect.stringMatching(/^::warning file=.*warn.yaml,line=2,col=1,.*::unrecognized key "hostnam"/),
    '',
  ]);
});

test('usage errors exit 2', () => {
  expect(run(['--validate']).status).toBe(2);
  expect(run(['--validate', '--from-file', good, '--format', 'xml']).status).toBe(2);
  expect(run(['--bogus']).status).toBe(2);
  expect(run(['--from-file', good, warn, '--root', dir]).status).toBe(2); // applying takes one file
});

test('--version and --help', () => {
  expect(run(['--version']).stdout).toMatch(/^coreos-cloudinit \d+\.\d+\.\d+/);
  const help = run(['--help']);
  expect(help.status).toBe(0);
  expect(help.stdout).toContain('--from-file');
});

test('apply: an unreachable systemd or a missing root is a clear error, exit 1', () => {
  const units = file('units.yaml', '#cloud-config\ncoreos:\n  units:\n    - name: a.service\n      command: start\n');
  const noBus = run(['--from-file', units, '--root', dir, '--systemd-bus', 'unix:path=/nonexistent/bus']);
  expect(noBus.status).toBe(1);
  expect(noBus.stderr).toMatch(/^coreos-cloudinit: cannot talk to systemd on unix:path=\/nonexistent\/bus: .*ENOENT/);
  const noRoot = run(['--from-file', units, '--root', join(dir, 'missing')]);
  expect(noRoot).toMatchObject({ status: 1, stderr: `coreos-cloudinit: --root ${join(dir, 'missing')} is not a directory\n` });
});

test('apply: user data with errors is reported and not applied', () => {
  const r = run(['--from-file', bad, '--root', dir, '--dry-run']);
  expect(r.status).toBe(1);
  expect(r.stdout).toMatch(/error: invalid value "false"[\s\S]*not applied: the user data has errors\n$/);
});


const unitApp = file(
  'unit-app.yaml',
  '#cloud-config\nwrite_files:\n  - path: /etc/app.conf\n    content: x\ncoreos:\n  units:\n    - name: app.service\n      enable: true\n' +
    '      content: |\n        [Service]\n        ExecStart=/bin/true\n\n        [Install]\n        WantedBy=multi-user.target\n',
);

describe('applying', () => {
  const asRoot = process.getuid?.() === 0;
  (asRoot ? test : test.skip)('--dry-run predicts the apply: a unit the plan writes can be enabled', () => {
    const r = applyRoot();
    const dry = run(['--from-file', unitApp, '--root', r, '--dry-run']);
    expect(dry.stdout).toContain('would change enable app.service [coreos.units[0]]\n');
    expect(dry).toMatchObject({ status: 0, stderr: '' });
    expect(existsSync(join(r, 'etc/systemd'))).toBe(false);
    const real = run(['--from-file', unitApp, '--root', r]);
    expect(real).toMatchObject({ status: 0, stderr: '' });
    const same = (text: string) => text.replace(/^(would change|changed) +/gm, 'changed ').replace(/would change,/, 'changed,');
    expect(same(real.stdout)).toBe(same(dry.stdout));
  });

  (asRoot ? test : test.skip)('--timings with --from-file', () => {
    const r = run(['--from-file', unitApp, '--root', applyRoot(), '--dry-run', '--timings']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/\ntimings: fetch [\d.]+ ms, validate [\d.]+ ms, apply [\d.]+ ms\n$/);
  });

  (asRoot ? test : test.skip)('--format json: the action report as one document', () => {
    const r = run(['--from-file', unitApp, '--root', applyRoot(), '--format', 'json', '--timings']);
    expect(r).toMatchObject({ status: 0, stderr: '' });
    expect(JSON.parse(r.stdout)).toEqual({
      version: 1,
      source: unitApp,
      dryRun: false,
      applied: true,
      ok: true,
      validation: { file: unitApp, kind: 'cloud-config', valid: true, diagnostics: [] },
      actions: [
        { action: 'file', target: '/etc/app.conf', status: 'changed', cause: null, origin: 'write_files[0]' },
        { action: 'file', target: '/etc/systemd/system/app.service', status: 'changed', cause: null, origin: 'coreos.units[0]' },
        { action: 'enable', target: 'app.service', status: 'changed', cause: null, origin: 'coreos.units[0]' },
      ],
      summary: { changed: 3, unchanged: 0, failed: 0, skipped: 0 },
      timings: { fetchMs: expect.any(Number), validateMs: expect.any(Number), applyMs: expect.any(Number) },
    });
    const failed = JSON.parse(run(['--from-file', bad, '--root', applyRoot(), '--format', 'json']).stdout);
    expect(failed).toMatchObject({ applied: false, ok: false, actions: [], validation: { valid: false, diagnostics: [expect.objectContaining({ code: 'invalid-value' })] } });
  });

  test('as a user other than root, applying to / is refused in one message; --root and --dry-run are not', () => {
    const nobody = (args: string[]) => spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, bin, ...args], { encoding: 'utf8' });
    const open = file('open.yaml', '#cloud-config\nhostname: a\nwrite_files:\n  - path: /etc/x\n    content: x\n');
    chmodSync(dir, 0o755);
    const r = nobody(['--from-file', open]);
    expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({
      status: 1,
      stdout: '',
      stderr: 'coreos-cloudinit: applying to / needs root (run as root, or use --root DIR or --dry-run)\n',
    });
    expect(nobody(['--from-url', 'http://127.0.0.1:9/x']).stderr).toBe('coreos-cloudinit: applying to / needs root (run as root, or use --root DIR or --dry-run)\n');
    const dry = nobody(['--from-file', open, '--dry-run', '--systemd-bus', 'none']);
    expect(dry.stderr).toBe('');
    expect(dry.stdout).toContain('would change file /etc/x [write_files[0]]');
  });
});

describe('fetching', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      res.statusCode = req.url === '/user-data' ? 200 : 404;
      res.end(req.url === '/user-data' ? '#cloud-config\nhostnam: a\n' : '');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => server.close());

  test('--validate of a URL that answers 404 says there is no user data there', async () => {
    const r = await runAsync(bin, ['--validate', '--from-url', `${base}/missing`]);
    expect(r).toEqual({
      status: 0,
      stdout: `${base}/missing:1:1: warning: no user data here: the server answered 404 (not found) [no-user-data]\n0 errors, 1 warning, 0 infos in 1 file\n`,
      stderr: '',
    });
    expect((await runAsync(bin, ['--validate', '--strict', '--from-url', `${base}/missing`])).status).toBe(1);
  });

  test('findings name the URL', async () => {
    const r = await runAsync(bin, ['--validate', '--from-url', `${base}/user-data`]);
    expect(r.stdout).toMatch(new RegExp(`^${base}/user-data:2:1: warning: unrecognized key "hostnam"`));
  });

  test('each retry is reported as it happens: the cause and the wait', () => {
    const url = 'http://127.0.0.1:9/user-data';
    const r = run(['--validate', '--from-url', url, '--http-attempts', '3', '--http-backoff', '20']);
    expect(r.status).toBe(1);
    expect(r.stderr.split('\n')).toEqual([
      expect.stringMatching(/^coreos-cloudinit: http:\/\/127\.0\.0\.1:9\/user-data: connect ECONNREFUSED 127\.0\.0\.1:9; retry 2 of 3 in \d+ ms$/),
      expect.stringMatching(/^coreos-cloudinit: http:\/\/127\.0\.0\.1:9\/user-data: connect ECONNREFUSED 127\.0\.0\.1:9; retry 3 of 3 in \d+ ms$/),
      `coreos-cloudinit: no datasource answered (${url}: connect ECONNREFUSED 127.0.0.1:9 (gave up after retrying))`,
      '',
    ]);
  });
});
